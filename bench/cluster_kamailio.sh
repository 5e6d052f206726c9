#!/usr/bin/env bash
# Kamailio's own clustering of the location table, for comparison with
# rser's Redis-shared one (bench/cluster_cost.sh): two Kamailio nodes on
# 127.0.0.1 replicating usrloc with dmq + dmq_usrloc, against one node
# alone. bench/configs/kamailio/registrar-dmq.cfg for every node:
#   1. alone: the cfg without DMQ_SELF (dmq and dmq_usrloc not loaded, the
#      job of the anchor registrar.cfg); rser-bench registers USERS users at
#      RATE/s for SECS s; the CPU of all the node's processes over the
#      steady middle, per registration;
#   2. dmq: nodes A and B, each the other's notification address;
#      rser-bench registers through A; A's CPU and B's (what receiving the
#      replication costs) per registration, each on its own;
#   3. convergence: bench/convergence.py registers through A and polls B,
#      while rser-bench loads A at CONV_RATE/s.
#
# Usage: bench/cluster_kamailio.sh   (USERS=50000 RATE=2000 SECS=14
#        WORKERS=2 SHM_MB=256 PKG_MB=16 PORT=5090 CONV_RATE=1000
#        CONV_COUNT=300 CONV_SECS=20)
#        Nodes on udp 127.0.0.1: alone PORT, A PORT+2, B PORT+4.
# Needs: kamailio (with dmq and dmq_usrloc), python3; target/release/rser-bench built.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/scripts/lib.sh
. bench/scripts/lib.sh

USERS=${USERS:-50000} RATE=${RATE:-2000} SECS=${SECS:-14} WORKERS=${WORKERS:-2}
SHM_MB=${SHM_MB:-256} PKG_MB=${PKG_MB:-16} PORT=${PORT:-5090}
CONV_RATE=${CONV_RATE:-1000} CONV_COUNT=${CONV_COUNT:-300} CONV_SECS=${CONV_SECS:-20}
KAMAILIO=${KAMAILIO:-kamailio}
CFG=bench/configs/kamailio/registrar-dmq.cfg
REL=target/release SKIP=2
TICK=$(getconf CLK_TCK)
S=$(mktemp -d "${TMPDIR:-/tmp}/kam-cluster.XXXXXX")
PIDS=()
cleanup() {
    stop ${PIDS[@]+"${PIDS[@]}"}
    rm -rf "$S"
}
trap cleanup EXIT

python3 -c "
print('SEQUENTIAL')
for i in range($USERS): print(f'user{i};pw{i}')" >"$S/users.csv"
sed -e "s|^children=.*|children=$WORKERS|" "$CFG" >"$S/node.cfg"

# A node on PORT, in the foreground (-DD: the pid is its main process, the
# workers its children), with its own pid file and runtime dir. With PEER,
# a dmq node that joins through PEER's port. Sets NODE to its pid.
node() { # PORT [PEER]
    local port=$1 peer=${2:-} dmq=()
    if [ -n "$peer" ]; then
        dmq=(-A "DMQ_SELF=\"sip:127.0.0.1:$port\"" -A "DMQ_PEER=\"sip:127.0.0.1:$peer\"")
    fi
    mkdir -p "$S/run-$port"
    "$KAMAILIO" -f "$S/node.cfg" -DD -E -A "LISTEN=udp:127.0.0.1:$port" ${dmq[@]+"${dmq[@]}"} \
        -m "$SHM_MB" -M "$PKG_MB" -P "$S/run-$port/kamailio.pid" -Y "$S/run-$port" -w "$S/run-$port" \
        >"$S/node-$port.log" 2>&1 &
    NODE=$!
    PIDS+=("$NODE")
    sleep 1.5
    [ -d /proc/"$NODE" ] || { echo "cluster_kamailio.sh: kamailio on $port did not start:" >&2; tail -5 "$S/node-$port.log" >&2; exit 1; }
}

# rser-bench registering the users through PORT at R/s for D s, in the
# background; sets BENCH to its pid.
load() { # PORT R D
    timeout $(($3 + 30)) "$REL/rser-bench" --target "127.0.0.1:$1" --quiet --scenario register \
        --users "$S/users.csv" --domain 127.0.0.1 --rate "$2" --duration "${3}s" \
        --json "$S/bench-$1.json" >"$S/bench-$1.log" 2>&1 &
    BENCH=$!
    PIDS+=("$BENCH")
}

# The load through node A at RATE for SECS s; prints µs of CPU per
# registration of A and, when B is given, of B.
run() { # A_PID A_PORT [B_PID]
    local a=$1 port=$2 b=${3:-} t0 t1 a0 a1 b0=0 b1=0
    load "$port" "$RATE" "$SECS"
    sleep "$SKIP"
    t0=$(date +%s.%N) a0=$(cpu_ticks "$a")
    [ -n "$b" ] && b0=$(cpu_ticks "$b")
    sleep $((SECS - 2 * SKIP))
    t1=$(date +%s.%N) a1=$(cpu_ticks "$a")
    [ -n "$b" ] && b1=$(cpu_ticks "$b")
    wait "$BENCH" || true
    python3 - "$S/bench-$port.json" "$a0" "$a1" "$b0" "$b1" "$t0" "$t1" "$TICK" "$RATE" "${b:+B}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a0, a1, b0, b1 = (int(x) for x in sys.argv[2:6])
secs = float(sys.argv[7]) - float(sys.argv[6])
hz, rate = float(sys.argv[8]), float(sys.argv[9])
done, dur = d.get("completed"), d.get("duration_s")
per_s = done / dur if done and dur else rate
units = per_s * secs
us = lambda t: t / hz * 1e6 / units
nodes = f"{us(a1 - a0):.1f} µs node A, {us(b1 - b0):.1f} µs node B" if sys.argv[10] else f"{us(a1 - a0):.1f} µs node"
print(f"{nodes}, {d.get('completed')} completed, {d.get('failed')} failed")
PY
}

# 1. One node, no dmq.
node "$PORT"
echo "alone:  $(run "$NODE" "$PORT")"
stop "$NODE"

# 2. Two nodes; B starts second and joins (and syncs) through A.
PA=$((PORT + 2)) PB=$((PORT + 4))
node "$PA" "$PB"
A=$NODE
node "$PB" "$PA"
B=$NODE
sleep 1
echo "dmq:    $(run "$A" "$PA" "$B")"

# 3. Convergence under load on the same pair.
load "$PA" "$CONV_RATE" "$CONV_SECS"
sleep "$SKIP"
timeout $((CONV_SECS + 60)) python3 bench/convergence.py --a "127.0.0.1:$PA" --b "127.0.0.1:$PB" \
    --count "$CONV_COUNT" 2>&1 || echo "cluster_kamailio.sh: convergence.py failed" >&2
if [ -d /proc/"$BENCH" ]; then
    wait "$BENCH" || true
else
    echo "cluster_kamailio.sh: the load (CONV_SECS=$CONV_SECS) ended before the probe did" >&2
fi
python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
print(f\"load during convergence: {d.get('completed')} completed, {d.get('failed')} failed\")" "$S/bench-$PA.json"
stop "$A" "$B"
