//! The control process's client transactions in flight: one UDP socket of
//! its own on the listen address, every transaction driven by its
//! replies and the clock from the control process's loop, so a
//! transaction waiting for its final reply (two minutes for an INVITE)
//! holds up nothing else. Each ends by telling whoever asked
//! ([`Done`]): a FIFO reply file or a JSON-RPC client.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixStream;

use serde_json::{Value, json};

use super::build::{self, Ask, Built};
use crate::modules::tm::Timers;
use crate::modules::tm::uac::{Step, Uac};
use crate::sip::{Message, Method, Uri};

/// Transactions in flight at most (a full table refuses with 503).
pub const MAX_INFLIGHT: usize = 64;
/// Datagrams read from the UAC's socket per turn of the control loop.
const MAX_READS: usize = 256;
/// How long an ended INVITE answers retransmissions of its final reply
/// with its ACK (64·T1, §17.1.1.2's Timer D and §13.2.2.4).
const LINGER_T1S: u64 = 64;

/// Who learns how a transaction ended.
#[derive(Debug)]
pub enum Done {
    /// SER's FIFO: the report goes to this reply file.
    Fifo(std::path::PathBuf),
    /// JSON-RPC: the answer to request `id` goes on this connection.
    Rpc(UnixStream, Value),
    /// Nobody (the CANCEL of an INVITE that timed out).
    Nobody,
}

/// How a transaction ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub code: u16,
    pub reason: String,
    pub destination: SocketAddr,
    /// The final reply as received; none for a local 408.
    pub reply: Option<String>,
}

impl Outcome {
    /// SER's FIFO report: the status line, then the reply's header
    /// lines, and its body after an empty line when it has one.
    pub fn fifo_text(&self) -> String {
        let mut t = format!("{} {}\n", self.code, self.reason);
        if let Some(r) = &self.reply {
            let (head, body) = r.split_once("\r\n\r\n").unwrap_or((r, ""));
            for line in head.split("\r\n").skip(1) {
                t.push_str(line);
                t.push('\n');
            }
            if !body.is_empty() {
                t.push('\n');
                t.push_str(&body.replace("\r\n", "\n"));
                if !t.ends_with('\n') {
                    t.push('\n');
                }
            }
        }
        t
    }

    pub fn json(&self) -> Value {
        json!({
            "code": self.code,
            "reason": self.reason,
            "destination": self.destination.to_string(),
            "reply": self.reply,
        })
    }
}

struct Txn {
    branch: String,
    to: SocketAddr,
    req: Built,
    clock: Uac,
    /// Taken when told.
    done: Option<Done>,
    /// After the final reply (INVITE): until when its retransmissions
    /// are answered with `ack`.
    linger_until: Option<u64>,
    ack: Option<(Vec<u8>, SocketAddr)>,
    /// Timed out after a provisional and cancelled: the final reply it
    /// still gets is acknowledged, told to nobody.
    cancelled: bool,
}

pub struct Engine<'a> {
    sock: UdpSocket,
    local: SocketAddr,
    timers: Timers,
    txns: Vec<Txn>,
    buf: Vec<u8>,
    /// The script's `event_route[tm:local-request]` on each new request
    /// (its text, where it goes): false when the route dropped it.
    local_request: Option<LocalRequest<'a>>,
}

/// See [`Engine::on_local_request`].
pub type LocalRequest<'a> = Box<dyn FnMut(&mut Vec<u8>, SocketAddr, SocketAddr) -> bool + 'a>;

