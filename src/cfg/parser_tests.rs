//! Parser tests on the seed's example scripts and on broken scripts.

use super::ast::{Arg, CmpOp, Expr, Rhs, RouteKind, Stmt, Value};
use super::lexer::Pos;
use super::parser::parse;

fn parses(src: &str) -> super::ast::Script {
    let (script, errors) = parse(src);
    assert!(errors.is_empty(), "{errors:?}");
    script
}

const NUMBERING_PLAN: &str = r#"
route {
    # is it a PSTN destination? (is username numerical and does not begin with 8?)
    if (uri=~"^sip:[0-79][0-9]*@") {
        # if it is US (prefix "1"), use the gateway 192.168.0.1...
        if (uri=~"^sip:1") {
            # strip the leading "1"
            strip(1);
            forward(192.168.0.1, 5060);
        } else {
            forward(10.0.0.1, 5060);
        }
        break;
    } else {
        if (!lookup("location")) {
            sl_send_reply("404", "Not Found");
            break;
        }
        forward(uri:host,uri:port);
    }
}
"#;

#[test]
fn numbering_plan_from_the_seed() {
    let s = parses(NUMBERING_PLAN);
    assert_eq!(s.routes.len(), 1);
    let r = &s.routes[0];
    assert_eq!((r.kind, r.name.as_deref()), (RouteKind::Request, None));
    let Stmt::If {
        cond,
        then,
        otherwise,
        ..
    } = &r.body[0]
    else {
        panic!("if")
    };
    let Expr::Cmp {
        operand, op, rhs, ..
    } = cond
    else {
        panic!("cmp")
    };
    assert_eq!((operand.as_str(), *op), ("uri", CmpOp::Match));
    assert_eq!(rhs, &Rhs::Str("^sip:[0-79][0-9]*@".into()));
    assert!(matches!(then[1], Stmt::Break(_)));
    let Stmt::Call(fwd) = otherwise.last().unwrap() else {
        panic!("forward")
    };
    assert_eq!(fwd.name, "forward");
    assert!(matches!(&fwd.args[0], Arg::Word(w, _) if w == "uri:host"));
    let Stmt::If { then, .. } = &then[0] else {
        panic!("inner if")
    };
    let Stmt::Call(strip) = &then[0] else {
        panic!("strip")
    };
    assert!(matches!(strip.args[..], [Arg::Int(1, _)]));
    let Stmt::Call(fwd) = &then[1] else {
        panic!("forward")
    };
    assert!(matches!(&fwd.args[..], [Arg::Word(ip, _), Arg::Int(5060, _)] if ip == "192.168.0.1"));
}

#[test]
fn globals_modules_modparams_and_comments_in_arguments() {
    let s = parses(
        r#"
listen=udp:127.0.0.1:5060
children=4
log_stderror=yes
alias="foo.bar"
loadmodule "modules/sl/sl.so"
loadmodule "/usr/lib/ser/modules/auth.so"
modparam("auth", "db_url","mysql://ser:secret@dbhost/ser")
modparam("tm", "fr_timer", 2000);
route{
    if (!proxy_authorize("foo.bar" /* realm */, "subscriber" /* table name */ )) {
        proxy_challenge("foo.bar", "0");
        break;
    };
    forward(192.168.0.10,5060);
}
"#,
    );
    let g: Vec<_> = s
        .globals
        .iter()
        .map(|g| (g.name.as_str(), g.value.clone()))
        .collect();
    assert_eq!(
        g,
        vec![
            ("listen", Value::Word("udp:127.0.0.1:5060".into())),
            ("children", Value::Int(4)),
            ("log_stderror", Value::Word("yes".into())),
            ("alias", Value::Str("foo.bar".into())),
        ]
    );
    assert_eq!(s.modules[1].path, "/usr/lib/ser/modules/auth.so");
    assert_eq!(s.modparams[1].value, Value::Int(2000));
    let Stmt::If {
        cond: Expr::Not(inner),
        ..
    } = &s.routes[0].body[0]
    else {
        panic!()
    };
    let Expr::Call(c) = &**inner else { panic!() };
    assert_eq!(c.args.len(), 2);
}

