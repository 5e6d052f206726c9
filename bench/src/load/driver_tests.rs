//! The driver against proxies simulated in memory, on a simulated clock.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rser::modules::auth::digest::{self, Algorithm};
use rser::sip::build::write_reply;
use rser::sip::{DigestCredentials, HeaderKind, Message, Method};

use super::driver::{Driver, Out, Scenario, Setup, T1_US};
use super::users::User;

const UAC: usize = 0;
const UAS: usize = 1;

fn target() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

#[derive(Default)]
struct Queue(VecDeque<(usize, SocketAddr, Vec<u8>)>);

impl Out for Queue {
    fn send(&mut self, sock: usize, dest: SocketAddr, bytes: &[u8]) {
        self.0.push_back((sock, dest, bytes.to_vec()));
    }
}

fn driver(scenario: Scenario, users: Vec<User>) -> Driver {
    driver_with(scenario, users, 0.0, 4)
}

fn driver_with(scenario: Scenario, users: Vec<User>, loss: f64, max_inflight: usize) -> Driver {
    Driver::new(Setup {
        scenario,
        target: target(),
        uas: "127.0.0.1:5070".parse().unwrap(),
        uas_all: Vec::new(),
        locals: vec!["127.0.0.1:4000".parse().unwrap()],
        users,
        domain: "example.net".into(),
        caller: "sip:bench@rser-bench".into(),
        callee: None,
        loss,
        timeout_us: 8_000_000,
        max_inflight,
        tcp: false,
        run: 7,
    })
}

/// What a simulated proxy makes of one datagram: deliveries to our sockets.
type Proxy<'a> = dyn FnMut(usize, &[u8]) -> Vec<(usize, Vec<u8>)> + 'a;

/// Delivers what the driver sent through `proxy`, which says for each
/// datagram (from socket, bytes) what reaches which of our sockets; bounded.
fn pump(d: &mut Driver, q: &mut Queue, now: u64, proxy: &mut Proxy<'_>) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    for _ in 0..1000 {
        let Some((sock, _dest, bytes)) = q.0.pop_front() else {
            return seen;
        };
        for (to, data) in proxy(sock, &bytes) {
            d.on_datagram(now, to, target(), &data, q);
        }
        seen.push(bytes);
    }
    panic!("the exchange did not settle");
}

/// A proxy that answers every request itself with `code`.
fn answering(code: u16) -> impl FnMut(usize, &[u8]) -> Vec<(usize, Vec<u8>)> {
    move |_, bytes| {
        let m = Message::parse(bytes).unwrap();
        if !m.is_request() || m.method() == Some(Method::Ack) {
            return vec![];
        }
        let mut out = Vec::new();
        write_reply(&m, code, b"Reason", Some(b"p"), None, b"", b"", &mut out);
        vec![(UAC, out)]
    }
}

/// A proxy that passes requests to the UAS and replies back, unchanged.
fn passing(sock: usize, bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
    vec![(if sock == UAC { UAS } else { UAC }, bytes.to_vec())]
}

fn methods(seen: &[Vec<u8>]) -> Vec<String> {
    seen.iter()
        .map(|b| {
            let m = Message::parse(b).unwrap();
            match m.status() {
                Some(c) => c.to_string(),
                None => String::from_utf8_lossy(m.method_raw()).into_owned(),
            }
        })
        .collect()
}

#[test]
fn options_answered_by_the_proxy_completes() {
    let (mut d, mut q) = (driver(Scenario::Options, vec![]), Queue::default());
    d.start(0, &mut q);
    pump(&mut d, &mut q, 300, &mut answering(200));
    let s = d.stats();
    assert_eq!((s.started, s.completed, s.failed), (1, 1, 0));
    assert_eq!(d.hist.len(), 1);
    assert_eq!(d.inflight(), 0);
}

#[test]
fn a_call_runs_invite_ack_bye_through_the_proxy() {
    let (mut d, mut q) = (driver(Scenario::Call, vec![]), Queue::default());
    d.start(0, &mut q);
    let seen = pump(&mut d, &mut q, 100, &mut passing);
    assert_eq!(
        methods(&seen),
        ["INVITE", "180", "200", "ACK", "BYE", "200"]
    );
    let s = d.stats();
    assert_eq!((s.completed, s.failed, s.strays), (1, 0, 0));
    assert_eq!(d.hist.len(), 2, "the INVITE and the BYE transactions");
    // The UAS stopped retransmitting its 200 when the ACK came.
    d.on_timers(10 * T1_US, &mut q);
    assert!(q.0.is_empty());
}

