#!/usr/bin/env bash
# Instructions the server spends on a fixed load, from callgrind: a
# before/after check for a change on the packet path where wall-clock CPU
# is too noisy (a shared VM). Runs BIN under callgrind with one worker,
# sends RATE*SECS transactions of SCENARIO with rser-bench, stops it, and
# prints each process's total (the worker's is the one that grows with
# the load; the timer process's grows with wall time).
#
# Usage: bench/callgrind_server.sh BIN SCENARIO CONFIG OUTDIR [RATE [SECS]]
#   e.g. bench/callgrind_server.sh target/release/rser call bench/configs/stateful.cfg /tmp/cg 50 10
# Needs valgrind, target/release/rser-bench, ports 5060 and 5070 free.
set -u
BIN=$1; SCEN=$2; CFG=$3; OUT=$4; RATE=${5:-50}; SECS=${6:-10}
rm -rf "$OUT"; mkdir -p "$OUT"
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.%p" "$BIN" -f "$CFG" -n 1 -m 64 >/dev/null 2>"$OUT/vg.log" &
VPID=$!
sleep 8
target/release/rser-bench --scenario "$SCEN" --target 127.0.0.1:5060 --uas 127.0.0.1:5070 --rate "$RATE" --duration "${SECS}s" > "$OUT/bench.txt" 2>&1
kill -INT $VPID; sleep 5; kill -9 $VPID 2>/dev/null; pkill -9 -f "valgrind.*$BIN" 2>/dev/null
sleep 1
grep "^sent" "$OUT/bench.txt"
for f in "$OUT"/cg.*; do
    role=other
    grep -q run_timer_process "$f" && role=timer
    grep -q recvmmsg "$f" && [ $role = other ] && role=worker
    echo "$f ($role): $(awk '/^summary:/ {print $2}' "$f") instructions"
done
