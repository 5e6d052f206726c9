#!/usr/bin/env bash
# rser against Kamailio, side by side, with the same load generator
# (rser-bench) on the same machine in one run. For every scenario and each
# proxy (same worker count, loopback, proxy on 127.0.0.1:5060, the
# generator's UAS on 127.0.0.1:5070):
#   1. start the proxy and wait until it answers;
#   2. the highest clean rate: rser-bench --search, trials of $TRIAL s;
#   3. latency at half that rate: $LAT_SECS s with --json and --hgrm;
#   4. after both searches, CPU per transaction at one common rate R (half
#      the lower clean rate of the two): utime+stime of the proxy's
#      processes from /proc over the steady part of a $CPU_SECS s run,
#      divided by the transactions completed in that window;
#   meanwhile the sum of Pss over the proxy's processes, every second,
#   the maximum kept;
#   5. stop the proxy and wait until port 5060 is free.
# The floor (rser-floor, a UDP forwarder that parses nothing) is measured
# under `forward` too. One Markdown table and the goals, met or not, are
# printed at the end and written to DIR/summary.md.
#
# Usage: bench/compare.sh [--quick] [--out DIR] [--report-only] [SCENARIO ...]
#   SCENARIO: options forward call register register-auth register-auth-mysql
#             register-auth-pgsql dispatcher stock-register stock-call tcp-call
#             (default: all); register-auth-mysql and -pgsql: register-auth with
#             the subscriber table on the local MariaDB or PostgreSQL (user
#             rser/rser, as tests/setup.sh makes; one database made by
#             Kamailio's own scripts, the same for both proxies): their CPU
#             per registration includes the database server's, and the
#             database's queries per registration are counted; the stock ones run
#             Debian's /etc/kamailio/kamailio.cfg on both proxies (package
#             kamailio), only its children set here; stock-call registers
#             the UAS as sip:service@PROXY first (--callee) and calls it
#             from the proxy's own domain, as the script requires.
#             tcp-call: calls over TCP (rser-bench --transport tcp: one
#             connection per peer, the UAS taking the proxy's) through a
#             stateful proxy relaying over TCP with record-routing, as the
#             other scenarios; then sipp's uac and uas over TCP (-t t1) at
#             TCP_RATE calls/s for CPU_SECS as a cross-check: CPU per call
#             and calls completed.
#   --quick        2 s trials (10 at most), short latency and CPU runs: a smoke run
#   --out DIR      where JSON, .hgrm, .svg, logs and summary.md go
#                  (default bench/results/DATE-TIME)
#   --report-only  print the table again from the files in --out DIR
# Environment (defaults; --quick's in brackets):
#   TRIAL=5 [2]  LAT_SECS=10 [3]  CPU_SECS=14 [6] (2 s skipped at each end)
#   START=500 (search's first rate)  WORKERS=2  SHM_MB=1024 (both proxies' -m)  USERS=1000
#   TCP_RATE=300 (tcp-call's calls/s)
#   AUTH_CACHE_EXPIRES=10 (rser's auth_cache_expires in register-auth-mysql
#   and -pgsql; 0: no cache, one query per registration as Kamailio's)
#   SIPP=1: also a sipp call row per proxy (bench/sipp/uac_reorder.xml and
#           uas_reorder.xml, SIPP_RATE=1000 calls/s for SIPP_SECS=10 [3] s)
#   KAM_DIR=../shared/anchors/kamailio  NO_BUILD=1 (use target/release as is)
#   BENCH_BIN, FLOOR_BIN, HIST_BIN: other rser-bench, rser-floor, rser-hist
#   CARGO_LOCK=/tmp/cargo.lock (flock around cargo; empty: none)  KEEP=1
#   (keep the scratch directory: configs, databases, users.csv)
# Needs: kamailio (and kamailio-sqlite-modules for register-auth), python3,
# sipp (sip-tester) only with SIPP=1, cargo unless NO_BUILD=1.
set -euo pipefail

CMDLINE=$(printf '%q ' "$0" "$@")
CMDLINE=${CMDLINE% }
CALLER_PWD=$PWD
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/scripts/lib.sh
. bench/scripts/lib.sh

ALL_SCENARIOS=(options forward call register register-auth register-auth-mysql register-auth-pgsql dispatcher
    stock-register stock-call tcp-call)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "compare.sh: error: $*" >&2; exit 1; }
warn() { echo "compare.sh: warning: $*" >&2; }
say() { echo "==> $*" >&2; }

QUICK=${QUICK:-0}
OUT=
REPORT_ONLY=0
SCENARIOS=()
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT=$2; shift ;;
    --out=*) OUT=${1#--out=} ;;
    --report-only) REPORT_ONLY=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
        case " ${ALL_SCENARIOS[*]} " in
        *" $1 "*) SCENARIOS+=("$1") ;;
        *) die "unknown scenario $1 (one of: ${ALL_SCENARIOS[*]})" ;;
        esac
        ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    TRIAL=${TRIAL:-2} LAT_SECS=${LAT_SECS:-3} CPU_SECS=${CPU_SECS:-6} SIPP_SECS=${SIPP_SECS:-3}
else
    TRIAL=${TRIAL:-5} LAT_SECS=${LAT_SECS:-10} CPU_SECS=${CPU_SECS:-14} SIPP_SECS=${SIPP_SECS:-10}
fi
START=${START:-500}
SEARCH_ARGS=()
[ "$QUICK" = 1 ] && SEARCH_ARGS=(--max-trials 10)
WORKERS=${WORKERS:-2}
SHM_MB=${SHM_MB:-1024}
USERS=${USERS:-1000}
SIPP=${SIPP:-0}
SIPP_RATE=${SIPP_RATE:-1000}
TCP_RATE=${TCP_RATE:-300}
KAM_DIR=${KAM_DIR:-../shared/anchors/kamailio}
SKIP=2            # seconds left out at each end of the CPU run
READY_SECS=15     # how long a proxy may take to answer
STOP_SECS=5       # SIGTERM, then SIGKILL after this
DOMAIN=example.net # realm and domain of the 1,000 users, on both proxies
PROXY_ADDR=127.0.0.1:5060
UAS_ADDR=127.0.0.1:5070
REL=target/release
BENCH_BIN=${BENCH_BIN:-$REL/rser-bench}
FLOOR_BIN=${FLOOR_BIN:-$REL/rser-floor}
HIST_BIN=${HIST_BIN:-$REL/rser-hist}
[ "$CPU_SECS" -gt $((2 * SKIP)) ] || die "CPU_SECS must be more than $((2 * SKIP))"

