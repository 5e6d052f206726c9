#!/usr/bin/env bash
# rser's two socket modes side by side, with one peer and with many peers:
#   shared      one UDP socket bound by the master, read by every worker;
#   reuse_port  one SO_REUSEPORT socket per worker (`reuse_port=yes`), the
#               kernel spreading datagrams over them by a hash of the
#               source and destination addresses.
# Load: PEERS sipp uac processes (each its own source port, RATE/PEERS
# calls/s each) -> rser (127.0.0.1:5060, 2 workers) -> one sipp uas
# (127.0.0.1:5070). For each mode and peer count: calls completed and
# failed, rser's CPU per call (utime+stime from /proc over the steady part),
# and how the received datagrams were shared among the workers.
#
# Usage: bench/scripts/socket_modes.sh [RATE calls/s] [SECONDS] [MANY_PEERS]
# Needs: sipp (sip-tester), a release build of rser.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-2000}
SECS=${2:-15}
MANY=${3:-4}
OUT=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$OUT"' EXIT
cargo build --release --bin rser >/dev/null 2>&1
. bench/scripts/lib.sh

run_one() {
    local mode=$1 peers=$2 cfg="$OUT/$1.cfg" pid i
    sed -e '/^listen=/a reuse_port='"$([ "$mode" = reuse_port ] && echo yes || echo no)" \
        bench/configs/stateless.cfg >"$cfg"
    sipp -sn uas -i 127.0.0.1 -p 5070 -nostdin >/dev/null 2>&1 &
    RUST_LOG=info target/release/rser -f "$cfg" >"$OUT/rser.log" 2>&1 &
    pid=$!
    sleep 1
    local per=$((RATE / peers)) uacs=()
    for i in $(seq 1 "$peers"); do
        sipp -sn uac 127.0.0.1:5060 -i 127.0.0.1 -p $((5100 + i)) -r "$per" \
            -m $((per * SECS)) -nostdin -timeout $((SECS + 20)) \
            -default_behaviors all,-abortunexp >"$OUT/uac.$i" 2>&1 &
        uacs+=($!)
    done
    sleep 2
    local t0 c0 t1 c1
    t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
    sleep $((SECS - 4))
    t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
    wait "${uacs[@]}" || true
    local ok=0 failed=0 n
    for i in $(seq 1 "$peers"); do
        n=$(sipp_count "$OUT/uac.$i" "Successful call"); ok=$((ok + ${n:-0}))
        n=$(sipp_count "$OUT/uac.$i" "Failed call"); failed=$((failed + ${n:-0}))
    done
    kill "$pid"
    wait "$pid" || true
    # The master logs each worker's counters as it stops.
    local spread
    spread=$(grep 'received per worker' "$OUT/rser.log" | awk '{print $NF}' || true)
    local secs us
    secs=$(echo "$t1 - $t0" | bc -l)
    us=$(us_per_call "$c1 - $c0" "$secs" "$RATE")
    printf '%-10s peers=%-2s rate=%s/s ok=%s failed=%s cpu_per_call=%.0f us received_per_worker=%s\n' \
        "$mode" "$peers" "$RATE" "$ok" "$failed" "$us" "${spread:-?}"
    pkill -x sipp 2>/dev/null || true
    sleep 1
}

for peers in 1 "$MANY"; do
    run_one shared "$peers"
    run_one reuse_port "$peers"
done
