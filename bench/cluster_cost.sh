#!/usr/bin/env bash
# The location table shared through Redis (issue 22) against the same node
# alone: CPU per REGISTER, and how long a starting node takes to load the
# table. A redis-server of its own on 127.0.0.1:$REDIS_PORT (no
# persistence); bench/configs/registrar.cfg as the node's job, and the same
# with `modparam("usrloc", "db_url", "redis://...")`:
#   1. alone: rser-bench registers USERS users at RATE/s for SECS s; the CPU
#      of rser's processes over the steady middle, per registration;
#   2. shared: the same with the Redis node, rser's CPU plus redis-server's,
#      and a second node B on the same Redis taking no REGISTER (its CPU:
#      what following the feed costs);
#   3. a third node started on the filled Redis: its log's load time;
#   4. convergence: bench/convergence.py registers through that node and
#      polls node B, while rser-bench loads it at CONV_RATE/s (as
#      bench/cluster_kamailio.sh measures Kamailio's dmq_usrloc).
#
# Usage: bench/cluster_cost.sh   (USERS=50000 RATE=2000 SECS=14 WORKERS=2
#        SHM_MB=256 REDIS_PORT=6390 CONV_RATE=1000 CONV_COUNT=300
#        CONV_SECS=20)
# Needs: redis-server, python3; target/release/rser and rser-bench built.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/scripts/lib.sh
. bench/scripts/lib.sh

USERS=${USERS:-50000} RATE=${RATE:-2000} SECS=${SECS:-14} WORKERS=${WORKERS:-2}
SHM_MB=${SHM_MB:-256} REDIS_PORT=${REDIS_PORT:-6390}
CONV_RATE=${CONV_RATE:-1000} CONV_COUNT=${CONV_COUNT:-300} CONV_SECS=${CONV_SECS:-20}
REL=target/release SKIP=2
TICK=$(getconf CLK_TCK)
S=$(mktemp -d "${TMPDIR:-/tmp}/rser-cluster.XXXXXX")
PIDS=()
cleanup() {
    stop ${PIDS[@]+"${PIDS[@]}"}
    rm -rf "$S"
}
trap cleanup EXIT

python3 -c "
print('SEQUENTIAL')
for i in range($USERS): print(f'user{i};pw{i}')" >"$S/users.csv"
sed -e "s|^children=.*|children=$WORKERS|" bench/configs/registrar.cfg >"$S/alone.cfg"
sed -e 's|modparam("usrloc", "db_mode", 0)|modparam("usrloc", "db_mode", 3)\nmodparam("usrloc", "db_url", "redis://127.0.0.1:'"$REDIS_PORT"'")|' \
    "$S/alone.cfg" >"$S/shared.cfg"
grep -q redis "$S/shared.cfg" || { echo "cluster_cost.sh: no db_url put in" >&2; exit 1; }

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$S" \
    >"$S/redis.log" 2>&1 &
REDIS=$!
PIDS+=("$REDIS")
sleep 0.5

# One run: the node on CFG at RATE; prints µs of CPU per registration
# (the node's, plus redis-server's when EXTRA is its pid).
run() { # CFG PORT EXTRA PEER
    local cfg=$1 port=$2 extra=${3:-} peer=${4:-} node bp t0 t1 c0 c1 e0=0 e1=0 p0=0 p1=0
    "$REL/rser" -f "$cfg" -l "udp:127.0.0.1:$port" -n "$WORKERS" -m "$SHM_MB" >"$S/node-$port.log" 2>&1 &
    node=$!
    PIDS+=("$node")
    sleep 1.5
    timeout $((SECS + 30)) "$REL/rser-bench" --target "127.0.0.1:$port" --quiet --scenario register \
        --users "$S/users.csv" --domain 127.0.0.1 --rate "$RATE" --duration "${SECS}s" \
        --json "$S/bench-$port.json" >"$S/bench-$port.log" 2>&1 &
    bp=$!
    sleep "$SKIP"
    t0=$(date +%s.%N) c0=$(cpu_ticks "$node")
    [ -n "$extra" ] && e0=$(cpu_ticks "$extra")
    [ -n "$peer" ] && p0=$(cpu_ticks "$peer")
    sleep $((SECS - 2 * SKIP))
    t1=$(date +%s.%N) c1=$(cpu_ticks "$node")
    [ -n "$extra" ] && e1=$(cpu_ticks "$extra")
    [ -n "$peer" ] && p1=$(cpu_ticks "$peer")
    wait "$bp" || true
    kill -TERM "$node"
    wait "$node" 2>/dev/null || true
    python3 - "$S/bench-$port.json" "$c0" "$c1" "$e0" "$e1" "$t0" "$t1" "$TICK" "$RATE" "$p0" "$p1" "$peer" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c0, c1, e0, e1 = (int(x) for x in sys.argv[2:6])
secs = float(sys.argv[7]) - float(sys.argv[6])
hz, rate = float(sys.argv[8]), float(sys.argv[9])
done, dur = d.get("completed"), d.get("duration_s")
per_s = done / dur if done and dur else rate
units = per_s * secs
p0, p1 = int(sys.argv[10]), int(sys.argv[11])
peer = f", {(p1 - p0) / hz * 1e6 / units:.1f} µs node B" if sys.argv[12] else ""
print(f"{(c1 - c0) / hz * 1e6 / units:.1f} µs node{peer}, {(e1 - e0) / hz * 1e6 / units:.1f} µs redis-server, "
      f"{d.get('completed')} completed, {d.get('failed')} failed")
PY
}

echo "alone:  $(run "$S/alone.cfg" 5070)"
# Node B on the same Redis, taking no REGISTER: what following the feed
# costs a node.
"$REL/rser" -f "$S/shared.cfg" -l udp:127.0.0.1:5076 -n "$WORKERS" -m "$SHM_MB" >"$S/node-b.log" 2>&1 &
PEER=$!
PIDS+=("$PEER")
echo "shared: $(run "$S/shared.cfg" 5072 "$REDIS" "$PEER")"
RUST_LOG=info "$REL/rser" -f "$S/shared.cfg" -l udp:127.0.0.1:5074 -n "$WORKERS" -m "$SHM_MB" >"$S/fresh.log" 2>&1 &
PIDS+=("$!")
sleep 5
echo "fresh node: $(grep -o 'usrloc: [0-9]* bindings of [0-9]* AORs loaded from [^ ]* in [0-9]* ms' "$S/fresh.log")"

timeout $((CONV_SECS + 30)) "$REL/rser-bench" --target 127.0.0.1:5074 --quiet --scenario register \
    --users "$S/users.csv" --domain 127.0.0.1 --rate "$CONV_RATE" --duration "${CONV_SECS}s" \
    --json "$S/bench-conv.json" >"$S/bench-conv.log" 2>&1 &
BP=$!
sleep "$SKIP"
timeout $((CONV_SECS + 60)) python3 bench/convergence.py --a 127.0.0.1:5074 --b 127.0.0.1:5076 \
    --count "$CONV_COUNT" 2>&1 || echo "cluster_cost.sh: convergence.py failed" >&2
wait "$BP" || true
python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
print(f\"load during convergence: {d.get('completed')} completed, {d.get('failed')} failed\")" "$S/bench-conv.json"
