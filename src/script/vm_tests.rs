//! The VM's semantics: SER's return values, route calls, bounds, flags,
//! textops edits.

use super::testing::{Event, config, request, run, run_route, run_with};
use super::vm::{MAX_ROUTE_DEPTH, RunError};

fn replies(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Module { name, args, .. } if *name == "sl_send_reply" => Some(args[1].clone()),
            _ => None,
        })
        .collect()
}

/// Runs the main route of `c` on an OPTIONS with the worker's state `st`
/// (kept by the caller from one message to the next); the replies sent.
fn replies_keeping(c: &crate::cfg::Config, st: &mut crate::script::ScriptState) -> Vec<String> {
    let raw = request("OPTIONS", "sip:a@b");
    let msg = crate::sip::Message::parse(&raw).unwrap();
    let mut ctx = crate::script::MsgCtx::new(
        &msg,
        "192.0.2.1:5060".parse().unwrap(),
        "192.0.2.2:5060".parse().unwrap(),
        crate::cfg::settings::Proto::Udp,
        st,
    );
    let mut host = crate::script::testing::Recorder::for_program(&c.program);
    crate::script::Vm::new(c).run(c.program.main_route().unwrap(), &mut ctx, &mut host);
    replies(&host.events)
}

#[test]
fn route_calls_return_values_and_break() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            if (route(positive)) { sl_send_reply("200", "positive"); }
            if (!route(negative)) { sl_send_reply("200", "negative"); }
            route(breaks);
            sl_send_reply("200", "after break");
            if (route(falls_off)) { sl_send_reply("200", "fell off true"); }
            route(zero);
            sl_send_reply("200", "never");
        }
        route[positive] { return(2); }
        route[negative] { return(-1); }
        route[breaks] { break; sl_send_reply("200", "never"); }
        route[falls_off] { setflag(1); }
        route[zero] { return(0); }
    "#,
    );
    let r = run(&c, "INVITE", "sip:a@b");
    assert_eq!(
        replies(&r.events),
        ["positive", "negative", "after break", "fell off true"]
    );
    assert_eq!(r.outcome.ret, 0);
    assert!(r.outcome.error.is_none());
}

#[test]
fn an_action_returning_zero_ends_the_script_from_a_sub_route() {
    let c = config(
        r#"
        loadmodule "sl.so"
        loadmodule "tm.so"
        route { route(1); sl_send_reply("500", "not reached"); }
        route[1] { t_newtran(); sl_send_reply("500", "not reached"); }
    "#,
    );
    let r = run_with(
        &c,
        &request("MESSAGE", "sip:a@b"),
        "192.0.2.1:5060",
        &[("t_newtran", 0)],
    );
    assert_eq!(r.events.len(), 1);
}

#[test]
fn exit_and_drop() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            if (method == "BYE") { drop; }
            if (method == "ACK") { exit; }
            sl_send_reply("200", "x");
        }
    "#,
    );
    let r = run(&c, "BYE", "sip:a@b");
    assert!(r.outcome.dropped && r.events.is_empty());
    let r = run(&c, "ACK", "sip:a@b");
    assert!(!r.outcome.dropped && r.events.is_empty());
    assert_eq!(run(&c, "INVITE", "sip:a@b").events.len(), 1);
}

#[test]
fn recursion_is_bounded() {
    let c = config("route { route(1); }\nroute[1] {\n  route(1);\n}\n");
    let r = run(&c, "INVITE", "sip:a@b");
    assert_eq!(r.outcome.error, Some(RunError::TooDeep { line: 3 }));
    assert_eq!(r.outcome.ret, 0);
    let _ = MAX_ROUTE_DEPTH;
}

#[test]
fn instructions_are_bounded() {
    // 2^20 calls: bounded by the step limit long before.
    let mut src = String::from("route { route(1); }\n");
    for i in 1..=20 {
        src.push_str(&format!(
            "route[{i}] {{ route({n}); route({n}); }}\n",
            n = i + 1
        ));
    }
    src.push_str("route[21] { setflag(1); }\n");
    let c = config(&src);
    let r = run(&c, "INVITE", "sip:a@b");
    assert!(matches!(r.outcome.error, Some(RunError::TooLong { .. })));
}