case $OUT in
'') OUT=bench/results/$(date +%Y%m%d-%H%M%S) ;;
/*) ;;
*) OUT=$CALLER_PWD/$OUT ;; # relative to where the script was called from
esac
if [ "$REPORT_ONLY" = 1 ]; then
    [ -d "$OUT" ] || die "--report-only needs --out DIR with the files of a run"
    if [ ${#SCENARIOS[@]} -eq 0 ] && [ -s "$OUT/scenarios.txt" ]; then
        read -r -a SCENARIOS <"$OUT/scenarios.txt"
    fi
fi
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=("${ALL_SCENARIOS[@]}")
want() { case " ${SCENARIOS[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- report

report() {
    python3 - "$OUT" "${SCENARIOS[@]}" <<'PY'
import json, os, sys

out, scenarios = sys.argv[1], sys.argv[2:]

def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def text(name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read().split()
    except OSError:
        return None

def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

notes = []

def clean_rate(scen, proxy):
    d = load(f"{scen}-{proxy}-search.json")
    return num(d.get("clean_rate")) if d else None

def lower_bound(scen, proxy):
    """Whether the proxy lost nothing in any trial: every trial was clean,
    or the unclean ones only fell short of the rate asked (rser-bench,
    sharing the cores, could not send more) with no failure and no
    retransmission. The clean rate is then only a lower bound."""
    d = load(f"{scen}-{proxy}-search.json") or {}
    trials = d.get("trials") or []
    return bool(trials) and all(
        t.get("clean")
        or (t.get("generator_limited") and t.get("failed") == 0 and t.get("retransmitted") == 0)
        for t in trials)

for scen in scenarios:
    for proxy in ("kamailio", "rser", "floor"):
        for step in ("search", "latency", "cpu"):
            d = load(f"{scen}-{proxy}-{step}.json")
            if d and d.get("generator_limited"):
                notes.append(f"{scen}/{proxy}: rser-bench says it was itself the limit in the {step} run")
        if lower_bound(scen, proxy):
            notes.append(f"{scen}/{proxy}: the proxy lost nothing in any trial (no failure, no "
                         "retransmission); the trials above its clean rate only fell short of "
                         "the rate asked, so the clean rate is a lower bound")

def cpu_us(scen, proxy):
    """CPU µs per transaction over the steady window, and the rate."""
    t = text(f"{scen}-{proxy}-cpu.txt")  # ticks seconds hz rate
    if not t or len(t) < 4:
        return None, None
    ticks, secs, hz, rate = float(t[0]), float(t[1]), float(t[2]), float(t[3])
    d = load(f"{scen}-{proxy}-cpu.json") or {}
    done, dur = num(d.get("completed")), num(d.get("duration_s"))
    per_s = done / dur if done and dur else rate
    if d.get("failed"):
        notes.append(f"{scen}/{proxy}: {d['failed']} failed during the CPU run at {rate:.0f}/s")
    units = per_s * secs
    return (ticks / hz * 1e6 / units if units > 0 else None), rate

def latency(scen, proxy):
    d = load(f"{scen}-{proxy}-latency.json")
    if not d:
        return "—"
    lat = d.get("latency_us") or {}
    if d.get("failed"):
        notes.append(f"{scen}/{proxy}: {d['failed']} of {d.get('sent')} failed in the latency run")
    vals = [num(lat.get(k)) for k in ("p50", "p99", "p99_9")]
    if None in vals:
        return "—"
    rate = num(d.get("rate")) or 0
    return " / ".join(f"{v / 1000:.3f}" for v in vals) + f" @ {rate:.0f}/s"

def pss(scen, proxy):
    t = text(f"{scen}-{proxy}-pss.txt")
    return f"{float(t[0]) / 1024:.1f}" if t else "—"

def fmt(v, spec):
    return "—" if v is None else format(v, spec)

def ratio(a, b):
    return a / b if a is not None and b else None

rows, got = [], {}
for scen in scenarios:
    proxies = ["kamailio", "rser"] + (["floor"] if scen == "forward" else [])
    for proxy in proxies:
        c = clean_rate(scen, proxy)
        u, r = cpu_us(scen, proxy)
        got[(scen, proxy)] = (c, u)
        cr = ur = "—"
        if proxy == "rser":
            kc, ku = got.get((scen, "kamailio"), (None, None))
            cr = fmt(ratio(c, kc), ".2f") + ("×" if ratio(c, kc) is not None else "")
            ur = fmt(ratio(u, ku), ".2f") + ("×" if ratio(u, ku) is not None else "")
        cpu = "—" if u is None else f"{u:.1f} @ {r:.0f}/s"
        rows.append([scen, "rser-floor" if proxy == "floor" else proxy,
                     ("≥ " if lower_bound(scen, proxy) else "") + fmt(c, ".0f"), cpu, latency(scen, proxy), pss(scen, proxy), cr, ur])

sql = []
for scen in scenarios:
    for proxy in ("kamailio", "rser"):
        t = text(f"{scen}-{proxy}-queries.txt")  # statements seconds rate db-ticks
        if not t or len(t) < 4:
            continue
        stmts, secs, rate, dbt = float(t[0]), float(t[1]), float(t[2]), float(t[3])
        d = load(f"{scen}-{proxy}-cpu.json") or {}
        done, dur = num(d.get("completed")), num(d.get("duration_s"))
        units = (done / dur if done and dur else rate) * secs
        hz = float((text(f"{scen}-{proxy}-cpu.txt") or [0, 0, 100])[2])
        if units > 0:
            sql.append(f"| {scen} | {proxy} | {stmts / units:.2f} | {dbt / hz * 1e6 / units:.1f} | {rate:.0f}/s |")

with open(os.path.join(out, "header.md")) as f:
    print(f.read().rstrip())
print()
head = ["scenario", "proxy", "clean rate (/s)", "CPU µs per txn (@ rate)",
        "p50 / p99 / p99.9 ms (@ half clean rate)", "peak PSS MiB",
        "rser/Kamailio clean rate", "rser/Kamailio CPU"]
print("| " + " | ".join(head) + " |")
print("|" + "|".join(" --- " for _ in head) + "|")
for r in rows:
    print("| " + " | ".join(r) + " |")
if sql:
    print()
    print("| scenario | proxy | database statements per registration | database server CPU µs per registration (in the CPU column) | rate |")
    print("| --- | --- | --- | --- | --- |")
    for line in sql:
        print(line)
print()
print("A txn is one scenario unit: a request (options, forward), a call "
      "(call, dispatcher: INVITE/180/200/ACK/BYE/200), a registration (register, register-auth: "
      "with auth, a challenged REGISTER and its authenticated repeat). The CPU "
      "rate is common to both proxies of a scenario: half the lower of their clean rates. "
      "Peak PSS: the largest sum of Pss over the proxy's processes, sampled every second "
      "through all its runs in that scenario, the search's unclean trials included.")
print()

def goal(label, scen, need, test):
    if scen not in scenarios:
        return
    vals = test()
    if vals is None:
        print(f"- {label}: not measured")
        return
    shown, ok = vals
    print(f"- {label}: {shown} (goal: {need}): {'met' if ok else 'NOT met'}")

def g_forward():
    (rc, ru), (kc, ku) = got.get(("forward", "rser")), got.get(("forward", "kamailio"))
    c, u = ratio(rc, kc), ratio(ru, ku)
    if c is None or u is None:
        return None
    return f"clean rate {c:.2f}× Kamailio's, CPU per txn {u:.2f}×", c >= 2 and u <= 0.5

def g_options():
    o = got.get(("options", "rser"), (None, None))[0]
    f = clean_rate("forward", "floor")
    if o is None or not f:
        return None
    return f"rser options {o:.0f}/s = {o / f:.0%} of the floor's forward rate {f:.0f}/s", o >= 0.7 * f

def g_ratio(scen, k):
    def t():
        c = ratio(got.get((scen, "rser"), (None,))[0], got.get((scen, "kamailio"), (None,))[0])
        return None if c is None else (f"clean rate {c:.2f}× Kamailio's", c >= k)
    return t

print("Goals:")
goal("stateless forwarding (forward)", "forward", "clean rate ≥ 2×, CPU ≤ 0.5×", g_forward)
goal("stateless replies (options)", "options", "≥ 70% of the floor's forward rate", g_options)
if "options" in scenarios and "forward" not in scenarios:
    print("  (the floor is measured under forward: run forward too)")
goal("stateful relay (call)", "call", "clean rate ≥ 2×", g_ratio("call", 2))
goal("registrar (register)", "register", "clean rate ≥ 1.5×", g_ratio("register", 1.5))
goal("registrar with digest auth (register-auth)", "register-auth", "clean rate ≥ 1.5×",
     g_ratio("register-auth", 1.5))
goal("dispatcher (round robin over 3)", "dispatcher", "clean rate ≥ 2×", g_ratio("dispatcher", 2))
goal("Kamailio's stock config, registrations (stock-register)", "stock-register", "clean rate ≥ 2×",
     g_ratio("stock-register", 2))
goal("Kamailio's stock config, calls (stock-call)", "stock-call", "clean rate ≥ 2×",
     g_ratio("stock-call", 2))

def sipp_cpu_us(proxy):
    """sipp's tcp-call run: CPU µs per call over its steady window."""
    t = text(f"tcp-call-{proxy}-sipp-cpu.txt")  # ticks seconds hz rate
    if not t or len(t) < 4:
        return None
    ticks, secs, hz, rate = (float(x) for x in t[:4])
    return ticks / hz * 1e6 / (rate * secs) if rate * secs > 0 else None

def g_tcp():
    ru, ku = sipp_cpu_us("rser"), sipp_cpu_us("kamailio")
    u = ratio(ru, ku)
    if u is None:
        return None
    rate = (text("tcp-call-rser-sipp-cpu.txt") or ["", "", "", "?"])[3]
    return (f"with sipp at {rate}/s, CPU per call {ru:.0f} µs, {u:.2f}× Kamailio's {ku:.0f} µs",
            u <= 0.5)

goal("stateful calls over TCP (tcp-call)", "tcp-call", "CPU per call ≤ 0.5×, every call completes", g_tcp)

if "dispatcher" in scenarios:
    spread = []
    for p in ("kamailio", "rser"):
        d = load(f"dispatcher-{p}-latency.json") or {}
        per = d.get("uas_requests") or []
        if per:
            spread.append(f"{p} " + " / ".join(str(n) for n in per))
    if spread:
        print()
        print("Requests per dispatcher destination in the latency run: " + "; ".join(spread) + ".")

tcp = [(p, text(f"tcp-call-{p}-sipp.txt")) for p in ("kamailio", "rser")]
tcp = [(p, t) for p, t in tcp if t]
if tcp:
    print()
    print("tcp-call with sipp (-t t1 both sides through a stateful proxy relaying over TCP, record-routed):")
    print()
    print("| proxy | rate (calls/s) | seconds | successful | failed | CPU µs per call |")
    print("| --- | --- | --- | --- | --- | --- |")
    for p, t in tcp:
        print(f"| {p} | {t[0]} | {t[1]} | {t[2]} | {t[3]} | {fmt(sipp_cpu_us(p), '.1f')} |")

sipp = [(p, text(f"call-{p}-sipp.txt")) for p in ("kamailio", "rser")]
sipp = [(p, t) for p, t in sipp if t]
if sipp:
    print()
    print("sipp cross-check (call, bench/sipp/uac_reorder.xml through the proxy to uas_reorder.xml):")
    print()
    print("| proxy | rate (calls/s) | seconds | successful | failed |")
    print("| --- | --- | --- | --- | --- |")
    for p, t in sipp:
        print(f"| {p} | {t[0]} | {t[1]} | {t[2]} | {t[3]} |")
for scen in scenarios:
    for p in ("kamailio", "rser", "floor"):
        for step in ("search", "latency", "cpu"):
            if os.path.exists(os.path.join(out, f"{scen}-{p}-{step}.missing")):
                notes.append(f"{scen}/{p}: no {step} result (see logs/)")
if notes:
    print()
    print("Notes:")
    for n in notes:
        print(f"- {n}")
print()
print(f"Files: {out}")
PY
}

if [ "$REPORT_ONLY" = 1 ]; then
    report | tee "$OUT/summary.md"
    exit 0
fi

# ---------------------------------------------------------------- checks

missing=() pkgs=()
command -v kamailio >/dev/null || { missing+=(kamailio); pkgs+=(kamailio); }
if want register-auth; then
    db_sqlite=
    for d in /usr/lib/*/kamailio/modules /usr/lib/kamailio/modules /usr/local/lib/kamailio/modules \
        /usr/local/lib64/kamailio/modules /usr/lib64/kamailio/modules; do
        if [ -e "$d/db_sqlite.so" ]; then db_sqlite=$d/db_sqlite.so; break; fi
    done
    [ -n "$db_sqlite" ] || { missing+=("kamailio's db_sqlite.so"); pkgs+=(kamailio-sqlite-modules); }
