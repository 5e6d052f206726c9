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
