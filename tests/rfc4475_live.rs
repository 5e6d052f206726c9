//! Every RFC 4475 §3.1.1 and §3.1.2 message through the running proxy:
//! a valid request is relayed, a valid or invalid response that is not
//! ours is dropped, and an invalid request is answered (400 with the
//! parser's reason, 505 for badvers) and never relayed, except where the
//! RFC lets a proxy be liberal (a Date it does not read, a REGISTER's
//! Contact it does not interpret).
//!
//! Runs in a private network namespace: the messages' Vias name hosts
//! off loopback, and a reply follows §18.2.2 to the `received` address
//! (the test's 127.0.0.1) at the sent-by port, so the test sends each
//! message from that port.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{Peer, Server, in_private_netns, status};

/// What the proxy must do with a message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Relayed,
    /// An error reply with this code, and not relayed.
    Refused(u16),
    /// Neither relayed nor answered (a response that is not ours).
    Dropped,
}

const CASES: &[(&str, Want)] = &[
    // §3.1.1: valid.
    ("wsinv", Want::Relayed),
    ("intmeth", Want::Relayed),
    ("esc01", Want::Relayed),
    ("escnull", Want::Relayed),
    ("esc02", Want::Relayed),
    ("lwsdisp", Want::Relayed),
    ("longreq", Want::Relayed),
    ("dblreq", Want::Relayed),
    ("semiuri", Want::Relayed),
    ("transports", Want::Relayed),
    ("mpart01", Want::Relayed),
    ("unreason", Want::Dropped),
    ("noreason", Want::Dropped),
    // §3.1.2: invalid.
    ("badinv01", Want::Refused(400)),
    ("clerr", Want::Refused(400)),
    ("ncl", Want::Refused(400)),
    ("scalar02", Want::Refused(400)),
    ("scalarlg", Want::Dropped),
    ("quotbal", Want::Refused(400)),
    ("ltgtruri", Want::Refused(400)),
    ("lwsruri", Want::Refused(400)),
    ("lwsstart", Want::Refused(400)),
    ("trws", Want::Refused(400)),
    ("escruri", Want::Refused(400)),
    // §3.1.2.12: "a router that ignores Date may accept this message".
    ("baddate", Want::Relayed),
    // §3.1.2.13: the Contact is the registrar's to judge, not a proxy's.
    ("regbadct", Want::Relayed),
    ("badaspec", Want::Refused(400)),
    ("baddn", Want::Refused(400)),
    ("badvers", Want::Refused(505)),
    ("mismatch01", Want::Refused(400)),
    // §3.1.2.18: 501 preferred, 400 acceptable.
    ("mismatch02", Want::Refused(400)),
    ("bigcode", Want::Dropped),
];

fn message(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/src/sip/testdata/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The port the message's top Via names (where §18.2.2 sends the reply).
fn sent_by_port(name: &str) -> u16 {
    match name {
        "quotbal" => 5050,
        _ => 5060,
    }
}

#[test]
fn every_rfc4475_message_through_the_live_proxy() {
    if !in_private_netns("every_rfc4475_message_through_the_live_proxy") {
        return;
    }
    let uas = Peer::new();
    let config = format!(
        "loadmodule \"sl.so\"\nroute {{ forward(127.0.0.1, {}); }}\n",
        uas.addr.port()
    );
    let rser = Server::start(&config, 2, &[]);
    let quiet = Duration::from_millis(300);
    let mut wrong = Vec::new();
    for &(name, want) in CASES {
        let sock = UdpSocket::bind(("127.0.0.1", sent_by_port(name))).unwrap();
        sock.send_to(&message(name), rser.addr).unwrap();
        let client = Peer {
            addr: sock.local_addr().unwrap(),
            sock,
        };
        let reply = client.recv_within(quiet).map(|(m, _)| m);
        let relayed = uas.recv_within(Duration::from_millis(50)).is_some();
        let got = match (&reply, relayed) {
            (Some(r), false) => status(r).map_or(Want::Dropped, Want::Refused),
            (None, true) => Want::Relayed,
            (None, false) => Want::Dropped,
            (Some(_), true) => {
                wrong.push(format!("{name}: relayed and answered"));
                continue;
            }
        };
        if got != want {
            wrong.push(format!(
                "{name}: want {want:?}, got {got:?} {}",
                reply
                    .as_deref()
                    .and_then(|r| r.lines().next())
                    .unwrap_or("")
            ));
        }
        // Drain what a relayed request's retransmission might leave.
        while uas.recv_within(Duration::from_millis(10)).is_some() {}
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        CASES.len(),
        wrong.join("\n")
    );
}
