//! §10.3 on plain data: contacts and expirations read from requests, and
//! the Call-ID/CSeq rules deciding what changes.

use super::*;
use crate::sip::Message;

fn register(extra: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
         From: <sip:alice@example.com>;tag=1\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: reg1\r\nCSeq: 5 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn read(extra: &str, p: &Params) -> Result<Vec<Wanted<'static>>, Reject> {
    let buf: &'static [u8] = Box::leak(register(extra).into_boxed_slice());
    let m = Message::parse(buf).unwrap();
    match read_request(&m, p)? {
        Request::Update(w) => Ok(w.to_vec()),
        Request::Query => Ok(Vec::new()),
        Request::RemoveAll => Ok(vec![Wanted {
            uri: b"*",
            expires: 0,
            q: None,
        }]),
    }
}

#[test]
fn expiry_comes_from_the_contact_then_the_header_then_the_default() {
    let p = Params::default();
    let w = read(
        "Contact: <sip:a@10.0.0.1>;expires=120, <sip:b@10.0.0.2>\r\nExpires: 300\r\n",
        &p,
    )
    .unwrap();
    assert_eq!((w[0].uri, w[0].expires), (&b"sip:a@10.0.0.1"[..], 120));
    assert_eq!(w[1].expires, 300);
    let w = read("Contact: sip:c@10.0.0.3;q=0.5\r\n", &p).unwrap();
    assert_eq!((w[0].expires, w[0].q), (3600, Some(500)));
}

#[test]
fn too_brief_is_423_and_too_long_is_shortened() {
    let p = Params {
        max_expires: 1000,
        ..Params::default()
    };
    let e = read("Contact: <sip:a@h>;expires=30\r\n", &p).unwrap_err();
    assert_eq!((e.code, e.min_expires), (423, Some(60)));
    // Zero is a removal, never too brief.
    assert_eq!(
        read("Contact: <sip:a@h>;expires=0\r\n", &p).unwrap()[0].expires,
        0
    );
    assert_eq!(
        read("Contact: <sip:a@h>;expires=99999\r\n", &p).unwrap()[0].expires,
        1000
    );
}

#[test]
fn star_only_alone_with_expires_zero() {
    let p = Params::default();
    assert_eq!(
        read("Contact: *\r\nExpires: 0\r\n", &p).unwrap()[0].uri,
        b"*"
    );
    assert_eq!(read("Contact: *\r\n", &p).unwrap_err().code, 400);
    assert_eq!(
        read("Contact: *\r\nExpires: 10\r\n", &p).unwrap_err().code,
        400
    );
    let both = "Contact: *\r\nContact: <sip:a@h>\r\nExpires: 0\r\n";
    assert_eq!(read(both, &p).unwrap_err().code, 400);
}

#[test]
fn malformed_contacts_and_too_many_are_400() {
    let p = Params::default();
    assert_eq!(read("Contact: <sip:a@h\r\n", &p).unwrap_err().code, 400);
    assert_eq!(
        read("Contact: <sip:a@h>;q=2\r\n", &p).unwrap_err().code,
        400
    );
    assert_eq!(
        read("Contact: <sip:a@h>;expires=x\r\n", &p)
            .unwrap_err()
            .code,
        400
    );
    let many: String = (0..=MAX_CONTACTS)
        .map(|i| format!("Contact: <sip:u{i}@h>\r\n"))
        .collect();
    assert_eq!(read(&many, &p).unwrap_err().code, 400);
}

#[test]
fn no_contact_is_a_query() {
    assert_eq!(read("", &Params::default()).unwrap(), vec![]);
}

fn cur<'a>(contact: &'a str, call_id: &'a str, cseq: u32) -> Current<'a> {
    Current {
        contact: contact.as_bytes(),
        call_id: call_id.as_bytes(),
        cseq,
    }
}

fn want(uri: &'static str, expires: u32) -> Wanted<'static> {
    Wanted {
        uri: uri.as_bytes(),
        expires,
        q: None,
    }
}

fn update(w: &[Wanted<'static>]) -> Request<'static> {
    Request::Update(w.iter().copied().collect())
}

#[test]
fn new_contacts_are_added_known_ones_refreshed_zero_removes() {
    let p = Params::default();
    let now = [cur("sip:a@h", "c1", 5), cur("sip:b@h", "c1", 5)];
    let req = update(&[want("sip:a@h", 60), want("sip:b@h", 0), want("sip:n@h", 60)]);
    let ops = decide(&now, &req, b"c1", 6, &p).unwrap();
    assert_eq!(
        ops.as_slice(),
        &[Op::Refresh { i: 0, w: 0 }, Op::Remove(1), Op::Add(2)]
    );
    // Removing one that does not exist changes nothing.
    let ops = decide(&now, &update(&[want("sip:z@h", 0)]), b"c1", 6, &p).unwrap();
    assert!(ops.is_empty());
}

#[test]
fn same_call_id_needs_a_higher_cseq_another_call_id_does_not() {
    let p = Params::default();
    let now = [cur("sip:a@h", "c1", 5)];
    let req = update(&[want("sip:a@h", 60)]);
    assert_eq!(decide(&now, &req, b"c1", 5, &p).unwrap_err().code, 400);
    assert_eq!(decide(&now, &req, b"c1", 4, &p).unwrap_err().code, 400);
    assert!(decide(&now, &req, b"c1", 6, &p).is_ok());
    // §10.3 step 7: another Call-ID (a rebooted UA) updates whatever the CSeq.
    assert!(decide(&now, &req, b"c2", 1, &p).is_ok());
}

#[test]
fn remove_all_is_refused_whole_when_one_binding_is_newer() {
    let p = Params::default();
    let now = [cur("sip:a@h", "c1", 5), cur("sip:b@h", "c2", 9)];
    let ops = decide(&now, &Request::RemoveAll, b"c2", 10, &p).unwrap();
    assert_eq!(ops.as_slice(), &[Op::Remove(0), Op::Remove(1)]);
    assert_eq!(
        decide(&now, &Request::RemoveAll, b"c2", 9, &p)
            .unwrap_err()
            .code,
        400
    );
}

#[test]
fn the_last_of_a_repeated_contact_counts() {
    let p = Params::default();
    let req = update(&[want("sip:a@h", 60), want("sip:a@h", 0)]);
    assert!(decide(&[], &req, b"c", 1, &p).unwrap().is_empty());
}

#[test]
fn max_contacts_refuses_the_one_too_many() {
    let p = Params {
        max_contacts: 2,
        ..Params::default()
    };
    let now = [cur("sip:a@h", "c1", 5), cur("sip:b@h", "c1", 5)];
    let e = decide(&now, &update(&[want("sip:c@h", 60)]), b"c1", 6, &p).unwrap_err();
    assert_eq!(e.code, 503);
    // Replacing one with another fits.
    let req = update(&[want("sip:a@h", 0), want("sip:c@h", 60)]);
    assert!(decide(&now, &req, b"c1", 6, &p).is_ok());
}

#[test]
fn contact_lines_carry_expires_and_q() {
    let mut out = Vec::new();
    contact_line(b"sip:a@h", 120, Some(500), &mut out);
    contact_line(b"sip:b@h", 5, None, &mut out);
    contact_line(b"sip:c@h", 5, Some(1000), &mut out);
    contact_line(b"sip:d@h", 5, Some(25), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Contact: <sip:a@h>;expires=120;q=0.5\r\n\
         Contact: <sip:b@h>;expires=5\r\n\
         Contact: <sip:c@h>;expires=5;q=1\r\n\
         Contact: <sip:d@h>;expires=5;q=0.025\r\n"
    );
}
