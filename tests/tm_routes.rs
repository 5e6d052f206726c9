//! tm's script hooks through the real binary: branch_route shaping and
//! dropping branches, failure_route's own changes on the branches it
//! starts, t_reply from failure_route, and §16.7's 503 rule.

mod common;

use std::time::Duration;

use common::{Peer, Server, answer, expect, header};

const SEC: Duration = Duration::from_secs(3);

fn invite(caller: &Peer, call: &str) -> String {
    caller.request(
        "INVITE",
        "sip:bob@example.com",
        call,
        &format!("Contact: <sip:alice@{}>\r\nSubject: call\r\n", caller.addr),
    )
}

fn config(route: &str, more: &str) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"textops.so\"\n\
         route {{\n{route}\n}}\n{more}\n"
    )
}

#[test]
fn branch_route_changes_one_branch_and_drops_another() {
    let (caller, a, b, c) = (Peer::new(), Peer::new(), Peer::new(), Peer::new());
    let route = format!(
        "rewritehostport(\"{}\");\n\
         append_branch(\"sip:bob@{}\");\n\
         append_branch(\"sip:carol@{}\");\n\
         t_on_branch(\"1\");\n\
         t_relay();",
        a.addr, b.addr, c.addr
    );
    let branch = format!(
        "branch_route[1] {{\n\
           if (uri =~ \"^sip:carol@\") {{ drop; }}\n\
           if (uri =~ \"{}\") {{ replace(\"Subject: [a-z]*\", \"Subject: branch-a\"); }}\n\
         }}",
        a.addr
    );
    let rser = Server::start(&config(&route, &branch), 2, &[]);
    caller.send(rser.addr, &invite(&caller, "tm-branch-route"));
    let (to_a, _) = expect(&a, "INVITE", SEC).expect("branch to a");
    assert_eq!(header(&to_a, "Subject"), Some("branch-a"));
    let (to_b, _) = expect(&b, "INVITE", SEC).expect("branch to b");
    assert_eq!(header(&to_b, "Subject"), Some("call"), "b's text unchanged");
    b.send(rser.addr, &answer(&to_b, 486, "Busy Here", "b"));
    // a is silent: its retransmission (T1) is built from its own text.
    let (again, _) = expect(&a, "INVITE", SEC).expect("retransmission to a");
    assert_eq!(header(&again, "Subject"), Some("branch-a"));
    assert_eq!(header(&again, "Via"), header(&to_a, "Via"));
    a.send(rser.addr, &answer(&to_a, 486, "Busy Here", "a"));
    let (ack, _) = expect(&a, "ACK", SEC).expect("hop-by-hop ACK to a");
    assert_eq!(header(&ack, "CSeq"), header(&to_a, "CSeq").map(|_| "1 ACK"));
    expect(&caller, "SIP/2.0 486", SEC).expect("486 upstream");
    assert!(
        expect(&c, "INVITE", Duration::from_millis(200)).is_none(),
        "the dropped branch is never sent"
    );
}

#[test]
fn failure_route_changes_go_on_the_branches_it_starts() {
    let (caller, busy, other) = (Peer::new(), Peer::new(), Peer::new());
    let route = format!(
        "rewritehostport(\"{}\");\nt_on_failure(\"1\");\nt_relay();",
        busy.addr
    );
    let failure = format!(
        "failure_route[1] {{\n\
           replace(\"Subject: [a-z]*\", \"Subject: retried\");\n\
           rewritehostport(\"{}\");\n\
           t_relay();\n\
         }}",
        other.addr
    );
    let rser = Server::start(&config(&route, &failure), 2, &[]);
    caller.send(rser.addr, &invite(&caller, "tm-failure-edit"));
    let (first, _) = expect(&busy, "INVITE", SEC).unwrap();
    assert_eq!(header(&first, "Subject"), Some("call"));
    busy.send(rser.addr, &answer(&first, 486, "Busy Here", "x"));
    let (second, _) = expect(&other, "INVITE", SEC).expect("rerouted");
    assert_eq!(header(&second, "Subject"), Some("retried"));
    // Max-Forwards was decremented once, when the request first went on.
    assert_eq!(
        header(&second, "Max-Forwards"),
        header(&first, "Max-Forwards")
    );
    other.send(rser.addr, &answer(&second, 200, "OK", "y"));
    expect(&caller, "SIP/2.0 200", SEC).expect("200 from the second branch");
}