fi
command -v python3 >/dev/null || { missing+=(python3); pkgs+=(python3); }
if { [ "$SIPP" = 1 ] && want call; } || want tcp-call; then
    command -v sipp >/dev/null || { missing+=(sipp); pkgs+=(sip-tester); }
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "compare.sh: missing: ${missing[*]}" >&2
    echo "install with: apt-get install -y ${pkgs[*]}" >&2
    exit 1
fi
[ "${NO_BUILD:-0}" = 1 ] || command -v cargo >/dev/null || die "cargo not found (or set NO_BUILD=1)"

mkdir -p "$OUT/logs"
LOGS=$OUT/logs
echo "${SCENARIOS[*]}" >"$OUT/scenarios.txt"

# ---------------------------------------------------------------- processes

PIDS=()     # everything started in the background and not yet stopped
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/rser-compare.XXXXXX")

forget() {
    local keep=() q
    for q in ${PIDS[@]+"${PIDS[@]}"}; do [ "$q" = "$1" ] || keep+=("$q"); done
    PIDS=(${keep[@]+"${keep[@]}"})
}

# SIGTERM to a process, SIGKILL to what is left of it and its descendants
# after STOP_SECS; reaps it.
stop_tree() {
    local pid=$1 tree i
    tree=$(proc_tree "$pid" | tr '\n' ' ')
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_SECS * 10; i++)); do
        local alive=0 p
        for p in $tree; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in $tree; do kill -KILL "$p" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

