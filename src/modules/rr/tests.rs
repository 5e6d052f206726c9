use std::net::SocketAddr;

use super::*;
use crate::cfg::Config;
use crate::cfg::program::Param;
use crate::cfg::registry::Func;
use crate::cfg::settings::Proto;
use crate::script::ctx::MAX_TEXT_EDITS;
use crate::script::testing::{config, request};
use crate::script::{Destination, Host, ScriptState, Vm};
use crate::server::proxy::build_request;

/// We listen on 192.0.2.1:5060 and serve the domain proxy.example.
const SCRIPT: &str = "listen=udp:192.0.2.1:5060\n\
alias=\"proxy.example\"\n\
loadmodule \"rr.so\"\n\
route {\n\
    record_route();\n\
    if (loose_route()) { forward(); break; }\n\
    drop;\n\
}\n";

/// The sender: the same address as its Via, so no `received` is added.
const SRC: &str = "192.0.2.10:5060";
const LOCAL: &str = "192.0.2.1:5060";

fn myself_config() -> Config {
    config(SCRIPT)
}

/// An in-dialog BYE (To has a tag) with `routes` as its Route lines.
fn bye(ruri: &str, routes: &[&str]) -> Vec<u8> {
    let mut m = format!(
        "BYE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbye1\r\n\
         Max-Forwards: 70\r\n"
    );
    for r in routes {
        m.push_str("Route: ");
        m.push_str(r);
        m.push_str("\r\n");
    }
    m.push_str(
        "To: <sip:bob@biloxi.example>;tag=8321234356\r\n\
         From: Alice <sip:alice@atlanta.example>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example\r\n\
         CSeq: 231 BYE\r\n\
         Content-Length: 0\r\n\r\n",
    );
    m.into_bytes()
}

/// What loose_route() left: its verdict, the message as it would be sent,
/// and the context's state.
struct Routed {
    verdict: i32,
    sent: Vec<u8>,
    dst_uri: String,
    uri_rewritten: bool,
    edits: usize,
    last_error: Option<(u16, &'static str)>,
    no_connect: bool,
    record_route: bool,
}

impl Routed {
    fn message(&self) -> Message<'_> {
        Message::parse(&self.sent).expect("the request sent parses")
    }

    fn ruri(&self) -> String {
        text(self.message().request_uri_raw())
    }

    fn routes(&self) -> Vec<String> {
        let m = self.message();
        m.routes().map(|r| text(r.unwrap().addr_spec)).collect()
    }

