//! RFC 4475 (SIP torture test messages) §3.1.1 and §3.1.2 as tests: every
//! valid message frames, validates and yields the values the RFC describes;
//! every invalid one is refused with the error that names its fault.
//! The messages are in `testdata/rfc4475/` (see its INDEX.md).

use super::error::ParseError;
use super::message::Message;
use super::name_addr::Contact;
use super::scan::unescaped;
use super::uri::Host;
use super::values::Method;
use super::via::Rport;

macro_rules! dat {
    ($name:literal) => {
        include_bytes!(concat!("testdata/rfc4475/", $name, ".dat")) as &[u8]
    };
}

fn valid(bytes: &[u8]) -> Message<'_> {
    let m = Message::parse(bytes).expect("valid message frames");
    m.validate().expect("valid message validates");
    m
}

fn unesc(s: &[u8]) -> Vec<u8> {
    unescaped(s).collect()
}

fn refused(bytes: &[u8]) -> ParseError {
    match Message::parse(bytes) {
        Err(e) => e,
        Ok(m) => m.validate().expect_err("invalid message was accepted"),
    }
}

#[test]
fn wsinv_short_tortuous_invite() {
    let m = valid(dat!("wsinv"));
    assert_eq!(m.method(), Some(Method::Invite));
    let ruri = m.ruri().unwrap();
    assert_eq!(ruri.host, Host::Name(b"chair-dnrc.example.com"));
    assert_eq!(ruri.param(b"unknownparam"), Some(None));
    let vias: Vec<_> = m.vias().map(|v| v.unwrap()).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].transport, b"UDP");
    assert_eq!(vias[0].host, Host::V4([192, 0, 2, 2].into()));
    assert_eq!(vias[0].branch, Some(&b"390skdjuw"[..]));
    assert_eq!(vias[1].transport, b"TCP");
    assert_eq!(vias[1].host, Host::Name(b"spindle.example.com"));
    assert_eq!(vias[2].branch, Some(&b"z9hG4bK30239"[..]));
    let to = m.to().unwrap();
    assert_eq!(to.addr_spec, b"sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag, Some(&b"1918181833n"[..]));
    let from = m.from().unwrap();
    assert_eq!(from.display, Some(&br#""J Rosenberg \\\"""#[..]));
    assert_eq!(from.addr_spec, b"sip:jdrosen@example.com");
    assert_eq!(from.tag, Some(&b"98asjd8"[..]));
    assert_eq!(m.call_id(), Ok(&b"wsinv.ndaksdj@192.0.2.1"[..]));
    assert_eq!(m.cseq().unwrap().number, 9);
    assert_eq!(m.cseq().unwrap().method, Method::Invite);
    assert_eq!(m.max_forwards(), Ok(Some(68)));
    let contacts: Vec<_> = m.contacts().map(|c| c.unwrap()).collect();
    let [Contact::Addr(c)] = contacts[..] else {
        panic!("one contact")
    };
    assert_eq!(c.addr_spec, b"sip:jdrosen@example.com");
    assert_eq!(c.param(b"newparam"), Some(Some(&b"newvalue"[..])));
    assert_eq!(c.param(b"secondparam"), Some(None));
    assert_eq!(c.q(), Ok(Some(330)));
    let odd = m.named(b"UnknownHeaderWithUnusualValue").next().unwrap();
    assert_eq!(m.value(odd), b";;,,;;,;");
    assert_eq!(m.body().len(), 150);
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let m = valid(dat!("intmeth"));
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(
        m.method_raw(),
        b"!interesting-Method0123456789_*+`.%indeed'~"
    );
    let ruri = m.ruri().unwrap();
    assert_eq!(
        ruri.user,
        Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
    );
    assert_eq!(
        ruri.password,
        Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
    );
    assert_eq!(ruri.host, Host::Name(b"example.com"));
    assert_eq!(
        m.top_via().unwrap().branch,
        Some(&b"z9hG4bK-.!%66*_+`'~"[..])
    );
    assert_eq!(m.to().unwrap().tag, None);
    assert_eq!(
        m.from().unwrap().display,
        Some(&b"token1~` token2'+_ token3*%!.-"[..])
    );
    assert_eq!(m.from().unwrap().tag, Some(&b"_token~1'+`*%!-."[..]));
    assert_eq!(
        m.call_id(),
        Ok(&br#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#[..])
    );
    assert_eq!(m.cseq().unwrap().number, 139122385);
    assert_eq!(m.max_forwards(), Ok(Some(255)));
}

#[test]
fn esc01_valid_escaping() {
    let m = valid(dat!("esc01"));
    let ruri = m.ruri().unwrap();
    assert_eq!(unesc(ruri.user.unwrap()), b"sips:user@example.com");
    assert_eq!(ruri.host, Host::Name(b"example.net"));
    assert_eq!(unesc(m.to().unwrap().uri().unwrap().user.unwrap()), b"user");
    assert_eq!(
        unesc(m.from().unwrap().uri().unwrap().user.unwrap()),
        b"I have spaces"
    );
    assert_eq!(m.call_id(), Ok(&b"esc01.239409asdfakjkn23onasd0-3234"[..]));
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(unesc(c.uri().unwrap().user.unwrap()), b"caller");
    // Unescaping is never recursive: value%2541 -> value%41, not valueA.
    let name = c
        .uri()
        .unwrap()
        .param_iter()
        .map(|p| p.unwrap())
        .find(|p| unesc(p.name) == b"name")
        .unwrap();
    assert_eq!(unesc(name.value.unwrap()), b"value%41");
    assert!(
        c.uri()
            .unwrap()
            .param_iter()
            .any(|p| unesc(p.unwrap().name) == b"lr")
    );
}

#[test]
fn escnull_escaped_nulls() {
    let m = valid(dat!("escnull"));
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(
        unesc(m.to().unwrap().uri().unwrap().user.unwrap()),
        b"null-\0-null"
    );
    let users: Vec<_> = m
        .contacts()
        .map(|c| match c.unwrap() {
            Contact::Addr(a) => unesc(a.uri().unwrap().user.unwrap()),
            Contact::Star => panic!("star"),
        })
        .collect();
    assert_eq!(users, vec![b"\0".to_vec(), b"\0\0".to_vec()]);
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn esc02_percent_that_is_not_an_escape() {
    let m = valid(dat!("esc02"));
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(m.method_raw(), b"RE%47IST%45R");
    assert_eq!(m.to().unwrap().display, Some(&b"\"%Z%45\""[..]));
    assert_eq!(m.contacts().count(), 2);
    assert_eq!(m.named(b"C%6Fntact").count(), 1);
}

#[test]
fn lwsdisp_no_space_before_angle_bracket() {
    let m = valid(dat!("lwsdisp"));
    assert_eq!(m.from().unwrap().display, Some(&b"caller"[..]));
    assert_eq!(m.from().unwrap().tag, Some(&b"323"[..]));
}

#[test]
fn longreq_long_values() {
    let m = valid(dat!("longreq"));
    assert_eq!(m.via_count(), 34);
    let top = m.top_via().unwrap();
    assert_eq!(top.host, Host::Name(b"sip33.example.com"));
    assert_eq!(top.branch, None);
    let last = m.vias().last().unwrap().unwrap();
    assert_eq!(last.received, Some(&b"192.0.2.5"[..]));
    assert_eq!(
        last.branch.unwrap().len(),
        "very".len() + 4 * 50 + "branchvalue".len()
    );
    let to = m.to().unwrap();
    assert_eq!(to.uri().unwrap().port, Some(6000));
    assert_eq!(to.tag, None);
    let from = m.from().unwrap();
    assert!(!from.bracketed);
    assert_eq!(from.tag.unwrap().len(), 2 + 3 * 50 + 3);
    assert_eq!(m.body().len(), 150);
}

#[test]
fn dblreq_trailing_octets_are_ignored() {
    let bytes = dat!("dblreq");
    let m = valid(bytes);
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.body(), b"");
    assert_eq!(m.body_span().end, 300);
    assert!(bytes.len() > 300);
}

#[test]
fn semiuri_semicolons_in_user_part() {
    let m = valid(dat!("semiuri"));
    let ruri = m.ruri().unwrap();
    assert_eq!(unesc(ruri.user.unwrap()), b"user;par=u@example.net");
    assert_eq!(ruri.host, Host::Name(b"example.com"));
    assert_eq!(ruri.params, b"");
    assert_eq!(m.max_forwards(), Ok(Some(3)));
}

#[test]
fn transports_varied_and_unknown() {
    let m = valid(dat!("transports"));
    let t: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
    assert_eq!(t, vec![&b"UDP"[..], b"SCTP", b"TLS", b"UNKNOWN", b"TCP"]);
    assert_eq!(m.call_id(), Ok(&b"transports.kijh4akdnaqjkwendsasfdj"[..]));
}

#[test]
fn mpart01_binary_multipart_body() {
    let m = valid(dat!("mpart01"));
    assert_eq!(m.method(), Some(Method::Message));
    let via = m.top_via().unwrap();
    assert_eq!(via.port, Some(5070));
    assert_eq!(via.rport, Rport::Requested);
    assert_eq!(m.body().len(), 553);
    assert_eq!(m.body().iter().filter(|&&b| b == 0).count(), 2);
    let ct = m.content_type().unwrap().unwrap();
    assert!(ct.is(b"multipart", b"mixed"));
    assert_eq!(ct.param(b"boundary"), Some(&b"7a9cbec02ceef655"[..]));
}

#[test]
fn unreason_utf8_reason_phrase() {
    let m = valid(dat!("unreason"));
    assert_eq!(m.status(), Some(200));
    let reason = std::str::from_utf8(m.reason()).unwrap();
    assert!(reason.starts_with("= 2**3 * 5**2"));
    assert!(reason.ends_with("простое"));
    assert_eq!(m.to().unwrap().tag, Some(&b"2229"[..]));
    assert_eq!(m.body().len(), 154);
}

#[test]
fn noreason_empty_reason_phrase() {
    let m = valid(dat!("noreason"));
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason(), b"");
}

#[test]
fn invalid_messages_are_refused_with_their_fault() {
    let cases: [(&str, &[u8], ParseError); 19] = [
        ("badinv01", dat!("badinv01"), ParseError::BadVia),
        ("clerr", dat!("clerr"), ParseError::ContentLengthTooLarge),
        ("ncl", dat!("ncl"), ParseError::BadContentLength),
        ("scalar02", dat!("scalar02"), ParseError::BadCSeq),
        ("scalarlg", dat!("scalarlg"), ParseError::BadCSeq),
        ("quotbal", dat!("quotbal"), ParseError::UnterminatedQuote),
        ("ltgtruri", dat!("ltgtruri"), ParseError::BadUri),
        ("lwsruri", dat!("lwsruri"), ParseError::BadStartLine),
        ("lwsstart", dat!("lwsstart"), ParseError::BadStartLine),
        ("trws", dat!("trws"), ParseError::BadStartLine),
        ("escruri", dat!("escruri"), ParseError::HeadersInRequestUri),
        ("baddate", dat!("baddate"), ParseError::BadDate),
        ("regbadct", dat!("regbadct"), ParseError::BadNameAddr),
        ("badaspec", dat!("badaspec"), ParseError::BadNameAddr),
        ("baddn", dat!("baddn"), ParseError::Truncated),
        ("badvers", dat!("badvers"), ParseError::BadVersion),
        (
            "mismatch01",
            dat!("mismatch01"),
            ParseError::CSeqMethodMismatch,
        ),
        (
            "mismatch02",
            dat!("mismatch02"),
            ParseError::CSeqMethodMismatch,
        ),
        ("bigcode", dat!("bigcode"), ParseError::BadStatusCode),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(refused(bytes), want, "{name}");
    }
}

#[test]
fn baddn_display_name_fault_is_found_once_terminated() {
    // The archive's baddn lacks its final empty line; with it, the
    // unquoted comma in the display name is what is refused.
    let mut bytes = dat!("baddn").to_vec();
    bytes.extend_from_slice(b"\r\n");
    assert_eq!(refused(&bytes), ParseError::BadNameAddr);
}

#[test]
fn scalar02_max_forwards_and_expires_out_of_range() {
    let m = Message::parse(dat!("scalar02")).unwrap();
    assert_eq!(m.max_forwards(), Err(ParseError::BadNumber));
    assert_eq!(m.expires(), Err(ParseError::BadNumber));
    let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(c.expires(), Err(ParseError::BadNumber));
}
