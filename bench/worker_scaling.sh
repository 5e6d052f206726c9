#!/usr/bin/env bash
# CPU per forwarded transaction as the workers grow, for each way the
# workers share the UDP port (issue 24):
#   shared   one socket bound by the master, read by every worker;
#   hash     reuse_port=yes: one SO_REUSEPORT socket per worker, the
#            kernel's hash of the addresses picking one (one peer, one
#            worker);
#   random   reuse_port=yes with reuse_port_balance=random: a classic BPF
#            selector picks a worker's socket at random for each datagram;
#   cpu      reuse_port_balance=cpu: the socket of index (receiving CPU
#            mod workers); on loopback the receiving CPU is the sender's;
#   floor    not rser: rser-floor, a batched forwarder that parses nothing,
#            with as many threads reading the one socket: the floor rser's
#            cost is held against.
# bench/configs/stateless.cfg (every request forwarded statelessly to
# rser-bench's UAS); rser-bench `forward` at RATE/s for SECS s from PEERS
# sockets; rser's CPU (all its processes, /proc) over the steady middle,
# per transaction, and how the workers shared the datagrams (the master's
# last line).
#
# Usage: bench/worker_scaling.sh   (RATE=20000 SECS=10 PEERS=1 THREADS=1
#        WORKERS="1 2 4 8" MODES="shared hash random" PORT=5460)
#        THREADS: rser-bench's generator threads (each its own UAS port,
#        PORT+1 upwards), for a machine where one generator core is not
#        enough.
# Needs: target/release/rser and rser-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/scripts/lib.sh
. bench/scripts/lib.sh

RATE=${RATE:-20000} SECS=${SECS:-10} PEERS=${PEERS:-1} THREADS=${THREADS:-1}
WORKERS=${WORKERS:-"1 2 4 8"} MODES=${MODES:-"shared hash random"} PORT=${PORT:-5460}
REL=target/release SKIP=2
TICK=$(getconf CLK_TCK)
S=$(mktemp -d "${TMPDIR:-/tmp}/rser-scaling.XXXXXX")
PIDS=()
cleanup() {
    stop ${PIDS[@]+"${PIDS[@]}"}
    rm -rf "$S"
}
trap cleanup EXIT

run() { # MODE N
    local mode=$1 n=$2 cfg=$S/$1.cfg node bp t0 t1 c0 c1 spread
    case $mode in
    shared | floor) sed -e "s|^listen=.*|listen=udp:127.0.0.1:$PORT|" bench/configs/stateless.cfg >"$cfg" ;;
    hash) sed -e "s|^listen=.*|listen=udp:127.0.0.1:$PORT\nreuse_port=yes|" bench/configs/stateless.cfg >"$cfg" ;;
    random | cpu)
        sed -e "s|^listen=.*|listen=udp:127.0.0.1:$PORT\nreuse_port=yes\nreuse_port_balance=$mode|" \
            bench/configs/stateless.cfg >"$cfg"
        ;;
    *) echo "worker_scaling.sh: no mode $mode" >&2; exit 1 ;;
    esac
    sed -i -e "s|forward(127.0.0.1, 5070)|forward(127.0.0.1, $((PORT + 1)))|" "$cfg"
    if [ "$mode" = floor ]; then
        "$REL/rser-floor" --listen "127.0.0.1:$PORT" --to "127.0.0.1:$((PORT + 1))" --workers "$n" \
            >"$S/rser.log" 2>&1 &
    else
        RUST_LOG=info "$REL/rser" -f "$cfg" -n "$n" -m 64 >"$S/rser.log" 2>&1 &
    fi
    node=$!
    PIDS+=("$node")
    sleep 1
    timeout $((SECS + 20)) "$REL/rser-bench" --target "127.0.0.1:$PORT" --scenario forward \
        --uas "127.0.0.1:$((PORT + 1))" --rate "$RATE" --duration "${SECS}s" --peers "$PEERS" \
        --threads "$THREADS" \
        --quiet --json "$S/bench.json" >"$S/bench.log" 2>&1 &
    bp=$!
    sleep "$SKIP"
    t0=$(date +%s.%N) c0=$(cpu_ticks "$node")
    sleep $((SECS - 2 * SKIP))
    t1=$(date +%s.%N) c1=$(cpu_ticks "$node")
    wait "$bp" || true
    kill -TERM "$node"
    wait "$node" 2>/dev/null || true
    spread=$(grep -o 'received per worker: .*' "$S/rser.log" | awk '{print $NF}' || true)
    python3 - "$S/bench.json" "$c0" "$c1" "$t0" "$t1" "$TICK" "$mode" "$n" "${spread:-?}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c0, c1 = int(sys.argv[2]), int(sys.argv[3])
secs = float(sys.argv[5]) - float(sys.argv[4])
hz = float(sys.argv[6])
done, dur = d.get("completed") or 0, d.get("duration_s") or 0
per_s = done / dur if dur else 0
us = (c1 - c0) / hz * 1e6 / (per_s * secs) if per_s else float("nan")
print(f"{sys.argv[7]:7} -n {sys.argv[8]}: {us:.1f} µs per transaction, "
      f"{done} completed, {d.get('failed')} failed, received per worker {sys.argv[9]}")
PY
}

echo "worker_scaling.sh: forward at $RATE/s for $SECS s from $PEERS peer(s); $(nproc) CPUs" >&2
for mode in $MODES; do
    for n in $WORKERS; do
        run "$mode" "$n"
    done
done
