//! The control process's loop: JSON-RPC on the Unix socket, one request
//! per line (or the whole text up to the end of the stream), Prometheus'
//! `/metrics` over HTTP/1.0 on a loopback port, SER's FIFO, and the
//! replies and timers of the transactions it started as a UAC. One
//! client at a time, each bounded in size and time, so a stuck or hostile
//! client delays the next by at most `CLIENT_TIME` and never grows
//! memory. A `tm.t_uac` ends its client's turn: the answer goes on the
//! connection when the transaction ends, and nothing waits for it.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Listeners;
use super::fifo::commands::{self, Answer};
use super::fifo::frame::Event;
use super::fifo::{self, Fifo};
use super::methods::Control;
use super::prometheus;
use super::rpc::{
    self, INTERNAL_ERROR, INVALID_PARAMS, MAX_REQUEST, NOT_AVAILABLE, Params, RpcError,
};
use super::rpcfifo::{Framed, RpcFifo};
use super::uac::{self, Done, Engine, Outcome};
use crate::server::worker::now_ms;

/// Longest a client may take over its requests.
const CLIENT_TIME: Duration = Duration::from_secs(2);
/// Requests served on one connection at most.
const MAX_REQUESTS_PER_CLIENT: usize = 64;
/// Largest HTTP request head read.
const MAX_HTTP_HEAD: usize = 8192;
/// Longest the loop sleeps (the FIFO's idle requests are checked).
const MAX_SLEEP_MS: u64 = 1000;

