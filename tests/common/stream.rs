//! A SIP user agent on one TCP or TLS connection, for the tests of
//! stream transports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::header;

/// A user agent on one TCP (or TLS) connection.
pub struct Stream {
    s: Box<dyn ReadWrite>,
    local: SocketAddr,
    /// Bytes read and not yet returned as a message.
    buf: Vec<u8>,
}

/// A connection's two directions.
pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Stream {
    /// A TCP connection to `to`.
    pub fn connect(to: SocketAddr) -> Stream {
        Stream::over(TcpStream::connect(to).expect("rser accepts"))
    }

    /// A connection already open (its reads time out in 200 ms).
    pub fn over(s: TcpStream) -> Stream {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = s.local_addr().unwrap();
        Stream {
            s: Box::new(s),
            local,
            buf: Vec::new(),
        }
    }

    /// TLS over `tcp` (its reads time out in 200 ms), with rustls's
    /// `session` (a client's or a server's).
    pub fn tls<C, S>(tcp: TcpStream, session: C) -> Stream
    where
        C: std::ops::DerefMut + std::ops::Deref<Target = rustls::ConnectionCommon<S>> + 'static,
        S: rustls::SideData + 'static,
    {
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = tcp.local_addr().unwrap();
        Stream {
            s: Box::new(rustls::StreamOwned::new(session, tcp)),
            local,
            buf: Vec::new(),
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).unwrap();
    }

    /// A send that may fail (the connection may be gone).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)?;
        self.s.flush()
    }

    /// A request from this connection (its Via names TCP and the
    /// connection's own address).
    pub fn request(&self, method: &str, uri: &str, call_id: &str, extra: &str) -> String {
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/TCP {me};branch=z9hG4bK-{call_id}-{method}\r\n\
             Max-Forwards: 70\r\nTo: <{uri}>\r\nFrom: <sip:alice@{me}>;tag=f-{call_id}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n",
            me = self.local()
        )
    }

    /// Whatever arrives within `within` (bounded), as text.
    pub fn read_for(&mut self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut chunk = [0u8; 8192];
        while Instant::now() < deadline {
            match self.s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }

    /// The next whole message starting with `start` (bounded by 3 s).
    pub fn expect(&mut self, start: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(m) = self.take_message() {
                if m.starts_with(start) {
                    return Some(m);
                }
                continue;
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    }

    /// One message framed by its Content-Length, if whole.
    fn take_message(&mut self) -> Option<String> {
        while self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        let end = text.find("\r\n\r\n")? + 4;
        let len: usize = header(&text[..end], "Content-Length")?.parse().ok()?;
        if self.buf.len() < end + len {
            return None;
        }
        let m = String::from_utf8_lossy(&self.buf[..end + len]).into_owned();
        self.buf.drain(..end + len);
        Some(m)
    }

    /// Whether rser closed the connection (within 3 s).
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut chunk = [0u8; 1024];
        while Instant::now() < deadline {
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => {}
            }
        }
        false
    }
}

/// Raises this process's open-file limit to its hard limit (thousands of
/// connections need as many descriptors); the limit then.
pub fn raise_open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// `count` connections from `open`, each answered one OPTIONS for `ruri`
/// and held; after every 1,000, an OPTIONS from `udp` to `server` must be
/// answered meanwhile; at the end every 97th held one answers again.
pub fn hold_idle(
    count: usize,
    mut open: impl FnMut() -> Stream,
    udp: &super::Peer,
    server: SocketAddr,
    ruri: &str,
) {
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let mut ua = open();
        let m = ua.request("OPTIONS", ruri, &format!("idle{i}"), "");
        ua.send(m.as_bytes());
        assert!(
            ua.expect("SIP/2.0 200").is_some(),
            "connection {i} answered"
        );
        held.push(ua);
        if i % 1_000 == 999 {
            let call = format!("flow{i}");
            udp.send(server, &udp.request("OPTIONS", ruri, &call, ""));
            let answered = super::expect(udp, "SIP/2.0 200", Duration::from_secs(3));
            assert!(answered.is_some(), "{call}");
        }
    }
    for (i, ua) in held.iter_mut().enumerate().step_by(97) {
        let m = ua.request("OPTIONS", ruri, &format!("again{i}"), "");
        ua.send(m.as_bytes());
        assert!(
            ua.expect("SIP/2.0 200").is_some(),
            "idle connection {i} still answers"
        );
    }
}
