//! The control process's sockets: JSON-RPC on the Unix socket, one request
//! per line (or the whole text up to the end of the stream), and
//! Prometheus' `/metrics` over HTTP/1.0 on a loopback port. One client at
//! a time, each bounded in size and time, so a stuck or hostile client
//! delays the next by at most `CLIENT_TIME` and never grows memory (a
//! `tm.t_uac` holds the socket until its transaction ends, fr_timer at
//! most).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use super::methods::Control;
use super::prometheus;
use super::rpc::{self, MAX_REQUEST};

/// Longest a client may take over its requests.
const CLIENT_TIME: Duration = Duration::from_secs(2);
/// Requests served on one connection at most.
const MAX_REQUESTS_PER_CLIENT: usize = 64;
/// Largest HTTP request head read.
const MAX_HTTP_HEAD: usize = 8192;

pub fn run(ctl: &mut Control<'_>, unix: &UnixListener, metrics: Option<&TcpListener>) -> ! {
    let mut fds = vec![libc::pollfd {
        fd: unix.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    if let Some(m) = metrics {
        fds.push(libc::pollfd {
            fd: m.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
    }
    loop {
        // SAFETY: fds is a live array of pollfd of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if n <= 0 {
            continue;
        }
        if fds[0].revents != 0 {
            if let Ok((stream, _)) = unix.accept() {
                serve_rpc(ctl, stream);
            }
        }
        if let (Some(m), Some(fd)) = (metrics, fds.get(1))
            && fd.revents != 0
            && let Ok((stream, _)) = m.accept()
        {
            serve_metrics(ctl, stream);
        }
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

fn serve_rpc(ctl: &mut Control<'_>, mut s: std::os::unix::net::UnixStream) {
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
    if !buf.iter().all(u8::is_ascii_whitespace) && answer(ctl, &mut s, &buf) {
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