pub fn run(
    ctl: &mut Control<'_>,
    mut uac: Option<Engine>,
    (mut fifo, mut rpc_fifo): (Option<Fifo>, Option<RpcFifo>),
    l: &Listeners,
) -> ! {
    let mut events = Vec::new();
    let mut rpc_requests = Vec::new();
    let mut ended = Vec::new();
    loop {
        let now = now_ms();
        let due = uac.as_ref().and_then(Engine::next_due);
        let sleep = due.map_or(MAX_SLEEP_MS, |d| d.saturating_sub(now).min(MAX_SLEEP_MS));
        // Fixed slots: unix, metrics, fifo, uac, jsonrpcs fifo (-1: none).
        let fd = |o: Option<i32>| libc::pollfd {
            fd: o.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = [
            fd(l.unix.as_ref().map(|u| u.as_raw_fd())),
            fd(l.metrics.as_ref().map(|m| m.as_raw_fd())),
            fd(fifo.as_ref().map(Fifo::fd)),
            fd(uac.as_ref().map(Engine::fd)),
            fd(rpc_fifo.as_ref().map(RpcFifo::fd)),
        ];
        // SAFETY: fds is a live array of pollfd of the given length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, sleep as i32) };
        let now = now_ms();
        if fds[0].revents != 0
            && let Some(Ok((stream, _))) = l.unix.as_ref().map(|u| u.accept())
        {
            serve_rpc(ctl, uac.as_mut(), stream);
        }
        if fds[1].revents != 0
            && let Some(Ok((stream, _))) = l.metrics.as_ref().map(|m| m.accept())
        {
            serve_metrics(ctl, stream);
        }
        if let Some(f) = fifo.as_mut() {
            if fds[2].revents != 0 {
                f.on_readable(now, &mut events);
            }
            f.framer.idle(now, &mut events);
            for e in events.drain(..) {
                serve_fifo(ctl, uac.as_mut(), e, now);
            }
        }
        if let Some(f) = rpc_fifo.as_mut()
            && fds[4].revents != 0
        {
            f.on_readable(&mut rpc_requests);
            for r in rpc_requests.drain(..) {
                serve_rpc_fifo(ctl, r);
            }
        }
        if let Some(e) = uac.as_mut() {
            if fds[3].revents != 0 {
                e.on_readable(now, &mut ended);
            }
            e.tick(now, &mut ended);
            for (done, outcome) in ended.drain(..) {
                tell(done, &outcome);
            }
        }
    }
}

/// One FIFO request or refusal answered (a UAC's, when it ends).
fn serve_fifo(ctl: &mut Control<'_>, uac: Option<&mut Engine>, e: Event, now: u64) {
    match e {
        Event::Request(req) => {
            let path = match fifo::reply_path(&req.reply) {
                Ok(p) => p,
                Err(e) => {
                    log::warn!("fifo :{}: {e}", req.command);
                    return;
                }
            };
            if let Answer::Now(text) = commands::run(ctl, uac, &req, path.clone(), now) {
                fifo::reply_to(path.as_deref(), &text);
            }
        }
        Event::Unknown { command, reply } => {
            log::warn!("fifo: command '{command}' is not available");
            fifo::reply(&reply, &format!("500 command '{command}' not available\n"));
        }
        Event::Refused { reply, reason } => {
            log::warn!("fifo: {reason}");
            if let Some(r) = reply {
                fifo::reply(&r, &format!("400 {reason}\n"));
            }
        }
    }
}

/// A jsonrpcs FIFO request (`kamctl`'s) answered in its reply file.
fn serve_rpc_fifo(ctl: &mut Control<'_>, r: Framed) {
    match r {
        Framed::Request { text, reply } => {
            let path = match fifo::reply_path(&reply) {
                Ok(p) => p,
                Err(e) => {
                    log::warn!("jsonrpcs fifo: {e}");
                    return;
                }
            };
            if let Some(answer) = rpc::handle(text.as_bytes(), ctl) {
                fifo::reply_to(path.as_deref(), &format!("{answer}\n"));
            }
        }
        Framed::Refused(reason) => log::warn!("jsonrpcs fifo: {reason}"),
    }
}

/// Tells whoever started a transaction how it ended.
fn tell(done: Done, outcome: &Outcome) {
    match done {
        Done::Fifo(path) => fifo::reply_to(Some(&path), &outcome.fifo_text()),
        Done::Rpc(mut stream, id) => {
            let _ = stream.set_write_timeout(Some(CLIENT_TIME));
            let text = rpc::answer(id, Ok(outcome.json()));
            let _ = stream.write_all(format!("{text}\n").as_bytes());
        }
        Done::Nobody => log::info!(
            "uac: {} {} from {}",
            outcome.code,
            outcome.reason,
            outcome.destination
        ),
    }
}

/// Reads what arrives before `deadline`, up to `limit` bytes in `buf`;
/// returns false at the end of the stream, a timeout or an error.
fn fill(s: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> bool {
    let mut chunk = [0u8; 4096];
    let room = limit.saturating_sub(buf.len()).min(chunk.len());
    if room == 0 {
        return false;
    }
    match s.read(&mut chunk[..room]) {
        Ok(0) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) if e.kind() == ErrorKind::Interrupted => true,
        Err(_) => false,
    }
}

/// Starts `tm.t_uac`'s transaction, its answer to come on `s`; false when
/// refused at once (answered now: the client's turn goes on).
fn start_uac(
    uac: Option<&mut Engine>,
    s: &mut std::os::unix::net::UnixStream,
    id: Option<Value>,
    params: Option<Value>,
) -> bool {
    let ask = uac::rpc_ask(&Params::of(params.as_ref()));
    let r = match (uac, ask) {
        (None, _) => Err(RpcError::new(NOT_AVAILABLE, "tm is not loaded")),
        (_, Err(e)) => Err(e),
        (Some(engine), Ok(ask)) => {
            let done = match (&id, s.try_clone()) {
                (Some(id), Ok(clone)) => Done::Rpc(clone, id.clone()),
                _ => Done::Nobody,
            };
            match engine.start(&ask, done, now_ms()) {
                Ok(()) => return true,
                Err((400, reason, _)) => Err(RpcError::new(INVALID_PARAMS, reason)),
                Err((code, reason, _)) => {
                    Err(RpcError::new(INTERNAL_ERROR, format!("{code} {reason}")))
                }
            }
        }
    };
    if let Some(id) = id {
        let _ = s.write_all(format!("{}\n", rpc::answer(id, r)).as_bytes());
    }
    false
}

fn serve_rpc(
    ctl: &mut Control<'_>,
    uac: Option<&mut Engine>,
    mut s: std::os::unix::net::UnixStream,
) {
    let mut uac = uac;
    let deadline = Instant::now() + CLIENT_TIME;
    let mut buf = Vec::new();
    let mut served = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        // Answer each complete line; the rest waits for more.
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Some((method, id, params)) = rpc::single(&line)
                && method == "tm.t_uac"
            {
                if start_uac(uac.as_deref_mut(), &mut s, id, params) {
                    return;
                }
                continue;
            }
            if !answer(ctl, &mut s, &line) {
                return;
            }
            served += 1;
            if served >= MAX_REQUESTS_PER_CLIENT {
                return;
            }
        }
        // One byte over the limit tells a request that is too large.
        if !fill(&mut s, &mut buf, MAX_REQUEST + 1) {
            break;
        }
    }
    // The stream ended: what is left is a last request without a newline
    // (or a request too large, which `handle` refuses).
    if let Some((method, id, params)) = rpc::single(&buf)
        && method == "tm.t_uac"
    {
        start_uac(uac, &mut s, id, params);
    } else if !buf.iter().all(u8::is_ascii_whitespace) && answer(ctl, &mut s, &buf) {
        // Closing with unread input would reset the connection and could
        // lose the answer: read what is left, bounded like the rest.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let mut drained = 0;
        while drained < 16 && Instant::now() < deadline && fill(&mut s, &mut sink, 4096) {
            sink.clear();
            drained += 1;
        }
    }
}

fn answer(ctl: &mut Control<'_>, s: &mut impl Write, request: &[u8]) -> bool {
    let _ = s.flush();
    match rpc::handle(request, ctl) {
        Some(mut text) => {
            text.push('\n');
            s.write_all(text.as_bytes()).is_ok()
        }
        None => true,
    }
}

fn serve_metrics(ctl: &mut Control<'_>, mut s: std::net::TcpStream) {
    let deadline = Instant::now() + CLIENT_TIME;
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        if !fill(&mut s, &mut head, MAX_HTTP_HEAD) {
            break;
        }
    }
    let (status, kind, body) =
        if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics\r") {
            (
                "200 OK",
                "text/plain; version=0.0.4",
                prometheus::render(&ctl.samples()),
            )
        } else if head.starts_with(b"GET ") {
            (
                "404 Not Found",
                "text/plain",
                "only /metrics is served\n".to_string(),
            )
        } else {
            ("400 Bad Request", "text/plain", "bad request\n".to_string())
        };
    let _ = s.set_write_timeout(Some(CLIENT_TIME));
    let _ = write!(
        s,
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
