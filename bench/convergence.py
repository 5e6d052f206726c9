#!/usr/bin/env python3
"""Convergence of the Redis-shared location table (issue 22): how long
after node A answered a REGISTER 200 does node B route a call to the new
binding. For each of COUNT users: REGISTER through A (its contact: this
probe's own UDP socket), then an INVITE for the user through B every
millisecond until B relays one to the contact (answered 486 to end it);
the time from A's 200 to the first relayed INVITE is one sample. Prints
p50, p90, p99 and the maximum in milliseconds.

Usage: bench/convergence.py --a 127.0.0.1:5060 --b 127.0.0.1:5062 [--count 500]
Run it while rser-bench loads node A (bench/cluster_cost.sh's setup, or by
hand) to measure under a steady REGISTER rate.
"""
import argparse, socket, time

def addr(s):
    h, p = s.rsplit(":", 1)
    return (h, int(p))

def request(method, ruri, me, user, call, cseq, extra=""):
    return (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {me[0]}:{me[1]};branch=z9hG4bK-{call}-{cseq};rport\r\n"
            f"Max-Forwards: 70\r\nTo: <sip:{user}@example.com>\r\nFrom: <sip:probe@example.com>;tag=p{cseq}\r\n"
            f"Call-ID: {call}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n").encode()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--timeout", type=float, default=2.0)
    o = ap.parse_args()
    a, b = addr(o.a), addr(o.b)
    ua = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); ua.bind(("127.0.0.1", 0))
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); phone.bind(("127.0.0.1", 0))
    me, ph = ua.getsockname(), phone.getsockname()
    tag = int(time.time())
    samples, lost = [], 0
    for i in range(o.count):
        user = f"conv{tag}x{i}"
        contact = f"Contact: <sip:{user}@{ph[0]}:{ph[1]}>;expires=600\r\n"
        ua.sendto(request("REGISTER", "sip:example.com", me, user, f"r-{user}", 1, contact), a)
        ua.settimeout(o.timeout)
        while True:
            data, _ = ua.recvfrom(65535)
            if b" REGISTER\r\n" not in data:
                continue  # a late reply to an earlier probe
            if data.startswith(b"SIP/2.0 200"):
                break
            if data.startswith(b"SIP/2.0 ") and not data.startswith(b"SIP/2.0 1"):
                raise SystemExit(f"REGISTER refused: {data[:40]!r}")
        t0 = time.monotonic()
        phone.setblocking(False)
        n, got = 0, None
        while time.monotonic() - t0 < o.timeout:
            n += 1
            ua.sendto(request("INVITE", f"sip:{user}@{b[0]}:{b[1]}", me, user, f"i-{user}-{n}", 1), b)
            end = time.monotonic() + 0.001
            while time.monotonic() < end:
                try:
                    inv, src = phone.recvfrom(65535)
                except BlockingIOError:
                    continue
                if inv.startswith(b"INVITE"):
                    got = time.monotonic() - t0
                    # 486 to end the transaction (Via, From, To, Call-ID, CSeq copied).
                    lines = inv.split(b"\r\n")
                    keep = [l for l in lines if l.split(b":")[0].lower() in (b"via", b"from", b"to", b"call-id", b"cseq")]
                    phone.sendto(b"SIP/2.0 486 Busy Here\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n", src)
                    break
            if got is not None:
                break
        if got is None:
            lost += 1
        else:
            samples.append(got * 1000)
        ua.setblocking(False)
        try:
            while True:
                ua.recvfrom(65535)  # 404s and 486s of the probes
        except BlockingIOError:
            pass
    samples.sort()
    q = lambda p: samples[min(len(samples) - 1, int(p * len(samples)))] if samples else float("nan")
    print(f"convergence over {len(samples)} users ({lost} never seen within {o.timeout}s): "
          f"p50 {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, p99 {q(0.99):.2f} ms, max {samples[-1] if samples else float('nan'):.2f} ms")

main()
