//! tm through the worker and timer process on the simulated clock: exact
//! retransmission and timeout timings, CANCEL, failure routes, ACKs taken
//! by any worker, and a branch the kernel refuses.

use std::net::SocketAddr;

use super::harness::{Harness, Sent};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const CALLER: u16 = 7001;
const CALLEE: u16 = 7002;
const OTHER: u16 = 7003;

fn config(route: &str, more: &str) -> String {
    format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         modparam(\"tm\", \"fr_timer\", 2000)\n\
         modparam(\"tm\", \"fr_inv_timer\", 10000)\n\
         route {{\n{route}\n}}\n{more}\n"
    )
}

fn relay_to(port: u16) -> String {
    format!("rewritehostport(\"127.0.0.1:{port}\");\nt_on_failure(\"1\");\nt_relay();")
}

fn request(method: &str, call: &str, cseq_method: &str, to_tag: Option<&str>) -> String {
    let tag = to_tag.map_or(String::new(), |t| format!(";tag={t}"));
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{CALLER};branch=z9hG4bK-{call}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:bob@example.com>{tag}\r\n\
         From: <sip:alice@example.com>;tag=a-{call}\r\n\
         Call-ID: {call}\r\n\
         CSeq: 1 {cseq_method}\r\n\
         Contact: <sip:alice@127.0.0.1:{CALLER}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn invite(call: &str) -> String {
    request("INVITE", call, "INVITE", None)
}

/// A callee's reply to the request it received.
fn answer(req: &Sent, code: u16, tag: &str) -> String {
    let mut out = format!("SIP/2.0 {code} Reason\r\n");
    for line in req.text.split("\r\n").skip(1) {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => {
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
    out + "Content-Length: 0\r\n\r\n"
}

/// The status codes of the final replies among `sent`, in order.
fn finals(sent: &[Sent]) -> Vec<u16> {
    sent.iter()
        .filter_map(Sent::status)
        .filter(|c| *c >= 200)
        .collect()
}

fn only<'a>(sent: &'a [Sent], start: &str) -> Vec<&'a Sent> {
    sent.iter()
        .filter(|s| s.first_line().starts_with(start))
        .collect()
}

#[test]
fn invite_retransmissions_at_t1_and_3t1_then_408_at_fr_timer() {
    let mut h = Harness::new(&config(&relay_to(CALLEE), "failure_route[1] { }"), 1);
    let t0 = h.now_ms;
    h.recv(addr(CALLER), &invite("retr"));
    let mut at = Vec::new();
    assert_eq!(only(&h.sent_to(addr(CALLEE)), "INVITE").len(), 1);
    for _ in 0..300 {
        h.advance(10);
        if !only(&h.sent_to(addr(CALLEE)), "INVITE").is_empty() {
            at.push(h.now_ms - t0);
        }
    }
    // §17.1.1.2 Timer A: 500, 1500 (then 3500, past fr_timer's 2000).
    assert_eq!(at, [500, 1500]);
    let up = h.sent_to(addr(CALLER));
    let finals = finals(&up);
    // The 408 at fr_timer, then Timer G's resends of it (no ACK here).
    assert_eq!(finals.first(), Some(&408), "{up:?}");
    assert!(finals.iter().all(|c| *c == 408), "{up:?}");
}

#[test]
fn cancel_relays_the_callees_487_and_the_ack_on_another_worker_stops_timer_g() {
    let mut h = Harness::new(&config(&relay_to(CALLEE), "failure_route[1] { }"), 2);
    h.recv_on(0, addr(CALLER), &invite("c1"));
    let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")[0].clone();
    assert!(
        inv.header("Via").unwrap().contains(&h.addr.to_string()),
        "our Via on top"
    );
    h.recv_on(1, addr(CALLEE), &answer(&inv, 180, "callee"));
    assert_eq!(only(&h.sent_to(addr(CALLER)), "SIP/2.0 180").len(), 1);

    h.advance(200);
    h.recv_on(1, addr(CALLER), &request("CANCEL", "c1", "CANCEL", None));
    let up = h.sent_to(addr(CALLER));
    assert_eq!(up.len(), 1, "only the 200 for the CANCEL: {up:?}");
    assert_eq!(up[0].status(), Some(200));
    let cancel = only(&h.sent_to(addr(CALLEE)), "CANCEL")[0].clone();
    assert_eq!(cancel.header("Via"), inv.header("Via"));

    h.recv_on(0, addr(CALLEE), &answer(&cancel, 200, "callee"));
    h.recv_on(1, addr(CALLEE), &answer(&inv, 487, "callee"));
    assert_eq!(only(&h.sent_to(addr(CALLEE)), "ACK").len(), 1);
    let up = h.sent_to(addr(CALLER));
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].status(), Some(487));
    assert!(up[0].header("To").unwrap().contains("tag=callee"));

    // Without an ACK, Timer G resends it at T1.
    h.advance(500);
    assert_eq!(only(&h.sent_to(addr(CALLER)), "SIP/2.0 487").len(), 1);
    // The ACK, to the other worker: absorbed by the transaction.
    h.recv_on(
        0,
        addr(CALLER),
        &request("ACK", "c1", "ACK", Some("callee")),
    );
    h.advance(5000);
    assert!(h.sent().is_empty(), "nothing after the ACK");
    assert_eq!(h.counter("tm_acks_absorbed"), 1);
    assert_eq!(h.counter("sl_acks_absorbed"), 0, "not the SL filter's");
}