    /// The Route lines as written.
    fn route_lines(&self) -> Vec<String> {
        let sent = text(&self.sent);
        sent.lines()
            .filter(|l| l.starts_with("Route:"))
            .map(str::to_string)
            .collect()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs loose_route() on `raw` (with `prepare` run on the context first)
/// and builds the request forwarded from LOCAL.
fn loose_route_with(raw: &[u8], prepare: impl FnOnce(&mut MsgCtx<'_, '_>)) -> Routed {
    let c = myself_config();
    routed_by(raw, prepare, |ctx| loose_route(ctx, &c.program.myself))
}

/// Runs `action` on `raw` (after `prepare`) and builds the request
/// forwarded from LOCAL.
fn routed_by(
    raw: &[u8],
    prepare: impl FnOnce(&mut MsgCtx<'_, '_>),
    action: impl FnOnce(&mut MsgCtx<'_, '_>) -> i32,
) -> Routed {
    let msg = Message::parse(raw).unwrap();
    let mut st = ScriptState::new();
    let local: SocketAddr = LOCAL.parse().unwrap();
    let mut ctx = MsgCtx::new(&msg, SRC.parse().unwrap(), local, Proto::Udp, &mut st);
    prepare(&mut ctx);
    let verdict = action(&mut ctx);
    let mut sent = Vec::new();
    build_request(&ctx, local, b"UDP", true, &mut sent).unwrap();
    Routed {
        verdict,
        sent,
        dst_uri: text(&ctx.st.dst_uri),
        uri_rewritten: ctx.uri_rewritten(),
        edits: ctx.st.edits.len(),
        last_error: ctx.st.last_error,
        no_connect: ctx.st.forward_no_connect,
        record_route: ctx.st.record_route,
    }
}

fn routed(raw: &[u8]) -> Routed {
    loose_route_with(raw, |_| {})
}

/// Runs record_route() (when `mark`) on `raw` and builds the request
/// forwarded from `local`.
fn record_routed(raw: &[u8], local: &str, mark: bool) -> String {
    let msg = Message::parse(raw).unwrap();
    let mut st = ScriptState::new();
    let local: SocketAddr = local.parse().unwrap();
    let mut ctx = MsgCtx::new(&msg, SRC.parse().unwrap(), local, Proto::Udp, &mut st);
    if mark {
        assert_eq!(record_route(&mut ctx), TRUE);
    }
    let mut out = Vec::new();
    build_request(&ctx, local, b"UDP", true, &mut out).unwrap();
    text(&out)
}

// ---- record_route() ----

#[test]
fn record_route_goes_after_the_vias_without_one() {
    let sent = record_routed(&request("INVITE", "sip:bob@biloxi.example"), LOCAL, true);
    let lines: Vec<&str> = sent.lines().collect();
    let rr = lines
        .iter()
        .position(|l| l.starts_with("Record-Route:"))
        .expect("a Record-Route");
    assert_eq!(lines[rr], "Record-Route: <sip:192.0.2.1:5060;lr>");
    assert!(lines[rr - 1].starts_with("Via: SIP/2.0/UDP 192.0.2.10:5060"));
    assert!(lines[rr + 1].starts_with("Max-Forwards:"));
    let m = Message::parse(sent.as_bytes()).unwrap();
    let rr: Vec<_> = m
        .record_routes()
        .map(|r| text(r.unwrap().addr_spec))
        .collect();
    assert_eq!(rr, ["sip:192.0.2.1:5060;lr"]);
}

#[test]
fn record_route_goes_on_top_of_existing_ones_with_ipv6_in_brackets() {
    let mut raw = request("INVITE", "sip:bob@biloxi.example");
    let at = text(&raw).find("To:").unwrap();
    raw.splice(
        at..at,
        b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\nRecord-Route: <sip:p3.example;lr>\r\n"
            .iter()
            .copied(),
    );
    let sent = record_routed(&raw, "[2001:db8::1]:5062", true);
    assert!(
        sent.contains(
            "Max-Forwards: 69\r\nRecord-Route: <sip:[2001:db8::1]:5062;lr>\r\nRecord-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
        ),
        "{sent}"
    );
    let m = Message::parse(sent.as_bytes()).unwrap();
    let rr: Vec<_> = m
        .record_routes()
        .map(|r| text(r.unwrap().addr_spec))
        .collect();
    assert_eq!(
        rr,
        [
            "sip:[2001:db8::1]:5062;lr",
            "sip:p1.example;lr",
            "sip:p2.example;lr",
            "sip:p3.example;lr"
        ]
    );
}

#[test]
fn without_record_route_nothing_is_added_and_the_mark_is_per_message() {
    let raw = request("INVITE", "sip:bob@biloxi.example");
    assert!(!record_routed(&raw, LOCAL, false).contains("Record-Route"));
    let msg = Message::parse(&raw).unwrap();
    let mut st = ScriptState::new();
    let (src, local) = (SRC.parse().unwrap(), LOCAL.parse().unwrap());
    record_route(&mut MsgCtx::new(&msg, src, local, Proto::Udp, &mut st));
    assert!(st.record_route);
    let ctx = MsgCtx::new(&msg, src, local, Proto::Udp, &mut st);
    assert!(!ctx.st.record_route);
}

#[test]
fn record_route_uri_names_the_transport_except_udp() {
    let v4: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
    assert_eq!(
        record_route_uri(v4, b"udp", false).unwrap().as_str(),
        "sip:192.0.2.1:5060;lr"
    );
    assert_eq!(
        record_route_uri(v4, b"TCP", false).unwrap().as_str(),
        "sip:192.0.2.1:5060;transport=tcp;lr"
    );
    assert_eq!(
        record_route_uri(v6, b"SCTP", false).unwrap().as_str(),
        "sip:[2001:db8::1]:5060;transport=sctp;lr"
    );
    assert!(record_route_uri(v4, b"t;x", false).is_none());
    assert!(record_route_uri(v6, &[b'x'; 64], false).is_none());
}

/// In over UDP, out over TCP (or by another interface): two entries, the
/// one facing the next hop on top, both marked `r2=on`.
#[test]
fn a_change_of_transport_records_two_routes() {
    let msg_text = request("INVITE", "sip:bob@biloxi.example");
    let msg = Message::parse(&msg_text).unwrap();
    let mut st = ScriptState::new();
    let local: SocketAddr = LOCAL.parse().unwrap();
    let mut ctx = MsgCtx::new(&msg, SRC.parse().unwrap(), local, Proto::Udp, &mut st);
    record_route(&mut ctx);
    let mut out = Vec::new();
    let tcp: SocketAddr = "192.0.2.1:5070".parse().unwrap();
    build_request(&ctx, tcp, b"TCP", true, &mut out).unwrap();
    let sent = text(&out);
    let rr: Vec<&str> = sent
        .lines()
        .filter(|l| l.starts_with("Record-Route:"))
        .collect();
    assert_eq!(
        rr,
        [
            "Record-Route: <sip:192.0.2.1:5070;transport=tcp;lr;r2=on>",
            "Record-Route: <sip:192.0.2.1:5060;lr;r2=on>"
        ]
    );
}

// ---- loose_route() ----

/// Both entries of our double Record-Route go; the next hop is the one
/// after them.
#[test]
fn loose_route_removes_both_halves_of_a_double_record_route() {
    let r = routed(&bye(
        "sip:bob@192.0.2.20",
        &[
            "<sip:192.0.2.1:5060;transport=tcp;lr;r2=on>",
            "<sip:192.0.2.1:5060;lr;r2=on>",
            "<sip:192.0.2.99;lr>",
        ],
    ));
    assert_eq!(r.verdict, TRUE);
    assert_eq!(r.dst_uri, "sip:192.0.2.99;lr");
    let sent = text(&r.sent);
    let routes: Vec<&str> = sent.lines().filter(|l| l.starts_with("Route:")).collect();
    assert_eq!(routes, ["Route: <sip:192.0.2.99;lr>"]);
}

#[test]
fn no_route_is_false_and_changes_nothing() {
    let r = routed(&bye("sip:bob@192.0.2.20", &[]));
    assert_eq!(r.verdict, FALSE);
    assert_eq!((r.edits, r.uri_rewritten, r.last_error), (0, false, None));
    assert_eq!(r.dst_uri, "");
    assert_eq!(r.ruri(), "sip:bob@192.0.2.20");
}

#[test]
fn our_route_alone_is_removed() {
    let r = routed(&bye("sip:bob@192.0.2.20", &["<sip:192.0.2.1;lr>"]));
    assert_eq!(r.verdict, TRUE);
    assert!(r.routes().is_empty());
    assert_eq!(r.ruri(), "sip:bob@192.0.2.20");
    assert_eq!(r.dst_uri, "");
    assert!(!r.uri_rewritten);
}

#[test]
fn our_route_then_a_loose_router_sets_the_destination() {
    let r = routed(&bye(
        "sip:bob@192.0.2.20",
        &["<sip:proxy.example;lr>, <sip:p2.example;lr;ftag=x>"],
    ));
    assert_eq!(r.verdict, TRUE);
    assert_eq!(r.dst_uri, "sip:p2.example;lr;ftag=x");
    assert_eq!(r.ruri(), "sip:bob@192.0.2.20");
    assert!(!r.uri_rewritten);
    assert_eq!(r.route_lines(), ["Route: <sip:p2.example;lr;ftag=x>"]);
}

/// Another node's lookup() for a phone connected here: our Route with
/// the connection in `received` (Kamailio's path form), then nothing.
const FLOW_ROUTE: &str = "<sip:192.0.2.1;lr;received=sip:198.51.100.7:40123%3Btransport%3Dtcp>";

#[test]
fn a_route_naming_our_connection_sends_through_it_only() {
    let invite = String::from_utf8(bye("sip:bob@10.0.0.9:5060;transport=tcp", &[FLOW_ROUTE]))
        .unwrap()
        .replace("BYE", "INVITE")
        .replace(";tag=8321234356", "")
        .into_bytes();
    let r = routed(&invite);
    assert_eq!(r.verdict, TRUE);
    assert!(r.routes().is_empty());
    assert_eq!(r.dst_uri, "sip:198.51.100.7:40123;transport=tcp");
    assert_eq!(r.ruri(), "sip:bob@10.0.0.9:5060;transport=tcp");
    // Over that connection or not at all, and the dialog stays with us.
    assert!(r.no_connect && r.record_route);
    // In a dialog: the same next hop, no Record-Route of its own.
    let r = routed(&bye("sip:bob@10.0.0.9", &[FLOW_ROUTE]));
    assert_eq!(r.dst_uri, "sip:198.51.100.7:40123;transport=tcp");
    assert!(r.no_connect && !r.record_route);
    // A received that is not a URI is a bad Route, nothing changed.
    let r = routed(&bye(
        "sip:bob@10.0.0.9",
        &["<sip:192.0.2.1;lr;received=%3Cx>"],
    ));
    assert_eq!((r.verdict, r.last_error), (FALSE, Some((400, "Bad Route"))));
    assert_eq!(r.dst_uri, "");
    // Another proxy's Route with a received is not ours to follow.
    let r = routed(&bye(
        "sip:bob@10.0.0.9",
        &["<sip:p2.example;lr;received=sip:198.51.100.7:40123>"],
    ));
    assert_eq!(
        r.dst_uri,
        "sip:p2.example;lr;received=sip:198.51.100.7:40123"
    );
    assert!(!r.no_connect);
}

#[test]
fn a_foreign_loose_route_is_kept() {
    // Preloaded towards another proxy: nothing of ours to remove.
    let r = routed(&bye("sip:bob@192.0.2.20", &["<sip:p2.example;lr>"]));
    assert_eq!(r.verdict, TRUE);
    assert_eq!(r.dst_uri, "sip:p2.example;lr");
    assert_eq!(r.routes(), ["sip:p2.example;lr"]);
}

#[test]
fn a_strict_next_hop_takes_the_request_uri() {
    let r = routed(&bye(
        "sip:bob@192.0.2.20",
        &[
            "<sip:192.0.2.1:5060;lr>",
            "<sip:p2.example>",
            "<sip:p3.example;lr>",
        ],
    ));
    assert_eq!(r.verdict, TRUE);
    assert_eq!(r.ruri(), "sip:p2.example");
    assert_eq!(r.dst_uri, "");
    assert_eq!(
        r.routes(),
        ["sip:p3.example;lr", "sip:bob@192.0.2.20"],
        "the old Request-URI is the last Route value"
    );
    assert_eq!(
        r.route_lines(),
        ["Route: <sip:p3.example;lr>", "Route: <sip:bob@192.0.2.20>"]
    );
}

#[test]
fn a_strict_next_hop_appends_the_rewritten_request_uri() {
    let raw = bye("sip:bob@192.0.2.20", &["<sip:p2.example>"]);
    let r = loose_route_with(&raw, |ctx| {
        ctx.rewrite_uri(Rewrite::Uri(b"sip:carol@192.0.2.30"))
            .unwrap();
    });
    assert_eq!(r.ruri(), "sip:p2.example");
    assert_eq!(r.routes(), ["sip:carol@192.0.2.30"]);
}

#[test]
fn a_strict_previous_hop_left_our_uri_in_the_request_uri() {
    // The remote target is the last Route value; the next hop loose.
    let r = routed(&bye(
        "sip:192.0.2.1:5060;lr",
        &["<sip:p2.example;lr>, <sip:bob@192.0.2.20>"],
    ));
    assert_eq!(r.verdict, TRUE);
    assert_eq!(r.ruri(), "sip:bob@192.0.2.20");
    assert_eq!(r.dst_uri, "sip:p2.example;lr");
    assert_eq!(r.route_lines(), ["Route: <sip:p2.example;lr>"]);

    // Nothing but the remote target left.
    let r = routed(&bye("sip:proxy.example;lr", &["<sip:bob@192.0.2.20>"]));
    assert_eq!(r.verdict, TRUE);
    assert_eq!(r.ruri(), "sip:bob@192.0.2.20");
    assert!(r.routes().is_empty());
    assert_eq!(r.dst_uri, "");

    // A strict next hop: the remote target stays the last Route value.
    let r = routed(&bye(
        "sip:192.0.2.1;lr",
        &["<sip:p2.example>", "Bob <sip:bob@192.0.2.20>;x=1"],
    ));
    assert_eq!(r.ruri(), "sip:p2.example");
    assert_eq!(r.route_lines(), ["Route: Bob <sip:bob@192.0.2.20>;x=1"]);
    assert_eq!(r.dst_uri, "");
}

#[test]
fn a_preloaded_route_leaves_a_request_uri_naming_us() {
    // No To tag: outside a dialog, the Request-URI is the target even
    // when it is ours (RFC 3261 §8.1.2), so only our Route goes.
    let mut raw = request("INVITE", "sip:carol@proxy.example");
    let at = text(&raw).find("To:").unwrap();
    raw.splice(at..at, b"Route: <sip:proxy.example;lr>\r\n".iter().copied());
    let r = routed(&raw);
    assert_eq!(r.verdict, TRUE);
    assert_eq!(r.ruri(), "sip:carol@proxy.example");
    assert!(r.routes().is_empty());
    assert!(!r.uri_rewritten);
}

#[test]
fn removals_keep_the_other_entries_of_a_line() {
    // A run at the start of a line goes with the comma after it.
    let r = routed(&bye(
        "sip:bob@192.0.2.20",
        &["<sip:192.0.2.1;lr>, <sip:p2.example>, <sip:p3.example;lr>"],
    ));
    assert_eq!(
        r.route_lines(),
        ["Route: <sip:p3.example;lr>", "Route: <sip:bob@192.0.2.20>"]
    );
    // A line whose entries all go goes whole.
    let r = routed(&bye(
        "sip:bob@192.0.2.20",
        &["<sip:192.0.2.1;lr>,<sip:p2.example>", "<sip:p3.example;lr>"],
    ));
    assert_eq!(
        r.route_lines(),
        ["Route: <sip:p3.example;lr>", "Route: <sip:bob@192.0.2.20>"]
    );
    // An entry at the end of a line goes with the comma before it.
    let r = routed(&bye(
        "sip:192.0.2.1;lr",
        &[
            "<sip:192.0.2.1;lr>, <sip:p2.example;lr>",
            "<sip:p3.example;lr> , <sip:bob@h>",
        ],
    ));
    assert_eq!(
        r.route_lines(),
        ["Route: <sip:p2.example;lr>", "Route: <sip:p3.example;lr>"]
    );
    assert_eq!(r.ruri(), "sip:bob@h");
}

#[test]
fn every_layout_of_a_route_set_gives_the_same_result() {
    // The four entries split over lines in each of the 8 ways.
    let entries = [
        "<sip:192.0.2.1;lr>",
        "<sip:p2.example>",
        "<sip:p3.example;lr>",
        "<sip:p4.example;lr>",
    ];
    for ruri in ["sip:bob@192.0.2.20", "sip:192.0.2.1;lr"] {
        let mut results = Vec::new();
        for split in 0..8u32 {
            let mut lines = vec![entries[0].to_string()];
            for (i, e) in entries.iter().enumerate().skip(1) {
                if split & (1 << (i - 1)) != 0 {
                    lines.push(e.to_string());
                } else if let Some(l) = lines.last_mut() {
                    l.push_str(", ");
                    l.push_str(e);
                }
            }
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let r = routed(&bye(ruri, &lines));
            assert_eq!(r.verdict, TRUE);
            results.push((r.ruri(), r.routes(), r.dst_uri));
        }
        assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:#?}");
        let (ruri_out, routes, dst) = &results[0];
        if ruri == "sip:bob@192.0.2.20" {
            assert_eq!(ruri_out, "sip:p2.example");
            assert_eq!(
                routes,
                &[
                    "sip:p3.example;lr",
                    "sip:p4.example;lr",
                    "sip:bob@192.0.2.20"
                ]
            );
        } else {
            // Strict previous hop: p4 is the target; then ours, then p2 strict.
            assert_eq!(ruri_out, "sip:p2.example");
            assert_eq!(routes, &["sip:p3.example;lr", "sip:p4.example;lr"]);
        }
        assert_eq!(dst, "");
    }
}

#[test]
fn a_malformed_route_is_a_bad_request_and_changes_nothing() {
    for bad in [
        &["<sip:192.0.2.1;lr>, <sip:p2 .example;lr>"][..],
        &["<sip:192.0.2.1;lr>", "garbage"],
        &["<sip:p2.example;lr", "<sip:p3.example;lr>"],
    ] {
        let r = routed(&bye("sip:192.0.2.1;lr", bad));
        assert_eq!(r.verdict, FALSE, "{bad:?}");
        assert_eq!(r.last_error, Some((400, "Bad Route")));
        assert_eq!((r.edits, r.uri_rewritten), (0, false));
        assert_eq!(r.dst_uri, "");
        assert_eq!(r.route_lines().len(), bad.len());
    }
}

#[test]
fn a_full_edit_budget_refuses_cleanly() {
    let raw = bye(
        "sip:bob@192.0.2.20",
        &["<sip:192.0.2.1;lr>", "<sip:p2.example>"],
    );
    let end = text(&raw).find("\r\n\r\n").unwrap();
    let r = loose_route_with(&raw, |ctx| {
        // Insertions the script made, leaving room for one edit only.
        for _ in 1..MAX_TEXT_EDITS {
            assert!(ctx.add_edit(TextEdit {
                start: end,
                end,
                text: b"\r\nX-A: 1".to_vec(),
            }));
        }
    });
    assert_eq!(r.verdict, FALSE);
    assert_eq!(r.last_error, Some((500, "Cannot Edit Route")));
    assert_eq!(r.edits, MAX_TEXT_EDITS - 1);
    assert!(!r.uri_rewritten);
    assert_eq!(r.routes(), ["sip:192.0.2.1;lr", "sip:p2.example"]);
}

#[test]
fn an_edit_overlapping_the_scripts_is_refused() {
    let raw = bye("sip:bob@192.0.2.20", &["<sip:192.0.2.1;lr>"]);
    let at = text(&raw).find("<sip:192.0.2.1;lr>").unwrap();
    let r = loose_route_with(&raw, |ctx| {
        assert!(ctx.add_edit(TextEdit {
            start: at + 1,
            end: at + 4,
            text: b"sips".to_vec(),
        }));
    });
    assert_eq!(r.verdict, FALSE);
    assert_eq!(r.edits, 1);
}

#[test]
fn a_strict_next_hop_with_an_unusable_request_uri_is_refused() {
    let raw = bye("sip:bob@192.0.2.20", &["<sip:p2.example>"]);
    let r = loose_route_with(&raw, |ctx| {
        ctx.rewrite_uri(Rewrite::Uri(b"sip:a>b@h")).unwrap();
    });
    assert_eq!(r.verdict, FALSE);
    assert_eq!(r.last_error, Some((400, "Bad Request-URI")));
    assert_eq!(r.edits, 0);
}

// ---- through the script ----

/// A host running rr's actions and recording what forward() saw.
struct RrHost<'c> {
    config: &'c Config,
    forwarded: Vec<(String, String)>,
}

impl Host for RrHost<'_> {
    fn forward(&mut self, ctx: &mut MsgCtx<'_, '_>, _: &Destination) -> i32 {
        self.forwarded
            .push((text(ctx.uri()), text(&ctx.st.dst_uri)));
        1
    }

