//! Broken scripts give one error each, at the right line and column, and
//! one error does not hide the next.

use super::{ConfigError, load};

/// Errors as `LINE:COL: message` for compact assertions.
fn errors(src: &str) -> Vec<String> {
    match load(src) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ConfigError::to_string).collect(),
    }
}

fn one_error(src: &str) -> String {
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

#[test]
fn unknown_action() {
    assert_eq!(
        one_error("route {\n    forwrd(1.2.3.4, 5060);\n}\n"),
        "2:5: error: unknown action 'forwrd'"
    );
}

#[test]
fn wrong_arity() {
    assert_eq!(
        one_error("loadmodule \"sl.so\"\nroute {\n  sl_send_reply(\"404\");\n}"),
        "3:3: error: 'sl_send_reply' takes 2 arguments, found 1"
    );
    assert_eq!(
        one_error("route {\n  strip();\n}"),
        "2:3: error: 'strip' takes 1 argument, found 0"
    );
    assert_eq!(
        one_error("route {\n  forward(a, 1, 2);\n}"),
        "2:3: error: 'forward' takes 0 to 2 arguments, found 3"
    );
}

#[test]
fn unbalanced_braces() {
    let e = errors("route {\n  if (method==\"INVITE\") {\n    break;\n}\n");
    assert_eq!(e, ["4:2: error: expected '}', found end of file"]);
    let e = errors("route {\n  break;\n}\n}\nroute[1] { }\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("4:1: error: expected a global parameter"),
        "{e:?}"
    );
}

#[test]
fn bad_regex() {
    assert_eq!(
        one_error("route {\n  if (uri =~ \"^sip:(1\") { break; }\n}"),
        "2:7: error: bad regular expression \"^sip:(1\": unclosed group"
    );
    let e = one_error("loadmodule \"textops.so\"\nroute {\n  search(\"[a-\");\n}");
    assert!(e.starts_with("3:10: error: bad regular expression"), "{e}");
}

#[test]
fn undefined_routes() {
    assert_eq!(
        one_error("route {\n  route(2);\n}\nroute[1] { }"),
        "2:9: error: route[2] is not defined"
    );
    assert_eq!(
        one_error("loadmodule \"tm.so\"\nroute {\n  t_on_failure(\"1\");\n  t_relay();\n}"),
        "3:16: error: failure_route[1] is not defined"
    );
    // Named routes, and routes defined after their use, resolve.
    assert!(errors("route { route(checks); }\nroute[checks] { return(1); }").is_empty());
}

#[test]
fn module_function_without_its_loadmodule() {
    assert_eq!(
        one_error("route {\n  t_relay();\n}"),
        "2:3: error: 't_relay' is exported by module 'tm', which is not loaded (loadmodule \"tm.so\")"
    );
}

#[test]
fn globals_modules_and_modparams() {
    let src = "\
listen=udp:127.0.0.1:5060
childern=4
children=0
loadmodule \"/usr/lib/ser/modules/nosuch.so\"
loadmodule \"sl.so\"
modparam(\"sl\", \"default_code\", \"500\")
modparam(\"sl\", \"no_param\", 1)
modparam(\"tm\", \"fr_timer\", 10)
modparam(\"bogus\", \"x\", 1)
route { }
";
    assert_eq!(
        errors(src),
        [
            "2:1: error: unknown global parameter 'childern'",
            "3:1: error: 'children' expects a number from 1 to 1024",
            "4:1: error: unknown module 'nosuch' (loadmodule \"/usr/lib/ser/modules/nosuch.so\")",
            "6:1: error: parameter 'default_code' of module 'sl' is a number (int), not a string",
            "7:1: error: module 'sl' has no parameter 'no_param'",
            "8:1: error: modparam for module 'tm', which is not loaded",
            "9:1: error: modparam for unknown module 'bogus'",
        ]
    );
}

#[test]
fn argument_checks() {
    let e = errors(
        "loadmodule \"sl.so\"\nroute {\n  sl_send_reply(\"99\", \"x\");\n  setflag(32);\n  \
         rewriteuri(\"not a uri\");\n  forward(uri:host, 70000);\n  if (status == 200) { break; }\n}",
    );
    assert_eq!(
        e,
        [
            "3:17: error: expected a number from 100 to 699, found \"99\"",
            "4:11: error: expected a number from 0 to 31, found 32",
            "5:14: error: \"not a uri\" is not a valid URI",
            "6:21: error: expected a port (1 to 65535) or uri:port, found 70000",
            "7:7: error: 'status' is only known in onreply_route and failure_route",
        ]
    );
}

#[test]
fn duplicate_routes() {
    assert_eq!(
        one_error("route { }\nroute[0] { }"),
        "2:1: error: route is defined twice"
    );
}

#[test]
fn one_error_does_not_hide_the_next() {
    let src = "\
loadmodule \"sl.so\"
route {
    nosuch();
    if (uri =~ \"(\") { break; }
    sl_send_reply(\"404\");
    route(9);
    t_relay();
}
";
    let e = errors(src);
    assert_eq!(e.len(), 5, "{e:#?}");
    let lines: Vec<&str> = e.iter().map(|s| s.split(':').next().unwrap()).collect();
    assert_eq!(lines, ["3", "4", "5", "6", "7"]);
}

/// The seed's own text of two examples has typos SER's parser would
/// refuse too; rser points at them.
#[test]
fn the_seed_typos_are_reported_where_they_are() {
    // "if (!lookup("location") {": the ')' closing the condition is missing.
    let src = "loadmodule \"registrar.so\"\nloadmodule \"sl.so\"\nroute {\n  if (!lookup(\"location\") {\n    sl_send_reply(\"404\", \"Not Found\");\n  };\n}\n";
    let e = errors(src);
    assert_eq!(e[0], "4:27: error: expected ')', found '{'");
    // loadmodule "/usr/lib/ser/modules/sl.so route{ ...: the quote never closes.
    let e = errors(
        "loadmodule \"/usr/lib/ser/modules/sl.so\nroute{\n  sl_send_reply(\"404\", \"x\");\n}\n",
    );
    assert!(!e.is_empty());
    assert!(e[0].starts_with("1:"), "{e:?}");
}

#[test]
fn the_example_config_checks_clean() {
    let c = load(include_str!("../../ser.cfg.example")).unwrap();
    assert_eq!(c.settings.children, 2);
    assert_eq!(c.settings.aliases[0].host, "example.net");
    assert!(c.has_module("sl") && c.has_module("maxfwd"));
}

mod properties {
    use proptest::prelude::*;

    const SEEDS: [&str; 4] = [
        include_str!("../../ser.cfg.example"),
        include_str!("../../tests/configs/seed/numbering-plan.cfg"),
        include_str!("../../tests/configs/seed/default-configuration.cfg"),
        include_str!("../../tests/configs/seed/on-reply.cfg"),
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Seed scripts with a byte range replaced by random script text
        /// load or fail with positioned errors; they never panic.
        #[test]
        fn mutated_scripts_load_or_fail_cleanly(
            which in 0..SEEDS.len(),
            at in any::<prop::sample::Index>(),
            len in 0usize..40,
            insert in "[a-z_(){}\\[\\];,:/=!~<>&|\"#*0-9. \n$^\\\\]{0,40}",
        ) {
            let src = SEEDS[which];
            let start = at.index(src.len());
            let end = (start + len).min(src.len());
            if !src.is_char_boundary(start) || !src.is_char_boundary(end) {
                return Ok(());
            }
            let mutated = format!("{}{insert}{}", &src[..start], &src[end..]);
            if let Err(errors) = super::load(&mutated) {
                prop_assert!(!errors.is_empty());
                let lines = mutated.lines().count() as u32 + 1;
                for e in errors {
                    prop_assert!(e.pos.line >= 1 && e.pos.line <= lines, "{e}");
                }
            }
        }
    }
}

#[test]
fn a_reply_or_relay_in_branch_route_is_refused_at_load() {
    let src = "loadmodule \"tm.so\"\nloadmodule \"sl.so\"\nroute { t_on_branch(\"b\"); t_relay(); }\n\
               branch_route[b] {\n  sl_send_reply(\"500\", \"x\");\n  t_relay();\n}\n";
    assert_eq!(
        errors(src),
        vec![
            "5:3: error: 'sl_send_reply' may not be called in branch_route",
            "6:3: error: 't_relay' may not be called in branch_route",
        ]
    );
}

/// What `rser -c` says of a config (errors and warnings), as a start
/// would.
fn said(src: &str) -> Vec<String> {
    match super::load_from(src, None) {
        Ok(c) => c.warnings.iter().map(ConfigError::to_string).collect(),
        Err(e) => e.iter().map(ConfigError::to_string).collect(),
    }
}

#[test]
fn switches_rser_does_not_honour_are_warnings_naming_them() {
    let w = said(
        "fork=no\nlog_stderror=no\ncheck_via=no\ndns=yes\nrev_dns=no\nmhomed=yes\nroute { drop; }\n",
    );
    assert_eq!(w.len(), 5, "{w:#?}");
    for (line, name) in [
        (1, "fork=no"),
        (2, "log_stderror=no"),
        (3, "check_via=no"),
        (4, "dns=yes"),
        (6, "mhomed=yes"),
    ] {
        assert!(
            w.iter().any(|l| l.starts_with(&format!("{line}:1: warning: {name}: accepted and ignored"))),
            "{name}: {w:#?}"
        );
    }
    // What rser does anyway is applied, not warned about.
    assert!(
        said("log_stderror=yes\ncheck_via=yes\ndns=no\nrev_dns=no\nmhomed=no\nroute { drop; }\n")
            .is_empty()
    );
}

#[test]
fn what_a_start_refuses_minus_c_refuses() {
    let one = |src: &str| {
        let e = said(src);
        assert_eq!(e.len(), 1, "{e:#?}");
        e[0].clone()
    };
    assert_eq!(
        one("listen=sctp:127.0.0.1:5060\nroute { drop; }\n"),
        "1:1: error: listen on sctp:127.0.0.1: SCTP is not served by this build"
    );
    assert!(
        one("loadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\nmodparam(\"usrloc\", \"db_mode\", 3)\nroute { save(\"location\"); }\n")
            .starts_with(
                "1:1: error: usrloc: db_mode 1, 2 and 3 need modparam(\"usrloc\", \"db_url\", URL)"
            )
    );
    // A server URL is served; one that does not parse is refused without
    // its password.
    let bad = one(
        "loadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\nmodparam(\"usrloc\", \"db_mode\", 2)\n\
         modparam(\"usrloc\", \"db_url\", \"mysql://ser:heslo@localhost\")\nroute { save(\"location\"); }\n",
    );
    assert!(bad.contains("usrloc: ") && !bad.contains("heslo"), "{bad}");
    let redis = one(
        "loadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\nmodparam(\"usrloc\", \"db_mode\", 1)\n\
         modparam(\"usrloc\", \"db_url\", \"redis://:heslo@127.0.0.1:99999\")\nroute { save(\"location\"); }\n",
    );
    assert!(
        redis.contains("usrloc") && !redis.contains("heslo"),
        "{redis}"
    );
    assert!(
        said(
            "loadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\nmodparam(\"usrloc\", \"db_mode\", 2)\n\
             modparam(\"usrloc\", \"db_url\", \"mysql://ser:heslo@localhost/ser\")\nroute { save(\"location\"); }\n"
        )
        .is_empty()
    );
    assert!(one(
        "loadmodule \"auth.so\"\nroute { if (!www_authorize(\"a\", \"subscriber\")) { drop; } }\n"
    )
    .contains("www_authorize/proxy_authorize need modparam(\"auth_db\", \"db_url\""));
    // The language alone (`load`) does not ask.
    assert!(load("listen=sctp:127.0.0.1:5060\nroute { drop; }\n").is_err());
    assert!(
        load("loadmodule \"usrloc.so\"\nmodparam(\"usrloc\", \"db_mode\", 3)\nroute { drop; }\n")
            .is_ok()
    );
}

#[test]
fn accepted_unapplied_module_parameters_are_warnings() {
    assert_eq!(
        said("loadmodule \"rr.so\"\nmodparam(\"rr\", \"append_fromtag\", 1)\nroute { drop; }\n"),
        [
            "2:1: warning: modparam(\"rr\", \"append_fromtag\") is accepted but not applied by this build"
        ]
    );
}

#[test]
fn tm_timers_under_100_are_said_to_be_milliseconds() {
    let w = said(
        "loadmodule \"tm.so\"\nmodparam(\"tm\", \"fr_timer\", 2)\nmodparam(\"tm\", \"fr_inv_timer\", 30000)\n\
         modparam(\"tm\", \"wt_timer\", 50)\nroute { t_relay(); }\n",
    );
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w[0].contains(
            "\"fr_timer\", 2) is 2 milliseconds, raised to 10 (tm timers are in milliseconds"
        ),
        "{w:#?}"
    );
    assert!(w[0].contains("2 s is 2000"), "{w:#?}");
    assert!(
        w[1].contains("\"wt_timer\", 50) is 50 milliseconds ("),
        "{w:#?}"
    );
}

#[test]
fn ser_08_constructs_load() {
    let c = load(
        "fifo=\"/tmp/ser_fifo\"\nfifo_mode=0660\nlisten=udp:[::1]:5062\n\
         loadmodule \"/usr/lib/ser/modules/print.so\"\nloadmodule \"sl.so\"\nloadmodule \"rr.so\"\n\
         loadmodule \"auth.so\"\nmodparam(\"auth\", \"calculate_ha1\", yes)\n\
         modparam(\"auth\", \"password_column\", \"password\")\n\
         route { sl_filter_ACK(); if (len_gt( max_len )) { drop; }; rewriteFromRoute(); print(\"hello\"); }\n",
    )
    .unwrap();
    assert_eq!(c.settings.fifo.as_deref(), Some("/tmp/ser_fifo"));
    assert_eq!(c.settings.fifo_mode, 0o660);
    let l = &c.settings.listen[0];
    assert_eq!(
        (l.addr.to_string(), l.port),
        ("::1".to_string(), Some(5062))
    );
    assert_eq!(c.modparam_int("auth", "calculate_ha1", -1), 1);
    assert!(
        c.program
            .dump()
            .contains(&format!("len_gt({})", crate::sip::limits::MAX_DATAGRAM))
    );
    assert_eq!(
        one_error("fifo_mode=0777\nroute { drop; }\n"),
        "1:1: error: 'fifo_mode' 0777: read and write bits only, and the owner's both (0600 to 0666)"
    );
}

#[test]
fn module_parameters_set_against_what_rser_does_are_warnings() {
    let w = said(
        "loadmodule \"sl.so\"\nloadmodule \"exec.so\"\nloadmodule \"acc.so\"\n\
         modparam(\"sl\", \"bind_tm\", 0)\nmodparam(\"exec\", \"setvars\", 0)\n\
         modparam(\"acc\", \"db_insert_mode\", 1)\nroute { drop; }\n",
    );
    assert_eq!(w.len(), 3, "{w:#?}");
    for name in ["bind_tm 0", "setvars 0", "db_insert_mode"] {
        assert!(
            w.iter().any(
                |l| l.contains(&format!("warning: {}", name.split(' ').next().unwrap()))
                    && l.contains("accepted and ignored")
            ),
            "{name}: {w:#?}"
        );
    }
    assert!(
        said("loadmodule \"sl.so\"\nmodparam(\"sl\", \"bind_tm\", 1)\nroute { drop; }\n")
            .is_empty()
    );
}

#[test]
fn kamailio_globals_and_modules_are_accepted_or_said() {
    let w = said(
        "memdbg=5\nmemlog=5\nlog_facility=LOG_LOCAL0\nlog_prefix=\"{$mt $ci} \"\n\
         tcp_children=4\ntcp_max_connections=2048\nenable_sctp=no\n\
         loadmodule \"kex.so\"\nloadmodule \"corex.so\"\nloadmodule \"tmx.so\"\nloadmodule \"pv.so\"\n\
         loadmodule \"textopsx.so\"\nloadmodule \"jsonrpcs.so\"\nloadmodule \"ctl.so\"\n\
         loadmodule \"cfg_rpc.so\"\nloadmodule \"counters.so\"\n\
         modparam(\"jsonrpcs\", \"pretty_format\", 1)\nroute { drop; }\n",
    );
    assert!(w.iter().all(|l| l.contains(": warning: ")), "{w:#?}");
    for needle in [
        "1:1: warning: memdbg: accepted and ignored",
        "3:1: warning: log_facility: accepted and ignored",
        "4:1: warning: log_prefix: accepted and ignored",
        "5:1: warning: tcp_children: accepted and ignored: every worker serves TCP",
        "jsonrpcs: its datagram transport is not opened (its FIFO is, for kamctl)",
        "ctl: kamcmd's binrpc socket is not opened",
        "modparam(\"jsonrpcs\", \"pretty_format\") is accepted but not applied",
    ] {
        assert!(w.iter().any(|l| l.contains(needle)), "{needle}: {w:#?}");
    }
    assert!(!w.iter().any(|l| l.contains("enable_sctp")), "{w:#?}");
    assert_eq!(
        said("enable_sctp=yes\nroute { drop; }\n"),
        ["1:1: error: enable_sctp=yes: SCTP is not served by this build"]
    );
}

#[test]
fn htables_are_declared_before_use_and_database_ones_are_refused() {
    let e = said("route { if ($sht(a=>x) == 1) { drop; } }");
    assert!(e[0].contains("needs the htable module"), "{e:?}");
    let e = said(
        "loadmodule \"htable.so\"\nmodparam(\"htable\", \"htable\", \"a=>size=4;\")\nroute { $sht(b=>$si) = 1; sht_reset(\"c\"); }",
    );
    assert!(e[0].contains("uses table(s) b, c not declared"), "{e:?}");
    let e = said(
        "loadmodule \"htable.so\"\nmodparam(\"htable\", \"htable\", \"a=>size=4;dbtable=htable;\")\nroute { drop; }",
    );
    assert!(e[0].contains("dbtable is not supported"), "{e:?}");
    let e = said(
        "loadmodule \"htable.so\"\nmodparam(\"htable\", \"htable\", \"a=>sise=4\")\nroute { sht_rm_name_re(\"a=>[\"); }",
    );
    assert!(e[0].contains("bad regular expression \"[\""), "{e:?}");
    let e = said(
        "loadmodule \"htable.so\"\nmodparam(\"htable\", \"htable\", \"a=>sise=4\")\nroute { drop; }",
    );
    assert!(e[0].contains("unknown attribute 'sise'"), "{e:?}");
    let ok = said(
        "loadmodule \"htable.so\"\nmodparam(\"htable\", \"htable\", \"ipban=>size=8;autoexpire=300;\")\nroute { if ($sht(ipban=>$si) != $null) { drop; } sht_rm_value_re(\"ipban=>^1$\"); }",
    );
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn kamailios_modules_rser_lacks_are_named_with_what_they_do() {
    let e = said(
        "loadmodule \"permissions.so\"\nmodparam(\"permissions\", \"db_mode\", 1)\n\
         modparam(\"nathelper|registrar\", \"received_avp\", \"$avp(RECEIVED)\")\n\
         route { if (!allow_source_address()) { exit; } }",
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].contains("module 'permissions' is not provided by rser: address-based authorization (WITH_IPAUTH)"),
        "{e:?}"
    );
    // permissions' modparam is not reported again; nathelper|registrar is an
    // error only because neither is loaded.
    assert!(
        e[1].contains("module 'registrar', which is not loaded"),
        "{e:?}"
    );
    assert!(e[2].contains("unknown module 'nathelper'"), "{e:?}");
    assert!(
        e[3].contains("'allow_source_address' is module permissions'"),
        "{e:?}"
    );
}

#[test]
fn onsend_and_event_routes_parse() {
    let e = said("onsend_route { if ($snd(ip) == \"10.0.0.1\") { drop; } }\nroute { drop; }");
    assert!(e.is_empty(), "{e:?}");
    let e = said(
        "loadmodule \"sl.so\"\nonsend_route { sl_send_reply(\"200\", \"no\"); }\nroute { drop; }",
    );
    assert!(
        e[0].contains("'sl_send_reply' may not be called in onsend_route"),
        "{e:?}"
    );
    let e = said(
        "loadmodule \"textops.so\"\nonsend_route { append_hf(\"X: y\"); rewritehost(\"h\"); $du = \"sip:x\"; $var(n) = 1; }\nevent_route[core:worker-one-init] { forward(\"h\"); }\nroute { drop; }",
    );
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].contains("'append_hf' may not be called in onsend_route"),
        "{e:?}"
    );
    assert!(
        e[1].contains(
            "'rewritehost' may not be called in onsend_route: it runs on the request as built"
        ),
        "{e:?}"
    );
    assert!(
        e[2].contains("'$du' cannot be assigned in onsend_route"),
        "{e:?}"
    );
    assert!(
        e[3].contains("'forward' may not be called in event_route: no message is routed there"),
        "{e:?}"
    );
    let w = said(
        "event_route[core:worker-one-init] { return; }\nevent_route[tm:local-request] { return; }\nevent_route[xhttp:request] { return; }\nroute { drop; }",
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("3:1: warning: event_route[xhttp:request]: rser raises no such event"),
        "{w:?}"
    );
}