cleanup() {
    local p
    trap - EXIT INT TERM
    for p in ${PIDS[@]+"${PIDS[@]}"}; do stop_tree "$p"; done
    if [ "${KEEP:-0}" = 1 ]; then echo "scratch kept: $SCRATCH" >&3; else rm -rf "$SCRATCH"; fi
}
# fd 3: the terminal's stderr, even where a signal lands inside a redirection.
exec 3>&2
trap cleanup EXIT
trap 'echo "compare.sh: interrupted" >&3; exit 130' INT TERM

# Runs "$@" in the background (so a signal interrupts the wait) and waits.
run() {
    local p rc=0
    "$@" &
    p=$!
    PIDS+=("$p")
    wait "$p" || rc=$?
    forget "$p"
    return $rc
}

# Whether HOST:PORT can be bound (nothing else listens on it).
port_free() {
    python3 -c 'import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind((h, int(p)))
except OSError:
    sys.exit(1)' "$1"
}

wait_port_free() {
    local i
    for ((i = 0; i < 100; i++)); do
        port_free "$1" && return 0
        sleep 0.1
    done
    command -v ss >/dev/null && ss -lunp "sport = :${1##*:}" >&2
    die "$1 is still in use"
}

# One OPTIONS with Max-Forwards: 0 to the proxy: ready when it answers
# (200 from sl-reply, 483 from the maxfwd check) or, for rser-floor, when
# the datagram comes out at the UAS address.
probe() {
    python3 - "$PROXY_ADDR" "$UAS_ADDR" <<'PY'
import select, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
uhost, uport = sys.argv[2].rsplit(":", 1)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.bind((host, 0))
socks = [c]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.bind((uhost, int(uport)))
    socks.append(u)
except OSError:
    pass
lp = c.getsockname()[1]
msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
       f"Via: SIP/2.0/UDP {host}:{lp};branch=z9hG4bK-probe{lp}\r\n"
       f"Max-Forwards: 0\r\nFrom: <sip:probe@{host}>;tag=p{lp}\r\nTo: <sip:probe@{host}>\r\n"
       f"Call-ID: probe-{lp}@{host}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
c.sendto(msg.encode(), (host, int(port)))
r, _, _ = select.select(socks, [], [], 0.5)
sys.exit(0 if r else 1)
PY
}

# JSON field (a.b for nested) of FILE, empty when absent.
jget() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d = d.get(k) if isinstance(d, dict) else None
print("" if d is None else d)' "$1" "$2" 2>/dev/null || true
}

# ---------------------------------------------------------------- scenarios

