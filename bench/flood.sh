#!/usr/bin/env bash
# An INVITE flood against Kamailio's stock anti-flood defence (pike +
# htable ipban), rser against Kamailio in one run. Both proxies run
# Debian's /etc/kamailio/kamailio.cfg unchanged with -A WITH_ANTIFLOOD
# (pike: 16 requests per 2 s from a source at most, then a ban of 300 s
# in htable ipban; requests from the proxy's own address exempt),
# listening on udp:127.0.0.1:PORT with WORKERS workers and SHM_MB of
# shared memory. For each proxy:
#   1. start it and wait until it answers an OPTIONS from 127.0.0.1;
#   2. the flood: rser-bench calls from FLOOD_SRC (one address, one
#      socket) at FLOOD_RATE/s (more than it can send: it sends as fast as
#      it can), each INVITE given up after FLOOD_TIMEOUT (under T1, so
#      none is retransmitted: every datagram a new INVITE), for
#      DURATION + 2 s;
#   3. 1 s later, the legitimate calls: LEGIT_RATE calls/s for DURATION s,
#      spread over SOURCES rser-bench processes on 127.0.0.10, .11, ...,
#      each LEGIT_RATE/SOURCES calls/s, so that no legitimate address goes
#      over pike's density (a call is INVITE, ACK and BYE from the caller:
#      3 requests; 100 calls/s from one address would be banned by the
#      stock config itself). Each process plays its own UAS on 127.0.0.1
#      (port PORT+10+i), registered as sip:legitI@127.0.0.1:PORT through
#      the proxy (rser-bench --callee), so the stock config's lookup finds
#      it; the calls come from sip:bench@127.0.0.1:PORT;
#   4. utime+stime of all the proxy's processes from SKIP s after the
#      legitimate calls started until DURATION s after (% of one core);
#      the sum of Pss over its processes then (after DURATION s), and its
#      peak, sampled every 2 s; the machine's UDP datagrams dropped on a
#      full receive buffer in that window (/proc/net/snmp RcvbufErrors:
#      flood the proxy never read, whatever else is quiet);
#   5. the legitimate calls completed and failed (summed over the
#      processes' JSON reports; a process that could not register its
#      callee counts all its calls as failed), the flood's INVITEs sent
#      (and the flood generator's own CPU: near a whole core, it was its
#      own limit; the rate differs between the proxies' runs, so compare
#      CPU per flood INVITE too), and the addresses the proxy's log says
#      pike banned.
# Prints one line per proxy, and the goal: every legitimate call
# completes with rser, at no more than half of Kamailio's CPU.
#
# Usage: bench/flood.sh   (DURATION=60 SKIP=5 LEGIT_RATE=100 SOURCES=50
#        FLOOD_RATE=1000000 FLOOD_TIMEOUT=400ms FLOOD_SRC=127.0.0.2
#        WORKERS=2 SHM_MB=64 PKG_MB=8 PORT=5260
#        PROXIES="kamailio rser rser-kdrop")
#        rser-kdrop: rser on the same stock config with one line added,
#        modparam("pike", "kernel_drop", 60): a hot source dropped by the
#        kernel (a BPF filter on the sockets) for 60 s.
#        KEEP=1: keep the scratch directory with the logs and JSON)
#        Ports on 127.0.0.1: the proxy PORT, the flood's UAS PORT+1, the
#        legitimate UASes PORT+10 .. PORT+9+SOURCES.
# Needs: kamailio (Debian's package, its /etc/kamailio/kamailio.cfg),
# python3; target/release/rser and rser-bench built (rser-bench with
# --source).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/scripts/lib.sh
. bench/scripts/lib.sh

DURATION=${DURATION:-60}
DURATION=${DURATION%s}
SKIP=${SKIP:-5}
LEGIT_RATE=${LEGIT_RATE:-100}
SOURCES=${SOURCES:-50}
FLOOD_RATE=${FLOOD_RATE:-1000000}
FLOOD_TIMEOUT=${FLOOD_TIMEOUT:-400ms}
FLOOD_SRC=${FLOOD_SRC:-127.0.0.2}
WORKERS=${WORKERS:-2}
SHM_MB=${SHM_MB:-64}
PKG_MB=${PKG_MB:-8}
PORT=${PORT:-5260}
PROXIES=${PROXIES:-"kamailio rser rser-kdrop"}
KAMAILIO=${KAMAILIO:-kamailio}
CFG=/etc/kamailio/kamailio.cfg
REL=target/release
BENCH=$REL/rser-bench
PROXY=127.0.0.1:$PORT
DENSITY=16 UNIT=2 # the stock config's pike: requests per unit (s)