#[test]
fn a_200_crossing_the_cancel_goes_up_alone() {
    let mut h = Harness::new(&config(&relay_to(CALLEE), "failure_route[1] { }"), 1);
    h.recv(addr(CALLER), &invite("race"));
    let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")[0].clone();
    h.recv(addr(CALLEE), &answer(&inv, 180, "callee"));
    h.recv(addr(CALLER), &request("CANCEL", "race", "CANCEL", None));
    let cancel = only(&h.sent_to(addr(CALLEE)), "CANCEL")[0].clone();
    h.recv(addr(CALLEE), &answer(&inv, 200, "callee"));
    h.recv(addr(CALLEE), &answer(&cancel, 481, "callee"));
    h.advance(40_000);
    let up = h.sent_to(addr(CALLER));
    let finals = finals(&up);
    // The CANCEL's 200, then the callee's 200: never a 487.
    assert_eq!(finals, [200, 200], "{up:?}");
}

#[test]
fn a_cancelled_branch_silent_for_64_t1_ends_with_a_local_487() {
    let cfg = config(&relay_to(CALLEE), "failure_route[1] { }")
        .replace("\"fr_inv_timer\", 10000", "\"fr_inv_timer\", 120000");
    let mut h = Harness::new(&cfg, 1);
    h.recv(addr(CALLER), &invite("silent"));
    let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")[0].clone();
    h.recv(addr(CALLEE), &answer(&inv, 180, "callee"));
    h.sent();
    let t0 = h.now_ms;
    h.recv(addr(CALLER), &request("CANCEL", "silent", "CANCEL", None));
    let mut when = None;
    while h.now_ms - t0 < 40_000 && when.is_none() {
        h.advance(10);
        if !only(&h.sent_to(addr(CALLER)), "SIP/2.0 487").is_empty() {
            when = Some(h.now_ms - t0);
        }
    }
    assert_eq!(when, Some(64 * 500), "§9.1: 64*T1 after the CANCEL");
}

#[test]
fn failure_route_forks_only_to_the_appended_branch() {
    let more =
        format!("failure_route[1] {{ append_branch(\"sip:bob@127.0.0.1:{OTHER}\"); t_relay(); }}");
    let mut h = Harness::new(&config(&relay_to(CALLEE), &more), 1);
    h.recv(addr(CALLER), &invite("fr"));
    let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")[0].clone();
    h.recv(addr(CALLEE), &answer(&inv, 486, "busy"));
    assert_eq!(
        only(&h.sent_to(addr(CALLEE)), "INVITE").len(),
        0,
        "the failed destination is not tried again"
    );
    let second = only(&h.sent_to(addr(OTHER)), "INVITE")[0].clone();
    assert!(second.first_line().contains(&format!(":{OTHER} ")));
    h.recv(addr(OTHER), &answer(&second, 200, "other"));
    let up = h.sent_to(addr(CALLER));
    assert!(up.iter().any(|s| s.status() == Some(200)), "{up:?}");
    assert!(!up.iter().any(|s| s.status() == Some(486)), "{up:?}");
}

#[test]
fn a_refused_send_ends_the_branch_with_477_and_failure_route_runs() {
    let more = format!(
        "failure_route[1] {{ if (status == \"477\") {{ rewritehostport(\"127.0.0.1:{OTHER}\"); t_relay(); }} }}"
    );
    let mut h = Harness::new(&config(&relay_to(CALLEE), &more), 1);
    h.unreachable(addr(CALLEE));
    let t0 = h.now_ms;
    h.recv(addr(CALLER), &invite("refused"));
    // At once: no retransmission into the error, no timer.
    assert_eq!(h.now_ms, t0);
    assert_eq!(only(&h.sent_to(addr(OTHER)), "INVITE").len(), 1);
    assert_eq!(h.counter("tm_send_failed"), 1);
    h.advance(3000);
    assert!(
        h.sent_to(addr(CALLEE)).is_empty(),
        "never sent to, never retried"
    );
}

#[test]
fn with_no_branch_sent_the_caller_gets_503_at_once() {
    let mut h = Harness::new(&config(&relay_to(CALLEE), "failure_route[1] { }"), 1);
    h.unreachable(addr(CALLEE));
    h.recv(addr(CALLER), &invite("none"));
    let up = h.sent_to(addr(CALLER));
    let finals = finals(&up);
    assert_eq!(finals, [503], "{up:?}");
}