#[test]
fn short_circuit_and_precedence() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            # && binds tighter than ||; ! applies to one operand.
            if (method == "INVITE" || method == "BYE" && uri =~ "^sip:x") { sl_send_reply("200", "a"); }
            if (!method == "INVITE" && !(uri =~ "^sip:x" or uri =~ "^sip:y")) { sl_send_reply("200", "b"); }
            if (isflagset(3) || route(sets_flag) && isflagset(3)) { sl_send_reply("200", "c"); }
        }
        route[sets_flag] { setflag(3); return(1); }
    "#,
    );
    assert_eq!(replies(&run(&c, "INVITE", "sip:a@b").events), ["a", "c"]);
    assert_eq!(replies(&run(&c, "BYE", "sip:a@b").events), ["b", "c"]);
    assert_eq!(replies(&run(&c, "BYE", "sip:x@b").events), ["a", "c"]);
}

#[test]
fn flags_len_gt_and_failing_rewrites() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            setflag(5);
            if (isflagset(5)) { sl_send_reply("200", "flag"); }
            resetflag(5);
            if (isflagset(5)) { sl_send_reply("200", "still"); }
            if (len_gt(100)) { sl_send_reply("200", "long"); }
            if (!len_gt(100000)) { sl_send_reply("200", "not huge"); }
            # strip beyond the user part fails (false) and the script goes on
            if (!strip(50)) { sl_send_reply("200", "strip failed"); }
            if (msg:len > 100 and src_port >= 1024) { sl_send_reply("200", "numbers"); }
        }
    "#,
    );
    assert_eq!(
        replies(&run(&c, "INVITE", "sip:abc@b").events),
        ["flag", "long", "not huge", "strip failed", "numbers"]
    );
}

#[test]
fn textops_record_edits_of_the_message() {
    let c = config(
        r#"
        loadmodule "sl.so"
        loadmodule "textops.so"
        route {
            if (search("^Max-Forwards: 70")) { sl_send_reply("200", "found"); }
            if (!search("^X-Nope:")) { sl_send_reply("200", "absent"); }
            search_append("^Call-ID: [^\r]*", ";x");
            replace("Alice", "Carol");
            subst("/^(CSeq): ([0-9]+)/\1: 1\2/");
        }
    "#,
    );
    let msg = request("INVITE", "sip:a@b");
    let r = run_with(&c, &msg, "192.0.2.1:5060", &[]);
    assert_eq!(replies(&r.events), ["found", "absent"]);
    // Apply the edits as the sender will.
    let mut out = Vec::new();
    let mut at = 0;
    for e in &r.edits {
        out.extend_from_slice(&msg[at..e.start]);
        out.extend_from_slice(&e.text);
        at = e.end;
    }
    out.extend_from_slice(&msg[at..]);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("From: Carol <sip:alice@atlanta.example>"),
        "{out}"
    );
    assert!(
        out.contains("Call-ID: a84b4c76e66710@pc33.atlanta.example;x\r\n"),
        "{out}"
    );
    assert!(out.contains("CSeq: 1314159 INVITE\r\n"), "{out}");
}

#[test]
fn status_in_reply_routes() {
    let c = config(
        r#"
        loadmodule "tm.so"
        route { t_on_reply("1"); t_relay(); }
        onreply_route[1] {
            if (status =~ "^18[03]$") { drop; }
            if (status >= 500) { exit; }
        }
    "#,
    );
    let r = c
        .program
        .route(crate::cfg::ast::RouteKind::Reply, Some("1"))
        .unwrap();
    for (code, dropped) in [(180, true), (183, true), (200, false), (503, false)] {
        let reply = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>;tag=2\r\n\
             From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        let run = run_route(&c, r, reply.as_bytes(), "192.0.2.1:5060", &[]);
        assert_eq!(run.outcome.dropped, dropped, "{code}");
    }
}

#[test]
fn destination_set_is_bounded() {
    let mut src = String::from("loadmodule \"sl.so\"\nroute {\n");
    for i in 0..20 {
        src.push_str(&format!("  append_branch(\"sip:b{i}@h\");\n"));
    }
    src.push_str("  sl_send_reply(\"300\", \"Multiple\");\n}\n");
    let c = config(&src);
    let r = run(&c, "INVITE", "sip:a@b");
    let Event::Module { dset, .. } = &r.events[0] else {
        panic!()
    };
    assert_eq!(dset.len(), super::ctx::MAX_BRANCHES);
}

