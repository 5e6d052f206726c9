#!/usr/bin/env bash
# The serial part of rser's work (issue 24): the CPU of the master, the
# timer process and the control process against the workers', per call,
# at a steady rate of stateful calls (bench/configs/stateful.cfg: each
# INVITE, ACK and BYE relayed by tm, whose retransmission and wait timers
# the timer process drives). Roles from `core.ps` over the control socket;
# lock stripes found held and waited for (`lock_waits`) over the window.
#
# Usage: bench/serial_share.sh   (RATES="500 2000 4000" SECS=10 WORKERS=2
#        SHM_MB=512 PORT=5560; transactions linger 32 s after a BYE
#        (RFC 3261 Timer J), so a high rate wants the shared memory)
# Needs: target/release/rser and rser-bench, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/scripts/lib.sh
. bench/scripts/lib.sh

RATES=${RATES:-"500 2000 4000"} SECS=${SECS:-10} WORKERS=${WORKERS:-2} PORT=${PORT:-5560}
SHM_MB=${SHM_MB:-512}
REL=target/release SKIP=2
S=$(mktemp -d "${TMPDIR:-/tmp}/rser-serial.XXXXXX")
PIDS=()
cleanup() {
    stop ${PIDS[@]+"${PIDS[@]}"}
    rm -rf "$S"
}
trap cleanup EXIT

sed -e "s|^listen=.*|listen=udp:127.0.0.1:$PORT|" \
    -e "s|rewritehostport(\"127.0.0.1:5070\")|rewritehostport(\"127.0.0.1:$((PORT + 1))\")|" \
    bench/configs/stateful.cfg >"$S/stateful.cfg"

for rate in $RATES; do
    "$REL/rser" -f "$S/stateful.cfg" -n "$WORKERS" -m "$SHM_MB" -s "$S/ctl.sock" >"$S/rser.log" 2>&1 &
    node=$!
    PIDS+=("$node")
    sleep 1.5
    timeout $((SECS + 20)) "$REL/rser-bench" --target "127.0.0.1:$PORT" --scenario call \
        --uas "127.0.0.1:$((PORT + 1))" --rate "$rate" --duration "${SECS}s" --quiet \
        --json "$S/bench.json" >"$S/bench.log" 2>&1 &
    bp=$!
    sleep "$SKIP"
    python3 - "$S/ctl.sock" "$node" $((SECS - 2 * SKIP)) "$S/bench.json" "$rate" "$bp" <<'PY'
import json, os, socket, sys, time
sock, master, secs, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
def rpc(method, params):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        buf += s.recv(65536)
    s.close()
    return json.loads(buf)["result"]
ps = rpc("core.ps", [])
waits = lambda: rpc("stats.get", ["core"])["core"]["lock_waits"]
def ticks(pid):
    # Nanoseconds on a CPU (schedstat), finer than utime's clock ticks.
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])
hz = 1e9
roles = [(p["role"], p["pid"]) for p in ps]
t0 = {pid: ticks(pid) for _, pid in roles}
w0 = waits()
time.sleep(secs)
t1 = {pid: ticks(pid) for _, pid in roles}
w1 = waits()
by = {}
for role, pid in roles:
    by[role] = by.get(role, 0) + (t1[pid] - t0[pid]) / hz
calls = rate * secs
work = by.get("worker", 0)
line = ", ".join(f"{r} {v / calls * 1e6:.2f} µs" for r, v in sorted(by.items()))
serial = sum(v for r, v in by.items() if r != "worker")
share = serial / work * 100 if work else float("nan")
print(f"{rate}/s: per call {line}; master+timer+control = {share:.1f}% of the workers'; "
      f"lock waits {(w1 - w0) / secs:.1f}/s ({(w1 - w0) / calls * 100:.2f} per 100 calls)")
PY
    wait "$bp" || true
    tail -3 "$S/bench.log" | sed 's/^/   /'
    python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
print(f\"   calls {d.get('completed')} completed, {d.get('failed')} failed\")" "$S/bench.json"
    kill -TERM "$node"
    wait "$node" 2>/dev/null || true
done