#[test]
fn a_route_recursing_past_its_bound_answers_500_and_an_ack_nothing() {
    let mut h = Harness::new(&config("route(1);", "route[1] { route(1); }"), 1);
    h.recv(addr(CALLER), &request("OPTIONS", "deep", "OPTIONS", None));
    let up = h.sent_to(addr(CALLER));
    assert_eq!(finals(&up), [500], "{up:?}");
    h.recv(addr(CALLER), &request("ACK", "deep2", "ACK", Some("t")));
    assert!(h.sent_to(addr(CALLER)).is_empty());
}

#[test]
fn t_replicate_sends_a_copy_whose_replies_are_absorbed() {
    let route = format!(
        "t_replicate(\"sip:127.0.0.1:{OTHER}\");\n{}",
        relay_to(CALLEE)
    );
    let mut h = Harness::new(&config(&route, "failure_route[1] { }"), 1);
    h.recv(addr(CALLER), &request("MESSAGE", "rep", "MESSAGE", None));
    let sent = h.sent();
    let copy = sent
        .iter()
        .find(|s| s.to == addr(OTHER))
        .expect("a copy to the replica");
    // The Request-URI is the request's; only the destination differs.
    assert_eq!(copy.first_line(), "MESSAGE sip:bob@example.com SIP/2.0");
    assert!(
        copy.header("Via").unwrap().contains(";branch=z9hG4bKrp"),
        "{}",
        copy.text
    );
    let relayed = sent
        .iter()
        .find(|s| s.to == addr(CALLEE))
        .expect("the relay");
    // The replica's 200 is absorbed; the callee's reaches the caller.
    h.recv(addr(OTHER), &answer(copy, 200, "r"));
    assert!(h.sent_to(addr(CALLER)).is_empty());
    h.recv(addr(CALLEE), &answer(relayed, 202, "c"));
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [202]);
}

#[test]
fn blst_503_skips_a_destination_for_its_retry_after() {
    let cfg = format!(
        "use_dst_blocklist=yes\nblst_503=yes\nblst_503_max_timeout=60\n{}",
        config(&relay_to(CALLEE), "failure_route[1] { }")
    );
    let mut h = Harness::new(&cfg, 1);
    h.recv(addr(CALLER), &request("MESSAGE", "b1", "MESSAGE", None));
    let sent = h.sent_to(addr(CALLEE));
    let busy = answer(&sent[0], 503, "x").replace(
        "Content-Length: 0\r\n",
        "Retry-After: 30\r\nContent-Length: 0\r\n",
    );
    h.recv(addr(CALLEE), &busy);
    h.sent();
    // Within Retry-After: not sent.
    h.advance(1000);
    h.recv(addr(CALLER), &request("MESSAGE", "b2", "MESSAGE", None));
    assert!(h.sent_to(addr(CALLEE)).is_empty());
    // A BYE is not looked up (Kamailio's blst_methods_lookup default).
    h.recv(addr(CALLER), &request("BYE", "b3", "BYE", Some("t")));
    assert_eq!(only(&h.sent_to(addr(CALLEE)), "BYE").len(), 1);
    // After it, sent again.
    h.advance(30_000);
    h.sent();
    h.recv(addr(CALLER), &request("MESSAGE", "b4", "MESSAGE", None));
    assert_eq!(only(&h.sent_to(addr(CALLEE)), "MESSAGE").len(), 1);
}

#[test]
fn textops_header_actions_edit_what_is_forwarded() {
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"textops.so\"\n\
         route {{\n\
           if (!is_method(\"INVITE|MESSAGE\")) {{ sl_send_reply(\"405\", \"No\"); exit; }}\n\
           if (is_present_hf(\"Contact\") && !is_present_hf(\"X-Absent\")) {{ append_hf(\"X-From-User: $fU\"); }}\n\
           remove_hf(\"Contact\");\n\
           forward(\"127.0.0.1\", {CALLEE});\n\
         }}\n"
    );
    let mut h = Harness::new(&cfg, 1);
    h.recv(addr(CALLER), &request("MESSAGE", "tx", "MESSAGE", None));
    let sent = h.sent_to(addr(CALLEE));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let t = &sent[0].text;
    assert!(t.contains("\r\nX-From-User: alice\r\n\r\n"), "{t}");
    assert!(!t.contains("Contact:"), "{t}");
    h.recv(addr(CALLER), &request("OPTIONS", "tx2", "OPTIONS", None));
    assert_eq!(h.sent_to(addr(CALLER))[0].status(), Some(405));
}