die() { echo "flood.sh: $*" >&2; exit 1; }
[ "$DURATION" -gt $((SKIP + 1)) ] || die "DURATION ($DURATION) must be more than SKIP + 1 ($((SKIP + 1)))"
[ "$SOURCES" -ge 1 ] && [ "$SOURCES" -le 240 ] || die "SOURCES: from 1 to 240"
[ -r "$CFG" ] || die "no $CFG (apt-get install kamailio)"
for b in "$REL/rser" "$BENCH"; do [ -x "$b" ] || die "$b missing (cargo build --release)"; done
"$BENCH" --help 2>&1 | grep -q -- --source || die "$BENCH has no --source"
command -v python3 >/dev/null || die "python3 missing"
case " $PROXIES " in *" kamailio "*) command -v "$KAMAILIO" >/dev/null || die "kamailio missing" ;; esac

PER_SRC=$(awk -v r="$LEGIT_RATE" -v n="$SOURCES" 'BEGIN { printf "%g", r / n }')
# Requests a legitimate address sends in one pike unit, retransmissions aside.
PER_UNIT=$(awk -v r="$PER_SRC" -v u="$UNIT" 'BEGIN { printf "%g", 3 * r * u }')
awk -v p="$PER_UNIT" -v d="$DENSITY" 'BEGIN { exit !(p <= d * 0.75) }' ||
    echo "flood.sh: warning: each legitimate address sends $PER_UNIT requests per ${UNIT} s, near or over pike's $DENSITY: raise SOURCES" >&2
awk -v r="$PER_SRC" 'BEGIN { exit !(r >= 1) }' || die "LEGIT_RATE/SOURCES = $PER_SRC: rser-bench's rate is 1/s at least"

S=$(mktemp -d "${TMPDIR:-/tmp}/rser-flood.XXXXXX")
PIDS=()
forget() { # PID...
    local keep=() q r drop
    for q in ${PIDS[@]+"${PIDS[@]}"}; do
        drop=
        for r in "$@"; do [ "$q" = "$r" ] && drop=1; done
        [ -n "$drop" ] || keep+=("$q")
    done
    PIDS=(${keep[@]+"${keep[@]}"})
}
cleanup() {
    trap - EXIT INT TERM
    stop ${PIDS[@]+"${PIDS[@]}"}
    if [ "${KEEP:-0}" = 1 ]; then echo "flood.sh: scratch kept: $S" >&2; else rm -rf "$S"; fi
}
trap cleanup EXIT
trap 'echo "flood.sh: interrupted" >&2; exit 130' INT TERM

# Every port this run binds on 127.0.0.1, free (within 10 s).
ports_free() {
    python3 - "$PORT" "$SOURCES" <<'PY'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
ports = [port, port + 1] + [port + 10 + i for i in range(n)]
for _ in range(100):
    busy = []
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            busy.append(p)
        finally:
            s.close()
    if not busy:
        sys.exit(0)
    time.sleep(0.1)
sys.exit(f"flood.sh: udp ports in use on 127.0.0.1: {busy}")
PY
}

# One OPTIONS from 127.0.0.1 (the proxy's own address: pike leaves it
# alone); true when anything answers within 0.5 s.
probe() {
    python3 - "$PROXY" <<'PY'
import select, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.bind(("127.0.0.1", 0))
lp = c.getsockname()[1]
msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
       f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK-probe{lp}\r\n"
       f"Max-Forwards: 70\r\nFrom: <sip:probe@{host}>;tag=p{lp}\r\nTo: <sip:probe@{host}>\r\n"
       f"Call-ID: probe-{lp}@{host}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
c.sendto(msg.encode(), (host, int(port)))
r, _, _ = select.select([c], [], [], 0.5)
sys.exit(0 if r else 1)
PY
}

# The machine's UDP datagrams dropped for a full receive buffer so far
# (every socket's: the proxy's, with nothing else busy).
rcvbuf_errors() {
    awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else { print $c; exit } }' /proc/net/snmp
}

