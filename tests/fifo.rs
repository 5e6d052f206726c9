//! SER's FIFO (`fifo=`), driven as tm's seed shows: requests written to
//! the named pipe with `cat > fifo`, answers read from the reply file
//! each names, in /tmp.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Peer, Server, answer, expect, temp_dir};

const SEC: Duration = Duration::from_secs(3);

/// Writes `text` to the pipe as `cat > fifo` does.
fn cat_into(fifo: &Path, text: &str) {
    let mut child = Command::new("sh")
        .args(["-c", "exec cat > \"$0\""])
        .arg(fifo)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let deadline = Instant::now() + SEC;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("cat > fifo did not finish");
}

/// A reply file name of this test's own, removed when dropped.
struct Reply(PathBuf);

impl Reply {
    fn new(tag: &str) -> Reply {
        let name = format!("rser_fifo_{}_{tag}", std::process::id());
        let p = Path::new("/tmp").join(name);
        let _ = std::fs::remove_file(&p);
        Reply(p)
    }

    fn name(&self) -> &str {
        self.0.file_name().unwrap().to_str().unwrap()
    }

    /// The reply, once written (waiting up to `within`).
    fn read(&self, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(t) = std::fs::read_to_string(&self.0)
                && t.ends_with('\n')
            {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no reply in {}",
                self.0.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Fixture {
    server: Server,
    fifo: PathBuf,
    dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(name: &str, extra_globals: &str) -> Fixture {
    let dir = temp_dir(&format!("fifo-{name}"));
    let fifo = dir.join("ser_fifo");
    let cfg = format!(
        "fifo=\"{}\"\n{extra_globals}\
         loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"usrloc.so\"\nloadmodule \"registrar.so\"\n\
         modparam(\"tm\", \"fr_timer\", 1000)\nmodparam(\"tm\", \"fr_inv_timer\", 1500)\n\
         route {{ if (method == \"REGISTER\") {{ save(\"location\"); exit; }} t_relay(); }}\n",
        fifo.display()
    );
    let server = Server::start(&cfg, 1, &[]);
    Fixture { server, fifo, dir }
}

#[test]
fn the_pipe_is_made_with_its_mode_and_serves_the_core_commands() {
    let f = start("core", "");
    let mode = std::fs::metadata(&f.fifo).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (up, ps, ver, which) = (
        Reply::new("up"),
        Reply::new("ps"),
        Reply::new("ver"),
        Reply::new("which"),
    );
    cat_into(&f.fifo, &format!(":uptime:{}\n\n", up.name()));
    cat_into(&f.fifo, &format!(":ps:{}\n", ps.name()));
    // Two requests in one write.
    cat_into(
        &f.fifo,
        &format!(":version:{}\n\n:which:{}\n\n", ver.name(), which.name()),
    );
    let t = up.read(SEC);
    assert!(
        t.starts_with("200 ok\nNow: ") && t.contains("\nUp Since: ") && t.contains(" [sec]\n"),
        "{t}"
    );
    let t = ps.read(SEC);
    assert!(t.starts_with("200 ok\n0\t"), "{t}");
    for role in ["master", "worker", "timer", "control"] {
        assert!(t.contains(&format!("\t{role}\n")), "{role}: {t}");
    }
    assert!(ver.read(SEC).starts_with("200 ok\nServer: rser ("));
    let t = which.read(SEC);
    for c in [
        "t_uac_from",
        "t_uac_dlg",
        "ul_show_contact",
        "ul_rm",
        "ul_rm_contact",
        "ul_add",
        "ul_dump",
        "ps",
        "uptime",
        "version",
        "which",
    ] {
        assert!(t.lines().any(|l| l == c), "{c}: {t}");
    }
}

#[test]
fn fifo_mode_sets_the_pipes_mode() {
    let f = start("mode", "fifo_mode=0660\n");
    let mode = std::fs::metadata(&f.fifo).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn the_seeds_t_uac_from_example_is_delivered_and_reported() {
    let f = start("uac-from", "");
    let uas = Peer::new();
    let dst = format!("sip:mrx@{}", uas.addr);
    let responder = std::thread::spawn(move || {
        let (m, from) = expect(&uas, "MESSAGE ", SEC).expect("the MESSAGE arrives");
        uas.send(from, &answer(&m, 200, "OK", "uas"));
        m
    });
    let r = Reply::new("xxx");
    // tm's seed example, its destination here.
    cat_into(
        &f.fifo,
        &format!(
            ":t_uac_from:{}\nMESSAGE\nsip:sender@iptel.org\n{dst}\nheader:value\nfoo:bar\nbznk:hjhjk\n\
             p_header: p_value\n\nbody body body\nyet body\nend of body\n.\n\n",
            r.name()
        ),
    );
    let m = responder.join().unwrap();
    assert!(m.starts_with(&format!("MESSAGE {dst} SIP/2.0\r\n")), "{m}");
    assert!(
        m.contains("\r\nheader:value\r\nfoo:bar\r\nbznk:hjhjk\r\np_header: p_value\r\n"),
        "{m}"
    );
    assert!(m.contains("From: <sip:sender@iptel.org>;tag="), "{m}");
    assert!(
        m.ends_with("\r\n\r\nbody body body\r\nyet body\r\nend of body\r\n"),
        "{m}"
    );
    let t = r.read(SEC);
    assert!(t.starts_with("200 OK\n"), "{t}");
    assert!(t.contains("\nCSeq: 1 MESSAGE\n"), "{t}");
}

#[test]
fn t_uac_dlg_runs_an_invite_and_acknowledges_its_final_reply() {
    let f = start("uac-dlg", "");
    // A 2xx: the ACK is a new transaction to the Contact (§13.2.2.4).
    let uas = Peer::new();
    let ruri = format!("sip:bob@{}", uas.addr);
    let contact = format!("sip:bob@{}", uas.addr);
    let theirs = contact.clone();
    let responder = std::thread::spawn(move || {
        let (inv, from) = expect(&uas, "INVITE ", SEC).expect("the INVITE arrives");
        uas.send(from, &answer(&inv, 180, "Ringing", "b1"));
        let ok = answer(&inv, 200, "OK", "b1").replace(
            "Content-Length: 0\r\n",
            &format!("Contact: <{theirs}>\r\nContent-Length: 0\r\n"),
        );
        uas.send(from, &ok);
        let (ack, _) = expect(&uas, "ACK ", SEC).expect("the 2xx is acknowledged");
        // A retransmitted 2xx is acknowledged again.
        uas.send(from, &ok);
        let (again, _) = expect(&uas, "ACK ", SEC).expect("the ACK again");
        // The callee hangs up: a BYE to the INVITE's Contact gets 200.
        let contact = common::header(&inv, "Contact").expect("the INVITE has a Contact");
        let at: std::net::SocketAddr = contact
            .trim_start_matches("<sip:rser@")
            .trim_end_matches('>')
            .parse()
            .unwrap();
        let bye = format!(
            "BYE sip:rser@{at} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbye1\r\nMax-Forwards: 70\r\n\
             From: {to};tag=b1\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            me = uas.addr,
            to = common::header(&inv, "To").unwrap(),
            from = common::header(&inv, "From").unwrap(),
            cid = common::header(&inv, "Call-ID").unwrap(),
        );
        uas.send(at, &bye);
        let (bye_ok, _) = expect(&uas, "SIP/2.0 ", SEC).expect("the BYE is answered");
        assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
        (inv, ack, again)
    });
    let r = Reply::new("inv");
    cat_into(
        &f.fifo,
        &format!(
            ":t_uac_dlg:{}\nINVITE\n{ruri}\n.\nFrom: <sip:alice@example.com>\nTo: <sip:bob@example.com>\n\
             Content-Type: application/sdp\n\nv=0\n.\n\n",
            r.name()
        ),
    );
    let (inv, ack, again) = responder.join().unwrap();
    let t = r.read(SEC);
    assert!(t.starts_with("200 OK\n"), "{t}");
    assert!(
        ack.starts_with(&format!("ACK {contact} SIP/2.0\r\n")),
        "{ack}"
    );
    assert!(
        ack.contains("CSeq: 1 ACK\r\n") && ack.contains(";tag=b1"),
        "{ack}"
    );
    let branch = |m: &str| {
        common::header(m, "Via")
            .unwrap()
            .split("branch=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(branch(&ack), branch(&inv));
    assert_eq!(branch(&again), branch(&ack));
    assert!(inv.ends_with("\r\n\r\nv=0\r\n"), "{inv}");

    // A 486: the ACK belongs to the INVITE's transaction (§17.1.1.3).
    let uas = Peer::new();
    let ruri = format!("sip:carol@{}", uas.addr);
    let responder = std::thread::spawn(move || {
        let (inv, from) = expect(&uas, "INVITE ", SEC).expect("the INVITE arrives");
        uas.send(from, &answer(&inv, 486, "Busy Here", "c1"));
        let (ack, _) = expect(&uas, "ACK ", SEC).expect("the 486 is acknowledged");
        (inv, ack)
    });
    let r = Reply::new("busy");
    cat_into(
        &f.fifo,
        &format!(":t_uac_dlg:{}\nINVITE\n{ruri}\n.\n\n.\n\n", r.name()),
    );
    let (inv, ack) = responder.join().unwrap();
    assert!(r.read(SEC).starts_with("486 Busy Here\n"));
    assert!(ack.starts_with(&format!("ACK {ruri} SIP/2.0\r\n")), "{ack}");
    assert_eq!(branch(&ack), branch(&inv));
}

#[test]
fn an_invite_answered_only_with_ringing_is_cancelled_at_fr_inv_timer() {
    let f = start("uac-cancel", "");
    let uas = Peer::new();
    let ruri = format!("sip:dave@{}", uas.addr);
    let responder = std::thread::spawn(move || {
        let (inv, from) = expect(&uas, "INVITE ", SEC).expect("the INVITE arrives");
        uas.send(from, &answer(&inv, 180, "Ringing", "d1"));
        let (cancel, from) = expect(&uas, "CANCEL ", SEC).expect("fr_inv_timer cancels it");
        uas.send(from, &answer(&cancel, 200, "OK", "d1"));
        uas.send(from, &answer(&inv, 487, "Request Terminated", "d1"));
        let (ack, _) = expect(&uas, "ACK ", SEC).expect("the 487 is acknowledged");
        (cancel, ack)
    });
    let r = Reply::new("cancel");
    cat_into(
        &f.fifo,
        &format!(":t_uac_dlg:{}\nINVITE\n{ruri}\n.\n\n.\n\n", r.name()),
    );
    let (cancel, ack) = responder.join().unwrap();
    assert!(r.read(SEC).starts_with("408 Request Timeout\n"));
    assert!(cancel.contains("CSeq: 1 CANCEL\r\n"), "{cancel}");
    assert!(ack.contains("CSeq: 1 ACK\r\n"), "{ack}");
}

/// A REGISTER for `user` from `p`, answered 200.
fn register(f: &Fixture, p: &Peer, user: &str) {
    let msg = p
        .request(
            "REGISTER",
            &format!("sip:{}", f.server.addr),
            &format!("reg-{user}"),
            &format!("Contact: <sip:{user}@{}>\r\nExpires: 600\r\n", p.addr),
        )
        .replace(
            &format!("To: <sip:{}>", f.server.addr),
            &format!("To: <sip:{user}@{}>", f.server.addr),
        );
    p.send(f.server.addr, &msg);
    let (reply, _) = expect(p, "SIP/2.0 ", SEC).expect("a reply");
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
}

#[test]
fn the_user_location_commands() {
    let f = start("ul", "");
    let phone = Peer::new();
    register(&f, &phone, "alice");
    let show = |tag: &str, user: &str| {
        let r = Reply::new(tag);
        cat_into(
            &f.fifo,
            &format!(":ul_show_contact:{}\nlocation\n{user}\n\n", r.name()),
        );
        r.read(SEC)
    };
    let t = show("show1", "alice@example.com");
    assert!(
        t.starts_with(&format!("200 OK\n<sip:alice@{}>;expires=", phone.addr)),
        "{t}"
    );
    assert!(show("show2", "nobody").starts_with("404 Username nobody in table location not found"));
    assert!(show("show3", "alice").len() > 10);
    let r = Reply::new("tbl");
    cat_into(
        &f.fifo,
        &format!(":ul_show_contact:{}\nnosuchtable\nalice\n\n", r.name()),
    );
    assert_eq!(r.read(SEC), "400 table (nosuchtable) not found\n");

    // ul_add, then a second contact shows, then ul_rm_contact takes it.
    let r = Reply::new("add");
    cat_into(
        &f.fifo,
        &format!(
            ":ul_add:{}\nlocation\nalice\nsip:alice@192.0.2.5:5060\n3600\n0.5\n0\n\n",
            r.name()
        ),
    );
    assert_eq!(
        r.read(SEC),
        "200 Added to table\n('alice','sip:alice@192.0.2.5:5060') to 'location'\n"
    );
    let t = show("show4", "alice");
    assert!(
        t.contains("<sip:alice@192.0.2.5:5060>;q=0.50;expires=3"),
        "{t}"
    );
    let dump = Reply::new("dump");
    cat_into(&f.fifo, &format!(":ul_dump:{}\n", dump.name()));
    let t = dump.read(SEC);
    assert!(
        t.starts_with("200 ok\n===Domain list===\n---Domain---\nname : 'location'\n"),
        "{t}"
    );
    assert!(
        t.contains("aor   : 'alice'\n") && t.contains("Contact: 'sip:alice@192.0.2.5:5060'\n"),
        "{t}"
    );
    assert!(
        t.contains(
            "Call-ID: 'The-Answer-To-The-Ultimate-Question-Of-Life-Universe-And-Everything'\n"
        ),
        "{t}"
    );
    let r = Reply::new("rmc");
    cat_into(
        &f.fifo,
        &format!(
            ":ul_rm_contact:{}\nlocation\nalice\nsip:alice@192.0.2.5:5060\n\n",
            r.name()
        ),
    );
    assert_eq!(
        r.read(SEC),
        "200 Contact (alice, sip:alice@192.0.2.5:5060) deleted from table location\n"
    );
    assert!(!show("show5", "alice").contains("192.0.2.5"));
    let r = Reply::new("rm");
    cat_into(
        &f.fifo,
        &format!(":ul_rm:{}\nlocation\nalice\n\n", r.name()),
    );
    assert_eq!(r.read(SEC), "200 user (location, alice) deleted\n");
    assert!(show("show6", "alice").starts_with("404 "));
    // Bad arguments are 400s.
    let r = Reply::new("badq");
    cat_into(
        &f.fifo,
        &format!(
            ":ul_add:{}\nlocation\nbob\nsip:bob@192.0.2.6\nsoon\n0.5\n\n",
            r.name()
        ),
    );
    assert!(r.read(SEC).starts_with("400 "));
    let r = Reply::new("few");
    cat_into(&f.fifo, &format!(":ul_rm:{}\nlocation\n\n", r.name()));
    assert!(
        r.read(SEC)
            .starts_with("400 ul_rm: expects the lines table, user")
    );
}

#[test]
fn bad_requests_get_400_or_500_and_never_block_the_next() {
    let f = start("bad", "");
    let r = Reply::new("unknown");
    cat_into(&f.fifo, &format!(":print:{}\nhello\n\n", r.name()));
    assert_eq!(r.read(SEC), "500 command 'print' not available\n");

    // A writer that goes away mid-request: refused, the next served.
    let cut = Reply::new("cut");
    cat_into(
        &f.fifo,
        &format!(
            ":t_uac_from:{}\nMESSAGE\nsip:a@b\nsip:c@127.0.0.1\nX: y\n",
            cut.name()
        ),
    );
    assert!(
        cut.read(SEC)
            .starts_with("400 the request ended before its '.' line")
    );
    let ok = Reply::new("after-cut");
    cat_into(&f.fifo, &format!(":version:{}\n", ok.name()));
    assert!(ok.read(SEC).starts_with("200 ok"));

    // Oversize: refused with 400; the next request is served.
    let big = Reply::new("big");
    let body = "x".repeat(1000) + "\n";
    cat_into(
        &f.fifo,
        &format!(
            ":t_uac_from:{}\nMESSAGE\nsip:a@b\nsip:c@127.0.0.1\n\n{}.\n\n",
            big.name(),
            body.repeat(70)
        ),
    );
    assert!(big.read(SEC).starts_with("400 request larger than"));
    let ok = Reply::new("after-big");
    cat_into(&f.fifo, &format!(":ps:{}\n", ok.name()));
    assert!(ok.read(SEC).starts_with("200 ok"));

    // Garbage is logged, then the next request is served; a reply file
    // name with a path in it is refused.
    cat_into(
        &f.fifo,
        "this is not a request\nnor this\n\n:version:../etc/x\n",
    );
    let ok = Reply::new("after-garbage");
    cat_into(&f.fifo, &format!(":version:{}\n", ok.name()));
    assert!(ok.read(SEC).starts_with("200 ok"));
    assert!(
        f.server
            .wait_log("forbidden reply file name", SEC)
            .is_some()
    );

    // A bad UAC request: 400 with the reason.
    let r = Reply::new("noscheme");
    cat_into(
        &f.fifo,
        &format!(":t_uac_dlg:{}\nMESSAGE\nnot-a-uri\n.\n\n.\n\n", r.name()),
    );
    assert!(
        r.read(SEC)
            .starts_with("400 t_uac_dlg: 'not-a-uri' is not a SIP URI")
    );
}

#[test]
fn a_reply_pipe_made_by_the_client_gets_the_reply() {
    let f = start("pipe", "");
    let r = Reply::new("pipe");
    nix::unistd::mkfifo(&r.0, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let path = r.0.clone();
    let reader = std::thread::spawn(move || std::fs::read_to_string(path).unwrap());
    cat_into(&f.fifo, &format!(":version:{}\n", r.name()));
    let deadline = Instant::now() + SEC;
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the reply pipe got nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(reader.join().unwrap().starts_with("200 ok\nServer: rser"));
}