#[test]
fn t_is_set_and_t_is_canceled() {
    let route = "if (!t_is_set(\"failure_route\")) { sl_send_reply(\"299\", \"unset\"); }\n\
                 t_on_failure(\"1\");\n\
                 if (t_is_set(\"failure_route\") && !t_is_set(\"branch_route\") && !t_is_canceled()) { sl_send_reply(\"298\", \"set\"); }";
    let mut h = Harness::new(&config(route, "failure_route[1] { }"), 1);
    h.recv(addr(CALLER), &request("MESSAGE", "isset", "MESSAGE", None));
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [299, 298]);
    let e = crate::cfg::load(&config("t_is_set(\"nope_route\");", "")).expect_err("an error");
    assert!(
        e[0].msg
            .contains("'nope_route' is not branch_route, failure_route or onreply_route"),
        "{e:?}"
    );
}

#[test]
fn sanity_check_answers_400_and_is_false() {
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"sanity.so\"\nmodparam(\"sanity\", \"autodrop\", 0)\n\
               route { if (!sanity_check(\"17895\", \"7\")) { exit; } sl_send_reply(\"200\", \"sane\"); }\n";
    let mut h = Harness::new(cfg, 1);
    h.recv(addr(CALLER), &request("OPTIONS", "sane", "OPTIONS", None));
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [200]);
    // CSeq's method is not the request's (RFC 3261 §8.1.1.5).
    h.recv(addr(CALLER), &request("OPTIONS", "insane", "BYE", None));
    let up = h.sent_to(addr(CALLER));
    assert_eq!(finals(&up), [400], "{up:?}");
}

#[test]
fn the_core_reply_route_sees_every_reply_and_may_drop_it() {
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         route {{ rewritehostport(\"127.0.0.1:{CALLEE}\"); t_relay(); }}\n\
         reply_route {{ if (status == \"183\") {{ drop; }} }}\n"
    );
    let mut h = Harness::new(&cfg, 1);
    h.recv(addr(CALLER), &invite("rr"));
    let sent = h.sent_to(addr(CALLEE));
    let inv = only(&sent, "INVITE")[0].clone();
    h.recv(addr(CALLEE), &answer(&inv, 183, "c"));
    h.recv(addr(CALLEE), &answer(&inv, 180, "c"));
    let up: Vec<u16> = h
        .sent_to(addr(CALLER))
        .iter()
        .filter_map(Sent::status)
        .collect();
    // The 100 tm sends itself, then the 180; the 183 was dropped.
    assert!(up.contains(&180) && !up.contains(&183), "{up:?}");
}

#[test]
fn t_branch_idx_numbers_the_branches_in_branch_route() {
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"textops.so\"\n\
         route {{ rewritehostport(\"127.0.0.1:{CALLEE}\"); append_branch(\"sip:x@127.0.0.1:{OTHER}\"); \
         t_on_branch(\"b\"); t_relay(); }}\n\
         branch_route[b] {{ append_hf(\"X-Branch: $T_branch_idx\"); append_hf(\"X-Uri: $ru\"); }}\n"
    );
    let mut h = Harness::new(&cfg, 1);
    h.recv(addr(CALLER), &invite("bidx"));
    let to_callee = h.sent_to(addr(CALLEE));
    let to_other = h.sent_to(addr(OTHER));
    let first = &only(&to_callee, "INVITE")[0].text;
    let second = &only(&to_other, "INVITE")[0].text;
    // Each branch its own changes (two branch_route runs once built into
    // one buffer, the second's overwriting the first's: a worker panic).
    assert!(
        first.contains("X-Branch: 0\r\nX-Uri: sip:bob@127.0.0.1:7002\r\n"),
        "{first}"
    );
    assert!(
        second.contains("X-Branch: 1\r\nX-Uri: sip:x@127.0.0.1:7003\r\n"),
        "{second}"
    );
}

#[test]
fn force_rport_answers_and_routes_to_the_source_port() {
    // The sender's Via names port 9999, it sends from CALLER.
    let req = request("MESSAGE", "frp", "MESSAGE", None).replace(
        &format!("127.0.0.1:{CALLER};branch"),
        "127.0.0.1:9999;branch",
    );
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         route {{ if (method == \"OPTIONS\") {{ force_rport(); sl_send_reply(\"200\", \"ok\"); exit; }}\n\
         force_rport(); rewritehostport(\"127.0.0.1:{CALLEE}\"); t_relay(); }}\n"
    );
    let mut h = Harness::new(&cfg, 1);
    h.recv(addr(CALLER), &req.replace("MESSAGE", "OPTIONS"));
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [200]);
    assert!(h.sent_to(addr(9999)).is_empty());
    h.recv(addr(CALLER), &req);
    let sent = h.sent_to(addr(CALLEE));
    let fwd = only(&sent, "MESSAGE")[0].clone();
    assert!(
        fwd.text.contains(&format!(
            "127.0.0.1:9999;branch=z9hG4bK-frp;rport={CALLER};received=127.0.0.1\r\n"
        )),
        "{}",
        fwd.text
    );
    h.recv(addr(CALLEE), &answer(&fwd, 200, "c"));
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [200]);
}

#[test]
fn t_check_trans_finds_the_invite_a_cancel_is_for() {
    let route = format!(
        "if (method == \"CANCEL\") {{ if (t_check_trans()) {{ t_relay(); }} else {{ sl_send_reply(\"499\", \"no transaction\"); }} exit; }}\n\
         if (!t_precheck_trans()) {{ t_check_trans(); }}\n{}",
        relay_to(CALLEE)
    );
    let mut h = Harness::new(&config(&route, "failure_route[1] { }"), 1);
    h.recv(addr(CALLER), &invite("chk"));
    let sent = h.sent_to(addr(CALLEE));
    let inv = only(&sent, "INVITE")[0].clone();
    // §9.1: a CANCEL goes down once the branch had a provisional.
    h.recv(addr(CALLEE), &answer(&inv, 180, "c"));
    h.sent();
    h.recv(addr(CALLER), &request("CANCEL", "chk", "CANCEL", None));
    let up: Vec<u16> = h
        .sent_to(addr(CALLER))
        .iter()
        .filter_map(Sent::status)
        .collect();
    assert!(up.contains(&200), "{up:?}");
    assert_eq!(only(&h.sent_to(addr(CALLEE)), "CANCEL").len(), 1);
    h.recv(addr(CALLER), &request("CANCEL", "nosuch", "CANCEL", None));
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [499]);
}