# Starts WHO on PROXY; sets PPID_ to its main process.
start_proxy() { # WHO
    local who=$1 log=$S/$1.log i
    case $who in
    kamailio)
        mkdir -p "$S/kamailio-run"
        # -DD: in the foreground, the workers its children; -n: children.
        "$KAMAILIO" -f "$CFG" -A WITH_ANTIFLOOD -DD -E -l "udp:$PROXY" -n "$WORKERS" \
            -m "$SHM_MB" -M "$PKG_MB" -P "$S/kamailio-run/kamailio.pid" -Y "$S/kamailio-run" \
            -w "$S/kamailio-run" >"$log" 2>&1 &
        ;;
    rser)
        "$REL/rser" -f "$CFG" -A WITH_ANTIFLOOD -l "udp:$PROXY" -n "$WORKERS" -m "$SHM_MB" \
            -s "$S/rser-ctl.sock" >"$log" 2>&1 &
        ;;
    rser-kdrop)
        sed -e '/modparam("pike", "remove_latency"/a modparam("pike", "kernel_drop", 60)' "$CFG" \
            >"$S/stock-kdrop.cfg"
        grep -q kernel_drop "$S/stock-kdrop.cfg" || die "no kernel_drop line put in $S/stock-kdrop.cfg"
        "$REL/rser" -f "$S/stock-kdrop.cfg" -A WITH_ANTIFLOOD -l "udp:$PROXY" -n "$WORKERS" \
            -m "$SHM_MB" -s "$S/rser-ctl.sock" >"$log" 2>&1 &
        ;;
    *) die "no proxy $who" ;;
    esac
    PPID_=$!
    PIDS+=("$PPID_")
    for ((i = 0; i < 30; i++)); do
        alive "$PPID_" || { tail -20 "$log" >&2; die "$who exited at start-up (log above)"; }
        probe && return 0
    done
    tail -20 "$log" >&2
    die "$who did not answer on $PROXY within 15 s"
}