# Sets KAM_CFG, RSER_CFG and GEN (rser-bench's scenario arguments).
scenario_def() {
    case $1 in
    options)
        KAM_CFG=$KAM_DIR/sl-reply.cfg RSER_CFG=bench/configs/sl-reply.cfg
        GEN=(--scenario options) ;;
    forward)
        KAM_CFG=$KAM_DIR/stateless.cfg RSER_CFG=bench/configs/stateless.cfg
        GEN=(--scenario forward --uas "$UAS_ADDR") ;;
    call)
        KAM_CFG=$KAM_DIR/stateful.cfg RSER_CFG=bench/configs/stateful.cfg
        GEN=(--scenario call --uas "$UAS_ADDR") ;;
    register)
        KAM_CFG=$KAM_DIR/registrar.cfg RSER_CFG=bench/configs/registrar.cfg
        GEN=(--scenario register --users "$SCRATCH/users.csv" --domain "$DOMAIN") ;;
    register-auth)
        KAM_CFG=bench/configs/kamailio/registrar-auth.cfg RSER_CFG=bench/configs/registrar-auth.cfg
        GEN=(--scenario register --users "$SCRATCH/users.csv" --domain "$DOMAIN") ;;
    register-auth-mysql | register-auth-pgsql)
        KAM_CFG=bench/configs/kamailio/registrar-auth-sql.cfg RSER_CFG=bench/configs/registrar-auth-sql.cfg
        GEN=(--scenario register --users "$SCRATCH/users.csv" --domain "$DOMAIN") ;;
    dispatcher)
        # Calls (as `call`) balanced over three UAS destinations.
        KAM_CFG=bench/configs/kamailio/dispatcher.cfg RSER_CFG=bench/configs/dispatcher.cfg
        GEN=(--scenario call --uas "$UAS_ADDR" --uas-count 3) ;;
    stock-register)
        # Addresses of the proxy's own domain (its address: the stock
        # script has no alias).
        KAM_CFG=/etc/kamailio/kamailio.cfg RSER_CFG=/etc/kamailio/kamailio.cfg
        GEN=(--scenario register --users "$SCRATCH/users.csv" --domain "${PROXY_ADDR%:*}") ;;
    tcp-call)
        KAM_CFG=bench/configs/kamailio/stateful-tcp.cfg RSER_CFG=bench/configs/stateful-tcp.cfg
        GEN=(--scenario call --uas "$UAS_ADDR" --transport tcp) ;;
    stock-call)
        # A call between users of the proxy's domain: the callee is
        # looked up in the location table, the call record-routed, ACK
        # and BYE through route[WITHINDLG].
        KAM_CFG=/etc/kamailio/kamailio.cfg RSER_CFG=/etc/kamailio/kamailio.cfg
        GEN=(--scenario call --uas "$UAS_ADDR" --callee "sip:service@$PROXY_ADDR"
            --from "sip:bench@$PROXY_ADDR") ;;
    *) die "no definition for scenario $1" ;;
    esac
}

# The config a proxy runs: listen address and children set by sed, the
# database path put in.
make_cfg() { # SRC DST DB [SCENARIO]
    [ -r "$1" ] || die "no config $1"
    local dbmod= dburl=
    case ${4:-} in
    register-auth-mysql) dbmod=db_mysql dburl=$(sql_url mysql) ;;
    register-auth-pgsql) dbmod=db_postgres dburl=$(sql_url postgres) ;;
    esac
    sed -e "/^listen=tcp:/!s|^listen=.*|listen=udp:$PROXY_ADDR|" -e "s|^listen=tcp:.*|listen=tcp:$PROXY_ADDR|" \
        -e "s|^children=.*|children=$WORKERS|" -e "s|@DBMOD@|$dbmod|g" -e "s|@DBURL@|$dburl|g" -e "s|@AUTH_CACHE@|${AUTH_CACHE_EXPIRES:-10}|g" \
        -e "s|@DB@|$3|g" -e "s|@LIST@|$SCRATCH/dispatcher.list|g" "$1" >"$2"
}

# ---------------------------------------------------------------- SQL servers

SQL_DB=rser_bench
sql_url() { echo "$1://rser:rser@127.0.0.1/$SQL_DB"; }
my() { MYSQL_PWD=rser mysql -h 127.0.0.1 -u rser -N -B "$@"; }
pg() { PGPASSWORD=rser psql -h 127.0.0.1 -U rser -q -t -A -v ON_ERROR_STOP=1 "$@"; }

# The benchmark's database on a server, made by Kamailio's own scripts,
# with the same users as the SQLite tables.
sql_setup() { # mysql|postgres
    local kind=$1 f
    say "$kind: database $SQL_DB with Kamailio's tables and $USERS users"
    case $kind in
    mysql)
        my -e "DROP DATABASE IF EXISTS $SQL_DB; CREATE DATABASE $SQL_DB" ||
            die "MariaDB on 127.0.0.1 with user rser (run tests/setup.sh)"
        for f in standard auth_db; do my "$SQL_DB" </usr/share/kamailio/mysql/$f-create.sql; done
        my "$SQL_DB" <"$SCRATCH/subscribers.sql"
        ;;
    postgres)
        pg -d postgres -c "DROP DATABASE IF EXISTS $SQL_DB" -c "CREATE DATABASE $SQL_DB" ||
            die "PostgreSQL on 127.0.0.1 with user rser (run tests/setup.sh)"
        for f in standard auth_db; do pg -d "$SQL_DB" -f /usr/share/kamailio/postgres/$f-create.sql; done
        pg -d "$SQL_DB" -f "$SCRATCH/subscribers.sql"
        ;;
    esac
}

# The database server's process (its CPU counts with the proxy's).
sql_server_pid() { # SCENARIO
    case $1 in
    register-auth-mysql) pgrep -o -x mariadbd || pgrep -o -x mysqld ;;
    register-auth-pgsql) pgrep -o -x postgres ;;
    esac
}

# Statements the server has run so far (for queries per registration).
sql_queries() { # SCENARIO
    case $1 in
    register-auth-mysql) my -e "SHOW GLOBAL STATUS LIKE 'Com_select'" | awk '{print $2}' ;;
    register-auth-pgsql)
        pg -d postgres -c "SELECT pg_stat_force_next_flush()" >/dev/null 2>&1 || true
        pg -d postgres -c "SELECT xact_commit FROM pg_stat_database WHERE datname = '$SQL_DB'" ;;
    esac
}

