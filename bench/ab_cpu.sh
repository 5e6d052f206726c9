#!/usr/bin/env bash
# CPU per transaction of two rser binaries at one rate, measured in turns
# (A B A B ...) on the same machine, so a change's cost shows above the
# run-to-run noise: a before/after check for a change on the packet path.
# For each turn: start the binary on CONFIG (2 workers, -m $SHM_MB), run
# rser-bench SCENARIO at RATE for $SECS s, and take utime+stime of the
# proxy's processes from /proc over the middle (1 s skipped at each end),
# divided by the transactions asked for in that window. Prints one line
# per turn and each binary's median.
#
# Usage: bench/ab_cpu.sh A_BIN B_BIN [SCENARIO [RATE [TURNS]]]
#   SCENARIO: forward or call (default call), RATE per second (default
#   1000), TURNS per binary (default 3). Environment: SECS=12 SHM_MB=256
#   BENCH_BIN=target/release/rser-bench.
# Needs both binaries built (e.g. `git worktree add /tmp/old REV` and
# `cargo build --release --bin rser` there) and port 5060/5070 free.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/scripts/lib.sh

A=${1:?usage: bench/ab_cpu.sh A_BIN B_BIN [SCENARIO [RATE [TURNS]]]}
B=${2:?usage: bench/ab_cpu.sh A_BIN B_BIN [SCENARIO [RATE [TURNS]]]}
SCEN=${3:-call}
RATE=${4:-1000}
TURNS=${5:-3}
SECS=${SECS:-12}
SHM_MB=${SHM_MB:-256}
BENCH_BIN=${BENCH_BIN:-target/release/rser-bench}
case $SCEN in
forward) CFG=bench/configs/stateless.cfg ;;
call) CFG=bench/configs/stateful.cfg ;;
*) echo "ab_cpu.sh: scenario forward or call" >&2; exit 2 ;;
esac
[ -r "$CFG" ] || { echo "ab_cpu.sh: no $CFG" >&2; exit 2; }

PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT

turn() { # BIN -> prints µs per transaction
    local bin=$1 t0 t1 i
    "$bin" -f "$CFG" -n 2 -m "$SHM_MB" 2>/dev/null &
    PID=$!
    sleep 1
    "$BENCH_BIN" --scenario "$SCEN" --target 127.0.0.1:5060 --uas 127.0.0.1:5070 \
        --rate "$RATE" --duration "${SECS}s" >/dev/null 2>&1 &
    local gen=$!
    sleep 1
    t0=$(cpu_ticks "$PID")
    sleep $((SECS - 2))
    t1=$(cpu_ticks "$PID")
    wait "$gen" || true
    kill "$PID"
    for ((i = 0; i < 50; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    PID=
    us_per_call "$t1 - $t0" $((SECS - 2)) "$RATE"
}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

echo "scenario $SCEN at $RATE/s, $SECS s per turn, $TURNS turns each; $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
: >/tmp/ab_cpu.a
: >/tmp/ab_cpu.b
for ((k = 1; k <= TURNS; k++)); do
    a=$(turn "$A"); echo "turn $k A $A: $(printf '%.1f' "$a") µs"; echo "$a" >>/tmp/ab_cpu.a
    b=$(turn "$B"); echo "turn $k B $B: $(printf '%.1f' "$b") µs"; echo "$b" >>/tmp/ab_cpu.b
done
printf 'median A: %.1f µs per transaction\n' "$(median </tmp/ab_cpu.a)"
printf 'median B: %.1f µs per transaction\n' "$(median </tmp/ab_cpu.b)"
