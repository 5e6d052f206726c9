//! An error reply to a request the parser refused (RFC 4475 §3.1.2: a bad
//! start line, an unknown SIP version, a Content-Length the datagram
//! does not hold, a malformed Via): the header lines a reply copies (every
//! Via, From, To, Call-ID, CSeq; RFC 3261 §8.2.6.2) are found by a
//! lenient walk over the raw lines and copied as they are, so the sender
//! learns why instead of retransmitting into silence.
//!
//! Nothing here trusts the message: lines are only located and copied,
//! never interpreted, and the reply is bounded by the datagram's size.

use xxhash_rust::xxh3::xxh3_64;

use super::error::ParseError;

/// The header lines a reply needs, as byte ranges of the datagram.
#[derive(Default)]
struct Lines {
    vias: arrayvec::ArrayVec<(usize, usize), { super::limits::MAX_VIAS }>,
    from: Option<(usize, usize)>,
    to: Option<(usize, usize)>,
    call_id: Option<(usize, usize)>,
    cseq: Option<(usize, usize)>,
}

/// The status code and reason phrase for a request refused with `e`.
pub fn status_for(e: ParseError) -> (u16, &'static str) {
    match e {
        // RFC 3261 §21.5.6; RFC 4475 §3.1.2.16 expects it.
        ParseError::BadVersion => (505, "Version Not Supported"),
        e => (400, e.reason()),
    }
}