#[test]
fn branch_flags_are_kept_with_the_contact_and_given_back_by_lookup() {
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
               route {\n\
                 if (method == \"REGISTER\") { if ($hdr(X-Nat)) { setbflag(6); } save(\"location\"); exit; }\n\
                 if (!lookup(\"location\")) { sl_send_reply(\"404\", \"Not Found\"); exit; }\n\
                 if (isbflagset(6)) { sl_send_reply(\"299\", \"natted\"); } else { sl_send_reply(\"298\", \"not natted\"); }\n\
               }\n";
    let mut h = Harness::new(cfg, 1);
    let register = |user: &str, nat: bool| {
        request("REGISTER", &format!("reg-{user}"), "REGISTER", None)
            .replace(
                "To: <sip:bob@example.com>",
                &format!("To: <sip:{user}@example.com>"),
            )
            .replace(
                "Contact: <sip:alice@127.0.0.1:7001>",
                &format!(
                    "Contact: <sip:{user}@127.0.0.1:7001>{}",
                    if nat { "\r\nX-Nat: 1" } else { "" }
                ),
            )
    };
    h.recv(addr(CALLER), &register("bob", true));
    h.recv(addr(CALLER), &register("carol", false));
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [200, 200]);
    h.recv(addr(OTHER), &request("INVITE", "call-bob", "INVITE", None));
    let call_carol = request("INVITE", "call-carol", "INVITE", None)
        .replace("sip:bob@example.com", "sip:carol@example.com");
    h.recv(addr(OTHER), &call_carol);
    // Replies go to the Via's sent-by, CALLER's.
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [299, 298]);
    let e = crate::cfg::load(&config(
        "t_on_failure(\"1\"); t_relay();",
        "failure_route[1] { setbflag(1); }",
    ))
    .expect_err("an error");
    assert!(
        e[0].msg
            .contains("setbflag in failure_route: a transaction's branch flags are not kept yet"),
        "{e:?}"
    );
}

#[test]
fn avps_and_xavps_go_with_the_transaction_into_branch_reply_and_failure_routes() {
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"textops.so\"\n\
         route {{ $xavp(call=>next) = \"sip:bob@127.0.0.1:{OTHER}\"; $avp(n) = 1; \
         rewritehostport(\"127.0.0.1:{CALLEE}\"); \
         t_on_failure(\"1\"); t_on_reply(\"r\"); t_on_branch(\"b\"); t_relay(); }}\n\
         branch_route[b] {{ append_hf(\"X-N: $avp(n)\"); }}\n\
         onreply_route[r] {{ if ($rs == 180) {{ $avp(n) = $avp(n) + 1; }} }}\n\
         failure_route[1] {{ $ru = $xavp(call[0]=>next); append_hf(\"X-Seen: $avp(n)\"); t_on_branch(\"b\"); t_relay(); }}\n"
    );
    // Two workers: the replies come in on the other one.
    let mut h = Harness::new(&cfg, 2);
    h.recv_on(0, addr(CALLER), &invite("avp"));
    let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")[0].clone();
    assert!(inv.text.contains("X-N: 1\r\n"), "{}", inv.text);
    h.recv_on(1, addr(CALLEE), &answer(&inv, 180, "ring"));
    h.recv_on(1, addr(CALLEE), &answer(&inv, 486, "busy"));
    let second = only(&h.sent_to(addr(OTHER)), "INVITE")[0].clone();
    assert!(second.text.contains("X-Seen: 2\r\n"), "{}", second.text);
    assert!(second.text.contains("X-N: 2\r\n"), "{}", second.text);
    assert_eq!(h.counter("tm_avps_not_kept"), 0);
}

