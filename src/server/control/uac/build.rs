//! The texts a UAC sends, as pure code: the request from what the
//! operator gave (method, Request-URI, header lines, body), and for an
//! INVITE the ACK to its final reply (RFC 3261 §17.1.1.3 for a non-2xx,
//! §13.2.2.4 for a 2xx) and the CANCEL that ends it (§9.1).

use std::net::SocketAddr;

use crate::sip::{HeaderKind, Message, Method, NameAddr, Uri};

/// Headers the UAC writes itself.
const OURS: &[&str] = &[
    "via",
    "v",
    "call-id",
    "i",
    "cseq",
    "max-forwards",
    "content-length",
    "l",
];

/// Bounds on what an operator may ask for.
pub const MAX_HEADERS_TEXT: usize = 8 * 1024;
pub const MAX_BODY: usize = 16 * 1024;

/// What the operator asked to send.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub method: String,
    pub ruri: String,
    /// Where to send when not the Request-URI's host (`.` or empty: none).
    pub next_hop: Option<String>,
    /// SER's `:t_uac_from:` sender URI: the From when `headers` has none.
    pub from: Option<String>,
    /// Header lines, CR or LF separated.
    pub headers: String,
    pub body: String,
}

/// A request built, with what its ACK and CANCEL repeat.
#[derive(Debug, Clone)]
pub struct Built {
    pub text: Vec<u8>,
    pub method: Method,
    pub method_text: String,
    pub ruri: String,
    /// Values as sent.
    pub via: String,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    /// Route header values the operator gave (a preloaded route set).
    pub routes: Vec<String>,
}

/// Random hex for tags, Call-IDs and branches.
pub fn random_hex() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks what was asked; the reason is a SIP reason phrase's text.
pub fn check(ask: &Ask) -> Result<Method, String> {
    let m = ask.method.as_str();
    if m.is_empty() || m.len() > 32 || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!("'{m}' is not a method"));
    }
    let method = Method::from_bytes(m.as_bytes());
    if matches!(method, Method::Ack | Method::Cancel) {
        return Err(format!("{m} is sent by the UAC itself, as its INVITE's"));
    }
    if ask.headers.len() > MAX_HEADERS_TEXT || ask.body.len() > MAX_BODY {
        return Err("headers or body too large".into());
    }
    Uri::parse(ask.ruri.as_bytes()).map_err(|_| format!("'{}' is not a SIP URI", ask.ruri))?;
    Ok(method)
}

