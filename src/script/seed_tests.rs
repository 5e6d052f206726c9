//! Every example script of the seed (tests/configs/seed/), compiled and
//! run on sample messages: each does what the seed says it does.

use super::testing::{Event, config, request, run, run_route, run_with};

macro_rules! seed {
    ($name:literal) => {
        include_str!(concat!("../../tests/configs/seed/", $name, ".cfg"))
    };
}

fn fwd(uri: &str, to: &str) -> Event {
    Event::Forward {
        uri: uri.into(),
        to: to.into(),
    }
}

fn module(name: &'static str, args: &[&str], dset: &[&str]) -> Event {
    Event::Module {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        dset: dset.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn every_seed_script_compiles() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/seed");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = crate::cfg::load(&src) {
            panic!("{}: {e:#?}", path.display());
        }
        n += 1;
    }
    assert!(n >= 20, "{n} fixtures");
}

#[test]
fn numbering_plan_strips_the_1_and_picks_the_gateway() {
    let c = config(seed!("numbering-plan"));
    let r = run(&c, "INVITE", "sip:15551234@foo.bar");
    assert_eq!(
        r.events,
        [fwd("sip:5551234@foo.bar", "192.168.0.1:5060/udp")]
    );
    let r = run(&c, "INVITE", "sip:4930123@foo.bar");
    assert_eq!(r.events, [fwd("sip:4930123@foo.bar", "10.0.0.1:5060/udp")]);
    // 8 is the IP users' prefix, and names are IP users: looked up.
    for uri in ["sip:8123@foo.bar", "sip:alice@foo.bar"] {
        let r = run_with(
            &c,
            &request("INVITE", uri),
            "192.0.2.10:5060",
            &[("lookup", -1)],
        );
        assert_eq!(
            r.events,
            [
                module("lookup", &["location"], &[uri]),
                module("sl_send_reply", &["404", "Not Found"], &[uri]),
            ],
            "{uri}"
        );
    }
    let r = run(&c, "INVITE", "sip:alice@foo.bar:5070");
    assert_eq!(
        r.events[1],
        fwd("sip:alice@foo.bar:5070", "foo.bar:5070/udp")
    );
}

#[test]
fn domain_regex_matches_exactly_the_listed_hosts() {
    // The seed logs on a match; a forward makes the match observable.
    let src = seed!("domain-regex").replace(
        r#"log(1, "yes, it is a request for our domain");"#,
        "forward(192.0.2.99, 5060);",
    );
    let c = config(&src);
    let ours = [
        "sip:foo.bar",
        "sip:alice@foo.bar",
        "sip:alice@sip.foo.bar",
        "sip:192.168.0.10",
        "sip:alice@192.168.0.10:5060",
        "sip:alice@foo.bar;transport=udp",
        "sip:alice@foo.bar?subject=x",
        "sip:alice@FOO.BAR",
        "sip:alice@FoO.bAr",
    ];
    let others = [
        "sip:alice@192.168.0.101",
        "sip:alice@foo.bar.otherdomain.com",
        "sip:alice@xfoo.bar",
        "sip:alice@www.foo.bar",
        "sip:alice@otherdomain.bar",
    ];
    for uri in ours {
        assert_eq!(run(&c, "INVITE", uri).events.len(), 1, "{uri} is ours");
    }
    for uri in others {
        assert!(
            run(&c, "INVITE", uri).events.is_empty(),
            "{uri} is not ours"
        );
    }
}

#[test]
fn uri_exercise_ends_at_sip_134_at_foo_bar() {
    let c = config(seed!("uri-exercise"));
    let r = run(&c, "INVITE", "sip:alice@example.com");
    assert_eq!(r.uri, "sip:134@foo.bar");
    assert_eq!(r.events, [fwd("sip:134@foo.bar", "foo.bar:5060/udp")]);
}

#[test]
fn uri_myself_honours_alias() {
    let c = config(seed!("myself"));
    for uri in ["sip:a@foo.bar", "sip:a@sales.foo.bar", "sip:a@FOO.bar:5080"] {
        assert!(run(&c, "INVITE", uri).events.is_empty(), "{uri} is ours");
    }
    for uri in ["sip:a@marketing.foo.bar", "sip:a@otherdomain.bar"] {
        assert_eq!(
            run(&c, "INVITE", uri).events,
            [module("t_relay", &[], &[uri])],
            "{uri} is outbound"
        );
    }
}

