//! Starting the real binary on an ephemeral loopback port and talking SIP
//! to it over UDP. Every process started is killed when its handle drops;
//! every wait is bounded.

#![allow(dead_code)]

pub mod db;
pub mod redis;
pub mod stream;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its TCP (or TLS) address, when it listens on one.
    pub tcp: Option<SocketAddr>,
    /// Lines the server logs, read on a thread.
    pub log: Receiver<String>,
    dir: PathBuf,
}

impl Server {
    /// Writes `config` to a file and starts `rser -f` on 127.0.0.1:0 with
    /// `workers`; waits (10 s at most) for the port it listens on.
    pub fn start(config: &str, workers: u32, extra: &[&str]) -> Server {
        Server::spawn(config, workers, extra, &["-l", "udp:127.0.0.1:0"])
    }

    /// [`Server::start`], listening on TCP too (another ephemeral port).
    pub fn start_tcp(config: &str, workers: u32, extra: &[&str]) -> Server {
        Server::spawn(
            config,
            workers,
            extra,
            &["-l", "udp:127.0.0.1:0", "-l", "tcp:127.0.0.1:0"],
        )
    }

    /// [`Server::start`] on the config's own `listen=` (its port 0 lets
    /// the kernel choose).
    pub fn start_as_configured(config: &str, workers: u32, extra: &[&str]) -> Server {
        Server::spawn(config, workers, extra, &[])
    }

    /// [`Server::start`] with its `-l` arguments.
    pub fn spawn_with(config: &str, workers: u32, extra: &[&str], listen: &[&str]) -> Server {
        Server::spawn(config, workers, extra, listen)
    }