#[test]
fn from_uri_and_to_uri_compare_with_myself_strings_and_regexes() {
    let c = config(
        r#"
        alias="atlanta.example"
        loadmodule "sl.so"
        route {
            if (from_uri == myself) { sl_send_reply("200", "from us"); }
            if (to_uri != myself) { sl_send_reply("200", "to elsewhere"); }
            if (from_uri =~ "^sip:alice@") { sl_send_reply("200", "alice"); }
            if (to_uri == "sip:bob@biloxi.example") { sl_send_reply("200", "bob"); }
        }
    "#,
    );
    let r = run(&c, "INVITE", "sip:bob@biloxi.example");
    assert_eq!(
        replies(&r.events),
        ["from us", "to elsewhere", "alice", "bob"]
    );
}

#[test]
fn pseudo_variables_as_operands_kamailio_style() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            if ($fU == "alice") { sl_send_reply("200", "from alice"); }
            if ($fU == "Alice") { sl_send_reply("200", "case-insensitive"); }
            if ($fu =~ "@atlanta\.example$") { sl_send_reply("200", "atlanta"); }
            if ($rU != $fU) { sl_send_reply("200", "to someone else"); }
            if ($cs > 314158 && $cs <= 314159) { sl_send_reply("200", "cseq"); }
            if ($hdr(Contact)) { sl_send_reply("200", "has contact"); }
            if (!$hdr(X-None)) { sl_send_reply("200", "no x-none"); }
            if ($null) { sl_send_reply("200", "never"); }
            if ($ct =~ "192\.0\.2\.10" || method == "X") { sl_send_reply("200", "contact host"); }
        }
    "#,
    );
    let r = run(&c, "INVITE", "sip:bob@biloxi.example");
    assert_eq!(
        replies(&r.events),
        [
            "from alice",
            "atlanta",
            "to someone else",
            "cseq",
            "has contact",
            "no x-none",
            "contact host"
        ]
    );
    let r = run(&c, "INVITE", "sip:alice@biloxi.example");
    assert!(!replies(&r.events).contains(&"to someone else".to_string()));
}

#[test]
fn a_pseudo_variable_rser_does_not_provide_is_a_load_error() {
    let e = crate::cfg::load(
        "route { if ($nop(x) == 1) { drop; } if ($(fU{s.nope}) == 1) { drop; } $var(x) = $(ru{s.substr,1}); if (defined \"x\") { drop; } }",
    )
    .expect_err("errors");
    let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        text,
        [
            "1:13: error: pseudo-variable '$nop(x)' is not provided",
            "1:41: error: transformation '{s.nope}' is not provided",
            "1:71: error: {s.substr,1}: s.substr takes 2 argument(s)",
            "1:104: error: 'defined' applies to a pseudo-variable",
        ]
    );
}

#[test]
fn assignments_to_var_and_the_request_uri() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            $var(n) = 2 + 3 * 4;
            if ($var(n) == 14) { sl_send_reply("200", "precedence"); }
            $var(s) = "user-" + $fU;
            if ($var(s) == "user-alice") { sl_send_reply("200", "concatenated"); }
            $var(m) = ($var(n) - 4) % 4 | 8;
            if ($var(m) == 10) { sl_send_reply("200", "arithmetic"); }
            $var(c) = $cs + 1;
            if ($var(c) == 314160) { sl_send_reply("200", "cseq is a number"); }
            $rU = "carol";
            $rd = "example.net";
            $du = "sip:10.0.0.1:5060";
            if ($ru == "sip:carol@example.net" && $du == "sip:10.0.0.1:5060") {
                sl_send_reply("200", "uri rewritten");
            }
            $var(z) = $var(n) / 0;
            if ($var(z) == 0) { sl_send_reply("200", "division by zero is 0"); }
        }
    "#,
    );
    let r = run(&c, "INVITE", "sip:bob@biloxi.example");
    assert_eq!(
        replies(&r.events),
        [
            "precedence",
            "concatenated",
            "arithmetic",
            "cseq is a number",
            "uri rewritten",
            "division by zero is 0"
        ]
    );
    assert_eq!(r.uri, "sip:carol@example.net");
    let e = crate::cfg::load("route { $fU = \"x\"; $var(a) = $nosuch; }").expect_err("errors");
    let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        text,
        [
            "1:9: error: '$fU' cannot be assigned ($var, $avp, $xavp, $sht, $ru, $rU, $rd, $du, $br and $fs can)",
            "1:20: error: pseudo-variable '$nosuch' is not provided"
        ]
    );
}

