//! Drives every entry point of the message layer over arbitrary bytes: the
//! fuzz target (`fuzz/`) and the property tests call it, so both cover the
//! same surface. It must never panic, whatever the input.

use std::net::{IpAddr, Ipv4Addr};

use super::build::{Edits, write_reply};
use super::message::Message;
use super::name_addr::{Contact, NameAddr};
use super::uri::Uri;
use super::values::{CSeq, ContentType};
use super::via::Via;
use super::{DigestCredentials, HeaderKind};

/// Parses `data` as a message and as every typed value, reads every
/// accessor, and when it frames, builds a reply and a proxied copy and
/// re-parses both. Returns whether `data` framed as a message.
pub fn exercise(data: &[u8]) -> bool {
    // Typed parsers straight on the input, as if it were a header value.
    let _ = Uri::parse(data);
    let _ = Via::parse(data);
    let _ = NameAddr::parse(data);
    let _ = Contact::parse(data);
    let _ = CSeq::parse(data);
    let _ = ContentType::parse(data);
    let _ = DigestCredentials::parse(data);

    let Ok(msg) = Message::parse(data) else {
        return false;
    };
    let _ = msg.validate();
    let _ = (msg.ruri(), msg.top_via(), msg.from(), msg.to(), msg.cseq());
    let _ = (
        msg.call_id(),
        msg.max_forwards(),
        msg.expires(),
        msg.content_type(),
    );
    for h in msg.headers() {
        let _ = (msg.name(h), msg.value(h));
    }
    let _ = msg.vias().count() + msg.contacts().count() + msg.routes().count();
    let _ = msg.record_routes().count() + msg.credentials(false).count();
    let _ = msg.credentials(true).count();

    let mut out = Vec::with_capacity(data.len() + 512);
    if msg.is_request() {
        write_reply(
            &msg,
            400,
            b"Bad Request",
            Some(b"rser"),
            None,
            b"",
            b"",
            &mut out,
        );
        let src = "192.0.2.1:5999".parse().ok();
        write_reply(
            &msg,
            400,
            b"Bad Request",
            Some(b"rser"),
            src,
            b"",
            b"",
            &mut out,
        );
        assert!(
            Message::parse(&out).is_ok(),
            "a reply we built does not parse"
        );
    }
    let mut edits = Edits::new(&msg);
    let _ = edits.via_received(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060);
    let _ = edits.push_via(b"UDP", b"127.0.0.1", Some(5060), b"x");
    let _ = edits.max_forwards(70);
    let _ = edits.add_record_route(b"sip:127.0.0.1;lr");
    let _ = edits.remove_first_route();
    if msg.is_request() {
        let _ = edits.set_request_uri(b"sip:a@127.0.0.1");
    } else {
        let _ = edits.remove_top_via();
    }
    if edits.write(&mut out).is_ok() && msg.validate().is_ok() {
        let edited = Message::parse(&out).expect("an edited valid message does not parse");
        assert_eq!(edited.is_request(), msg.is_request());
        let _ = edited.first(HeaderKind::Via);
    }
    true
}