PROXY_PID=
SAMPLER_PID=
start_proxy() { # SCENARIO PROXY
    local scen=$1 who=$2 cfg log=$LOGS/$1-$2.log i
    wait_port_free "$PROXY_ADDR"
    case $who in
    kamailio)
        cfg=$SCRATCH/$scen-kamailio.cfg
        make_cfg "$KAM_CFG" "$cfg" "$SCRATCH/kamailio.db" "$scen"
        mkdir -p "$SCRATCH/kamailio-run"
        kamailio -DD -E -f "$cfg" -P "$SCRATCH/kamailio.pid" -Y "$SCRATCH/kamailio-run" \
            -w "$SCRATCH" -m "$SHM_MB" >>"$log" 2>&1 &
        ;;
    rser)
        cfg=$SCRATCH/$scen-rser.cfg
        make_cfg "$RSER_CFG" "$cfg" "$SCRATCH/rser.db" "$scen"
        "$REL/rser" -f "$cfg" -m "$SHM_MB" >>"$log" 2>&1 &
        ;;
    floor)
        "$FLOOR_BIN" --listen "$PROXY_ADDR" --to "$UAS_ADDR" --workers "$WORKERS" >>"$log" 2>&1 &
        ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    for ((i = 0; i < READY_SECS * 2; i++)); do
        if ! kill -0 "$PROXY_PID" 2>/dev/null; then
            tail -20 "$log" >&2
            die "$who ($scen) exited at start-up; log: $log"
        fi
        probe && break
    done
    if [ "$i" -ge $((READY_SECS * 2)) ]; then
        tail -20 "$log" >&2
        die "$who ($scen) did not answer on $PROXY_ADDR within ${READY_SECS}s; log: $log"
    fi
    # Peak PSS of the proxy's processes, sampled every second.
    local pssf=$OUT/$scen-$who-pss.txt
    (
        max=$(cat "$pssf" 2>/dev/null || echo 0)
        while kill -0 "$PROXY_PID" 2>/dev/null; do
            k=$(pss_kib "$PROXY_PID")
            if [ "$k" -gt "$max" ]; then max=$k; echo "$max" >"$pssf"; fi
            sleep 1
        done
    ) &
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
}

stop_proxy() {
    stop_tree "$SAMPLER_PID"
    stop_tree "$PROXY_PID"
    wait_port_free "$PROXY_ADDR"
}

# rser-bench, bounded: every run gets a deadline well past its length.
bench() { # SECONDS_BOUND ARGS...
    local bound=$1
    shift
    run timeout -k 5 "$bound" "$BENCH_BIN" --target "$PROXY_ADDR" --quiet "$@"
}

# Steps 2 and 3 for one proxy.
search_and_latency() { # SCENARIO PROXY
    local scen=$1 who=$2 base=$OUT/$1-$2 clean half
    local -a gen=("${GEN[@]}")
    [ "$who" = floor ] && gen=(--scenario forward --uas "$UAS_ADDR")
    say "$scen / $who: start"
    rm -f "$base-pss.txt" "$base-sipp.txt"
    start_proxy "$scen" "$who"
    say "$scen / $who: searching the highest clean rate from $START/s, ${TRIAL}s trials"
    rm -f "$base"-search.json "$base"-search.missing
    # rser-bench tries 14 rates at most, each a trial plus up to 8 s of
    # draining and 6 s of settling after an unclean one.
    bench $((14 * (TRIAL + 15) + 60)) "${gen[@]}" --search --rate "$START" --duration "${TRIAL}s" \
        ${SEARCH_ARGS[@]+"${SEARCH_ARGS[@]}"} --json "$base-search.json" >>"$LOGS/$scen-$who-bench.log" 2>&1 ||
        warn "$scen / $who: rser-bench --search failed (see $LOGS/$scen-$who-bench.log)"
    clean=
    [ -s "$base-search.json" ] && clean=$(jget "$base-search.json" clean_rate)
    if [ -z "$clean" ]; then
        touch "$base-search.missing"
    else
        half=$(awk -v c="$clean" 'BEGIN { printf "%d", c / 2 }')
        if [ "$half" -ge 1 ]; then
            say "$scen / $who: clean rate $clean/s; latency at $half/s for ${LAT_SECS}s"
            rm -f "$base"-latency.*
            bench $((LAT_SECS + 60)) "${gen[@]}" --rate "$half" --duration "${LAT_SECS}s" \
                --json "$base-latency.json" --hgrm "$base-latency.hgrm" \
                >>"$LOGS/$scen-$who-bench.log" 2>&1 ||
                warn "$scen / $who: latency run failed (see $LOGS/$scen-$who-bench.log)"
            [ -s "$base-latency.json" ] || touch "$base-latency.missing"
        else
            warn "$scen / $who: no clean rate ($clean/s)"
        fi
    fi
    stop_proxy
}

# Step 4 for one proxy at RATE, and the sipp row with SIPP=1.
cpu_at() { # SCENARIO PROXY RATE
    local scen=$1 who=$2 rate=$3 base=$OUT/$1-$2 bp t0 t1 c0 c1 rc=0
    local -a gen=("${GEN[@]}")
    [ "$who" = floor ] && gen=(--scenario forward --uas "$UAS_ADDR")
    say "$scen / $who: CPU at $rate/s for ${CPU_SECS}s"
    start_proxy "$scen" "$who"
    rm -f "$base"-cpu.* "$base"-queries.txt
    timeout -k 5 $((CPU_SECS + 60)) "$BENCH_BIN" --target "$PROXY_ADDR" --quiet "${gen[@]}" \
        --rate "$rate" --duration "${CPU_SECS}s" --json "$base-cpu.json" \
        >>"$LOGS/$scen-$who-bench.log" 2>&1 &
    bp=$!
    PIDS+=("$bp")
    sleep "$SKIP"
    local dbpid q0= q1= d0=0 d1=0
    dbpid=$(sql_server_pid "$scen" || true)
    [ -n "$dbpid" ] && q0=$(sql_queries "$scen") d0=$(cpu_ticks "$dbpid")
    t0=$(date +%s.%N) c0=$(cpu_ticks "$PROXY_PID")
    sleep $((CPU_SECS - 2 * SKIP))
    t1=$(date +%s.%N) c1=$(cpu_ticks "$PROXY_PID")
    [ -n "$dbpid" ] && d1=$(cpu_ticks "$dbpid") q1=$(sql_queries "$scen")
    # The database server's CPU is the proxy's cost too.
    c1=$((c1 + d1 - d0))
    if [ -n "$q0" ] && [ -n "$q1" ]; then
        # statements, seconds, rate, database CPU ticks
        echo "$((q1 - q0)) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $rate $((d1 - d0))" \
            >"$base-queries.txt"
    fi
    wait "$bp" || rc=$?
    forget "$bp"
    [ $rc = 0 ] || warn "$scen / $who: CPU run exited $rc (see $LOGS/$scen-$who-bench.log)"
    if [ -s "$base-cpu.json" ]; then
        # ticks seconds ticks-per-second rate
        echo "$((c1 - c0)) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $TICK $rate" \
            >"$base-cpu.txt"
    else
        touch "$base-cpu.missing"
    fi
    if [ "$SIPP" = 1 ] && [ "$scen" = call ] && [ "$who" != floor ]; then
        sipp_row "$who"
    fi
    stop_proxy
}