#[test]
fn a_var_keeps_its_value_from_one_message_to_the_next() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            $var(count) = $var(count) + 1;
            if ($var(count) == 2) { sl_send_reply("200", "second"); }
        }
    "#,
    );
    let mut st = crate::script::ScriptState::new();
    let seen: Vec<usize> = (0..3).map(|_| replies_keeping(&c, &mut st).len()).collect();
    assert_eq!(seen, [0, 1, 0]);
}

#[test]
fn rc_is_the_last_return_value() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            route(minus3);
            $var(rc) = $rc;
            if ($var(rc) == -3) { sl_send_reply("200", "rc -3"); }
            if ($rc == 1) { sl_send_reply("200", "assignment returned 1"); }
        }
        route[minus3] { return(-3); }
    "#,
    );
    assert_eq!(
        replies(&run(&c, "INVITE", "sip:a@b").events),
        ["rc -3", "assignment returned 1"]
    );
}

#[test]
fn switch_falls_through_until_break_and_while_loops() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            route(minus3);
            $var(rc) = $rc;
            switch ($var(rc)) {
                case -1:
                case -3:
                    sl_send_reply("200", "not found");
                case -2:
                    sl_send_reply("200", "fell through");
                    break;
                case 1:
                    sl_send_reply("200", "never");
                default:
                    sl_send_reply("200", "never either");
            }
            switch ($fU) {
                case "bob":
                    sl_send_reply("200", "bob");
                    break;
                default:
                    sl_send_reply("200", "default");
            }
            $var(i) = 0;
            while ($var(i) < 3) {
                $var(i) = $var(i) + 1;
                if ($var(i) == 2) { break; }
            }
            if ($var(i) == 2) { sl_send_reply("200", "loop broke at 2"); }
            sl_send_reply("200", "after");
        }
        route[minus3] { return(-3); }
    "#,
    );
    assert_eq!(
        replies(&run(&c, "INVITE", "sip:a@b").events),
        [
            "not found",
            "fell through",
            "default",
            "loop broke at 2",
            "after"
        ]
    );
    // A loop that never ends is cut by the step bound.
    let c = config("route { $var(x) = 1; while ($var(x) == 1) { $var(y) = 2; } }");
    let r = run(&c, "INVITE", "sip:a@b");
    assert!(
        matches!(
            r.outcome.error,
            Some(crate::script::vm::RunError::TooLong { .. })
        ),
        "{:?}",
        r.outcome
    );
}

#[test]
fn set_reply_no_connect_and_force_rport_mark_the_message() {
    let c = config("route { set_reply_no_connect(); force_rport(); }");
    let mut st = crate::script::ScriptState::new();
    replies_keeping(&c, &mut st);
    assert!(st.reply_no_connect && st.force_rport);
}

#[test]
fn avps_set_read_and_removed() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            $avp(oexten) = $rU;
            $avp(s:n) = 1;
            $avp(n) = 2;
            if ($avp(oexten) == "bob" && $avp(n) == 2) { sl_send_reply("200", "last value"); }
            $avp(n) = $null;
            if (!$avp(n)) { sl_send_reply("200", "removed"); }
        }
    "#,
    );
    assert_eq!(
        replies(&run(&c, "INVITE", "sip:bob@b").events),
        ["last value", "removed"]
    );
    // In failure, reply and branch routes they are the transaction's
    // (`server::harness_tests`).
    crate::cfg::load(
        "loadmodule \"tm.so\"\nroute { t_on_failure(\"f\"); }\nfailure_route[f] { if ($avp(x) == 1) { drop; } }",
    )
    .expect("loads");
}