/// Writes to `out` the reply `code reason` to the request in `data`;
/// false (nothing written) when `data` is a response, an ACK (never
/// answered, §17.1.1.3), or lacks a header line the reply must copy.
pub fn error_reply(data: &[u8], code: u16, reason: &str, out: &mut Vec<u8>) -> bool {
    let begin = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(data.len());
    let first = &data[begin..];
    if first.starts_with(b"SIP/") || first.starts_with(b"ACK ") || first.is_empty() {
        return false;
    }
    let Some(lines) = find_lines(data, begin) else {
        return false;
    };
    let (Some(from), Some(to), Some(call_id), Some(cseq)) =
        (lines.from, lines.to, lines.call_id, lines.cseq)
    else {
        return false;
    };
    if lines.vias.is_empty() {
        return false;
    }
    out.clear();
    out.extend_from_slice(format!("SIP/2.0 {code} {reason}\r\n").as_bytes());
    for &(a, b) in &lines.vias {
        line(out, &data[a..b]);
    }
    line(out, &data[from.0..from.1]);
    let to_line = &data[to.0..to.1];
    out.extend_from_slice(trim_end(to_line));
    if !has_tag(to_line) {
        // The same tag for every retransmission of the request.
        let mut key = Vec::with_capacity(256);
        key.extend_from_slice(&data[call_id.0..call_id.1]);
        key.extend_from_slice(&data[cseq.0..cseq.1]);
        key.extend_from_slice(&data[lines.vias[0].0..lines.vias[0].1]);
        out.extend_from_slice(format!(";tag={:016x}", xxh3_64(&key)).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    line(out, &data[call_id.0..call_id.1]);
    line(out, &data[cseq.0..cseq.1]);
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    true
}

fn line(out: &mut Vec<u8>, l: &[u8]) {
    out.extend_from_slice(trim_end(l));
    out.extend_from_slice(b"\r\n");
}

fn trim_end(l: &[u8]) -> &[u8] {
    let end = l
        .iter()
        .rposition(|&b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &l[..end]
}

/// Whether a To line carries a tag parameter.
fn has_tag(l: &[u8]) -> bool {
    let lower: Vec<u8> = l
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(u8::to_ascii_lowercase)
        .collect();
    memchr::memmem::find(&lower, b";tag=").is_some()
}

/// Walks the header lines after the start line (folded lines joined),
/// to the empty line or the end of the datagram.
fn find_lines(data: &[u8], begin: usize) -> Option<Lines> {
    let mut pos = begin + memchr::memchr(b'\n', &data[begin..])? + 1;
    let mut lines = Lines::default();
    while pos < data.len() {
        let start = pos;
        // A logical line ends at a line break not followed by SP/HTAB.
        let mut end = start;
        loop {
            let nl = memchr::memchr(b'\n', &data[end..]).map_or(data.len(), |i| end + i + 1);
            end = nl;
            if !data.get(end).is_some_and(|&b| b == b' ' || b == b'\t') {
                break;
            }
        }
        let text = &data[start..end];
        if trim_end(text).is_empty() {
            break; // the end of the header section
        }
        pos = end;
        let Some(colon) = memchr::memchr(b':', text) else {
            continue;
        };
        let name = trim_end(&text[..colon]);
        let slot = match name.to_ascii_lowercase().as_slice() {
            b"via" | b"v" => {
                if lines.vias.try_push((start, end)).is_err() {
                    return None;
                }
                continue;
            }
            b"from" | b"f" => &mut lines.from,
            b"to" | b"t" => &mut lines.to,
            b"call-id" | b"i" => &mut lines.call_id,
            b"cseq" => &mut lines.cseq,
            _ => continue,
        };
        slot.get_or_insert((start, end));
    }
    Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! dat {
        ($name:literal) => {
            include_bytes!(concat!("testdata/rfc4475/", $name, ".dat")) as &[u8]
        };
    }

    fn reply(data: &[u8], e: ParseError) -> Option<String> {
        let (code, reason) = status_for(e);
        let mut out = Vec::new();
        error_reply(data, code, reason, &mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn refused_requests_get_a_reply() {
        for (name, data, e) in [
            ("badinv01", dat!("badinv01"), ParseError::BadVia),
            ("clerr", dat!("clerr"), ParseError::ContentLengthTooLarge),
            ("ncl", dat!("ncl"), ParseError::BadContentLength),
            ("lwsstart", dat!("lwsstart"), ParseError::BadStartLine),
            ("badvers", dat!("badvers"), ParseError::BadVersion),
        ] {
            let r = reply(data, e).unwrap_or_else(|| panic!("{name}: no reply"));
            let want = if e == ParseError::BadVersion {
                "SIP/2.0 505 Version Not Supported\r\n"
            } else {
                "SIP/2.0 400 "
            };
            assert!(r.starts_with(want), "{name}: {r}");
            assert!(r.ends_with("Content-Length: 0\r\n\r\n"), "{name}: {r}");
            // Everything but the Via it echoes (badinv01's is the fault)
            // parses: the sender can match the reply to its request.
            let no_via: String = r
                .split("\r\n")
                .filter(|l| !l.starts_with("Via") && !l.starts_with("v:"))
                .collect::<Vec<_>>()
                .join("\r\n");
            let with_via = no_via.replacen("\r\n", "\r\nVia: SIP/2.0/UDP h\r\n", 1);
            let m = super::super::Message::parse(with_via.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}\n{r}"));
            assert!(m.to().unwrap().tag.is_some(), "{name}: a To tag");
            assert!(m.call_id().is_ok() && m.cseq().is_ok(), "{name}");
        }
    }

    #[test]
    fn responses_acks_and_headerless_junk_get_nothing() {
        assert_eq!(reply(dat!("bigcode"), ParseError::BadStatusCode), None);
        let ack = b"ACK sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\n\
                    To: <sip:b@c>\r\nCall-ID: x\r\nCSeq: 1 ACK\r\n\r\n";
        assert_eq!(reply(ack, ParseError::BadVersion), None);
        assert_eq!(
            reply(b"INVITE x\r\nVia: a\r\n\r\n", ParseError::BadStartLine),
            None
        );
        assert_eq!(reply(b"", ParseError::Empty), None);
    }

    #[test]
    fn the_same_request_gets_the_same_tag_and_every_via() {
        let a = reply(dat!("badinv01"), ParseError::BadVia).unwrap();
        assert_eq!(a, reply(dat!("badinv01"), ParseError::BadVia).unwrap());
        let vias_in = dat!("badinv01")
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"Via") || l.starts_with(b"v:"))
            .count();
        assert_eq!(
            a.lines()
                .filter(|l| l.starts_with("Via") || l.starts_with("v:"))
                .count(),
            vias_in
        );
    }
}