/// The request's text from `local` (the UAC's socket), or what is wrong.
pub fn request(ask: &Ask, local: SocketAddr, branch: &str) -> Result<Built, String> {
    let method = check(ask)?;
    let m = ask.method.to_ascii_uppercase();
    let mut extra = String::new();
    let (mut from, mut to) = (None, None);
    let mut has_contact = false;
    let mut routes = Vec::new();
    for line in ask
        .headers
        .split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
    {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line '{line}' has no ':'"))?;
        let name = name.trim().to_ascii_lowercase();
        if OURS.contains(&name.as_str()) {
            return Err(format!("{name} is written by the UAC"));
        }
        match name.as_str() {
            "from" | "f" => from = Some(value.trim().to_string()),
            "to" | "t" => to = Some(value.trim().to_string()),
            _ => {
                has_contact |= name == "contact" || name == "m";
                if name == "route" {
                    routes.push(value.trim().to_string());
                }
                extra.push_str(line.trim_end());
                extra.push_str("\r\n");
            }
        }
    }
    let host = match local {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let from = match (from, ask.from.as_deref().filter(|f| !f.is_empty())) {
        (Some(f), _) => f,
        (None, Some(uri)) => format!("<{uri}>"),
        (None, None) => format!("<sip:rser@{host}>"),
    };
    // §8.1.1.3: a UAC's From always has a tag.
    let from = if has_tag(&from) {
        from
    } else {
        format!("{from};tag={}", random_hex())
    };
    let to = to.unwrap_or_else(|| format!("<{}>", ask.ruri));
    // §8.1.1.8: a request that can start a dialog carries a Contact; the
    // UAC's own socket, whose requests the engine answers (a BYE: 200).
    if !has_contact && matches!(method, Method::Invite | Method::Subscribe | Method::Refer) {
        extra.push_str(&format!("Contact: <sip:rser@{local}>\r\n"));
    }
    let via = format!("SIP/2.0/UDP {local};branch={branch};rport");
    let call_id = format!("{}@{host}", random_hex());
    let cseq = 1;
    let text = format!(
        "{m} {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {m}\r\n{extra}Content-Length: {}\r\n\r\n{}",
        ask.body.len(),
        ask.body,
        ruri = ask.ruri,
    );
    // What we send must be a message we would accept.
    let msg =
        Message::parse(text.as_bytes()).map_err(|e| format!("the request does not parse: {e}"))?;
    msg.from()
        .and(msg.to())
        .map_err(|e| format!("the request does not parse: {e}"))?;
    Ok(Built {
        text: text.into_bytes(),
        method,
        method_text: m,
        ruri: ask.ruri.clone(),
        via,
        from,
        to,
        call_id,
        cseq,
        routes,
    })
}

fn has_tag(name_addr: &str) -> bool {
    NameAddr::parse(name_addr.as_bytes()).is_ok_and(|n| n.tag.is_some())
}

/// The common tail of an ACK or CANCEL: From, To, Call-ID, CSeq.
fn tail(inv: &Built, to: &str, method: &str) -> String {
    format!(
        "Max-Forwards: 70\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\n",
        inv.from, inv.call_id, inv.cseq
    )
}

/// §17.1.1.3: the ACK to a non-2xx final reply is part of the INVITE's
/// transaction: its Request-URI, top Via and Route set, the reply's To.
pub fn ack_non_2xx(inv: &Built, reply: &Message<'_>) -> Vec<u8> {
    let to = first_value(reply, HeaderKind::To).unwrap_or(&inv.to);
    let mut t = format!("ACK {} SIP/2.0\r\nVia: {}\r\n", inv.ruri, inv.via);
    for r in &inv.routes {
        t.push_str(&format!("Route: {r}\r\n"));
    }
    t.push_str(&tail(inv, to, "ACK"));
    t.push_str("Content-Length: 0\r\n\r\n");
    t.into_bytes()
}

/// §13.2.2.4: the ACK to a 2xx is a transaction of its own (a new
/// branch), sent to the dialog's remote target (the 2xx's Contact) along
/// its route set (the 2xx's Record-Route, reversed, §12.1.2). Returns
/// the text and the URI to send it towards (the first loose Route, else
/// the Request-URI).
pub fn ack_2xx(
    inv: &Built,
    reply: &Message<'_>,
    local: SocketAddr,
    branch: &str,
) -> Result<(Vec<u8>, String), String> {
    let target = reply
        .contacts()
        .find_map(|c| match c {
            Ok(crate::sip::Contact::Addr(n)) => {
                Some(String::from_utf8_lossy(n.addr_spec).into_owned())
            }
            _ => None,
        })
        .ok_or("the 2xx has no Contact")?;
    let mut set: Vec<(String, bool)> = Vec::new();
    for rr in reply.record_routes() {
        let rr = rr.map_err(|e| format!("the 2xx's Record-Route: {e}"))?;
        let uri = rr
            .uri()
            .map_err(|e| format!("the 2xx's Record-Route: {e}"))?;
        set.push((String::from_utf8_lossy(uri.raw).into_owned(), uri.lr));
    }
    set.reverse();
    // §12.2.1.1: a strict first hop takes the Request-URI, the remote
    // target goes last in the Route set.
    let (ruri, routes, next) = match set.first() {
        None => (target.clone(), Vec::new(), target),
        Some((first, true)) => (
            target,
            set.iter().map(|r| r.0.clone()).collect(),
            first.clone(),
        ),
        Some((first, false)) => {
            let mut rest: Vec<String> = set[1..].iter().map(|r| r.0.clone()).collect();
            rest.push(target);
            (first.clone(), rest, first.clone())
        }
    };
    let to = first_value(reply, HeaderKind::To).unwrap_or(&inv.to);
    let mut t = format!("ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n");
    for r in &routes {
        t.push_str(&format!("Route: <{r}>\r\n"));
    }
    t.push_str(&tail(inv, to, "ACK"));
    t.push_str("Content-Length: 0\r\n\r\n");
    Ok((t.into_bytes(), next))
}

/// §9.1: a CANCEL repeats the INVITE's Request-URI, top Via, Route set,
/// From, To and Call-ID, with the CSeq number and method CANCEL.
pub fn cancel(inv: &Built) -> Vec<u8> {
    let mut t = format!("CANCEL {} SIP/2.0\r\nVia: {}\r\n", inv.ruri, inv.via);
    for r in &inv.routes {
        t.push_str(&format!("Route: {r}\r\n"));
    }
    t.push_str(&tail(inv, &inv.to, "CANCEL"));
    t.push_str("Content-Length: 0\r\n\r\n");
    t.into_bytes()
}

/// The value of the first `kind` header as written.
fn first_value<'m>(msg: &Message<'m>, kind: HeaderKind) -> Option<&'m str> {
    let h = msg.all(kind).next()?;
    std::str::from_utf8(msg.value(h)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(method: &str, headers: &str) -> Ask {
        Ask {
            method: method.into(),
            ruri: "sip:bob@192.0.2.7:5070".into(),
            headers: headers.into(),
            body: "hello".into(),
            ..Ask::default()
        }
    }

    const LOCAL: &str = "127.0.0.1:40000";

    #[test]
    fn a_request_gets_a_tagged_from_and_the_uacs_own_headers() {
        let b = request(
            &ask("MESSAGE", "Subject: hi\nFrom: <sip:alice@a.example>"),
            LOCAL.parse().unwrap(),
            "z9hG4bKx",
        )
        .unwrap();
        let m = Message::parse(&b.text).unwrap();
        assert_eq!(m.method(), Some(Method::Message));
        assert!(m.from().unwrap().tag.is_some());
        assert_eq!(m.to().unwrap().addr_spec, b"sip:bob@192.0.2.7:5070");
        assert_eq!(m.body(), b"hello");
        assert_eq!(b.via, "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKx;rport");
        assert_eq!(m.contacts().count(), 0);
        // An INVITE gets the UAC's Contact unless it has one (§8.1.1.8).
        let inv = request(&ask("INVITE", ""), LOCAL.parse().unwrap(), "z9hG4bKy").unwrap();
        let m = Message::parse(&inv.text).unwrap();
        let c: Vec<_> = m.contacts().collect();
        assert_eq!(c.len(), 1);
        assert!(
            matches!(&c[0], Ok(crate::sip::Contact::Addr(n)) if n.addr_spec == b"sip:rser@127.0.0.1:40000")
        );
        let own = request(
            &ask("INVITE", "Contact: <sip:me@192.0.2.1>"),
            LOCAL.parse().unwrap(),
            "z9hG4bKz",
        )
        .unwrap();
        assert_eq!(Message::parse(&own.text).unwrap().contacts().count(), 1);
    }

    #[test]
    fn bad_asks_are_refused() {
        let local = LOCAL.parse().unwrap();
        assert!(request(&ask("ACK", ""), local, "b").is_err());
        assert!(request(&ask("MES SAGE", ""), local, "b").is_err());
        assert!(request(&ask("MESSAGE", "Via: SIP/2.0/UDP x"), local, "b").is_err());
        assert!(request(&ask("MESSAGE", "no colon"), local, "b").is_err());
        let mut a = ask("MESSAGE", "");
        a.ruri = "not a uri".into();
        assert!(request(&a, local, "b").is_err());
        a = ask("MESSAGE", "");
        a.body = "x".repeat(MAX_BODY + 1);
        assert!(request(&a, local, "b").is_err());
    }

    #[test]
    fn acks_and_cancel_follow_rfc_3261() {
        let local: SocketAddr = LOCAL.parse().unwrap();
        let inv = request(
            &ask("INVITE", "Route: <sip:p0.example;lr>"),
            local,
            "z9hG4bKinv",
        )
        .unwrap();
        // §17.1.1.3: same Request-URI, Via and Route; the reply's To.
        let busy = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv;rport\r\n\
                    From: x\r\nTo: <sip:bob@192.0.2.7:5070>;tag=b1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let ack = ack_non_2xx(&inv, &Message::parse(busy.as_bytes()).unwrap());
        let m = Message::parse(&ack).unwrap();
        assert_eq!(m.method(), Some(Method::Ack));
        assert_eq!(m.request_uri_raw(), b"sip:bob@192.0.2.7:5070");
        assert_eq!(m.top_via().unwrap().branch, Some(&b"z9hG4bKinv"[..]));
        assert_eq!(m.to().unwrap().tag, Some(&b"b1"[..]));
        assert_eq!(m.routes().count(), 1);
        // §13.2.2.4: to the Contact, along the reversed Record-Route.
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKinv;rport\r\n\
                  Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\n\
                  From: x\r\nTo: <sip:bob@192.0.2.7:5070>;tag=b2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
                  Contact: <sip:bob@192.0.2.9:5090>\r\nContent-Length: 0\r\n\r\n";
        let (ack, next) = ack_2xx(
            &inv,
            &Message::parse(ok.as_bytes()).unwrap(),
            local,
            "z9hG4bKack",
        )
        .unwrap();
        let m = Message::parse(&ack).unwrap();
        assert_eq!(m.request_uri_raw(), b"sip:bob@192.0.2.9:5090");
        assert_eq!(next, "sip:p1.example;lr");
        let routes: Vec<_> = m.routes().map(|r| r.unwrap().addr_spec.to_vec()).collect();
        assert_eq!(
            routes,
            [b"sip:p1.example;lr".to_vec(), b"sip:p2.example;lr".to_vec()]
        );
        assert_eq!(m.cseq().unwrap().number, 1);
        assert_ne!(m.top_via().unwrap().branch, Some(&b"z9hG4bKinv"[..]));
        // §9.1.
        let c = cancel(&inv);
        let m = Message::parse(&c).unwrap();
        assert_eq!(m.method(), Some(Method::Cancel));
        assert_eq!(m.top_via().unwrap().branch, Some(&b"z9hG4bKinv"[..]));
        assert!(m.to().unwrap().tag.is_none());
    }
}