#[test]
fn myself_is_also_the_listen_address_and_port() {
    let src = format!("listen=udp:127.0.0.1:5070\n{}", seed!("myself"));
    let c = config(&src);
    assert!(run(&c, "INVITE", "sip:a@127.0.0.1:5070").events.is_empty());
    // Another port (the default 5060 when absent) is not us.
    assert_eq!(run(&c, "INVITE", "sip:a@127.0.0.1").events.len(), 1);
    assert_eq!(run(&c, "INVITE", "sip:a@127.0.0.1:5080").events.len(), 1);
}

#[test]
fn static_and_conditional_forwarding() {
    let c = config(seed!("static-forwarding"));
    assert_eq!(
        run(&c, "INVITE", "sip:0123@iptel.org").events,
        [fwd("sip:0123@iptel.org", "192.168.99.3:5080/udp")]
    );
    assert!(run(&c, "INVITE", "sip:123@iptel.org").events.is_empty());

    let c = config(seed!("conditional-statement"));
    assert_eq!(
        run(&c, "INVITE", "sip:123@foo.bar").events,
        [fwd("sip:123@foo.bar", "gateway.foo.bar:5060/udp")]
    );
    assert_eq!(
        run(&c, "INVITE", "sip:john@foo.bar").events,
        [fwd("sip:john@foo.bar", "userloc.foo.bar:5060/udp")]
    );
}

#[test]
fn rewriting_then_forwarding_to_the_new_uri() {
    let c = config(seed!("rewriting-uris"));
    assert_eq!(
        run(&c, "INVITE", "sip:dan@foo.bar").events,
        [fwd(
            "sip:bla@somewhereelse.com",
            "somewhereelse.com:5060/udp"
        )]
    );
    assert!(run(&c, "INVITE", "sip:bob@foo.bar").events.is_empty());
}

#[test]
fn user_location_saves_and_looks_up() {
    let c = config(seed!("usrloc-rewriting"));
    assert_eq!(
        run(&c, "REGISTER", "sip:foo.bar").events,
        [module("save", &["mydomain1"], &["sip:foo.bar"])]
    );
    let uri = "sip:bob@foo.bar";
    assert_eq!(
        run(&c, "INVITE", uri).events,
        [
            module("lookup", &["mydomain1"], &[uri]),
            module("t_relay", &[], &[uri])
        ]
    );
    let r = run_with(
        &c,
        &request("INVITE", uri),
        "192.0.2.1:5060",
        &[("lookup", -1)],
    );
    assert_eq!(
        r.events[1],
        module("sl_send_reply", &["404", "Not Found"], &[uri])
    );

    let src = format!("alias=\"foo.bar\"\n{}", seed!("user-location"));
    let c = config(&src);
    assert_eq!(run(&c, "REGISTER", "sip:foo.bar").events.len(), 1);
    assert!(run(&c, "INVITE", "sip:bob@elsewhere.com").events.is_empty());
    assert_eq!(
        run(&c, "INVITE", uri).events[1],
        module("t_relay", &[], &[uri])
    );
}

#[test]
fn redirect_servers_reply_with_the_destination_set() {
    let c = config(seed!("redirect"));
    assert_eq!(
        run(&c, "INVITE", "sip:a@b.c").events,
        [module(
            "sl_send_reply",
            &["300", "Redirect"],
            &["sip:parallel@iptel.org:9", "sip:redirect@iptel.org:9"]
        )]
    );
    let c = config(seed!("exec-external"));
    assert_eq!(
        run(&c, "INVITE", "sip:a@b.c").events,
        [module(
            "sl_send_reply",
            &["300", "Redirect"],
            &["sip:sales@iptel.org", "sip:support@iptel.org"]
        )]
    );
}

