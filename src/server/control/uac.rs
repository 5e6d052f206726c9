//! `tm.t_uac`: a request started from outside the network, as SER's FIFO
//! `:t_uac_from:` did and Kamailio's `tm.t_uac_wait` does. The control
//! process is the UAC: it builds the request, sends it from a UDP socket
//! of its own on the listen address, runs the client transaction
//! (`modules/tm/uac.rs`) and answers with the final reply. Non-INVITE
//! only (an INVITE would need the ACK and a dialog this does not keep).
//!
//! Parameters, as Kamailio's: method, Request-URI, next hop (`.` for the
//! Request-URI's host), extra header lines, body.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use serde_json::{Value, json};

use super::rpc::{INTERNAL_ERROR, NOT_AVAILABLE, Params, RpcError};
use crate::modules::tm::Timers;
use crate::modules::tm::uac::{Step, Uac};
use crate::server::worker::now_ms;
use crate::sip::{Message, Method, Uri};

/// What the control process needs to start transactions.
#[derive(Debug, Clone)]
pub struct UacSetup {
    pub timers: Timers,
    /// The first listen address: the Via's sent-by host, and the address
    /// the UAC's socket binds (on an ephemeral port).
    pub local: SocketAddr,
}

/// Headers the UAC writes itself.
const OURS: &[&str] = &["via", "call-id", "cseq", "max-forwards", "content-length"];

fn random_hex() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn optional<'a>(p: &Params<'a>, i: usize, name: &str) -> Result<Option<&'a str>, RpcError> {
    Ok(p.str(i, name)?.filter(|s| !s.is_empty() && *s != "."))
}

/// The request's text, or what is wrong with the parameters.
fn build(
    method: &str,
    ruri: &str,
    headers: &str,
    body: &str,
    local: SocketAddr,
    branch: &str,
) -> Result<Vec<u8>, RpcError> {
    let mut extra = String::new();
    let (mut has_from, mut has_to) = (false, false);
    for line in headers.split(['\r', '\n']).filter(|l| !l.trim().is_empty()) {
        let (name, _) = line
            .split_once(':')
            .ok_or_else(|| RpcError::params(format!("header line '{line}' has no ':'")))?;
        let name = name.trim().to_ascii_lowercase();
        if OURS.contains(&name.as_str()) {
            return Err(RpcError::params(format!("{name} is written by the UAC")));
        }
        has_from |= name == "from" || name == "f";
        has_to |= name == "to" || name == "t";
        extra.push_str(line.trim_end());
        extra.push_str("\r\n");
    }
    let call_id = format!("{}@{}", random_hex(), local.ip());
    let mut text = format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\nMax-Forwards: 70\r\n"
    );
    if !has_from {
        text.push_str(&format!(
            "From: <sip:rser@{}>;tag={}\r\n",
            local.ip(),
            random_hex()
        ));
    }
    if !has_to {
        text.push_str(&format!("To: <{ruri}>\r\n"));
    }
    text.push_str(&format!(
        "Call-ID: {call_id}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    // What we send must be a message we would accept.
    let msg = Message::parse(text.as_bytes())
        .map_err(|e| RpcError::params(format!("the request does not parse: {e}")))?;
    msg.from()
        .and(msg.to())
        .map_err(|e| RpcError::params(format!("the request does not parse: {e}")))?;
    Ok(text.into_bytes())
}

/// Where to send: the next hop's, else the Request-URI's host and port.
fn target(uri: &str) -> Result<SocketAddr, RpcError> {
    let u = Uri::parse(uri.as_bytes())
        .map_err(|_| RpcError::params(format!("'{uri}' is not a SIP URI")))?;
    let host = std::str::from_utf8(u.maddr.unwrap_or(u.host_text()))
        .map_err(|_| RpcError::params("bad host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    (host.as_str(), u.port_or_default())
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| RpcError::new(INTERNAL_ERROR, format!("cannot resolve {host}")))
}

pub fn t_uac(setup: Option<&UacSetup>, p: &Params) -> Result<Value, RpcError> {
    let setup = setup.ok_or_else(|| RpcError::new(NOT_AVAILABLE, "tm is not loaded"))?;
    let method = p.required_str(0, "method")?;
    let ruri = p.required_str(1, "ruri")?;
    let next_hop = optional(p, 2, "next_hop")?;
    let headers = optional(p, 3, "headers")?.unwrap_or("");
    let body = optional(p, 4, "body")?.unwrap_or("");
    match Method::from_bytes(method.as_bytes()) {
        Method::Invite | Method::Ack | Method::Cancel => {
            return Err(RpcError::params(
                "tm.t_uac starts non-INVITE transactions (MESSAGE, NOTIFY, OPTIONS, ...)",
            ));
        }
        _ if !method.bytes().all(|b| b.is_ascii_alphanumeric()) || method.is_empty() => {
            return Err(RpcError::params(format!("'{method}' is not a method")));
        }
        _ => {}
    }
    let to = target(next_hop.unwrap_or(ruri))?;
    let sock = UdpSocket::bind(SocketAddr::new(setup.local.ip(), 0))
        .map_err(|e| RpcError::new(INTERNAL_ERROR, e.to_string()))?;
    let local = sock
        .local_addr()
        .map_err(|e| RpcError::new(INTERNAL_ERROR, e.to_string()))?;
    let branch = format!("z9hG4bKuac{}", random_hex());
    let request = build(method, ruri, headers, body, local, &branch)?;
    let mut uac = Uac::new(now_ms(), &setup.timers);
    let send = |s: &UdpSocket| s.send_to(&request, to).map(|_| ());
    send(&sock).map_err(|e| RpcError::new(INTERNAL_ERROR, format!("send to {to}: {e}")))?;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = now_ms();
        match uac.poll(now) {
            Step::Send => {
                let _ = send(&sock);
            }
            Step::Done(_) | Step::TimedOut => break,
            Step::Wait(until) => {
                let wait = Duration::from_millis(until.saturating_sub(now).max(1));
                let _ = sock.set_read_timeout(Some(wait));
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(reply) = Message::parse(&buf[..n]) else {
                    continue;
                };
                // §17.1.3: the reply is ours if its top Via's branch is.
                let ours = reply
                    .top_via()
                    .ok()
                    .and_then(|v| v.branch)
                    .is_some_and(|b| b == branch.as_bytes());
                if let (true, Some(code)) = (ours, reply.status()) {
                    uac.on_reply(code, now_ms());
                    if code >= 200 {
                        return Ok(json!({
                            "code": code,
                            "reason": String::from_utf8_lossy(reply.reason()),
                            "destination": to.to_string(),
                            "reply": String::from_utf8_lossy(&buf[..n]),
                        }));
                    }
                }
            }
        }
    }
    Ok(json!({
        "code": 408,
        "reason": "Request Timeout",
        "destination": to.to_string(),
        "reply": Value::Null,
    }))
}