#[test]
fn sht_items_are_shared_by_the_workers() {
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"htable.so\"\n\
         modparam(\"htable\", \"htable\", \"seen=>size=4;autoexpire=300\")\n\
         modparam(\"htable\", \"htable\", \"hits=>size=2;initval=0\")\n\
         route {\n\
           $sht(hits=>$fU) = $sht(hits=>$fU) + 1;\n\
           if ($sht(seen=>$si) == $null) { $sht(seen=>$si) = $ci; sl_send_reply(\"404\", \"first $sht(hits=>$fU)\"); exit; }\n\
           sl_send_reply(\"200\", \"again $sht(seen=>$si) $sht(hits=>$fU)\");\n\
           if ($sht(hits=>$fU) >= 3) { sht_reset(\"seen\"); }\n\
         }\n";
    let mut h = Harness::new(cfg, 2);
    let reason = |h: &mut Harness| {
        let sent = h.sent_to(addr(CALLER));
        sent[0].first_line().to_string()
    };
    h.recv_on(0, addr(CALLER), &request("OPTIONS", "s1", "OPTIONS", None));
    assert_eq!(reason(&mut h), "SIP/2.0 404 first 1");
    // The other worker sees what the first stored.
    h.recv_on(1, addr(CALLER), &request("OPTIONS", "s2", "OPTIONS", None));
    assert_eq!(reason(&mut h), "SIP/2.0 200 again s1 2");
    h.recv_on(1, addr(CALLER), &request("OPTIONS", "s3", "OPTIONS", None));
    assert_eq!(reason(&mut h), "SIP/2.0 200 again s1 3");
    // sht_reset emptied "seen", not "hits".
    h.recv_on(0, addr(CALLER), &request("OPTIONS", "s4", "OPTIONS", None));
    assert_eq!(reason(&mut h), "SIP/2.0 404 first 4");
}

#[test]
fn start_up_event_routes_run_once_in_the_first_worker() {
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"htable.so\"\nloadmodule \"xlog.so\"\n\
         modparam(\"htable\", \"htable\", \"a=>size=4\")\n\
         event_route[htable:mod-init] { $sht(a=>k) = \"preloaded\"; $sht(a=>n) = 1; }\n\
         event_route[core:worker-one-init] { $sht(a=>n) = $sht(a=>n) + 1; xlog(\"L_INFO\", \"first worker up\"); }\n\
         event_route[xhttp:request] { exit; }\n\
         route { sl_send_reply(\"200\", \"$sht(a=>k) $sht(a=>n)\"); }\n";
    let mut h = Harness::new(cfg, 2);
    for w in 0..2 {
        h.recv_on(
            w,
            addr(CALLER),
            &request("OPTIONS", &format!("e{w}"), "OPTIONS", None),
        );
        let sent = h.sent_to(addr(CALLER));
        assert_eq!(sent[0].first_line(), "SIP/2.0 200 preloaded 2");
    }
}

#[test]
fn registered_is_myself_isdsturiset_and_siputils_uri_actions() {
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
               loadmodule \"siputils.so\"\nloadmodule \"kex.so\"\n\
               route {\n\
                 if (method == \"REGISTER\") { save(\"location\"); exit; }\n\
                 if (!is_request() || is_reply()) { drop; }\n\
                 $var(out) = \"\";\n\
                 if (registered(\"location\")) { $var(out) = $var(out) + \"reg \"; }\n\
                 if (is_myself(\"sip:$Ri:$Rp\")) { $var(out) = $var(out) + \"me \"; }\n\
                 if (!is_myself(\"sip:example.org\")) { $var(out) = $var(out) + \"notme \"; }\n\
                 if (!isdsturiset()) { $du = \"sip:192.0.2.1\"; if (isdsturiset()) { $var(out) = $var(out) + \"du \"; } }\n\
                 if (uri_param(\"user\", \"phone\") && uri_param(\"user\") && !uri_param(\"x\")) { $var(out) = $var(out) + \"uparam \"; }\n\
                 add_uri_param(\"x=1\");\n\
                 if (uri_param(\"x\", \"1\")) { $var(out) = $var(out) + \"added\"; }\n\
                 sl_send_reply(\"200\", \"$var(out)\");\n\
               }\n";
    let mut h = Harness::new(cfg, 1);
    h.recv(addr(CALLER), &request("REGISTER", "reg", "REGISTER", None));
    assert_eq!(finals(&h.sent_to(addr(CALLER))), [200]);
    let options = |call: &str, ruri: &str| {
        request("OPTIONS", call, "OPTIONS", None).replacen("sip:bob@example.com", ruri, 1)
    };
    h.recv(
        addr(CALLER),
        &options("o1", "sip:bob@example.com;user=phone"),
    );
    let sent = h.sent_to(addr(CALLER));
    assert_eq!(
        sent[0].first_line(),
        "SIP/2.0 200 reg me notme du uparam added"
    );
    h.recv(addr(CALLER), &options("o2", "sip:nobody@example.com"));
    let sent = h.sent_to(addr(CALLER));
    assert_eq!(sent[0].first_line(), "SIP/2.0 200 me notme du added");
}