#[test]
fn failure_routes_are_armed_and_retry_elsewhere() {
    let c = config(seed!("on-reply"));
    let r = run(&c, "INVITE", "sip:a@b.c");
    assert_eq!(
        r.events,
        [
            module("t_on_failure", &["1"], &["sip:a@b.c"]),
            module("t_relay", &[], &["sip:a@b.c"])
        ]
    );
    // failure_route[1] as tm will run it.
    let fr1 = c
        .program
        .route(crate::cfg::ast::RouteKind::Failure, Some("1"))
        .unwrap();
    let r = run_route(
        &c,
        fr1,
        &request("INVITE", "sip:a@b.c"),
        "192.0.2.1:5060",
        &[],
    );
    let nonsense = "sip:nonsense@iptel.org";
    assert_eq!(
        r.events,
        [
            module("t_on_failure", &["2"], &[nonsense]),
            module("t_relay", &[], &[nonsense])
        ]
    );
}

#[test]
fn stateful_ua_stops_on_a_retransmission() {
    let c = config(seed!("stateful-ua"));
    let r = run(&c, "MESSAGE", "sip:a@b.c");
    assert_eq!(r.events.len(), 2, "t_newtran then t_reply");
    // t_newtran returns 0 for a retransmission: the script ends there.
    let r = run_with(
        &c,
        &request("MESSAGE", "sip:a@b.c"),
        "192.0.2.1:5060",
        &[("t_newtran", 0)],
    );
    assert_eq!(r.events, [module("t_newtran", &[], &["sip:a@b.c"])]);
    assert_eq!(r.outcome.ret, 0);
}

#[test]
fn sl_examples_fill_pseudo_variables() {
    let c = config(seed!("sl-module"));
    let r = run(&c, "SUBSCRIBE", "sip:a@b.c");
    assert_eq!(
        r.events,
        [module(
            "send_reply",
            &["403", "Invalid user - alice"],
            &["sip:a@b.c"]
        )]
    );
    assert_eq!(c.modparam_int("sl", "default_code", 500), 505);
    assert_eq!(c.modparam_str("sl", "default_reason", ""), "Server Error");
}

#[test]
fn authorization_examples() {
    let c = config(seed!("search-authorize"));
    let msg = String::from_utf8(request("INVITE", "sip:a@b.c"))
        .unwrap()
        .replace("alice@atlanta.example", "alice@mydomain.com");
    let r = run_with(
        &c,
        msg.as_bytes(),
        "192.0.2.1:5060",
        &[("proxy_authorize", -1)],
    );
    assert_eq!(
        r.events,
        [
            module(
                "proxy_authorize",
                &["mydomain.com", "subscriber"],
                &["sip:a@b.c"]
            ),
            module("proxy_challenge", &["mydomain.com", "1"], &["sip:a@b.c"]),
        ]
    );
    // Not claiming our domain: no authentication.
    assert!(run(&c, "INVITE", "sip:a@b.c").events.is_empty());

    let c = config(seed!("module-parameters"));
    assert_eq!(
        run(&c, "INVITE", "sip:a@b.c").events[1],
        fwd("sip:a@b.c", "192.168.0.10:5060/udp")
    );
    assert_eq!(
        c.modparam_str("auth", "db_url", ""),
        "mysql://ser:secret@dbhost/ser"
    );
}

#[test]
fn operators_on_addresses_and_methods() {
    let c = config(
        r#"
        loadmodule "sl.so"
        route {
            if ((src_ip==192.68.77.110 and method=="INVITE")) { sl_send_reply("200", "trusted"); break; }
            if (src_ip==192.168.0.0/16) { sl_send_reply("200", "private"); break; }
            if (src_ip==10.0.0.0/255.0.0.0 || src_port==5099) { sl_send_reply("200", "ten"); break; }
            if (method=="invite" && !(uri=~"^sip:x")) { sl_send_reply("200", "method any case"); break; }
        }
    "#,
    );
    let reason = |src: &str, method: &str, uri: &str| -> String {
        match run_with(&c, &request(method, uri), src, &[]).events.first() {
            Some(Event::Module { args, .. }) => args[1].clone(),
            _ => String::new(),
        }
    };
    assert_eq!(reason("192.68.77.110:5060", "INVITE", "sip:a@b"), "trusted");
    assert_eq!(reason("192.68.77.110:5060", "BYE", "sip:a@b"), "");
    assert_eq!(reason("192.168.7.7:5060", "BYE", "sip:a@b"), "private");
    assert_eq!(reason("10.1.2.3:5060", "BYE", "sip:a@b"), "ten");
    assert_eq!(reason("192.0.2.1:5099", "BYE", "sip:a@b"), "ten");
    assert_eq!(
        reason("192.0.2.1:5060", "INVITE", "sip:a@b"),
        "method any case"
    );
    assert_eq!(reason("192.0.2.1:5060", "INVITE", "sip:xa@b"), "");
}