#[test]
fn the_dialog_follows_the_record_route() {
    let (mut d, mut q) = (driver(Scenario::Call, vec![]), Queue::default());
    d.start(0, &mut q);
    // A record-routing proxy: adds Record-Route to the INVITE.
    let mut rr = |sock: usize, bytes: &[u8]| {
        let mut b = bytes.to_vec();
        if sock == UAC && bytes.starts_with(b"INVITE") {
            let at = b.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
            b.splice(
                at..at,
                b"Record-Route: <sip:127.0.0.1:5060;lr>\r\n".iter().copied(),
            );
        }
        passing(sock, &b)
    };
    let seen = pump(&mut d, &mut q, 100, &mut rr);
    let bye = seen.iter().find(|b| b.starts_with(b"BYE")).unwrap();
    let m = Message::parse(bye).unwrap();
    let route = m.first(HeaderKind::Route).map(|h| m.value(h));
    assert_eq!(route, Some(&b"<sip:127.0.0.1:5060;lr>"[..]));
    assert_eq!(m.request_uri_raw(), b"sip:uas@127.0.0.1:5070");
    assert!(m.to().unwrap().tag.is_some());
}

#[test]
fn a_lost_request_is_retransmitted_after_t1() {
    let (mut d, mut q) = (driver(Scenario::Options, vec![]), Queue::default());
    d.start(0, &mut q);
    q.0.clear(); // lost on the way
    d.on_timers(T1_US - 1, &mut q);
    assert!(q.0.is_empty());
    d.on_timers(T1_US, &mut q);
    pump(&mut d, &mut q, T1_US + 100, &mut answering(200));
    let s = d.stats();
    assert_eq!((s.completed, s.retransmitted), (1, 1));
}

#[test]
fn a_lost_2xx_is_retransmitted_by_the_uas_and_acked_again() {
    let (mut d, mut q) = (driver(Scenario::Call, vec![]), Queue::default());
    d.start(0, &mut q);
    // Deliver the INVITE; drop the UAS's 200, keep its 180.
    let (_, _, invite) = q.0.pop_front().unwrap();
    d.on_datagram(10, UAS, target(), &invite, &mut q);
    let (_, _, ringing) = q.0.pop_front().unwrap();
    q.0.clear();
    d.on_datagram(20, UAC, target(), &ringing, &mut q);
    assert!(q.0.is_empty(), "no INVITE retransmission once proceeding");
    d.on_timers(T1_US + 10, &mut q);
    let seen = pump(&mut d, &mut q, T1_US + 20, &mut passing);
    assert_eq!(methods(&seen), ["200", "ACK", "BYE", "200"]);
    assert_eq!(d.stats().completed, 1);
}

#[test]
fn silence_times_out_after_retransmissions() {
    let (mut d, mut q) = (driver(Scenario::Options, vec![]), Queue::default());
    d.start(0, &mut q);
    let mut sent = 0;
    for ms in (0..=9_000u64).step_by(10) {
        d.on_timers(ms * 1000, &mut q);
        sent += q.0.len();
        q.0.clear();
    }
    let s = d.stats();
    assert_eq!((s.failed, s.timeouts), (1, 1));
    // 1 + retransmissions at 0.5, 1.5, 3.5, 7.5 s (doubling, capped at T2).
    assert_eq!(sent, 5);
    assert_eq!(s.retransmitted, 4);
}

#[test]
fn an_error_reply_fails_the_unit() {
    let (mut d, mut q) = (driver(Scenario::Call, vec![]), Queue::default());
    d.start(0, &mut q);
    let seen = pump(&mut d, &mut q, 100, &mut answering(486));
    // The 486 is ACKed in its transaction (§17.1.1.3).
    assert_eq!(methods(&seen), ["INVITE", "ACK"]);
    let s = d.stats();
    assert_eq!((s.failed, s.error_replies), (1, 1));
}