#[test]
fn t_reply_in_failure_route_replaces_the_best_reply() {
    let (caller, busy) = (Peer::new(), Peer::new());
    let route = format!(
        "rewritehostport(\"{}\");\nt_on_failure(\"1\");\nt_relay();",
        busy.addr
    );
    let failure =
        "failure_route[1] { if (status == \"486\") { t_reply(\"480\", \"Try Later\"); } }";
    let rser = Server::start(&config(&route, failure), 2, &[]);
    let inv = invite(&caller, "tm-failure-reply");
    caller.send(rser.addr, &inv);
    let (got, _) = expect(&busy, "INVITE", SEC).unwrap();
    busy.send(rser.addr, &answer(&got, 486, "Busy Here", "x"));
    let (reply, _) = expect(&caller, "SIP/2.0 4", SEC).expect("a final reply");
    assert!(reply.starts_with("SIP/2.0 480 Try Later"), "{reply}");
    assert!(expect(&caller, "SIP/2.0 486", Duration::from_millis(200)).is_none());
    // A retransmitted INVITE gets the 480 again, from the transaction.
    caller.send(rser.addr, &inv);
    let (again, _) = expect(&caller, "SIP/2.0 4", SEC).expect("480 again");
    assert!(again.starts_with("SIP/2.0 480"), "{again}");
}

#[test]
fn a_503_from_the_only_branch_reaches_the_caller_as_500() {
    let (caller, callee) = (Peer::new(), Peer::new());
    let route = format!("rewritehostport(\"{}\");\nt_relay();", callee.addr);
    let rser = Server::start(&config(&route, ""), 2, &[]);
    caller.send(rser.addr, &invite(&caller, "tm-503"));
    let (got, _) = expect(&callee, "INVITE", SEC).unwrap();
    callee.send(rser.addr, &answer(&got, 503, "Service Unavailable", "z"));
    expect(&callee, "ACK", SEC).expect("the 503 ACKed");
    let (reply, _) = expect(&caller, "SIP/2.0 5", SEC).expect("a final reply");
    // RFC 3261 §16.7 step 6.
    assert!(reply.starts_with("SIP/2.0 500"), "{reply}");
}

/// The seed's "On-Reply Processing" chained through two failure routes,
/// in `style` (SER's two ways to add the next destination): each route
/// forks only to the destination it adds, never again to the one that
/// just failed.
fn chained_failure_routes(style: &str) {
    let (caller, a, b, c) = (Peer::new(), Peer::new(), Peer::new(), Peer::new());
    let next = |p: &Peer| match style {
        "rewrite" => format!("rewritehostport(\"{}\");", p.addr),
        _ => format!("append_branch(\"sip:bob@{}\");", p.addr),
    };
    let route = format!(
        "rewritehostport(\"{}\");\nt_on_failure(\"1\");\nt_relay();",
        a.addr
    );
    let more = format!(
        "failure_route[1] {{ {} t_on_failure(\"2\"); t_relay(); }}\n\
         failure_route[2] {{ {} t_relay(); }}",
        next(&b),
        next(&c)
    );
    let rser = Server::start(&config(&route, &more), 2, &[]);
    let call = format!("chain-{style}");
    caller.send(rser.addr, &invite(&caller, &call));
    let quiet = Duration::from_millis(300);
    let (mut inv, _) = expect(&a, "INVITE", SEC).expect("the first branch");
    for (busy, then) in [(&a, &b), (&b, &c)] {
        busy.send(rser.addr, &answer(&inv, 486, "Busy Here", "busy"));
        expect(busy, "ACK", SEC).expect("its 486 ACKed");
        (inv, _) = expect(then, "INVITE", SEC).expect("the next destination");
        assert!(inv.contains(&call));
        assert!(
            expect(busy, "INVITE", quiet).is_none(),
            "{style}: the failed destination is not forked to again"
        );
    }
    c.send(rser.addr, &answer(&inv, 200, "OK", "c"));
    let (ok, _) = expect(&caller, "SIP/2.0 200", SEC).expect("200 from the last resort");
    assert!(header(&ok, "To").unwrap().contains("tag=c"));
    assert!(expect(&a, "INVITE", quiet).is_none());
}

#[test]
fn failure_routes_chained_with_rewriteuri_fork_only_the_new_uri() {
    chained_failure_routes("rewrite");
}

#[test]
fn failure_routes_chained_with_append_branch_fork_only_the_new_branch() {
    chained_failure_routes("append");
}