#[test]
fn expressions_strlen_defined_strempty_and_arithmetic_in_conditions() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            if (strlen($fU) == 5) { sl_send_reply("200", "strlen"); }
            if (strlen($rU) > 2 && strlen($rU) < 4) { sl_send_reply("200", "bob is 3"); }
            if (strempty($hdr(X-None))) { sl_send_reply("200", "strempty"); }
            if (!strempty($fU)) { sl_send_reply("200", "not empty"); }
            if (defined $var(never)) { sl_send_reply("200", "never"); }
            $var(n) = 7;
            if (defined $var(n)) { sl_send_reply("200", "defined"); }
            if (defined $hdr(X-None)) { sl_send_reply("200", "never"); }
            if ($var(n) + 1 == 8) { sl_send_reply("200", "sum"); }
            if ($var(n) % 2) { sl_send_reply("200", "odd"); }
            if ($fU < "b" && $rU >= "bob") { sl_send_reply("200", "text order"); }
            if ($var(n) * 2 > $cs - 314140) { sl_send_reply("200", "never"); }
            if ($rs == "") { sl_send_reply("200", "no status in a request"); }
            if ($fU + "@" + $fd =~ "^alice@atlanta") { sl_send_reply("200", "joined"); }
            if ($(fu{uri.user}) == $fU && $(fu{uri.host}{s.len}) == 15) { sl_send_reply("200", "tr"); }
            if ($(hdr(To){tobody.uri}{uri.user}{s.toupper}) == "BOB") { sl_send_reply("200", "to"); }
        }
    "#,
    );
    let r = run(&c, "INVITE", "sip:bob@biloxi.example");
    assert_eq!(
        replies(&r.events),
        [
            "strlen",
            "bob is 3",
            "strempty",
            "not empty",
            "defined",
            "sum",
            "odd",
            "text order",
            "no status in a request",
            "joined",
            "tr",
            "to"
        ]
    );
}

#[test]
fn transformations_in_assignments_and_formats() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            $var(u) = $(ru{uri.user}{s.substr,0,3});
            $var(n) = $(var(u){s.len}) * 10;
            sl_send_reply("200", "$var(u) $var(n) $(fu{uri.host}{s.select,0,.}) $(ci{s.md5}{s.len})");
        }
    "#,
    );
    let r = run(&c, "INVITE", "sip:bobby@biloxi.example");
    assert_eq!(replies(&r.events), ["bob 30 atlanta 32"]);
}

#[test]
fn xavps_fields_and_indices() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            $xavp(c=>user) = "alice";
            $xavp(c[0]=>n) = 1;
            $xavp(c=>user) = "bob";
            $xavp(c[0]=>n) = $xavp(c[1]=>n) + 1;
            sl_send_reply("200", "$xavp(c=>user) $xavp(c[0]=>n) $xavp(c[1]=>user)");
            if (!defined $xavp(c[2]=>user) && defined $xavp(c)) { sl_send_reply("200", "two"); }
            $xavp(c) = $null;
            if (!defined $xavp(c=>user)) { sl_send_reply("200", "gone"); }
        }
    "#,
    );
    assert_eq!(
        replies(&run(&c, "INVITE", "sip:bob@b").events),
        ["bob 2 alice", "two", "gone"]
    );
}

#[test]
fn br_is_the_first_branch_and_can_be_set() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            if ($br == $null) { sl_send_reply("200", "none"); }
            $br = "sip:a@x";
            append_branch("sip:b@x");
            sl_send_reply("200", "$br");
            $br = "sip:c@x";
            sl_send_reply("200", "$br");
            $br = $null;
            sl_send_reply("200", "$br");
            $br = $null;
            if (strempty($br)) { sl_send_reply("200", "empty"); }
        }
    "#,
    );
    assert_eq!(
        replies(&run(&c, "INVITE", "sip:bob@b").events),
        ["none", "sip:a@x", "sip:c@x", "sip:b@x", "empty"]
    );
}

#[test]
fn subst_uri_rewrites_the_current_uri() {
    let c = config(
        r#"
        loadmodule "sl.so"
        loadmodule "textops.so"
        route {
            if (subst_uri('/^sip:([0-9]+)@(.*)$/sip:+49\1@\2;user=phone/')) { sl_send_reply("200", "$ru"); }
            if (!subst_uri('/^tel:/x/')) { sl_send_reply("200", "no match"); }
        }
    "#,
    );
    assert_eq!(
        replies(&run(&c, "INVITE", "sip:3012345@gw.example").events),
        ["sip:+493012345@gw.example;user=phone", "no match"]
    );
}
