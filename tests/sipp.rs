//! sipp, an independent SIP implementation, runs its built-in uac and uas
//! scenarios through rser: every call must complete. sipp comes from
//! Debian's `sip-tester` (tests/setup.sh installs it).

mod common;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// A free UDP port on loopback (sipp needs a number up front).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sipp() -> Command {
    let mut c = Command::new("sipp");
    c.stdin(Stdio::null());
    c
}

#[test]
fn sipp_calls_complete_through_rser() {
    assert!(
        Command::new("sipp").arg("-v").output().is_ok(),
        "sipp is not installed: run `bash tests/setup.sh` (Debian package sip-tester)"
    );
    let uas_port = free_port();
    let config = format!(
        r#"
loadmodule "sl.so"
loadmodule "maxfwd.so"
route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); break; }};
    forward(127.0.0.1, {uas_port});
}}
"#
    );
    let server = Server::start(&config, 2, &[]);
    let dir = std::env::temp_dir().join(format!("rser-sipp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _uas = Killed(
        sipp()
            .current_dir(&dir)
            .args(["-sn", "uas", "-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-nostdin", "-timeout", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp uas starts"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let calls = 50;
    let mut uac = Killed(
        sipp()
            .current_dir(&dir)
            .arg("-sn")
            .arg("uac")
            .arg(server.addr.to_string())
            .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
            .args([
                "-m",
                &calls.to_string(),
                "-r",
                "25",
                "-nostdin",
                "-timeout",
                "30",
            ])
            // Two workers may pass a 200 up before the 180 (anchors/README).
            .args(["-default_behaviors", "all,-abortunexp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp uac starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    let status = loop {
        if let Some(s) = uac.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sipp uac did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut o) = uac.0.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut out);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let summary = out
        .lines()
        .filter(|l| l.contains("Successful call") || l.contains("Failed call"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(status.success(), "sipp uac: {status:?}\n{summary}");
    let successful = out
        .lines()
        .filter(|l| l.contains("Successful call"))
        .filter_map(|l| l.split('|').nth(2)?.trim().parse::<u32>().ok())
        .next_back();
    assert_eq!(successful, Some(calls), "{summary}");
}