    fn module(&mut self, ctx: &mut MsgCtx<'_, '_>, func: Func, _: &[Param]) -> i32 {
        match func.name() {
            "record_route" => record_route(ctx),
            "loose_route" => loose_route(ctx, &self.config.program.myself),
            _ => -1,
        }
    }
}

#[test]
fn the_script_sees_the_verdict() {
    let c = myself_config();
    let vm = Vm::new(&c);
    let main = c.program.main_route().unwrap();
    let run = |raw: &[u8]| {
        let msg = Message::parse(raw).unwrap();
        let mut st = ScriptState::new();
        let mut ctx = MsgCtx::new(
            &msg,
            SRC.parse().unwrap(),
            LOCAL.parse().unwrap(),
            Proto::Udp,
            &mut st,
        );
        let mut host = RrHost {
            config: &c,
            forwarded: Vec::new(),
        };
        let out = vm.run(main, &mut ctx, &mut host);
        assert!(ctx.st.record_route);
        (out.dropped, host.forwarded)
    };
    let (dropped, forwarded) = run(&bye(
        "sip:bob@192.0.2.20",
        &["<sip:192.0.2.1;lr>, <sip:p2.example;lr>"],
    ));
    assert!(!dropped);
    assert_eq!(
        forwarded,
        [(
            "sip:bob@192.0.2.20".to_string(),
            "sip:p2.example;lr".to_string()
        )]
    );
    let (dropped, forwarded) = run(&bye("sip:bob@192.0.2.20", &[]));
    assert!(dropped);
    assert!(forwarded.is_empty());
}

