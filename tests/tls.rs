//! SIP over TLS against the real binary, with a certificate authority the
//! test makes (rcgen) and rustls as the user agents' TLS: a registration
//! and a call between two TLS user agents through rser, and mutual TLS
//! (`require_certificate`) refusing a client without a certificate.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use common::stream::{Stream, hold_idle, raise_open_files};
use common::{Server, header, status};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A CA, rser's certificate (for 127.0.0.1) and a user agent's, as PEM
/// files in `dir`.
struct Pki {
    /// The CA, to sign more.
    issuer: Issuer<'static, KeyPair>,
    ca: String,
    server_cert: String,
    server_key: String,
    ua_cert: String,
    ua_key: String,
}

/// A certificate for `san` signed by `issuer`, and its key, as PEM.
fn leaf(issuer: &Issuer<'static, KeyPair>, san: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![san.to_string()])
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn make_pki(dir: &Path) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let (server_cert, server_key) = leaf(&issuer, "127.0.0.1");
    let (ua_cert, ua_key) = leaf(&issuer, "ua.example.test");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    Pki {
        issuer,
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        ua_cert: write("ua.pem", &ua_cert),
        ua_key: write("ua.key", &ua_key),
    }
}

fn config(pki: &Pki, require: bool, body: &str) -> String {
    format!(
        "enable_tls=yes\n\
         loadmodule \"tls.so\"\n\
         modparam(\"tls\", \"certificate\", \"{}\")\n\
         modparam(\"tls\", \"private_key\", \"{}\")\n\
         modparam(\"tls\", \"ca_list\", \"{}\")\n\
         modparam(\"tls\", \"verify_certificate\", {})\n\
         modparam(\"tls\", \"require_certificate\", {})\n{body}",
        pki.server_cert,
        pki.server_key,
        pki.ca,
        u8::from(require),
        u8::from(require)
    )
}

fn start(config: &str) -> (Server, SocketAddr) {
    let server = Server::spawn_with(
        config,
        2,
        &[],
        &["-l", "udp:127.0.0.1:0", "-l", "tls:127.0.0.1:0"],
    );
    let tls = server.tcp.expect("rser listens on TLS");
    (server, tls)
}

/// A user agent's TLS connection to `to`, checking rser's certificate
/// against the CA; with `own`, presenting its certificate.
fn connect(to: SocketAddr, pki: &Pki, own: bool) -> Stream {
    connect_with(to, client_config(pki, own))
}

/// A user agent's TLS configuration: rser's certificate checked against
/// the CA; with `own`, its certificate presented.
fn client_config(pki: &Pki, own: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&pki.ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(if own {
        let chain = vec![CertificateDer::from_pem_file(&pki.ua_cert).unwrap()];
        let key = PrivateKeyDer::from_pem_file(&pki.ua_key).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    })
}