#[test]
fn t_check_status_in_failure_route() {
    let more = format!(
        "failure_route[1] {{ if (t_check_status(\"486|408\")) {{ rewritehostport(\"127.0.0.1:{OTHER}\"); t_relay(); }} }}"
    );
    let mut h = Harness::new(&config(&relay_to(CALLEE), &more), 1);
    for (call, code, retried) in [("busy", 486, true), ("gone", 404, false)] {
        h.recv(addr(CALLER), &invite(call));
        let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")[0].clone();
        h.recv(addr(CALLEE), &answer(&inv, code, "no"));
        let again = only(&h.sent_to(addr(OTHER)), "INVITE").len();
        assert_eq!(again == 1, retried, "{code}");
        if !retried {
            assert_eq!(finals(&h.sent_to(addr(CALLER))), [404]);
        }
    }
}

#[test]
fn onsend_route_sees_each_destination_and_may_drop_the_request() {
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"xlog.so\"\n\
         route {{\n\
           if ($hdr(X-Port) == \"{CALLEE}\") {{ forward(127.0.0.1, {CALLEE}); exit; }}\n\
           if ($hdr(X-Port) == \"{OTHER}\") {{ forward(127.0.0.1, {OTHER}); exit; }}\n\
           rewritehostport(\"127.0.0.1:{CALLEE}\"); append_branch(\"sip:x@127.0.0.1:{OTHER}\");\n\
           if (!t_relay()) {{ sl_reply_error(); }}\n\
         }}\n\
         onsend_route {{ xlog(\"L_INFO\", \"to $snd(ip):$snd(port) $snd(af)\"); if ($snd(port) == {OTHER}) {{ drop; }} }}\n"
    );
    let mut h = Harness::new(&cfg, 1);
    h.recv(addr(CALLER), &invite("onsend"));
    assert_eq!(only(&h.sent_to(addr(CALLEE)), "INVITE").len(), 1);
    assert!(h.sent_to(addr(OTHER)).is_empty());
    // Stateless: the same route decides.
    for (port, sent) in [(CALLEE, 1), (OTHER, 0)] {
        let opt = request("OPTIONS", &format!("o{port}"), "OPTIONS", None).replace(
            "Content-Length: 0",
            &format!("X-Port: {port}\r\nContent-Length: 0"),
        );
        h.recv(addr(CALLER), &opt);
        assert_eq!(h.sent_to(addr(port)).len(), sent, "{port}");
    }
    assert_eq!(h.counter("dropped"), 2);
}