sipp_row() { # PROXY
    local who=$1 up calls=$((SIPP_RATE * SIPP_SECS)) ok failed
    say "call / $who: sipp cross-check, $SIPP_RATE calls/s for ${SIPP_SECS}s"
    wait_port_free "$UAS_ADDR"
    sipp -sf bench/sipp/uas_reorder.xml -i 127.0.0.1 -p "${UAS_ADDR##*:}" -nostdin \
        >"$LOGS/call-$who-sipp-uas.log" 2>&1 &
    up=$!
    PIDS+=("$up")
    sleep 0.5
    run timeout -k 5 $((SIPP_SECS + 60)) sipp -sf bench/sipp/uac_reorder.xml "$PROXY_ADDR" \
        -i 127.0.0.1 -p 5061 -r "$SIPP_RATE" -m "$calls" -nostdin -timeout $((SIPP_SECS + 30)) \
        >"$LOGS/call-$who-sipp-uac.log" 2>&1 || true
    stop_tree "$up"
    ok=$(sipp_count "$LOGS/call-$who-sipp-uac.log" "Successful call")
    failed=$(sipp_count "$LOGS/call-$who-sipp-uac.log" "Failed call")
    echo "$SIPP_RATE $SIPP_SECS ${ok:-?} ${failed:-?}" >"$OUT/call-$who-sipp.txt"
}

# tcp-call for one proxy: sipp's uas and uac over TCP (one connection
# each) at TCP_RATE calls/s for CPU_SECS; the proxy's CPU over the steady
# window, per call; the calls sipp completed and failed.
sipp_tcp() { # PROXY
    local who=$1 base=$OUT/tcp-call-$1 up uc calls=$((TCP_RATE * CPU_SECS)) t0 t1 c0 c1 ok failed
    say "tcp-call / $who: sipp over TCP, $TCP_RATE calls/s for ${CPU_SECS}s"
    rm -f "$base"-sipp-cpu.txt "$base-sipp.txt"
    start_proxy tcp-call "$who"
    wait_port_free "$UAS_ADDR"
    # sipp's default socket limit is above the machine's open-file limit.
    sipp -sn uas -t t1 -max_socket 1000 -i 127.0.0.1 -p "${UAS_ADDR##*:}" -nostdin \
        >"$LOGS/tcp-call-$who-sipp-uas.log" 2>&1 &
    up=$!
    PIDS+=("$up")
    sleep 0.5
    timeout -k 5 $((CPU_SECS + 60)) sipp -sn uac -t t1 -max_socket 1000 "$PROXY_ADDR" \
        -i 127.0.0.1 -p 5061 -r "$TCP_RATE" -m "$calls" -nostdin -timeout $((CPU_SECS + 30)) \
        >"$LOGS/tcp-call-$who-sipp-uac.log" 2>&1 &
    uc=$!
    PIDS+=("$uc")
    sleep "$SKIP"
    local dbpid q0= q1= d0=0 d1=0
    dbpid=$(sql_server_pid "$scen" || true)
    [ -n "$dbpid" ] && q0=$(sql_queries "$scen") d0=$(cpu_ticks "$dbpid")
    t0=$(date +%s.%N) c0=$(cpu_ticks "$PROXY_PID")
    sleep $((CPU_SECS - 2 * SKIP))
    t1=$(date +%s.%N) c1=$(cpu_ticks "$PROXY_PID")
    [ -n "$dbpid" ] && d1=$(cpu_ticks "$dbpid") q1=$(sql_queries "$scen")
    # The database server's CPU is the proxy's cost too.
    c1=$((c1 + d1 - d0))
    if [ -n "$q0" ] && [ -n "$q1" ]; then
        # statements, seconds, rate, database CPU ticks
        echo "$((q1 - q0)) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $rate $((d1 - d0))" \
            >"$base-queries.txt"
    fi
    wait "$uc" || true
    forget "$uc"
    stop_tree "$up"
    ok=$(sipp_count "$LOGS/tcp-call-$who-sipp-uac.log" "Successful call")
    failed=$(sipp_count "$LOGS/tcp-call-$who-sipp-uac.log" "Failed call")
    if [ -n "$ok" ]; then
        echo "$((c1 - c0)) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $TICK $TCP_RATE" \
            >"$base-sipp-cpu.txt"
        echo "$TCP_RATE $CPU_SECS $ok ${failed:-?}" >"$base-sipp.txt"
    fi
    stop_proxy
}

# ---------------------------------------------------------------- build

if [ "${NO_BUILD:-0}" != 1 ]; then
    say "building release binaries (log: $LOGS/build.log)"
    build=(cargo build --release -p rser -p rser-tools -p rser-bench)
    lock=${CARGO_LOCK-/tmp/cargo.lock}
    if [ -n "$lock" ] && command -v flock >/dev/null; then build=(flock "$lock" "${build[@]}"); fi
    if ! run "${build[@]}" >"$LOGS/build.log" 2>&1; then
        tail -30 "$LOGS/build.log" >&2
        die "build failed"
    fi
fi
for b in "$REL/rser" "$BENCH_BIN"; do [ -x "$b" ] || die "$b missing (build it, or unset NO_BUILD)"; done
if want forward && [ ! -x "$FLOOR_BIN" ]; then die "$FLOOR_BIN missing"; fi
help=$("$BENCH_BIN" --help 2>&1 || true)
case $help in
*--search*) ;;
*) die "$BENCH_BIN has no --search option: not the load generator this script needs" ;;
esac

# ---------------------------------------------------------------- header