#[test]
fn the_example_config_does_what_its_comments_say() {
    let c = config(include_str!("../../ser.cfg.example"));
    let names = |r: &super::testing::Run| -> Vec<&'static str> {
        r.events
            .iter()
            .filter_map(|e| match e {
                Event::Module { name, .. } => Some(*name),
                _ => None,
            })
            .collect()
    };
    let initial = [("has_totag", -1)];
    // REGISTER for this domain: saved (after the flood and sanity checks
    // and the routine ones).
    let r = run_with(
        &c,
        &request("REGISTER", "sip:example.net"),
        "192.0.2.1:5060",
        &initial,
    );
    assert_eq!(
        names(&r),
        [
            "pike_check_req",
            "sanity_check",
            "mf_process_maxfwd_header",
            "has_totag",
            "save"
        ]
    );
    // A call to a user of this domain: looked up, then relayed; INVITEs
    // are record-routed.
    let r = run_with(
        &c,
        &request("INVITE", "sip:bob@example.net"),
        "192.0.2.1:5060",
        &initial,
    );
    assert_eq!(
        names(&r),
        [
            "pike_check_req",
            "sanity_check",
            "mf_process_maxfwd_header",
            "has_totag",
            "record_route",
            "lookup",
            "t_relay"
        ]
    );
    // Nobody registered: 404.
    let r = run_with(
        &c,
        &request("INVITE", "sip:carol@example.net"),
        "192.0.2.1:5060",
        &[("has_totag", -1), ("lookup", -1)],
    );
    assert_eq!(
        r.events.last(),
        Some(&module(
            "sl_send_reply",
            &["404", "Not Found"],
            &["sip:carol@example.net"]
        ))
    );
    // In a dialog: the Route set, relayed.
    let r = run(&c, "BYE", "sip:bob@192.0.2.9");
    assert_eq!(
        names(&r),
        [
            "pike_check_req",
            "sanity_check",
            "mf_process_maxfwd_header",
            "has_totag",
            "loose_route",
            "t_relay"
        ]
    );
    // In a dialog without our Route: 404.
    let r = run_with(
        &c,
        &request("BYE", "sip:bob@192.0.2.9"),
        "192.0.2.1:5060",
        &[("loose_route", -1)],
    );
    assert_eq!(
        r.events.last(),
        Some(&module(
            "sl_send_reply",
            &["404", "Not here"],
            &["sip:bob@192.0.2.9"]
        ))
    );
    // Another domain, from a user of another domain: not relayed.
    let r = run_with(
        &c,
        &request("OPTIONS", "sip:bob@example.org"),
        "192.0.2.1:5060",
        &initial,
    );
    assert_eq!(
        r.events.last(),
        Some(&module(
            "sl_send_reply",
            &["403", "Not relaying"],
            &["sip:bob@example.org"]
        ))
    );
    // From a user of this domain: relayed without a lookup.
    let ours = String::from_utf8(request("OPTIONS", "sip:bob@example.org"))
        .unwrap()
        .replace("sip:alice@atlanta.example", "sip:alice@example.net");
    let r = run_with(&c, ours.as_bytes(), "192.0.2.1:5060", &initial);
    assert_eq!(
        names(&r),
        [
            "pike_check_req",
            "sanity_check",
            "mf_process_maxfwd_header",
            "has_totag",
            "t_relay"
        ]
    );
    // No hops left: 483.
    let r = run_with(
        &c,
        &request("INVITE", "sip:bob@example.org"),
        "192.0.2.1:5060",
        &[("mf_process_maxfwd_header", -1)],
    );
    assert_eq!(
        r.events[3],
        module(
            "sl_send_reply",
            &["483", "Too Many Hops"],
            &["sip:bob@example.org"]
        )
    );
}
