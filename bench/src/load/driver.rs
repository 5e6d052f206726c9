//! The generator's protocol logic as pure code: the UAC side of each
//! scenario, its UAS, retransmissions and timeouts, driven by datagrams and
//! an injected clock (microseconds from the run's start). Sockets live in
//! `engine.rs`; tests drive this directly.
//!
//! Each unit (a request, a call, a registration) holds one slot of a
//! bounded slab for its lifetime; replies find it from their Call-ID.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;

use hdrhistogram::Histogram;
use rser::modules::auth::digest::{self, Algorithm};
use rser::sip::{DigestChallenge, HeaderKind, Message, Method};

use super::msg::{Ids, Request, route_set, write_uas_reply};
use super::users::User;

/// RFC 3261 §17.1.1.1: T1 and T2.
pub const T1_US: u64 = 500_000;
pub const T2_US: u64 = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// OPTIONS answered by the proxy itself.
    Options,
    /// OPTIONS relayed by the proxy to our UAS.
    Forward,
    /// INVITE, 100/180, 200, ACK, BYE, 200 through the proxy to our UAS.
    Call,
    /// REGISTER, answering a digest challenge when one comes.
    Register,
}

impl Scenario {
    pub fn parse(s: &str) -> Option<Scenario> {
        Some(match s {
            "options" => Scenario::Options,
            "forward" => Scenario::Forward,
            "call" => Scenario::Call,
            "register" => Scenario::Register,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Options => "options",
            Scenario::Forward => "forward",
            Scenario::Call => "call",
            Scenario::Register => "register",
        }
    }

    /// Whether the proxy passes it on to a UAS we must play.
    pub fn needs_uas(self) -> bool {
        matches!(self, Scenario::Forward | Scenario::Call)
    }
}

pub struct Setup {
    pub scenario: Scenario,
    pub target: SocketAddr,
    pub uas: SocketAddr,
    /// Every UAS socket's address (`--uas-count`; the first is `uas`),
    /// numbered after the UAC sockets. Empty: `uas` only.
    pub uas_all: Vec<SocketAddr>,
    /// The UAC sockets' addresses (`--peers`); the UAS sockets come after
    /// them in socket numbering.
    pub locals: Vec<SocketAddr>,
    pub users: Vec<User>,
    pub domain: String,
    /// The calls' From URI (`--from`): a proxy that relays only for its
    /// own users (Kamailio's stock config) needs one of its domain.
    pub caller: String,
    /// The calls' Request-URI and To (`--callee`): an address of record
    /// the proxy looks up. None: our UAS's own address.
    pub callee: Option<String>,
    /// Share of our own datagrams dropped, 0..1.
    pub loss: f64,
    pub timeout_us: u64,
    pub max_inflight: usize,
    pub run: u32,
    /// Over TCP (`--transport tcp`): the Vias and Contacts say so.
    pub tcp: bool,
}

/// Where datagrams go; the engine's outbox, or a test's queue.
pub trait Out {
    fn send(&mut self, sock: usize, dest: SocketAddr, bytes: &[u8]);
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Stats {
    #[serde(rename = "sent")]
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub timeouts: u64,
    pub error_replies: u64,
    /// Units not started because every slot was in use.
    pub rejected_full: u64,
    pub retransmitted: u64,
    /// Datagrams `--loss` dropped.
    pub dropped: u64,
    /// Datagrams that matched nothing (late, foreign or unparsable).
    pub strays: u64,
    pub auth_rounds: u64,
}

impl Stats {
    /// Another generator thread's counts added to these.
    pub fn add(&mut self, o: &Stats) {
        self.started += o.started;
        self.completed += o.completed;
        self.failed += o.failed;
        self.timeouts += o.timeouts;
        self.error_replies += o.error_replies;
        self.rejected_full += o.rejected_full;
        self.retransmitted += o.retransmitted;
        self.dropped += o.dropped;
        self.strays += o.strays;
        self.auth_rounds += o.auth_rounds;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UacState {
    Free,
    Options,
    Inviting { ringing: bool },
    Bye,
    Registering { authed: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UasState {
    Idle,
    /// 200 sent, retransmitted until the ACK (§13.3.1.4).
    Answered,
    Acked,
}

struct Slot {
    generation: u32,
    state: UacState,
    peer: usize,
    user: usize,
    cseq: u32,
    seq: u32,
    unit_start: u64,
    txn_start: u64,
    deadline: u64,
    rtx_due: u64,
    rtx_iv: u64,
    /// The request to retransmit, and the ACK to repeat for a
    /// retransmitted 2xx (§13.2.2.4).
    req: Vec<u8>,
    ack: Vec<u8>,
    /// The dialog: remote target, remote tag, route set lines.
    ruri: Vec<u8>,
    to_tag: Vec<u8>,
    route: Vec<u8>,
    uas: UasState,
    uas_prov: Vec<u8>,
    uas_reply: Vec<u8>,
    uas_dest: Option<SocketAddr>,
    /// The UAS socket that answered.
    uas_sock: usize,
    uas_due: u64,
    uas_iv: u64,
    uas_since: u64,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            generation: 0,
            state: UacState::Free,
            peer: 0,
            user: 0,
            cseq: 1,
            seq: 0,
            unit_start: 0,
            txn_start: 0,
            deadline: 0,
            rtx_due: 0,
            rtx_iv: 0,
            req: Vec::with_capacity(1024),
            ack: Vec::new(),
            ruri: Vec::new(),
            to_tag: Vec::new(),
            route: Vec::new(),
            uas: UasState::Idle,
            uas_prov: Vec::new(),
            uas_reply: Vec::new(),
            uas_dest: None,
            uas_sock: 0,
            uas_due: 0,
            uas_iv: 0,
            uas_since: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retransmit,
    Deadline,
    UasRetransmit,
}

/// Our own datagrams leave through here, where `--loss` drops its share.
struct Link {
    loss: f64,
    rng: u64,
    dropped: u64,
    retransmitted: u64,
}

impl Link {
    fn emit(&mut self, out: &mut dyn Out, sock: usize, dest: SocketAddr, bytes: &[u8]) {
        if self.loss > 0.0 {
            // xorshift64: cheap and good enough to pick drops.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let draw = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
            if draw < self.loss {
                self.dropped += 1;
                return;
            }
        }
        out.send(sock, dest, bytes);
    }

    fn resend(&mut self, out: &mut dyn Out, sock: usize, dest: SocketAddr, bytes: &[u8]) {
        self.retransmitted += 1;
        self.emit(out, sock, dest, bytes);
    }
}

pub struct Driver {
    setup: Setup,
    slots: Vec<Slot>,
    free: Vec<u32>,
    inflight: usize,
    timers: BinaryHeap<Reverse<(u64, u32, u32, Timer)>>,
    link: Link,
    stats: Stats,
    uas_requests: Vec<u64>,
    /// Latency per transaction, microseconds (a registration counts as one
    /// transaction, its challenge round included).
    pub hist: Histogram<u64>,
    extra: Vec<u8>,
    scratch: Vec<u8>,
    reply: Vec<u8>,
}

impl Driver {
    pub fn new(setup: Setup) -> Driver {
        let uas_count = setup.uas_all.len().max(1);
        let seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(setup.run);
        Driver {
            link: Link {
                loss: setup.loss,
                rng: seed | 1,
                dropped: 0,
                retransmitted: 0,
            },
            setup,
            slots: Vec::new(),
            free: Vec::new(),
            inflight: 0,
            timers: BinaryHeap::new(),
            stats: Stats::default(),
            uas_requests: vec![0; uas_count],
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            extra: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(1024),
            reply: Vec::with_capacity(2048),
        }
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.dropped = self.link.dropped;
        s.retransmitted = self.link.retransmitted;
        s
    }

    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// Requests each UAS socket received.
    pub fn uas_requests(&self) -> &[u64] {
        &self.uas_requests
    }

    fn is_uas_sock(&self, sock: usize) -> bool {
        sock >= self.setup.locals.len()
    }

    /// The address of UAS socket `sock` (its Contact).
    fn uas_addr(&self, sock: usize) -> SocketAddr {
        let i = sock.saturating_sub(self.setup.locals.len());
        self.setup.uas_all.get(i).copied().unwrap_or(self.setup.uas)
    }

    /// When the next timer is due, if any.
    pub fn next_due(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((due, ..))| *due)
    }

    fn arm(&mut self, due: u64, slot: u32, timer: Timer) {
        let generation = self.slots[slot as usize].generation;
        self.timers.push(Reverse((due, slot, generation, timer)));
    }

    fn ids(&self, slot: u32) -> Ids {
        Ids {
            run: self.setup.run,
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Starts one unit of the scenario.
    pub fn start(&mut self, now: u64, out: &mut dyn Out) {
        let n = self.stats.started;
        self.stats.started += 1;
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.slots.len() < self.setup.max_inflight => {
                self.slots.push(Slot::new());
                (self.slots.len() - 1) as u32
            }
            None => {
                self.stats.rejected_full += 1;
                self.stats.failed += 1;
                return;
            }
        };
        self.inflight += 1;
        let peers = self.setup.locals.len();
        // Without a user list: bench0..bench999.
        let users = if self.setup.users.is_empty() {
            1000
        } else {
            self.setup.users.len()
        };
        let s = &mut self.slots[slot as usize];
        s.peer = (n % peers as u64) as usize;
        s.user = (n % users as u64) as usize;
        s.cseq = 1;
        s.seq = 0;
        s.unit_start = now;
        s.state = match self.setup.scenario {
            Scenario::Options | Scenario::Forward => UacState::Options,
            Scenario::Call => UacState::Inviting { ringing: false },
            Scenario::Register => UacState::Registering { authed: false },
        };
        s.uas = UasState::Idle;
        self.send_request(now, slot, None, out);
    }

    /// Writes and sends the unit's current request (by its state) as a new
    /// client transaction; `auth` is an Authorization line to include.
    fn send_request(&mut self, now: u64, slot: u32, auth: Option<&[u8]>, out: &mut dyn Out) {
        let ids = self.ids(slot);
        let setup = &self.setup;
        let s = &mut self.slots[slot as usize];
        let local = setup.locals[s.peer];
        let extra = &mut self.extra;
        extra.clear();
        let uas = setup.uas;
        let user_name = |u: usize| match setup.users.get(u) {
            Some(user) => user.name.clone(),
            None => format!("bench{u}"),
        };
        let mut uri_a = Vec::with_capacity(64);
        let mut uri_b = Vec::with_capacity(64);
        use std::io::Write;
        let method = match s.state {
            UacState::Options => {
                match setup.scenario {
                    Scenario::Forward => {
                        let _ = write!(uri_a, "sip:service@{uas}");
                    }
                    _ => {
                        let _ = write!(uri_a, "sip:ping@{}", setup.target);
                    }
                }
                "OPTIONS"
            }
            UacState::Inviting { .. } => {
                match &setup.callee {
                    Some(aor) => uri_a.extend_from_slice(aor.as_bytes()),
                    None => {
                        let _ = write!(uri_a, "sip:service@{uas}");
                    }
                }
                let _ = write!(extra, "Contact: <sip:bench@{local}>\r\n");
                "INVITE"
            }
            UacState::Bye => {
                extra.extend_from_slice(&s.route);
                "BYE"
            }
            UacState::Registering { .. } => {
                let user = user_name(s.user);
                let _ = write!(uri_a, "sip:{}", setup.domain);
                let _ = write!(uri_b, "sip:{user}@{}", setup.domain);
                let _ = write!(extra, "Contact: <sip:{user}@{local}>\r\nExpires: 3600\r\n");
                if let Some(line) = auth {
                    extra.extend_from_slice(line);
                }
                "REGISTER"
            }
            UacState::Free => return,
        };
        // In a dialog, From and To stay those of the INVITE; a
        // registration's are both the address of record.
        let caller = self.setup.caller.as_bytes();
        let (ruri, from_uri, to_uri, to_tag): (&[u8], &[u8], &[u8], _) = match s.state {
            UacState::Bye => (
                &s.ruri,
                caller,
                b"sip:service@rser-bench",
                Some(&s.to_tag[..]),
            ),
            UacState::Registering { .. } => (&uri_a, &uri_b, &uri_b, None),
            _ => (&uri_a, caller, &uri_a, None),
        };
        let req = Request {
            method,
            ruri,
            local,
            ids,
            seq: s.seq,
            from_uri,
            to_uri,
            to_tag,
            cseq: s.cseq,
            extra,
            tcp: self.setup.tcp,
        };
        let mut buf = std::mem::take(&mut s.req);
        req.write(&mut buf);
        s.req = buf;
        s.txn_start = now;
        s.rtx_iv = T1_US;
        s.rtx_due = now + T1_US;
        s.deadline = now + setup.timeout_us;
        let (peer, due, deadline) = (s.peer, s.rtx_due, s.deadline);
        let target = setup.target;
        self.link
            .emit(out, peer, target, &self.slots[slot as usize].req);
        self.arm(due, slot, Timer::Retransmit);
        self.arm(deadline, slot, Timer::Deadline);
    }

    fn finish(&mut self, slot: u32, ok: bool) {
        let s = &mut self.slots[slot as usize];
        if s.state == UacState::Free {
            return;
        }
        s.state = UacState::Free;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
        self.inflight -= 1;
        if ok {
            self.stats.completed += 1;
        } else {
            self.stats.failed += 1;
        }
    }

    fn record(&mut self, since: u64, now: u64) {
        self.hist
            .saturating_record(now.saturating_sub(since).max(1));
    }

    /// Runs every timer due by `now`.
    pub fn on_timers(&mut self, now: u64, out: &mut dyn Out) {
        while let Some(&Reverse((due, slot, generation, timer))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            let s = &self.slots[slot as usize];
            if s.generation != generation {
                continue;
            }
            match timer {
                Timer::Retransmit if s.rtx_due == due && s.state != UacState::Free => {
                    // Non-INVITE retransmissions cap at T2 (§17.1.2.2); an
                    // INVITE's double until a provisional stops them.
                    let cap = if matches!(s.state, UacState::Inviting { .. }) {
                        u64::MAX
                    } else {
                        T2_US
                    };
                    let iv = (s.rtx_iv * 2).min(cap);
                    let (peer, target) = (s.peer, self.setup.target);
                    self.link
                        .resend(out, peer, target, &self.slots[slot as usize].req);
                    let s = &mut self.slots[slot as usize];
                    s.rtx_iv = iv;
                    s.rtx_due = now + iv;
                    self.arm(now + iv, slot, Timer::Retransmit);
                }
                Timer::Deadline if s.deadline == due && s.state != UacState::Free => {
                    self.stats.timeouts += 1;
                    self.finish(slot, false);
                }
                Timer::UasRetransmit if s.uas_due == due && s.uas == UasState::Answered => {
                    if now.saturating_sub(s.uas_since) >= 64 * T1_US {
                        continue;
                    }
                    let iv = (s.uas_iv * 2).min(T2_US);
                    if let Some(dest) = s.uas_dest {
                        let sock = s.uas_sock;
                        self.link
                            .resend(out, sock, dest, &self.slots[slot as usize].uas_reply);
                    }
                    let s = &mut self.slots[slot as usize];
                    s.uas_iv = iv;
                    s.uas_due = now + iv;
                    self.arm(now + iv, slot, Timer::UasRetransmit);
                }
                _ => {}
            }
        }
    }

    /// Units still running when the run ends fail.
    pub fn abandon(&mut self) {
        for slot in 0..self.slots.len() as u32 {
            if self.slots[slot as usize].state != UacState::Free {
                self.stats.timeouts += 1;
                self.finish(slot, false);
            }
        }
    }

    /// A datagram arrived on socket `sock` from `src`.
    pub fn on_datagram(
        &mut self,
        now: u64,
        sock: usize,
        src: SocketAddr,
        data: &[u8],
        out: &mut dyn Out,
    ) {
        let Ok(msg) = Message::parse(data) else {
            self.stats.strays += 1;
            return;
        };
        if self.is_uas_sock(sock) {
            if msg.is_request() {
                let i = sock - self.setup.locals.len();
                if let Some(n) = self.uas_requests.get_mut(i) {
                    *n += 1;
                }
                self.on_uas_request(now, sock, src, &msg, out);
            } else {
                self.stats.strays += 1;
            }
        } else if let Some(code) = msg.status() {
            self.on_reply(now, code, &msg, out);
        } else {
            self.stats.strays += 1;
        }
    }

    /// The slot a message of this run belongs to, if it still lives.
    fn slot_of(&self, msg: &Message<'_>) -> Option<u32> {
        let ids = Ids::from_call_id(msg.call_id().ok()?)?;
        let s = self.slots.get(ids.slot as usize)?;
        (ids.run == self.setup.run && s.generation == ids.generation).then_some(ids.slot)
    }

    fn on_reply(&mut self, now: u64, code: u16, msg: &Message<'_>, out: &mut dyn Out) {
        let (Some(slot), Ok(cseq)) = (self.slot_of(msg), msg.cseq()) else {
            self.stats.strays += 1;
            return;
        };
        let s = &self.slots[slot as usize];
        if cseq.number != s.cseq && cseq.method != Method::Invite {
            // A late reply to an earlier transaction of this unit.
            return;
        }
        match (s.state, cseq.method) {
            (UacState::Options, Method::Options) => {
                if code >= 200 {
                    let since = s.txn_start;
                    self.record(since, now);
                    self.end_with(slot, code);
                } else {
                    // §17.1.2.2: a provisional moves retransmissions to T2.
                    self.slots[slot as usize].rtx_iv = T2_US / 2;
                }
            }
            (UacState::Inviting { .. }, Method::Invite) => match code {
                100..=199 => {
                    // Proceeding: an INVITE is no longer retransmitted
                    // (§17.1.1.2).
                    let s = &mut self.slots[slot as usize];
                    s.state = UacState::Inviting { ringing: true };
                    s.rtx_due = 0;
                }
                200..=299 => {
                    let since = s.txn_start;
                    self.record(since, now);
                    self.confirm(now, slot, msg, out);
                }
                _ => {
                    self.ack_failure(slot, msg, out);
                    self.end_with(slot, code);
                }
            },
            (UacState::Bye, Method::Invite) if (200..300).contains(&code) => {
                // The 2xx again: our ACK was lost (§13.2.2.4).
                let (peer, target) = (s.peer, self.setup.target);
                self.link
                    .resend(out, peer, target, &self.slots[slot as usize].ack);
            }
            (UacState::Bye, Method::Bye) if code >= 200 => {
                let since = s.txn_start;
                self.record(since, now);
                self.end_with(slot, code);
            }
            (UacState::Registering { authed }, Method::Register) => match code {
                100..=199 => self.slots[slot as usize].rtx_iv = T2_US / 2,
                200..=299 => {
                    let since = s.unit_start;
                    self.record(since, now);
                    self.finish(slot, true);
                }
                401 | 407 if !authed => self.authenticate(now, slot, code, msg, out),
                _ => self.end_with(slot, code),
            },
            _ => {}
        }
    }

    fn end_with(&mut self, slot: u32, code: u16) {
        let ok = (200..300).contains(&code);
        if !ok {
            self.stats.error_replies += 1;
        }
        self.finish(slot, ok);
    }

    /// The INVITE's 2xx: keep the dialog, ACK it and hang up at once.
    fn confirm(&mut self, now: u64, slot: u32, msg: &Message<'_>, out: &mut dyn Out) {
        let ids = self.ids(slot);
        let s = &mut self.slots[slot as usize];
        s.to_tag.clear();
        if let Ok(to) = msg.to()
            && let Some(tag) = to.tag
        {
            s.to_tag.extend_from_slice(tag);
        }
        s.ruri.clear();
        match msg.contacts().next() {
            Some(Ok(rser::sip::Contact::Addr(c))) => {
                s.ruri.extend_from_slice(c.addr_spec);
            }
            _ => {
                let _ = std::io::Write::write_fmt(
                    &mut s.ruri,
                    format_args!("sip:service@{}", self.setup.uas),
                );
            }
        }
        route_set(msg, &mut s.route);
        // §13.2.2.4: the ACK is its own transaction, with the INVITE's
        // CSeq number.
        s.seq += 1;
        let local = self.setup.locals[s.peer];
        Request {
            method: "ACK",
            ruri: &s.ruri,
            local,
            ids,
            seq: s.seq,
            from_uri: self.setup.caller.as_bytes(),
            to_uri: b"sip:service@rser-bench",
            to_tag: Some(&s.to_tag),
            cseq: s.cseq,
            extra: &s.route,
            tcp: self.setup.tcp,
        }
        .write(&mut s.ack);
        let (peer, target) = (s.peer, self.setup.target);
        self.link
            .emit(out, peer, target, &self.slots[slot as usize].ack);
        let s = &mut self.slots[slot as usize];
        s.state = UacState::Bye;
        s.cseq += 1;
        s.seq += 1;
        self.send_request(now, slot, None, out);
    }

    /// §17.1.1.3: a non-2xx final reply to an INVITE is ACKed in its
    /// transaction (same branch, the reply's To).
    fn ack_failure(&mut self, slot: u32, msg: &Message<'_>, out: &mut dyn Out) {
        let ids = self.ids(slot);
        let s = &mut self.slots[slot as usize];
        let local = self.setup.locals[s.peer];
        let to_tag = msg.to().ok().and_then(|t| t.tag);
        let ruri = match &self.setup.callee {
            Some(aor) => aor.clone(),
            None => format!("sip:service@{}", self.setup.uas),
        };
        Request {
            method: "ACK",
            ruri: ruri.as_bytes(),
            local,
            ids,
            seq: s.seq,
            from_uri: self.setup.caller.as_bytes(),
            to_uri: ruri.as_bytes(),
            to_tag,
            cseq: s.cseq,
            extra: b"",
            tcp: self.setup.tcp,
        }
        .write(&mut s.ack);
        let (peer, target) = (s.peer, self.setup.target);
        self.link
            .emit(out, peer, target, &self.slots[slot as usize].ack);
    }

    /// Answers a 401/407 with credentials for the unit's user: the first
    /// challenge whose algorithm we know, as RFC 8760 §2.4 has a client
    /// choose; qop=auth when offered.
    fn authenticate(
        &mut self,
        now: u64,
        slot: u32,
        code: u16,
        msg: &Message<'_>,
        out: &mut dyn Out,
    ) {
        let s = &self.slots[slot as usize];
        let Some(user) = self.setup.users.get(s.user) else {
            self.end_with(slot, code);
            return;
        };
        let kind = if code == 401 {
            HeaderKind::WwwAuthenticate
        } else {
            HeaderKind::ProxyAuthenticate
        };
        let chosen = msg.all(kind).find_map(|h| {
            let c = DigestChallenge::parse(msg.value(h)).ok()?;
            let alg = Algorithm::parse(c.algorithm)?;
            Some((c, alg))
        });
        let Some((c, alg)) = chosen else {
            self.end_with(slot, code);
            return;
        };
        let (realm, nonce) = (c.realm.unwrap_or_default(), c.nonce.unwrap_or_default());
        let uri = format!("sip:{}", self.setup.domain);
        let ha1 = digest::ha1(alg, user.name.as_bytes(), realm, user.password.as_bytes());
        let cnonce = format!("{:08x}{:08x}", slot, s.generation);
        let qop = c
            .offers_qop_auth()
            .then_some((&b"00000001"[..], cnonce.as_bytes()));
        let response = digest::response(
            alg,
            ha1.as_bytes(),
            &digest::Challenge {
                nonce,
                qop_auth: qop,
                method: b"REGISTER",
                uri: uri.as_bytes(),
            },
        );
        let mut line = Vec::with_capacity(512);
        line.extend_from_slice(if code == 401 {
            b"Authorization: "
        } else {
            b"Proxy-Authorization: "
        });
        use std::io::Write;
        let _ = write!(
            line,
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             response=\"{}\", algorithm={}",
            user.name,
            String::from_utf8_lossy(realm),
            String::from_utf8_lossy(nonce),
            response.as_str(),
            alg.name()
        );
        if qop.is_some() {
            let _ = write!(line, ", qop=auth, nc=00000001, cnonce=\"{cnonce}\"");
        }
        if let Some(opaque) = c.opaque {
            let _ = write!(line, ", opaque=\"{}\"", String::from_utf8_lossy(opaque));
        }
        line.extend_from_slice(b"\r\n");
        self.stats.auth_rounds += 1;
        let s = &mut self.slots[slot as usize];
        s.state = UacState::Registering { authed: true };
        s.cseq += 1;
        s.seq += 1;
        self.send_request(now, slot, Some(&line), out);
    }

    /// Our UAS: 180 and 200 to an INVITE (the 200 repeated until the ACK),
    /// 200 to anything else but an ACK. Replies go back to the source, the
    /// proxy that sent the request.
    fn on_uas_request(
        &mut self,
        now: u64,
        sock: usize,
        src: SocketAddr,
        msg: &Message<'_>,
        out: &mut dyn Out,
    ) {
        let uas = self.uas_addr(sock);
        let slot = self.slot_of(msg);
        let method = msg.method().unwrap_or(Method::Other);
        match (method, slot) {
            (Method::Ack, Some(slot)) => {
                let s = &mut self.slots[slot as usize];
                if s.uas == UasState::Answered {
                    s.uas = UasState::Acked;
                }
            }
            (Method::Ack, None) => {}
            (Method::Invite, Some(slot)) if self.slots[slot as usize].uas != UasState::Idle => {
                // A retransmitted INVITE: the same answers again.
                let s = &self.slots[slot as usize];
                if s.uas == UasState::Answered {
                    self.link.resend(out, sock, src, &s.uas_prov);
                    self.link.resend(out, sock, src, &s.uas_reply);
                }
            }
            (Method::Invite, Some(slot)) => {
                let s = &mut self.slots[slot as usize];
                let tag = format!("u{slot}x{}", s.generation);
                write_uas_reply(
                    msg,
                    180,
                    tag.as_bytes(),
                    Some((uas, self.setup.tcp)),
                    &mut self.scratch,
                    &mut s.uas_prov,
                );
                write_uas_reply(
                    msg,
                    200,
                    tag.as_bytes(),
                    Some((uas, self.setup.tcp)),
                    &mut self.scratch,
                    &mut s.uas_reply,
                );
                s.uas = UasState::Answered;
                s.uas_dest = Some(src);
                s.uas_sock = sock;
                s.uas_iv = T1_US;
                s.uas_due = now + T1_US;
                s.uas_since = now;
                self.link
                    .emit(out, sock, src, &self.slots[slot as usize].uas_prov);
                self.link
                    .emit(out, sock, src, &self.slots[slot as usize].uas_reply);
                self.arm(now + T1_US, slot, Timer::UasRetransmit);
            }
            (Method::Invite, None) => {
                // Not ours to track (a late or foreign call): answer anyway.
                write_uas_reply(
                    msg,
                    200,
                    b"u",
                    Some((uas, self.setup.tcp)),
                    &mut self.scratch,
                    &mut self.reply,
                );
                self.link.emit(out, sock, src, &self.reply);
            }
            _ => {
                write_uas_reply(msg, 200, b"u", None, &mut self.scratch, &mut self.reply);
                self.link.emit(out, sock, src, &self.reply);
            }
        }
    }
}
