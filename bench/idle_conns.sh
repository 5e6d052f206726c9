#!/usr/bin/env bash
# Memory per idle TCP or TLS connection, rser against Kamailio in one run:
# each proxy answers OPTIONS statelessly (bench/configs/sl-reply-tcp.cfg
# and bench/configs/kamailio/sl-reply-tcp.cfg, UDP and TCP on
# 127.0.0.1:5060; the -tls ones, UDP and TLS on 127.0.0.1:5061, with a
# self-signed P-256 certificate made here); a client opens N connections,
# sends one OPTIONS on each and reads its 200, and keeps them all open.
# The sum of Pss over the proxy's processes is read before and after (each
# after WARM connections were opened and closed, so pools are warm); the
# difference over N is the figure.
#
# Usage: bench/idle_conns.sh [N] [tcp|tls]   (default 2000 tcp; WARM=200
#        WORKERS=2 SHM_MB=256)
# Needs: kamailio (and kamailio-tls-modules for tls), python3, openssl;
# target/release/rser built.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/scripts/lib.sh
. bench/scripts/lib.sh

N=${1:-2000}
PROTO=${2:-tcp}
case $PROTO in
tcp) PORT=5060 ;;
tls) PORT=5061 ;;
*) echo "idle_conns.sh: tcp or tls, not $PROTO" >&2; exit 1 ;;
esac
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
import socket, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
n = int(sys.argv[2])
tls = sys.argv[3] == "tls"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held = []
for i in range(n):
    s = socket.create_connection((host, int(port)), timeout=5)
    if tls:
        s = ctx.wrap_socket(s)
    lp = s.getsockname()[1]
    s.sendall((f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/{'TLS' if tls else 'TCP'} {host}:{lp};branch=z9hG4bK-i{i}\r\n"
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
        cfg=bench/configs/kamailio/sl-reply-$PROTO.cfg
        sed -e "s|^children=.*|children=$WORKERS|" -e "s|@CERT@|$SCRATCH/cert.pem|" \
            -e "s|@KEY@|$SCRATCH/key.pem|" -e "s|@TLSCFG@|$SCRATCH/tls.cfg|" "$cfg" >"$SCRATCH/k.cfg"
        mkdir -p "$SCRATCH/run"
        kamailio -DD -E -f "$SCRATCH/k.cfg" -P "$SCRATCH/k.pid" -Y "$SCRATCH/run" -w "$SCRATCH" \
            -m "$SHM_MB" >"$SCRATCH/$who.log" 2>&1 &
        ;;
    rser)
        sed -e "s|^children=.*|children=$WORKERS|" -e "s|@CERT@|$SCRATCH/cert.pem|" \
            -e "s|@KEY@|$SCRATCH/key.pem|" bench/configs/sl-reply-$PROTO.cfg >"$SCRATCH/r.cfg"
        target/release/rser -f "$SCRATCH/r.cfg" -m "$SHM_MB" >"$SCRATCH/$who.log" 2>&1 &
        ;;
    esac
    PID=$!
    sleep 2
    # Warm: connections opened, answered and closed.
    hold 127.0.0.1:$PORT "$WARM" "$PROTO" </dev/null >/dev/null
    sleep 2
    before=$(pss_kib "$PID")
    coproc HOLD { hold 127.0.0.1:$PORT "$N" "$PROTO"; }
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

if [ "$PROTO" = tls ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -keyout "$SCRATCH/key.pem" -out "$SCRATCH/cert.pem" 2>/dev/null
    # Kamailio's tls module reads its domains from this file.
    printf '[server:default]\nmethod = TLSv1.2+\nprivate_key = %s\ncertificate = %s\n' \
        "$SCRATCH/key.pem" "$SCRATCH/cert.pem" >"$SCRATCH/tls.cfg"
fi
echo "| proxy | idle ${PROTO^^} connections | PSS before (MiB) | PSS with them (MiB) | kB per connection |"
echo "| --- | --- | --- | --- | --- |"
measure kamailio
measure rser