// ---- rewriteFromRoute() (SER 0.8) ----

/// Runs rewriteFromRoute() on `raw` and builds the request forwarded.
fn rewritten_from_route(raw: &[u8]) -> Routed {
    routed_by(raw, |_| {}, rewrite_from_route)
}

#[test]
fn rewrite_from_route_takes_the_first_preloaded_route_as_the_uri() {
    // A preloaded strict route set on two lines, two values on the first.
    let r = rewritten_from_route(&bye(
        "sip:bob@biloxi.example",
        &["<sip:p1.example>, <sip:p2.example>", "<sip:p3.example>"],
    ));
    assert_eq!(r.verdict, TRUE);
    assert_eq!(r.ruri(), "sip:p1.example");
    assert_eq!(r.routes(), ["sip:p2.example", "sip:p3.example"]);
    assert!(r.dst_uri.is_empty());
}

#[test]
fn rewrite_from_route_without_a_route_is_false_and_changes_nothing() {
    let r = rewritten_from_route(&request("INVITE", "sip:bob@biloxi.example"));
    assert_eq!(r.verdict, FALSE);
    assert_eq!(r.ruri(), "sip:bob@biloxi.example");
    assert!(!r.uri_rewritten);
    assert_eq!(r.edits, 0);
}

#[test]
fn rewrite_from_route_refuses_a_route_that_does_not_parse() {
    let r = rewritten_from_route(&bye("sip:bob@biloxi.example", &["<sip:p1.example"]));
    assert_eq!(r.verdict, FALSE);
    assert!(r.last_error.is_some());
    assert_eq!(r.ruri(), "sip:bob@biloxi.example");
}