#[test]
fn fs_forces_the_sending_socket_and_must_be_a_listen_address() {
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\n\
         route {{\n\
           $fs = \"tcp:127.0.0.1:5060\"; if (strempty($fs)) {{ $var(bad) = 1; }}\n\
           if ($hdr(X-Fs) == \"ours\") {{ $fs = \"udp:\" + $Ri + \":\" + $Rp; }}\n\
           if ($hdr(X-Fs) == \"foreign\") {{ $fs = \"udp:192.0.2.9:5060\"; }}\n\
           rewritehostport(\"127.0.0.1:{CALLEE}\");\n\
           if (!t_relay()) {{ sl_send_reply(\"500\", \"fs $fs bad $var(bad)\"); }}\n\
         }}\n"
    );
    let mut h = Harness::new(&cfg, 1);
    for (which, sent) in [("ours", 1), ("foreign", 0)] {
        let inv = invite(which).replace(
            "Content-Length: 0",
            &format!("X-Fs: {which}\r\nContent-Length: 0"),
        );
        h.recv(addr(CALLER), &inv);
        assert_eq!(
            only(&h.sent_to(addr(CALLEE)), "INVITE").len(),
            sent,
            "{which}"
        );
    }
    let up = h.sent_to(addr(CALLER));
    let refused = up.iter().find(|s| s.status() == Some(500)).expect("a 500");
    assert_eq!(
        refused.first_line(),
        "SIP/2.0 500 fs udp:192.0.2.9:5060 bad 1"
    );
}

#[test]
fn t_branch_timeout_and_t_branch_replied_in_failure_route() {
    let more = "failure_route[1] {\n\
        if (t_branch_timeout() && t_any_timeout()) {\n\
          if (t_branch_replied()) { t_reply(\"480\", \"rang out\"); } else { t_reply(\"504\", \"silent\"); }\n\
        } else if (t_any_replied() && !t_any_timeout()) { t_reply(\"600\", \"refused\"); }\n\
      }";
    let mut h = Harness::new(&config(&relay_to(CALLEE), more), 1);
    // Silent: fr_timer (2 s) ends it unreplied.
    h.recv(addr(CALLER), &invite("silent"));
    h.advance(2500);
    // Rang, then fr_inv_timer (10 s) ends it.
    h.recv(addr(CALLER), &invite("rang"));
    let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")
        .into_iter()
        .find(|s| s.text.contains("Call-ID: rang"))
        .unwrap()
        .clone();
    h.recv(addr(CALLEE), &answer(&inv, 180, "ring"));
    h.advance(10_500);
    // Refused at once.
    h.recv(addr(CALLER), &invite("busy"));
    let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")
        .into_iter()
        .find(|s| s.text.contains("Call-ID: busy"))
        .unwrap()
        .clone();
    h.recv(addr(CALLEE), &answer(&inv, 486, "busy"));
    let mut lines: Vec<String> = h
        .sent_to(addr(CALLER))
        .iter()
        .filter(|s| s.status().is_some_and(|c| c >= 400))
        .map(|s| s.first_line().to_string())
        .collect();
    // Each final once (Timer G resends the first two until an ACK).
    lines.dedup();
    assert_eq!(
        lines,
        [
            "SIP/2.0 504 silent",
            "SIP/2.0 480 rang out",
            "SIP/2.0 600 refused"
        ]
    );
}

#[test]
fn t_set_fr_gives_a_transaction_its_own_timers() {
    // tm's fr_inv_timer is 10 s here; this call's is 30 s (and 1 s
    // before any reply).
    let route =
        format!("t_set_fr(30000, 1000); rewritehostport(\"127.0.0.1:{CALLEE}\"); t_relay();");
    let mut h = Harness::new(&config(&route, ""), 1);
    // The final replies of one call (Timer G resends them: once each).
    let finals_of = |h: &mut Harness, call: &str| {
        let mut codes: Vec<u16> = h
            .sent_to(addr(CALLER))
            .iter()
            .filter(|s| s.text.contains(&format!("Call-ID: {call}\r\n")))
            .filter_map(Sent::status)
            .filter(|c| *c >= 200)
            .collect();
        codes.dedup();
        codes
    };
    h.recv(addr(CALLER), &invite("long"));
    let inv = only(&h.sent_to(addr(CALLEE)), "INVITE")[0].clone();
    h.recv(addr(CALLEE), &answer(&inv, 180, "ring"));
    h.advance(20_000);
    assert!(
        finals_of(&mut h, "long").is_empty(),
        "still ringing after tm's 10 s"
    );
    h.advance(11_000);
    assert_eq!(finals_of(&mut h, "long"), [408]);
    // Unanswered: its own 1 s fr_timer.
    h.recv(addr(CALLER), &invite("quiet"));
    h.advance(1_500);
    assert_eq!(finals_of(&mut h, "quiet"), [408]);
}

#[test]
fn header_actions_by_regular_expression() {
    let cfg = format!(
        "loadmodule \"sl.so\"\nloadmodule \"textops.so\"\n\
         route {{\n\
           if (!is_present_hf_re(\"^x-(foo|bar)$\")) {{ sl_send_reply(\"500\", \"not seen\"); exit; }}\n\
           if (is_present_hf_re(\"^x-none$\")) {{ sl_send_reply(\"500\", \"seen\"); exit; }}\n\
           remove_hf_re(\"^X-\");\n\
           forward(127.0.0.1, {CALLEE});\n\
         }}\n"
    );
    let mut h = Harness::new(&cfg, 1);
    let req = request("OPTIONS", "re", "OPTIONS", None).replace(
        "Content-Length: 0",
        "X-Foo: 1\r\nX-Bar: 2, 3\r\nSubject: kept\r\nContent-Length: 0",
    );
    h.recv(addr(CALLER), &req);
    let out = h.sent_to(addr(CALLEE));
    assert_eq!(out.len(), 1, "{:?}", h.sent_to(addr(CALLER)));
    assert!(
        !out[0].text.contains("X-Foo") && !out[0].text.contains("X-Bar"),
        "{}",
        out[0].text
    );
    assert!(out[0].text.contains("Subject: kept\r\n"), "{}", out[0].text);
}

#[test]
fn append_to_reply_goes_with_sl_and_tm_replies() {
    let cfg = "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"textops.so\"\n\
               route {\n\
                 append_to_reply(\"X-Why: $rm\");\n\
                 if (method == \"OPTIONS\") { sl_send_reply(\"403\", \"no\"); exit; }\n\
                 t_newtran(); t_reply(\"486\", \"busy\");\n\
               }\n";
    let mut h = Harness::new(cfg, 1);
    h.recv(addr(CALLER), &request("OPTIONS", "a2r-1", "OPTIONS", None));
    h.recv(addr(CALLER), &invite("a2r-2"));
    let up = h.sent_to(addr(CALLER));
    let reply = |code| {
        up.iter()
            .find(|s| s.status() == Some(code))
            .unwrap_or_else(|| panic!("{code}: {up:?}"))
    };
    assert_eq!(reply(403).header("X-Why"), Some("OPTIONS"));
    assert_eq!(reply(486).header("X-Why"), Some("INVITE"));
}