#[test]
fn uri_rewriting_exercise_and_missing_semicolons() {
    let s = parses(
        r#"route {
exec_dset("echo sip:2234@foo.bar; echo > /dev/null"); strip(2); if (uri=~"^sip:2") { prefix("0"); } else { prefix("1"); }; forward(uri:host, uri:port);
if (uri=~"dan@foo.bar") { rewriteuri("sip:bla@somewhereelse.com") forward( uri:host, uri:port); }
if (uri==myself) { log(1,"request for served domain") }
}"#,
    );
    assert_eq!(s.routes[0].body.len(), 6);
}

#[test]
fn route_kinds_names_and_operators() {
    let s = parses(
        r#"
request_route { route(1); route(two); }
route[1] { if (src_ip==192.168.0.0/16 and method=="INVITE" or msg:len > 2000) return(1); return(-1); }
route[two] { exit; }
failure_route[1] { rewritehostport("10.0.0.2:5060"); append_branch(); t_relay(); }
onreply_route[2] { if (status =~ "18[0-9]") { drop; } }
branch_route[3] { if (src_ip == 10.0.0.1/255.0.0.0) { break; } }
"#,
    );
    let kinds: Vec<_> = s.routes.iter().map(|r| (r.kind, r.name.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (RouteKind::Request, None),
            (RouteKind::Request, Some("1".into())),
            (RouteKind::Request, Some("two".into())),
            (RouteKind::Failure, Some("1".into())),
            (RouteKind::Reply, Some("2".into())),
            (RouteKind::Branch, Some("3".into())),
        ]
    );
    let Stmt::If { cond, then, .. } = &s.routes[1].body[0] else {
        panic!()
    };
    // or binds looser than and
    let Expr::Or(lhs, rhs) = cond else {
        panic!("or")
    };
    assert!(matches!(**lhs, Expr::And(..)));
    assert!(
        matches!(&**rhs, Expr::Cmp { operand, op: CmpOp::Gt, rhs: Rhs::Int(2000), .. } if operand == "msg:len")
    );
    assert!(matches!(then[0], Stmt::Return(Some(1), _)));
    assert!(matches!(s.routes[1].body[1], Stmt::Return(Some(-1), _)));
    let Stmt::If {
        cond: Expr::Cmp { rhs, .. },
        ..
    } = &s.routes[5].body[0]
    else {
        panic!()
    };
    assert_eq!(rhs, &Rhs::Net("10.0.0.1".into(), "255.0.0.0".into()));
}

#[test]
fn the_example_config_parses() {
    parses(include_str!("../../ser.cfg.example"));
}

#[test]
fn errors_have_positions_and_do_not_hide_each_other() {
    let (_, errors) =
        parse("route {\n  forward(1.2.3.4, 5060;\n  strip(2);\n  if (uri=~) { break; }\n}\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].pos, Pos { line: 2, col: 24 });
    assert!(errors[0].msg.contains("expected ','"), "{}", errors[0].msg);
    assert_eq!(errors[1].pos.line, 4);

    let (_, errors) = parse("route {\n  if (method==\"INVITE\") {\n    t_relay();\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].msg.contains("expected '}'"), "{}", errors[0].msg);

    let (_, errors) = parse("children=2\nbogus stuff\nroute { break; }\n");
    assert_eq!(errors[0].pos, Pos { line: 2, col: 1 });
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, ..Default::default() })]

    /// Any text, however broken, yields a tree and errors, never a panic or a hang.
    #[test]
    fn arbitrary_scripts_never_panic(src in "[a-z_(){}\\[\\];,:/=!~<>&|\"#*0-9. \n]{0,200}") {
        let _ = parse(&src);
    }

    #[test]
    fn arbitrary_unicode_never_panics(src in "\\PC{0,100}") {
        let _ = parse(&src);
    }
}