/// A TLS connection to `to` with `cfg`.
fn connect_with(to: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Stream {
    let name = ServerName::IpAddress(to.ip().into());
    let session = rustls::ClientConnection::new(cfg, name).unwrap();
    Stream::tls(TcpStream::connect(to).unwrap(), session)
}

const REGISTRAR: &str = r#"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "rr.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
route {
    if (loose_route()) { t_relay(); exit; };
    if (method == "REGISTER") { save("location"); exit; };
    if (!lookup("location")) { sl_reply_error(); exit; };
    record_route();
    if (!t_relay()) { sl_reply_error(); };
}
"#;

/// Two user agents over TLS: one registers, the other calls it; the
/// INVITE reaches the callee on its own TLS connection, its answer the
/// caller on theirs, and the caller's BYE follows the route set.
#[test]
fn a_registration_and_a_call_between_two_tls_user_agents() {
    let dir = common::temp_dir("tls-call");
    std::fs::create_dir_all(&dir).unwrap();
    let pki = make_pki(&dir);
    let (_server, tls) = start(&config(&pki, false, REGISTRAR));
    let mut bob = connect(tls, &pki, true);
    // Bob's Contact is its connection's own address: the in-dialog BYE
    // sent there reuses the connection.
    let contact = format!("sip:bob@{};transport=tls", bob.local());
    let reg = bob
        .request(
            "REGISTER",
            "sip:127.0.0.1",
            "treg",
            &format!("Contact: <{contact}>\r\nExpires: 600\r\n"),
        )
        .replace("SIP/2.0/TCP", "SIP/2.0/TLS")
        .replace("To: <sip:127.0.0.1>", "To: <sip:bob@127.0.0.1>");
    bob.send(reg.as_bytes());
    let ok = bob.expect("SIP/2.0 ").expect("a reply over TLS");
    assert_eq!(status(&ok), Some(200), "{ok}");
    let mut alice = connect(tls, &pki, false);
    let invite = alice
        .request("INVITE", "sip:bob@127.0.0.1", "tcall", "")
        .replace("SIP/2.0/TCP", "SIP/2.0/TLS");
    alice.send(invite.as_bytes());
    let got = bob
        .expect("INVITE ")
        .expect("the INVITE on bob's TLS connection");
    assert!(
        header(&got, "Via").unwrap().starts_with("SIP/2.0/TLS"),
        "{got}"
    );
    let rr = common::headers(&got, "Record-Route");
    assert_eq!(rr.len(), 1, "one transport, one interface: {got}");
    assert!(rr[0].contains("transport=tls"), "{got}");
    bob.send(common::answer(&got, 200, "OK", "bob").as_bytes());
    let ok = alice
        .expect("SIP/2.0 200")
        .expect("the 200 over alice's TLS connection");
    assert_eq!(header(&ok, "Call-ID"), Some("tcall"));
    let bye = alice
        .request("BYE", &contact, "tcall", &format!("Route: {}\r\n", rr[0]))
        .replace("SIP/2.0/TCP", "SIP/2.0/TLS")
        .replace(
            &format!("To: <{contact}>"),
            "To: <sip:bob@127.0.0.1>;tag=bob",
        )
        .replace("CSeq: 1 BYE", "CSeq: 2 BYE");
    alice.send(bye.as_bytes());
    let b = bob.expect("BYE ").expect("the BYE over bob's connection");
    bob.send(common::answer(&b, 200, "OK", "bob").as_bytes());
    assert!(alice.expect("SIP/2.0 200").is_some(), "the BYE's 200");
    let _ = std::fs::remove_dir_all(&dir);
}

const OPTIONS_OK: &str = "loadmodule \"sl.so\"\nroute { sl_send_reply(\"200\", \"OK\"); }\n";

/// `require_certificate`: a client without a certificate is refused
/// during the handshake; one with a certificate from the CA is served.
#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let dir = common::temp_dir("tls-mutual");
    std::fs::create_dir_all(&dir).unwrap();
    let pki = make_pki(&dir);
    let (_server, tls) = start(&config(&pki, true, OPTIONS_OK));
    let mut anonymous = connect(tls, &pki, false);
    let m = anonymous.request("OPTIONS", "sip:127.0.0.1", "anon", "");
    let sent = anonymous.try_send(m.as_bytes());
    let answered = sent.is_ok() && anonymous.expect("SIP/2.0 200").is_some();
    assert!(!answered, "served without a certificate");
    let mut known = connect(tls, &pki, true);
    let m = known.request("OPTIONS", "sip:127.0.0.1", "known", "");
    known.send(m.as_bytes());
    assert!(
        known.expect("SIP/2.0 200").is_some(),
        "a certified client is served"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate file that is not there is refused by `-c` (and a start).
#[test]
fn tls_without_its_setup_is_refused() {
    let dir = common::temp_dir("tls-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.cfg");
    std::fs::write(
        &cfg,
        "enable_tls=yes\nloadmodule \"tls.so\"\nmodparam(\"tls\", \"certificate\", \"/nonexistent.pem\")\nroute { drop; }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rser"))
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("/nonexistent.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// rser opening TLS: `t_relay_to_tls` to a callee whose certificate the
/// CA signed (verified, with `verify_certificate`), from a caller over
/// UDP; a callee with a certificate from elsewhere is refused, and the
/// caller gets a failure at once instead of waiting.
#[test]
fn rser_opens_tls_to_a_callee_and_verifies_it() {
    let dir = common::temp_dir("tls-out");
    std::fs::create_dir_all(&dir).unwrap();
    let pki = make_pki(&dir);
    let other_dir = dir.join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let stranger = make_pki(&other_dir);
    for (callee_pki, trusted) in [(&pki, true), (&stranger, false)] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let callee = listener.local_addr().unwrap();
        let script = format!(
            "loadmodule \"sl.so\"\nloadmodule \"tm.so\"\nloadmodule \"rr.so\"\n\
             route {{ record_route(); rewritehostport(\"{callee}\"); \
             if (!t_relay_to_tls()) {{ sl_reply_error(); }} }}\n"
        );
        let (server, _) = start(&config(&pki, true, &script));
        let caller = common::Peer::new();
        caller.send(
            server.addr,
            &caller.request("INVITE", "sip:bob@127.0.0.1", "out", ""),
        );
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let tcp = loop {
            if let Ok((s, _)) = listener.accept() {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "rser connects");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        tcp.set_nonblocking(false).unwrap();
        let chain = vec![CertificateDer::from_pem_file(&callee_pki.server_cert).unwrap()];
        let key = PrivateKeyDer::from_pem_file(&callee_pki.server_key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let session = rustls::ServerConnection::new(Arc::new(cfg)).unwrap();
        let mut leg = Stream::tls(tcp, session);
        let got = leg.expect("INVITE ");
        if trusted {
            let got = got.expect("the INVITE over TLS");
            assert!(
                header(&got, "Via").unwrap().starts_with("SIP/2.0/TLS"),
                "{got}"
            );
            let rr = common::headers(&got, "Record-Route");
            assert_eq!(rr.len(), 2, "UDP in, TLS out: {got}");
            assert!(
                rr[0].contains("transport=tls") && rr[0].contains("r2=on"),
                "{got}"
            );
            leg.send(common::answer(&got, 200, "OK", "callee").as_bytes());
            let (ok, _) = common::expect(&caller, "SIP/2.0 200", std::time::Duration::from_secs(3))
                .expect("the 200 over UDP");
            assert_eq!(header(&ok, "Call-ID"), Some("out"));
        } else {
            assert!(got.is_none(), "nothing reaches an unverified callee");
            // Past tm's 100 Trying: a final failure, well before fr_timer.
            let r = std::iter::from_fn(|| {
                common::expect(&caller, "SIP/2.0 ", std::time::Duration::from_secs(5))
            })
            .map(|(m, _)| m)
            .find(|m| status(m).is_some_and(|c| c >= 200))
            .expect("a final reply for the caller");
            assert!(status(&r).is_some_and(|c| c >= 400), "{r}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The certificate a TLS server at `to` presents (a handshake, no SIP).
fn presented(to: SocketAddr, pki: &Pki) -> Vec<u8> {
    presented_to(to, pki, ServerName::IpAddress(to.ip().into()))
}

/// The same, asking for `name` by SNI.
fn presented_to(to: SocketAddr, pki: &Pki, name: ServerName<'static>) -> Vec<u8> {
    let mut c = rustls::ClientConnection::new(client_config(pki, false), name).unwrap();
    let mut tcp = TcpStream::connect(to).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    while c.is_handshaking() {
        c.complete_io(&mut tcp).unwrap();
    }
    c.peer_certificates().unwrap()[0].to_vec()
}

/// `tls.reload` reads the certificate files again (new connections get
/// the new one); `tls.list` and `core.tcp_info` report the connections.
#[test]
fn tls_reload_list_and_tcp_info_over_the_control_interface() {
    let dir = common::temp_dir("tls-reload");
    std::fs::create_dir_all(&dir).unwrap();
    let pki = make_pki(&dir);
    let sock = dir.join("ctl.sock");
    let server = Server::spawn_with(
        &config(&pki, false, OPTIONS_OK),
        2,
        &["-s", sock.to_str().unwrap()],
        &["-l", "udp:127.0.0.1:0", "-l", "tls:127.0.0.1:0"],
    );
    let tls = server.tcp.expect("a TLS address");
    let first = presented(tls, &pki);
    let mut ua = connect(tls, &pki, false);
    let m = ua.request("OPTIONS", "sip:127.0.0.1", "listed", "");
    ua.send(m.as_bytes());
    assert!(ua.expect("SIP/2.0 200").is_some());
    let list = common::rpc(&sock, "tls.list", serde_json::json!([]));
    let conns = list["result"]["connections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conns.iter().any(|c| c["src_port"] == ua.local().port()),
        "{list}"
    );
    let info = common::rpc(&sock, "core.tcp_info", serde_json::json!([]));
    assert!(
        info["result"]["opened_tls_connections"].as_u64() >= Some(1),
        "{info}"
    );
    // A new certificate from the same CA in the same files, then
    // tls.reload.
    let (cert, key) = leaf(&pki.issuer, "127.0.0.1");
    std::fs::write(&pki.server_cert, cert).unwrap();
    std::fs::write(&pki.server_key, key).unwrap();
    let r = common::rpc(&sock, "tls.reload", serde_json::json!([]));
    assert_eq!(r["result"]["reloaded"], true, "{r}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut now_presented = presented(tls, &pki);
    while now_presented == first && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        now_presented = presented(tls, &pki);
    }
    assert_ne!(now_presented, first, "the new certificate after tls.reload");
    // The connection made before keeps working.
    let m = ua.request("OPTIONS", "sip:127.0.0.1", "after", "");
    ua.send(m.as_bytes());
    assert!(ua.expect("SIP/2.0 200").is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kamailio's tls.cfg (the tls module's `config`): the default server
/// domain's certificate, and another domain's chosen by SNI.
#[test]
fn a_tls_config_file_gives_a_certificate_per_sni_name() {
    let dir = common::temp_dir("tls-sni");
    std::fs::create_dir_all(&dir).unwrap();
    let pki = make_pki(&dir);
    let (other_cert, other_key) = leaf(&pki.issuer, "other.example.test");
    let other_cert_path = dir.join("other.pem");
    let other_key_path = dir.join("other.key");
    std::fs::write(&other_cert_path, &other_cert).unwrap();
    std::fs::write(&other_key_path, other_key).unwrap();
    let tls_cfg = dir.join("tls.cfg");
    std::fs::write(
        &tls_cfg,
        format!(
            "[server:default]\nmethod = TLSv1.2+\ncertificate = {}\nprivate_key = {}\n\n\
             [server:127.0.0.1:5061]\nserver_name = other.example.test\n\
             certificate = {}\nprivate_key = {}\n\n[client:default]\nverify_certificate = no\n",
            pki.server_cert,
            pki.server_key,
            other_cert_path.display(),
            other_key_path.display()
        ),
    )
    .unwrap();
    let cfg = format!(
        "enable_tls=yes\nloadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"{}\")\n{OPTIONS_OK}",
        tls_cfg.display()
    );
    let server = Server::spawn_with(
        &cfg,
        1,
        &[],
        &["-l", "udp:127.0.0.1:0", "-l", "tls:127.0.0.1:0"],
    );
    let tls = server.tcp.expect("a TLS address");
    let default = presented(tls, &pki);
    let named = presented_to(
        tls,
        &pki,
        ServerName::try_from("other.example.test").unwrap(),
    );
    let pem_der = |pem: &str| {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    };
    assert_eq!(named, pem_der(&other_cert), "SNI other.example.test");
    assert_ne!(default, named, "no SNI: the default domain's");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 10,000 idle TLS connections, each after one exchange, held while
/// requests keep being answered over UDP; every idle one still answers.
#[test]
fn ten_thousand_idle_tls_connections_while_requests_flow() {
    const IDLE: usize = 10_000;
    if raise_open_files() < (IDLE as u64) + 1_000 {
        eprintln!("skipped: the open-file limit is below {IDLE} connections");
        return;
    }
    let dir = common::temp_dir("tls-idle");
    std::fs::create_dir_all(&dir).unwrap();
    let pki = make_pki(&dir);
    let body = format!(
        "tcp_max_connections={n}\ntcp_accept_iplimit={n}\n{OPTIONS_OK}",
        n = IDLE + 1_000
    );
    let server = Server::spawn_with(
        &config(&pki, false, &body),
        2,
        &["-m", "64"],
        &["-l", "udp:127.0.0.1:0", "-l", "tls:127.0.0.1:0"],
    );
    let tls = server.tcp.expect("a TLS address");
    let udp = common::Peer::new();
    let cfg = client_config(&pki, false);
    hold_idle(
        IDLE,
        || connect_with(tls, cfg.clone()),
        &udp,
        server.addr,
        "sip:127.0.0.1",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