{
    echo "## rser vs Kamailio ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "- command: \`$CMDLINE\`"
    echo "- settings: TRIAL=${TRIAL}s LAT_SECS=${LAT_SECS}s CPU_SECS=${CPU_SECS}s (${SKIP}s skipped at each end)" \
        "START=$START/s WORKERS=$WORKERS SHM_MB=$SHM_MB USERS=$USERS (realm $DOMAIN)"
    echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
        "$(uname -sr)"
    echo "- kamailio: $(kamailio -v 2>/dev/null | head -1 | sed 's/^version: //')"
    if command -v sipp >/dev/null; then
        echo "- sipp: $(sipp -v 2>/dev/null | grep -o 'SIPp v[^ ]*' | head -1)"
    fi
    echo "- rser: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
    echo "- proxies on $PROXY_ADDR, rser-bench's UAS on $UAS_ADDR, loopback"
} >"$OUT/header.md"
cat "$OUT/header.md" >&2

# ---------------------------------------------------------------- users

# The same users on both proxies: user0..user{N-1}, passwords pw0..,
# domain and realm example.net; Kamailio's table with its schema and its
# version row, rser's with its own; rser-bench's as a sipp injection CSV.
python3 - "$SCRATCH" "$USERS" "$DOMAIN" <<'PY'
import hashlib, os, sqlite3, sys
d, n, realm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
sha = lambda s: hashlib.sha256(s.encode()).hexdigest()
users = [(f"user{i}", f"pw{i}") for i in range(n)]
k = sqlite3.connect(os.path.join(d, "kamailio.db"))
k.executescript("""
CREATE TABLE version (id INTEGER PRIMARY KEY NOT NULL, table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL, CONSTRAINT version_table_name_idx UNIQUE (table_name));
INSERT INTO version (table_name, table_version) VALUES ('version', 1);
INSERT INTO version (table_name, table_version) VALUES ('subscriber', 7);
CREATE TABLE subscriber (id INTEGER PRIMARY KEY NOT NULL, username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL, password VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL, ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    CONSTRAINT subscriber_account_idx UNIQUE (username, domain));
CREATE INDEX subscriber_username_idx ON subscriber (username);
""")
k.executemany("INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES (?, ?, ?, ?, ?)",
              [(u, realm, p, md5(f"{u}:{realm}:{p}"), md5(f"{u}@{realm}:{realm}:{p}")) for u, p in users])
k.commit()
k.close()
r = sqlite3.connect(os.path.join(d, "rser.db"))
r.execute("CREATE TABLE subscriber (username TEXT NOT NULL, domain TEXT NOT NULL, password TEXT, "
          "ha1 TEXT, ha1_sha256 TEXT, PRIMARY KEY (username, domain))")
r.executemany("INSERT INTO subscriber VALUES (?, ?, ?, ?, ?)",
              [(u, realm, p, md5(f"{u}:{realm}:{p}"), sha(f"{u}:{realm}:{p}")) for u, p in users])
r.commit()
r.close()
with open(os.path.join(d, "users.csv"), "w") as f:
    f.write("SEQUENTIAL\n")
    f.writelines(f"{u};{p}\n" for u, p in users)
PY
if want register-auth && [ -x "$REL/rserctl" ]; then
    n=$("$REL/rserctl" subscriber list --db "sqlite://$SCRATCH/rser.db" | wc -l)
    [ "$n" = "$USERS" ] || die "rserctl sees $n users in rser's table, not $USERS"
fi

if want register-auth-mysql || want register-auth-pgsql; then
    python3 - "$SCRATCH" "$USERS" "$DOMAIN" <<'PY'
import hashlib, os, sys
d, n, realm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
with open(os.path.join(d, "subscribers.sql"), "w") as f:
    for i in range(n):
        u, p = f"user{i}", f"pw{i}"
        f.write("INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES "
                f"('{u}', '{realm}', '{p}', '{md5(f'{u}:{realm}:{p}')}', "
                f"'{md5(f'{u}@{realm}:{realm}:{p}')}');\n")
PY
    want register-auth-mysql && sql_setup mysql
    want register-auth-pgsql && sql_setup postgres
fi

# The dispatcher's destinations: the generator's three UAS ports.
uas_port=${UAS_ADDR##*:}
for i in 0 1 2; do
    echo "1 sip:${UAS_ADDR%:*}:$((uas_port + i))"
done >"$SCRATCH/dispatcher.list"

# ---------------------------------------------------------------- run

wait_port_free "$PROXY_ADDR"
wait_port_free "$UAS_ADDR"
for scen in "${SCENARIOS[@]}"; do
    scenario_def "$scen"
    proxies=(kamailio rser)
    [ "$scen" = forward ] && proxies+=(floor)
    for who in "${proxies[@]}"; do search_and_latency "$scen" "$who"; done
    kam_clean=$(jget "$OUT/$scen-kamailio-search.json" clean_rate)
    rser_clean=$(jget "$OUT/$scen-rser-search.json" clean_rate)
    if [ -n "$kam_clean" ] && [ -n "$rser_clean" ]; then
        rate=$(awk -v a="$kam_clean" -v b="$rser_clean" 'BEGIN { m = a < b ? a : b; printf "%d", m / 2 }')
        if [ "$rate" -ge 1 ]; then
            for who in "${proxies[@]}"; do cpu_at "$scen" "$who" "$rate"; done
        else
            warn "$scen: no common rate for the CPU runs (clean rates $kam_clean and $rser_clean)"
        fi
    else
        warn "$scen: no CPU runs without both clean rates"
    fi
    if [ "$scen" = tcp-call ]; then
        for who in kamailio rser; do sipp_tcp "$who"; done
    fi
    if [ -x "$HIST_BIN" ]; then
        hg=()
        for who in "${proxies[@]}"; do
            [ -s "$OUT/$scen-$who-latency.hgrm" ] && hg+=("$OUT/$scen-$who-latency.hgrm")
        done
        if [ ${#hg[@]} -ge 2 ]; then
            run timeout 60 "$HIST_BIN" "${hg[@]}" --plot "$OUT/$scen.svg" \
                >>"$LOGS/rser-hist.log" 2>&1 || warn "$scen: rser-hist could not plot (see $LOGS/rser-hist.log)"
        fi
    fi
done

report | tee "$OUT/summary.md"
