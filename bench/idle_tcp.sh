#!/usr/bin/env bash
# Memory per idle TCP connection, rser against Kamailio in one run: each
# proxy answers OPTIONS statelessly (bench/configs/sl-reply-tcp.cfg and
# bench/configs/kamailio/sl-reply-tcp.cfg, listening on UDP and TCP
# 127.0.0.1:5060); a client opens N connections, sends one OPTIONS on
# each and reads its 200, and keeps them all open. The sum of Pss over the
# proxy's processes is read before and after (each after WARM connections
# were opened and closed, so pools are warm); the difference over N is the
# figure.
#
# Usage: bench/idle_tcp.sh [N]   (default 2000; WARM=200 WORKERS=2 SHM_MB=256)
# Needs: kamailio, python3; target/release/rser built.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/scripts/lib.sh
. bench/scripts/lib.sh

N=${1:-2000}
WARM=${WARM:-200}
WORKERS=${WORKERS:-2}
SHM_MB=${SHM_MB:-256}
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/rser-idle.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && { kill -TERM "$PID" 2>/dev/null; sleep 1; for p in $(proc_tree "$PID"); do kill -KILL "$p" 2>/dev/null; done; wait "$PID" 2>/dev/null; } || true
    rm -rf "$SCRATCH"
}
trap cleanup EXIT

# Opens $2 connections to $1, one OPTIONS each (its 200 read), and holds
# them until stdin closes; prints "ready" once they are all answered.
cat >"$SCRATCH/hold.py" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
n = int(sys.argv[2])
held = []
for i in range(n):
    s = socket.create_connection((host, int(port)), timeout=5)
    lp = s.getsockname()[1]
    s.sendall((f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/TCP {host}:{lp};branch=z9hG4bK-i{i}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:idle@{host}>;tag={i}\r\nTo: <sip:idle@{host}>\r\n"
               f"Call-ID: idle-{i}-{lp}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit(f"connection {i} closed before its reply")
        got += chunk
    if not got.startswith(b"SIP/2.0 200"):
        sys.exit(f"connection {i}: {got[:40]!r}")
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
PY
hold() { python3 "$SCRATCH/hold.py" "$@"; }

measure() { # PROXY
    local who=$1 cfg before after
    case $who in
    kamailio)
        cfg=bench/configs/kamailio/sl-reply-tcp.cfg
        sed "s|^children=.*|children=$WORKERS|" "$cfg" >"$SCRATCH/k.cfg"
        mkdir -p "$SCRATCH/run"
        kamailio -DD -E -f "$SCRATCH/k.cfg" -P "$SCRATCH/k.pid" -Y "$SCRATCH/run" -w "$SCRATCH" \
            -m "$SHM_MB" >"$SCRATCH/$who.log" 2>&1 &
        ;;
    rser)
        sed "s|^children=.*|children=$WORKERS|" bench/configs/sl-reply-tcp.cfg >"$SCRATCH/r.cfg"
        target/release/rser -f "$SCRATCH/r.cfg" -m "$SHM_MB" >"$SCRATCH/$who.log" 2>&1 &
        ;;
    esac
    PID=$!
    sleep 2
    # Warm: connections opened, answered and closed.
    hold 127.0.0.1:5060 "$WARM" </dev/null >/dev/null
    sleep 2
    before=$(pss_kib "$PID")
    coproc HOLD { hold 127.0.0.1:5060 "$N"; }
    local hold_pid=$HOLD_PID line=
    read -r line <&"${HOLD[0]}" || true
    [ "$line" = ready ] || { echo "idle_tcp.sh: $who: the client failed" >&2; exit 1; }
    sleep 3
    after=$(pss_kib "$PID")
    kill "$hold_pid" 2>/dev/null || true
    wait "$hold_pid" 2>/dev/null || true
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
    PID=
    sleep 1
    awk -v w="$who" -v b="$before" -v a="$after" -v n="$N" \
        'BEGIN { printf "| %s | %d | %.1f | %.1f | %.2f |\n", w, n, b / 1024, a / 1024, (a - b) * 1.024 / n }'
}

echo "| proxy | idle TCP connections | PSS before (MiB) | PSS with them (MiB) | kB per connection |"
echo "| --- | --- | --- | --- | --- |"
measure kamailio
measure rser