# One proxy: flood, legitimate calls, measures; writes $S/WHO.txt.
run() { # WHO
    local who=$1 flood legit=() i src t0 t1 c0 c1 f0 f1 d0 d1 pss sampler
    ports_free
    start_proxy "$who"
    echo "flood.sh: $who up, $(proc_tree "$PPID_" | wc -l) processes" >&2
    # Peak PSS, every 2 s, while the proxy runs.
    (
        max=0
        while alive "$PPID_"; do
            k=$(pss_kib "$PPID_")
            [ "$k" -gt "$max" ] && { max=$k; echo "$max" >"$S/$who-pss-peak"; }
            sleep 2
        done
    ) &
    sampler=$!
    PIDS+=("$sampler")

    timeout -k 5 $((DURATION + 40)) "$BENCH" --scenario call --target "$PROXY" --source "$FLOOD_SRC" \
        --uas "127.0.0.1:$((PORT + 1))" --callee "sip:flood@$PROXY" --from "sip:bench@$PROXY" \
        --rate "$FLOOD_RATE" --duration "$((DURATION + 2))s" --timeout "$FLOOD_TIMEOUT" \
        --max-inflight 200000 --quiet --json "$S/$who-flood.json" >"$S/$who-flood.log" 2>&1 &
    flood=$!
    PIDS+=("$flood")
    sleep 1
    for ((i = 0; i < SOURCES; i++)); do
        src=127.0.0.$((10 + i))
        timeout -k 5 $((DURATION + 40)) "$BENCH" --scenario call --target "$PROXY" --source "$src" \
            --uas "127.0.0.1:$((PORT + 10 + i))" --callee "sip:legit$i@$PROXY" --from "sip:bench@$PROXY" \
            --rate "$PER_SRC" --duration "${DURATION}s" --quiet --json "$S/$who-legit-$i.json" \
            >"$S/$who-legit-$i.log" 2>&1 &
        legit+=("$!")
        PIDS+=("$!")
    done
    sleep "$SKIP"
    t0=$(date +%s.%N) c0=$(cpu_ticks "$PPID_") f0=$(cpu_ticks "$flood") d0=$(rcvbuf_errors)
    sleep $((DURATION - SKIP))
    t1=$(date +%s.%N) c1=$(cpu_ticks "$PPID_") f1=$(cpu_ticks "$flood") d1=$(rcvbuf_errors)
    pss=$(pss_kib "$PPID_")
    for i in "${legit[@]}"; do wait "$i" 2>/dev/null || true; done
    wait "$flood" 2>/dev/null || true
    forget "${legit[@]}" "$flood"
    stop "$PPID_" "$sampler"
    forget "$PPID_" "$sampler"
    python3 - "$S" "$who" "$SOURCES" "$PER_SRC" "$DURATION" "$TICK" "$t0" "$t1" "$c0" "$c1" "$f0" "$f1" \
        "$pss" "$(cat "$S/$who-pss-peak" 2>/dev/null || echo 0)" "$((d1 - d0))" <<'PY' | tee "$S/$who.txt"
import json, os, re, sys
d, who, n, per, dur, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
t0, t1 = float(sys.argv[7]), float(sys.argv[8])
c0, c1, f0, f1, pss, peak, drops = (int(x) for x in sys.argv[9:16])
secs = t1 - t0
asked = round(per * dur) * n
keys = ("sent", "completed", "failed", "timeouts", "error_replies", "retransmitted")
tot = dict.fromkeys(keys, 0)
missing = []
for i in range(n):
    try:
        j = json.load(open(os.path.join(d, f"{who}-legit-{i}.json")))
    except (OSError, ValueError):
        missing.append(f"127.0.0.{10 + i}")
        continue
    for k in keys:
        tot[k] += j.get(k) or 0
# A process without a report started no call: all its calls failed.
failed = tot["failed"] + len(missing) * round(per * dur)
try:
    fl = json.load(open(os.path.join(d, f"{who}-flood.json")))
except (OSError, ValueError):
    fl = {}
fsent = (fl.get("sent") or 0) - (fl.get("rejected_full") or 0)
fdur = fl.get("duration_s") or 0
frate = fsent / fdur if fdur else 0
cpu = (c1 - c0) / hz / secs
banned = []
try:
    for line in open(os.path.join(d, f"{who}.log"), errors="replace"):
        if "pike blocking" in line:
            m = re.search(r"IP:([0-9.]+)", line)
            if m and m.group(1) not in banned:
                banned.append(m.group(1))
except OSError:
    pass
us_flood = cpu * 1e6 / frate if frate else float("nan")
print(f"{who}: legit {tot['completed']} completed {failed} failed (of {asked}; "
      f"{tot['retransmitted']} retransmitted, {tot['error_replies']} error replies), "
      f"flood sent {fsent} ({frate:.0f}/s, {fl.get('retransmitted', '?')} retransmitted, "
      f"flood generator {(f1 - f0) / hz / secs:.0%} of a core), "
      f"CPU {cpu:.1%} of a core ({us_flood:.2f} µs per flood INVITE sent; "
      f"{drops / secs:.0f}/s dropped by full UDP receive buffers), "
      f"PSS {pss / 1024:.1f} MiB after {dur} s (peak {peak / 1024:.1f} MiB), "
      f"banned: {' '.join(banned) or 'none'}")
if missing:
    print(f"{who}: no report from {len(missing)} legitimate processes ({' '.join(missing)}; see {who}-legit-I.log)")
# For the goal line: completed failed cpu
with open(os.path.join(d, f"{who}.goal"), "w") as f:
    f.write(f"{tot['completed']} {failed} {asked} {cpu}\n")
PY
}

echo "flood.sh: $CFG -A WITH_ANTIFLOOD on udp:$PROXY, $WORKERS workers, -m $SHM_MB;" \
    "flood from $FLOOD_SRC at up to $FLOOD_RATE/s; legit $LEGIT_RATE calls/s from $SOURCES addresses" \
    "(127.0.0.10..$((9 + SOURCES)), $PER_SRC/s each: $PER_UNIT requests per ${UNIT} s against pike's $DENSITY);" \
    "${DURATION} s, CPU from ${SKIP} s; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for who in $PROXIES; do run "$who"; done

for mine in rser rser-kdrop; do
    [ -s "$S/$mine.goal" ] && [ -s "$S/kamailio.goal" ] || continue
    python3 - "$S/$mine.goal" "$S/kamailio.goal" "$mine" <<'PY'
import sys
rd, rf, ra, rc = (float(x) for x in open(sys.argv[1]).read().split())
kd, kf, ka, kc = (float(x) for x in open(sys.argv[2]).read().split())
ok = rd > 0 and rf == 0 and kc > 0 and rc <= kc / 2
ratio = f"{rc / kc:.2f}×" if kc > 0 else "—"
print(f"goal (every legitimate call completes with {sys.argv[3]}, CPU ≤ 0.5× Kamailio's): "
      f"{sys.argv[3]} {rd:.0f}/{ra:.0f} completed, CPU {ratio} Kamailio's (Kamailio {kd:.0f}/{ka:.0f}): "
      f"{'met' if ok else 'NOT met'}")
PY
done
