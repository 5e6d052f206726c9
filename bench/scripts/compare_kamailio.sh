#!/usr/bin/env bash
# rser against Kamailio in one run, same sipp load, for one job: stateless
# forwarding or stateful relay (t_relay with record-routing):
# sipp uac -> proxy (127.0.0.1:5060, WORKERS workers, 2 unless set, the
# same number for each: `children=` of both configs) -> sipp uas
# (127.0.0.1:5070).
# For each proxy: calls completed and failed, and the CPU its processes
# spent (utime+stime from /proc, steady part of the run) per call; for
# the stateless job, rser-floor (a forwarder that parses nothing) too.
#
# Usage: [WORKERS=N] bench/scripts/compare_kamailio.sh [RATE calls/s] [SECONDS] [stateless|stateful]
# Needs: sipp (sip-tester), kamailio, a release build of rser.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-500}
SECS=${2:-20}
JOB=${3:-stateless}
WORKERS=${WORKERS:-2}
OUT=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$OUT"' EXIT
sed "s/^children=.*/children=$WORKERS/" "${KAM_CFG:-../shared/anchors/kamailio/$JOB.cfg}" >"$OUT/kamailio.cfg"
sed "s/^children=.*/children=$WORKERS/" "bench/configs/$JOB.cfg" >"$OUT/rser.cfg"
KAM_CFG=$OUT/kamailio.cfg
RSER_CFG=$OUT/rser.cfg
cargo build --release --bin rser >/dev/null 2>&1
cargo build --release -p rser-bench --bin rser-floor >/dev/null 2>&1
. bench/scripts/lib.sh

run_one() {
    local name=$1 pid
    sipp -sn uas -i 127.0.0.1 -p 5070 -nostdin >/dev/null 2>&1 &
    case $name in
    kamailio)
        kamailio -f "$KAM_CFG" -P "$OUT/kam.pid" -E -w "$OUT" >/dev/null 2>&1
        sleep 1
        pid=$(cat "$OUT/kam.pid")
        ;;
    rser)
        target/release/rser -f "$RSER_CFG" -m 256 >"$OUT/rser.log" 2>&1 &
        pid=$!
        sleep 1
        ;;
    floor)
        target/release/rser-floor --listen 127.0.0.1:5060 --to 127.0.0.1:5070 --workers "$WORKERS" \
            >"$OUT/floor.log" 2>&1 &
        pid=$!
        sleep 1
        ;;
    esac
    sipp -sn uac 127.0.0.1:5060 -i 127.0.0.1 -p 5061 -r "$RATE" -m $((RATE * SECS)) \
        -nostdin -timeout $((SECS + 20)) -default_behaviors all,-abortunexp \
        >"$OUT/$name.uac" 2>&1 &
    local uac=$!
    sleep 2
    local t0 c0 t1 c1
    t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
    sleep $((SECS - 4))
    t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
    wait $uac || true
    local ok failed
    ok=$(sipp_count "$OUT/$name.uac" "Successful call")
    failed=$(sipp_count "$OUT/$name.uac" "Failed call")
    local secs us
    secs=$(echo "$t1 - $t0" | bc -l)
    us=$(us_per_call "$c1 - $c0" "$secs" "$RATE")
    printf '%-9s %s rate=%s/s calls=%s ok=%s failed=%s cpu_per_call=%.0f us (over %.1f s)\n' \
        "$name" "$JOB" "$RATE" $((RATE * SECS)) "${ok:-?}" "${failed:-?}" "$us" "$secs"
    kill "$pid" 2>/dev/null || true
    pkill -x sipp 2>/dev/null || true
    sleep 1
}

run_one kamailio
run_one rser
# The floor for a stateless proxy on these sockets: rser-floor parses
# nothing, so what it spends per call no proxy can spend less than.
if [ "$JOB" = stateless ]; then
    run_one floor
fi