/// A registrar that challenges once and checks the digest with rser's code.
fn registrar(password: &'static str) -> impl FnMut(usize, &[u8]) -> Vec<(usize, Vec<u8>)> {
    move |_, bytes| {
        let m = Message::parse(bytes).unwrap();
        let mut out = Vec::new();
        let code = match m.first(HeaderKind::Authorization) {
            None => {
                let challenge = b"WWW-Authenticate: Digest realm=\"example.net\", nonce=\"n0\", \
                    qop=\"auth\", algorithm=SHA-256\r\nWWW-Authenticate: Digest \
                    realm=\"example.net\", nonce=\"n0\", qop=\"auth\", algorithm=MD5\r\n";
                write_reply(
                    &m,
                    401,
                    b"Unauthorized",
                    Some(b"r"),
                    None,
                    challenge,
                    b"",
                    &mut out,
                );
                return vec![(UAC, out)];
            }
            Some(h) => {
                let c = DigestCredentials::parse(m.value(h)).unwrap();
                let alg = Algorithm::parse(c.algorithm).unwrap();
                assert_eq!(alg, Algorithm::Sha256, "the first challenge we know");
                let ha1 = digest::ha1(
                    alg,
                    c.username.unwrap(),
                    c.realm.unwrap(),
                    password.as_bytes(),
                );
                let want = digest::response(
                    alg,
                    ha1.as_bytes(),
                    &digest::Challenge {
                        nonce: c.nonce.unwrap(),
                        qop_auth: Some((c.nc.unwrap(), c.cnonce.unwrap())),
                        method: b"REGISTER",
                        uri: c.uri.unwrap(),
                    },
                );
                if digest::same(want.as_bytes(), c.response.unwrap()) {
                    200
                } else {
                    403
                }
            }
        };
        write_reply(&m, code, b"Reason", Some(b"r"), None, b"", b"", &mut out);
        vec![(UAC, out)]
    }
}

fn alice() -> Vec<User> {
    vec![User {
        name: "alice".into(),
        password: "secret".into(),
    }]
}

#[test]
fn a_challenged_register_authenticates() {
    let (mut d, mut q) = (driver(Scenario::Register, alice()), Queue::default());
    d.start(0, &mut q);
    let seen = pump(&mut d, &mut q, 100, &mut registrar("secret"));
    assert_eq!(methods(&seen), ["REGISTER", "REGISTER"]);
    let second = Message::parse(&seen[1]).unwrap();
    assert_eq!(second.cseq().unwrap().number, 2);
    let s = d.stats();
    assert_eq!((s.completed, s.auth_rounds, s.failed), (1, 1, 0));
    assert_eq!(d.hist.len(), 1, "a registration is one transaction");
}

#[test]
fn a_wrong_password_fails() {
    let (mut d, mut q) = (driver(Scenario::Register, alice()), Queue::default());
    d.start(0, &mut q);
    pump(&mut d, &mut q, 100, &mut registrar("other"));
    let s = d.stats();
    assert_eq!((s.completed, s.failed, s.error_replies), (0, 1, 1));
}

#[test]
fn a_full_slab_rejects_new_units_and_strays_are_counted() {
    let (mut d, mut q) = (driver(Scenario::Options, vec![]), Queue::default());
    for _ in 0..5 {
        d.start(0, &mut q);
    }
    let s = d.stats();
    assert_eq!((s.started, s.rejected_full, s.failed), (5, 1, 1));
    d.on_datagram(
        0,
        UAC,
        target(),
        b"SIP/2.0 200 OK\r\nCall-ID: x@y\r\n\r\n",
        &mut q,
    );
    d.on_datagram(0, UAC, target(), b"\x00garbage", &mut q);
    assert_eq!(d.stats().strays, 2);
}

#[test]
fn loss_drops_about_its_share() {
    let (mut d, mut q) = (
        driver_with(Scenario::Options, vec![], 0.25, 10_000),
        Queue::default(),
    );
    for _ in 0..4000 {
        d.start(0, &mut q);
    }
    let dropped = d.stats().dropped;
    assert!((800..1200).contains(&dropped), "{dropped}");
    assert_eq!(q.0.len() as u64 + dropped, 4000);
}