    fn spawn(config: &str, workers: u32, extra: &[&str], listen: &[&str]) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "rser-test-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("test.cfg");
        std::fs::write(&cfg, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rser"))
            .arg("-f")
            .arg(&cfg)
            .args(listen)
            .args(["-n", &workers.to_string()])
            // 8 MiB of shared memory unless the test sets its own.
            .args(if extra.contains(&"-m") {
                &[][..]
            } else {
                &["-m", "8"][..]
            })
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rser starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("rser did not say where it listens");
            });
            if let Some(a) = line.split("listening on udp:").nth(1) {
                break a.trim().parse().unwrap();
            }
        };
        // Workers are forked after the port is bound; wait for them.
        let mut tcp = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("rser starts its workers");
            let stream = line
                .split("listening on tcp:")
                .nth(1)
                .or_else(|| line.split("listening on tls:").nth(1));
            if let Some(a) = stream {
                tcp = tcp.or(a.trim().parse().ok());
            }
            if line.contains("serving with") {
                break;
            }
        }
        Server {
            child,
            addr,
            tcp,
            log: rx,
            dir,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The worker processes (children of the master).
    pub fn workers(&self) -> Vec<i32> {
        let path = format!("/proc/{}/task/{}/children", self.pid(), self.pid());
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Waits (bounded) for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// SIGTERM, then the exit status (waiting at most `within`).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

static UNIQUE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for Server {
    fn drop(&mut self) {
        for w in self.workers() {
            unsafe { libc::kill(w, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A SIP peer on an ephemeral loopback port.
pub struct Peer {
    pub sock: UdpSocket,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn new() -> Peer {
        Peer::on("127.0.0.1")
    }

    /// A peer on another loopback address (a distinct source).
    pub fn on(ip: &str) -> Peer {
        Peer::on_port(ip, 0)
    }

    /// A peer on `ip`:`port` (0: any).
    pub fn on_port(ip: &str, port: u16) -> Peer {
        let sock = UdpSocket::bind((ip, port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let addr = sock.local_addr().unwrap();
        Peer { sock, addr }
    }

    pub fn send(&self, to: SocketAddr, msg: &str) {
        self.sock.send_to(msg.as_bytes(), to).unwrap();
    }

    /// The next datagram, or `None` after the timeout.
    pub fn recv(&self) -> Option<(String, SocketAddr)> {
        let mut buf = vec![0u8; 65536];
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
    }

    /// Waits at most `within` for a datagram.
    pub fn recv_within(&self, within: Duration) -> Option<(String, SocketAddr)> {
        self.sock.set_read_timeout(Some(within)).unwrap();
        let r = self.recv();
        self.sock
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        r
    }

    /// An INVITE for sip:bob@example.com from this peer, with its Contact.
    pub fn invite(&self, call_id: &str) -> String {
        self.request(
            "INVITE",
            "sip:bob@example.com",
            call_id,
            &format!("Contact: <sip:alice@{}>\r\n", self.addr),
        )
    }

    /// A request from this peer. `extra` are full header lines.
    pub fn request(&self, method: &str, uri: &str, call_id: &str, extra: &str) -> String {
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{method};rport\r\n\
             Max-Forwards: 70\r\n\
             To: <{uri}>\r\n\
             From: <sip:alice@{me}>;tag=from-{call_id}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            me = self.addr
        )
    }
}

/// The value of the first header `name` (case-insensitive).
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

pub fn status(msg: &str) -> Option<u16> {
    msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// The To tag of a message.
pub fn to_tag(msg: &str) -> Option<String> {
    header(msg, "To")?
        .split(';')
        .find_map(|p| p.trim().strip_prefix("tag=").map(str::to_string))
}

/// A reply from a callee to `req` (as it received it): every Via copied,
/// a To tag added.
pub fn answer(req: &str, code: u16, reason: &str, tag: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for line in req.split("\r\n").skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" | "record-route" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "to" => {
                out.push_str(line);
                if !line.contains("tag=") {
                    out.push_str(&format!(";tag={tag}"));
                }
                out.push_str("\r\n");
            }
            _ => {}
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// The next message whose first line starts with `start`, within `within`.
pub fn expect(p: &Peer, start: &str, within: Duration) -> Option<(String, std::net::SocketAddr)> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let (m, from) = p.recv_within(left)?;
        if m.starts_with(start) {
            return Some((m, from));
        }
    }
}

/// A fresh directory of the test's own.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rser-ctl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Sends `text` (one or more lines) to a control socket and reads every
/// answer line.
pub fn exchange(sock: &std::path::Path, text: &str) -> Vec<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(text.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One JSON-RPC call; the whole answer.
pub fn rpc(sock: &std::path::Path, method: &str, params: serde_json::Value) -> serde_json::Value {
    let req = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 7});
    let mut answers = exchange(sock, &format!("{req}\n"));
    assert_eq!(answers.len(), 1);
    let a = answers.remove(0);
    assert_eq!(a["id"], 7);
    a
}

/// Runs the calling test inside a private network namespace (`unshare
/// -n`, loopback up), where an address off loopback is unreachable, so
/// a send there fails locally instead of leaving the machine. Outside
/// the namespace it re-runs the test binary on `test` alone there and
/// returns false (the caller returns; the child's result is asserted);
/// inside it returns true.
pub fn in_private_netns(test: &str) -> bool {
    if std::env::var_os("RSER_TEST_NETNS").is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env("RSER_TEST_NETNS", "1")
        .output()
        .expect("unshare (util-linux) runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{test} in a private network namespace:\n{text}"
    );
    false
}

/// The `Authorization` (401) or `Proxy-Authorization` (407) header line
/// answering `challenge`'s MD5 digest challenge (no qop) for `user` with
/// `password`, on a request of `method` to `uri`.
#[allow(dead_code)]
pub fn digest_answer(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    use rser::modules::auth::digest::{self, Algorithm, Challenge};
    let (asked, answer) = if status(challenge) == Some(407) {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    };
    let www = header(challenge, asked).expect("a challenge");
    let field = |name: &str| {
        www.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("the challenge's field")
            .to_string()
    };
    let (realm, nonce) = (field("realm"), field("nonce"));
    let ha1 = digest::ha1(
        Algorithm::Md5,
        user.as_bytes(),
        realm.as_bytes(),
        password.as_bytes(),
    );
    let resp = digest::response(
        Algorithm::Md5,
        ha1.as_bytes(),
        &Challenge {
            nonce: nonce.as_bytes(),
            qop_auth: None,
            method: method.as_bytes(),
            uri: uri.as_bytes(),
        },
    );
    format!(
        "{answer}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\"\r\n"
    )
}

/// Registers `user`@`server`'s address with `contact` as its Contact
/// (expires 600) from a socket of its own; the final reply.
#[allow(dead_code)]
pub fn register_contact(server: SocketAddr, user: &str, contact: SocketAddr) -> String {
    let p = Peer::new();
    let msg = format!(
        "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-regc-{user};rport\r\n\
         Max-Forwards: 70\r\nTo: <sip:{user}@{host}>\r\nFrom: <sip:{user}@{host}>;tag=rc\r\n\
         Call-ID: regc-{user}@{me}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{contact}>\r\n\
         Expires: 600\r\nContent-Length: 0\r\n\r\n",
        me = p.addr,
        host = server.ip()
    );
    p.send(server, &msg);
    expect(&p, "SIP/2.0 2", Duration::from_secs(3))
        .map(|(m, _)| m)
        .unwrap_or_default()
}