impl<'a> Engine<'a> {
    /// A socket on `listen`'s address (an ephemeral port).
    pub fn new(listen: SocketAddr, timers: Timers) -> std::io::Result<Engine<'a>> {
        let sock = UdpSocket::bind(SocketAddr::new(listen.ip(), 0))?;
        sock.set_nonblocking(true)?;
        let local = sock.local_addr()?;
        Ok(Engine {
            sock,
            local,
            timers,
            txns: Vec::new(),
            buf: vec![0u8; crate::sip::limits::MAX_DATAGRAM],
            local_request: None,
        })
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }

    pub fn inflight(&self) -> usize {
        self.txns.len()
    }

    /// Runs `f` (the script's `event_route[tm:local-request]`) on each new
    /// request before it goes.
    pub fn on_local_request(&mut self, f: LocalRequest<'a>) {
        self.local_request = Some(f);
    }

    /// The UAC's own address (the Via's).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Starts a transaction; a request that cannot start is refused at
    /// once, with a SIP code and reason (400 what is wrong, 503 full,
    /// 500 the destination does not resolve or the send fails).
    pub fn start(&mut self, ask: &Ask, done: Done, now: u64) -> Result<(), (u16, String, Done)> {
        if self.txns.len() >= MAX_INFLIGHT {
            return Err((503, format!("{MAX_INFLIGHT} transactions in flight"), done));
        }
        let branch = format!("z9hG4bKuac{}", build::random_hex());
        let mut req = match build::request(ask, self.local, &branch) {
            Ok(r) => r,
            Err(e) => return Err((400, e, done)),
        };
        let hop = ask
            .next_hop
            .as_deref()
            .filter(|h| !h.is_empty() && *h != ".");
        let to = match target(hop.unwrap_or(&ask.ruri)) {
            Ok(a) => a,
            Err(e) => return Err((500, e, done)),
        };
        if let Some(f) = &mut self.local_request
            && !f(&mut req.text, self.local, to)
        {
            return Err((403, "dropped by event_route[tm:local-request]".into(), done));
        }
        if let Err(e) = self.sock.send_to(&req.text, to) {
            return Err((500, format!("send to {to}: {e}"), done));
        }
        let clock = match req.method {
            Method::Invite => Uac::invite(now, &self.timers),
            _ => Uac::new(now, &self.timers),
        };
        self.txns.push(Txn {
            branch,
            to,
            req,
            clock,
            done: Some(done),
            linger_until: None,
            ack: None,
            cancelled: false,
        });
        Ok(())
    }

    /// When the loop must come back (a retransmission or a timer), if any
    /// transaction is in flight.
    /// (Asking must not advance a transaction's timers: `tick` does.)
    pub fn next_due(&self) -> Option<u64> {
        self.txns
            .iter()
            .map(|t| t.linger_until.unwrap_or_else(|| t.clock.due()))
            .min()
    }

    /// Reads the replies waiting on the socket (at most
    /// [`MAX_READS`] a call, so a flood cannot hold the control loop);
    /// the transactions that ended go to `ended`, with who to tell.
    pub fn on_readable(&mut self, now: u64, ended: &mut Vec<(Done, Outcome)>) {
        let mut buf = std::mem::take(&mut self.buf);
        for _ in 0..MAX_READS {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                break;
            };
            self.on_reply(&buf[..n], now, ended);
        }
        self.buf = buf;
    }

    fn on_reply(&mut self, data: &[u8], now: u64, ended: &mut Vec<(Done, Outcome)>) {
        let Ok(reply) = Message::parse(data) else {
            return;
        };
        if reply.is_request() {
            return self.on_request(&reply);
        }
        let (Some(code), Ok(via), Ok(cseq)) = (reply.status(), reply.top_via(), reply.cseq())
        else {
            return;
        };
        // §17.1.3: the reply is a transaction's if its top Via's branch
        // and its CSeq method are (a CANCEL shares its INVITE's branch).
        let Some(i) = self
            .txns
            .iter()
            .position(|t| via.branch == Some(t.branch.as_bytes()) && cseq.method == t.req.method)
        else {
            return;
        };
        let local = self.local;
        let t = &mut self.txns[i];
        if t.linger_until.is_some() {
            // A final reply again: the ACK again (§17.1.1.2, §13.2.2.4).
            if code >= 200
                && let Some((ack, to)) = &t.ack
            {
                let _ = self.sock.send_to(ack, *to);
            }
            return;
        }
        t.clock.on_reply(code, now);
        if code < 200 {
            return;
        }
        if t.req.method == Method::Invite {
            t.ack = ack_for(&t.req, &reply, code, t.to, local);
            if let Some((ack, to)) = &t.ack {
                let _ = self.sock.send_to(ack, *to);
            }
            t.linger_until = Some(now + LINGER_T1S * self.timers.t1);
        }
        let outcome = Outcome {
            code,
            reason: String::from_utf8_lossy(reply.reason()).into_owned(),
            destination: t.to,
            reply: Some(String::from_utf8_lossy(data).into_owned()),
        };
        if let (Some(done), false) = (t.done.take(), t.cancelled) {
            ended.push((done, outcome));
        }
        if t.linger_until.is_none() {
            self.txns.swap_remove(i);
        }
    }

    /// A request within a dialog an INVITE of ours started (its Contact
    /// is this socket): a BYE ends it (200), an OPTIONS is answered, an
    /// ACK needs nothing; anything else has no dialog here (481).
    fn on_request(&mut self, req: &Message<'_>) {
        let (code, reason): (u16, &[u8]) = match req.method() {
            Some(Method::Ack) | None => return,
            Some(Method::Bye | Method::Options) => (200, b"OK"),
            Some(_) => (481, b"Call/Transaction Does Not Exist"),
        };
        let Ok(via) = req.top_via() else { return };
        let port = match via.rport {
            crate::sip::Rport::Value(p) => p,
            _ => via.port.unwrap_or(5060),
        };
        let host = std::str::from_utf8(via.received.unwrap_or(via.host_raw)).unwrap_or_default();
        let Ok(to) = target(&format!("sip:{host}:{port}")) else {
            return;
        };
        let mut out = Vec::new();
        crate::sip::build::write_reply(req, code, reason, Some(b"uac"), None, b"", b"", &mut out);
        let _ = self.sock.send_to(&out, to);
    }

    /// Retransmissions and timers due at `now`.
    pub fn tick(&mut self, now: u64, ended: &mut Vec<(Done, Outcome)>) {
        let mut i = 0;
        let mut cancels = Vec::new();
        while i < self.txns.len() {
            let t = &mut self.txns[i];
            if let Some(until) = t.linger_until {
                if now >= until {
                    self.txns.swap_remove(i);
                } else {
                    i += 1;
                }
                continue;
            }
            match t.clock.poll(now) {
                Step::Send => {
                    let _ = self.sock.send_to(&t.req.text, t.to);
                    i += 1;
                }
                Step::Wait(_) | Step::Done(_) => i += 1,
                Step::TimedOut => {
                    if let Some(done) = t.done.take() {
                        ended.push((
                            done,
                            Outcome {
                                code: 408,
                                reason: "Request Timeout".into(),
                                destination: t.to,
                                reply: None,
                            },
                        ));
                    }
                    // §9.1: an INVITE that had a provisional is cancelled;
                    // it lingers to acknowledge the final reply to come.
                    if t.req.method == Method::Invite && t.clock.proceeding() && !t.cancelled {
                        t.cancelled = true;
                        // No more retransmissions; 64·T1 for the final.
                        let wait = Timers {
                            fr_inv: LINGER_T1S * self.timers.t1,
                            ..self.timers
                        };
                        t.clock = Uac::invite(now, &wait);
                        t.clock.on_reply(180, now);
                        cancels.push((
                            build::cancel(&t.req),
                            t.to,
                            t.req.clone(),
                            t.branch.clone(),
                        ));
                        i += 1;
                    } else {
                        self.txns.swap_remove(i);
                    }
                }
            }
        }
        for (text, to, inv, branch) in cancels {
            let _ = self.sock.send_to(&text, to);
            if self.txns.len() < MAX_INFLIGHT {
                let clock = Uac::new(now, &self.timers);
                self.txns.push(Txn {
                    branch,
                    to,
                    req: Built {
                        text,
                        method: Method::Cancel,
                        method_text: "CANCEL".into(),
                        ..inv
                    },
                    clock,
                    done: Some(Done::Nobody),
                    linger_until: None,
                    ack: None,
                    cancelled: true,
                });
            }
        }
    }
}

/// The ACK an INVITE's final reply needs, and where it goes.
fn ack_for(
    inv: &Built,
    reply: &Message<'_>,
    code: u16,
    invite_to: SocketAddr,
    local: SocketAddr,
) -> Option<(Vec<u8>, SocketAddr)> {
    if code >= 300 {
        return Some((build::ack_non_2xx(inv, reply), invite_to));
    }
    let branch = format!("z9hG4bKack{}", build::random_hex());
    match build::ack_2xx(inv, reply, local, &branch)
        .and_then(|(text, next)| target(&next).map(|to| (text, to)))
    {
        Ok(a) => Some(a),
        Err(e) => {
            log::warn!("t_uac: cannot acknowledge the 2xx to {}: {e}", inv.ruri);
            None
        }
    }
}

/// Where a URI sends to: its maddr or host, and port (5060 by default).
pub fn target(uri: &str) -> Result<SocketAddr, String> {
    let u = Uri::parse(uri.as_bytes()).map_err(|_| format!("'{uri}' is not a SIP URI"))?;
    let host = std::str::from_utf8(u.maddr.unwrap_or(u.host_text()))
        .map_err(|_| "bad host".to_string())?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    (host.as_str(), u.port_or_default())
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve {host}"))
}
