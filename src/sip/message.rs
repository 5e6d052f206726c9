//! The message view: one framing pass builds the start line, the header
//! index and the body range; typed values are parsed on demand and cached.

use std::cell::OnceCell;

use arrayvec::ArrayVec;

use super::Span;
use super::auth::DigestCredentials;
use super::error::{ParseError, Result};
use super::header::{Header, HeaderKind};
use super::limits::{MAX_DATAGRAM, MAX_HEADER_LEN, MAX_HEADERS, MAX_VIAS};
use super::name_addr::{Contact, NameAddr};
use super::scan::{CommaSplit, all_token, find_byte, is_token_char, is_ws, parse_u32, trim};
use super::uri::Uri;
use super::values::{self, CSeq, ContentType, Method};
use super::via::Via;

/// The first line of a message (RFC 3261 §7.1, §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

/// A framed SIP message borrowing its datagram.
pub struct Message<'a> {
    buf: &'a [u8],
    start_line: StartLine,
    /// From the start of the start line (leading CRLFs skipped) to its CRLF.
    start_line_span: Span,
    headers: ArrayVec<Header, MAX_HEADERS>,
    /// Index + 1 of the first entry of each kind, 0 when absent.
    first: [u8; HeaderKind::COUNT],
    /// Where the empty line that ends the header section starts: new
    /// headers are inserted here.
    headers_end: u16,
    body: Span,
    content_length: Option<u32>,
    ruri: OnceCell<Result<Uri<'a>>>,
    via: OnceCell<Result<Via<'a>>>,
    from: OnceCell<Result<NameAddr<'a>>>,
    to: OnceCell<Result<NameAddr<'a>>>,
    cseq: OnceCell<Result<CSeq<'a>>>,
    call_id: OnceCell<Result<&'a [u8]>>,
    max_forwards: OnceCell<Result<Option<u8>>>,
}

impl<'a> Message<'a> {
    /// Frames a datagram. Fails on anything that prevents finding the start
    /// line, every header and the body; header values are checked only when
    /// read (or by [`Message::validate`]).
    #[inline]
    pub fn parse(buf: &'a [u8]) -> Result<Message<'a>> {
        let mut msg = Message::unframed(buf);
        msg.frame()?;
        Ok(msg)
    }

    /// Parses `buf` and gives `f` the message by reference: it is built
    /// in this call's frame and never moved. A Message is about 2 KiB
    /// (the header index and the typed caches), and returning it through
    /// a `Result` copies it (twice, unless the caller borrows from the
    /// `Result`); the packet path uses this instead.
    #[inline]
    pub fn with_parsed<R>(buf: &'a [u8], f: impl FnOnce(Result<&Message<'a>>) -> R) -> R {
        let mut msg = Message::unframed(buf);
        match msg.frame() {
            Ok(()) => f(Ok(&msg)),
            Err(e) => f(Err(e)),
        }
    }

    /// An empty message over `buf`, before the framing pass.
    #[inline(always)]
    fn unframed(buf: &'a [u8]) -> Message<'a> {
        Message {
            buf,
            start_line: StartLine::Response {
                code: 0,
                reason: Span::default(),
            },
            start_line_span: Span::default(),
            headers: ArrayVec::new(),
            first: [0; HeaderKind::COUNT],
            headers_end: 0,
            body: Span::default(),
            content_length: None,
            ruri: OnceCell::new(),
            via: OnceCell::new(),
            from: OnceCell::new(),
            to: OnceCell::new(),
            cseq: OnceCell::new(),
            call_id: OnceCell::new(),
            max_forwards: OnceCell::new(),
        }
    }

    /// The framing pass: the start line, the header index, the body.
    fn frame(&mut self) -> Result<()> {
        let buf = self.buf;
        if buf.len() > MAX_DATAGRAM {
            return Err(ParseError::TooLarge);
        }
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let begin = buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let (line_end, next) = line_end(buf, begin).ok_or(ParseError::Truncated)?;
        self.start_line = parse_start_line(buf, begin, line_end)?;
        self.start_line_span = Span::new(begin, next);
        let body_start = self.index_headers(next)?;
        self.frame_body(body_start)
    }

    /// Walks the header lines from `pos`, filling the index; returns where
    /// the body starts.
    fn index_headers(&mut self, mut pos: usize) -> Result<usize> {
        let buf = self.buf;
        let mut vias = 0usize;
        loop {
            match buf.get(pos) {
                None => return Err(ParseError::Truncated),
                Some(b'\n') => {
                    self.headers_end = pos as u16;
                    return Ok(pos + 1);
                }
                Some(b'\r') if buf.get(pos + 1) == Some(&b'\n') => {
                    self.headers_end = pos as u16;
                    return Ok(pos + 2);
                }
                // A continuation line with no header before it.
                Some(&b) if is_ws(b) => return Err(ParseError::BadHeaderLine),
                Some(_) => {}
            }
            // field-name, optional white space, ':' (RFC 3261 §7.3.1). A
            // name holds no ':', so the first one ends it; what precedes it
            // must be a token and white space (a line without a colon
            // fails here too: its line break is no token character).
            let colon = pos + find_byte(&buf[pos..], b':').ok_or(ParseError::BadHeaderLine)?;
            let mut name_end = colon;
            while name_end > pos && is_ws(buf[name_end - 1]) {
                name_end -= 1;
            }
            let name = &buf[pos..name_end];
            if name.is_empty() {
                return Err(ParseError::BadHeaderLine);
            }
            // A known name matched letter for letter is a token already.
            let kind = HeaderKind::from_name(name);
            if kind == HeaderKind::Other && !all_token(name) {
                return Err(ParseError::BadHeaderLine);
            }
            // The header runs until a line break not followed by SP/HTAB
            // (RFC 3261 §7.3.1 folding).
            let mut value_end;
            let mut next = colon;
            loop {
                let (end, after) = line_end(buf, next).ok_or(ParseError::Truncated)?;
                value_end = end;
                next = after;
                if !buf.get(next).is_some_and(|&b| is_ws(b)) {
                    break;
                }
            }
            if next - pos > MAX_HEADER_LEN {
                return Err(ParseError::HeaderTooLong);
            }
            let name_len = u8::try_from(name.len()).map_err(|_| ParseError::BadHeaderLine)?;
            let line_span = Span::new(pos, next);
            let value = trim(&buf[colon + 1..value_end]);
            // Most list lines carry one value: a vectorised search for a
            // comma skips the quote-aware split for them.
            if kind.is_list() && find_byte(value, b',').is_some() {
                for part in CommaSplit::new(value) {
                    let part = trim(part?);
                    if part.is_empty() {
                        return Err(match kind {
                            HeaderKind::Via => ParseError::BadVia,
                            _ => ParseError::BadNameAddr,
                        });
                    }
                    if kind == HeaderKind::Via {
                        self.count_via(&mut vias)?;
                    }
                    self.push(kind, name_len, Span::of(buf, part), line_span)?;
                }
            } else {
                match kind {
                    HeaderKind::ContentLength => self.note_content_length(value)?,
                    HeaderKind::Via if value.is_empty() => return Err(ParseError::BadVia),
                    HeaderKind::Via => self.count_via(&mut vias)?,
                    HeaderKind::Contact | HeaderKind::Route | HeaderKind::RecordRoute
                        if value.is_empty() =>
                    {
                        return Err(ParseError::BadNameAddr);
                    }
                    _ => {}
                }
                self.push(kind, name_len, Span::of(buf, value), line_span)?;
            }
            pos = next;
        }
    }

    fn push(&mut self, kind: HeaderKind, name_len: u8, value: Span, line: Span) -> Result<()> {
        let idx = self.headers.len();
        self.headers
            .try_push(Header {
                kind,
                name_len,
                value,
                line,
            })
            .map_err(|_| ParseError::TooManyHeaders)?;
        let first = &mut self.first[kind as usize];
        if *first == 0 && idx < u8::MAX as usize {
            *first = idx as u8 + 1;
        }
        Ok(())
    }

    fn count_via(&self, vias: &mut usize) -> Result<()> {
        *vias += 1;
        if *vias > MAX_VIAS {
            return Err(ParseError::TooManyVias);
        }
        Ok(())
    }

    fn note_content_length(&mut self, value: &[u8]) -> Result<()> {
        let n = parse_u32(value).map_err(|_| ParseError::BadContentLength)?;
        match self.content_length {
            Some(old) if old != n => Err(ParseError::ConflictingContentLength),
            _ => {
                self.content_length = Some(n);
                Ok(())
            }
        }
    }

    /// On UDP a missing Content-Length means the rest of the datagram; one
    /// larger than the datagram is an error, bytes beyond it are discarded
    /// (RFC 3261 §18.3).
    fn frame_body(&mut self, start: usize) -> Result<()> {
        let available = self.buf.len() - start;
        let len = match self.content_length {
            Some(n) if n as usize > available => return Err(ParseError::ContentLengthTooLarge),
            Some(n) => n as usize,
            None => available,
        };
        self.body = Span::new(start, start + len);
        Ok(())
    }

    // ---- the framed parts ----

    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    pub fn start_line(&self) -> StartLine {
        self.start_line
    }

    /// The start line's span, its CRLF included.
    pub fn start_line_span(&self) -> Span {
        self.start_line_span
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start_line, StartLine::Request { .. })
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<Method> {
        match self.start_line {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The method as written (for `Method::Other`); empty for a response.
    pub fn method_raw(&self) -> &'a [u8] {
        match self.start_line {
            StartLine::Request { method_span, .. } => self.slice(method_span),
            StartLine::Response { .. } => b"",
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start_line {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> &'a [u8] {
        match self.start_line {
            StartLine::Response { reason, .. } => self.slice(reason),
            StartLine::Request { .. } => b"",
        }
    }

    /// The Request-URI as written; empty for a response.
    pub fn request_uri_raw(&self) -> &'a [u8] {
        match self.start_line {
            StartLine::Request { uri, .. } => self.slice(uri),
            StartLine::Response { .. } => b"",
        }
    }

    pub fn request_uri_span(&self) -> Option<Span> {
        match self.start_line {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    pub fn slice(&self, span: Span) -> &'a [u8] {
        &self.buf[span.range()]
    }

    pub fn value(&self, h: &Header) -> &'a [u8] {
        self.slice(h.value)
    }

    pub fn name(&self, h: &Header) -> &'a [u8] {
        self.slice(h.name())
    }

    /// Offset of the empty line ending the header section.
    pub fn headers_end(&self) -> usize {
        self.headers_end as usize
    }

    pub fn body(&self) -> &'a [u8] {
        self.slice(self.body)
    }

    pub fn body_span(&self) -> Span {
        self.body
    }

    /// The Content-Length value, if the header was present.
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    /// The first index entry of a kind.
    pub fn first(&self, kind: HeaderKind) -> Option<&Header> {
        match self.first[kind as usize] {
            0 => None,
            i => self.headers.get(i as usize - 1),
        }
    }

    /// Every index entry of a kind, in order.
    pub fn all(&self, kind: HeaderKind) -> impl Iterator<Item = &Header> + '_ {
        let from = match self.first[kind as usize] {
            0 => self.headers.len(),
            i => i as usize - 1,
        };
        self.headers[from..].iter().filter(move |h| h.kind == kind)
    }

    /// Entries whose name is `name` (case-insensitive), for headers without a kind.
    pub fn named<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = &'s Header> + 's {
        let kind = HeaderKind::from_name(name);
        self.headers.iter().filter(move |h| {
            h.kind == kind && (kind != HeaderKind::Other || self.name(h).eq_ignore_ascii_case(name))
        })
    }

    fn first_value(&self, kind: HeaderKind) -> Option<&'a [u8]> {
        self.first(kind).map(|h| self.value(h))
    }

    fn mandatory(&self, kind: HeaderKind) -> Result<&'a [u8]> {
        self.first_value(kind)
            .ok_or(ParseError::MissingHeader(kind.name()))
    }

    // ---- typed values, parsed on demand; cached ones at most once ----

    /// The Request-URI, parsed (cached).
    pub fn ruri(&self) -> Result<&Uri<'a>> {
        self.ruri
            .get_or_init(|| match self.start_line {
                StartLine::Request { uri, .. } => Uri::parse(self.slice(uri)),
                StartLine::Response { .. } => Err(ParseError::BadStartLine),
            })
            .as_ref()
            .map_err(|e| *e)
    }

    /// `uri` parsed: the Request-URI's cached parse when `uri` is its
    /// text (a URI the script did not rewrite), else parsed now.
    pub fn uri_parsed<'x>(&'x self, uri: &'x [u8]) -> Result<Uri<'x>> {
        if self.is_request() && uri == self.request_uri_raw() {
            return self.ruri().copied();
        }
        Uri::parse(uri)
    }

    /// The top Via value (cached).
    pub fn top_via(&self) -> Result<&Via<'a>> {
        self.via
            .get_or_init(|| Via::parse(self.mandatory(HeaderKind::Via)?))
            .as_ref()
            .map_err(|e| *e)
    }

    /// The `n`th Via value (0: the top one, cached), the ones before it
    /// not parsed.
    pub fn via_at(&self, n: usize) -> Option<Result<Via<'a>>> {
        match n {
            0 => self.first(HeaderKind::Via).map(|_| self.top_via().copied()),
            n => self
                .all(HeaderKind::Via)
                .nth(n)
                .map(|h| Via::parse(self.value(h))),
        }
    }

    /// Every Via value in order, each parsed when reached.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'a>>> + '_ {
        self.all(HeaderKind::Via).map(|h| Via::parse(self.value(h)))
    }

    pub fn via_count(&self) -> usize {
        self.all(HeaderKind::Via).count()
    }

    pub fn from(&self) -> Result<&NameAddr<'a>> {
        self.from
            .get_or_init(|| NameAddr::parse(self.mandatory(HeaderKind::From)?))
            .as_ref()
            .map_err(|e| *e)
    }

    pub fn to(&self) -> Result<&NameAddr<'a>> {
        self.to
            .get_or_init(|| NameAddr::parse(self.mandatory(HeaderKind::To)?))
            .as_ref()
            .map_err(|e| *e)
    }

    pub fn cseq(&self) -> Result<&CSeq<'a>> {
        self.cseq
            .get_or_init(|| CSeq::parse(self.mandatory(HeaderKind::CSeq)?))
            .as_ref()
            .map_err(|e| *e)
    }

    pub fn call_id(&self) -> Result<&'a [u8]> {
        *self
            .call_id
            .get_or_init(|| values::parse_call_id(self.mandatory(HeaderKind::CallId)?))
    }

    /// Max-Forwards, `None` when absent (cached).
    pub fn max_forwards(&self) -> Result<Option<u8>> {
        *self.max_forwards.get_or_init(|| {
            self.first_value(HeaderKind::MaxForwards)
                .map(values::parse_max_forwards)
                .transpose()
        })
    }

    /// The Expires header in seconds, `None` when absent.
    pub fn expires(&self) -> Result<Option<u32>> {
        self.first_value(HeaderKind::Expires)
            .map(values::parse_delta_seconds)
            .transpose()
    }

    pub fn content_type(&self) -> Result<Option<ContentType<'a>>> {
        self.first_value(HeaderKind::ContentType)
            .map(ContentType::parse)
            .transpose()
    }

    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'a>>> + '_ {
        self.all(HeaderKind::Contact)
            .map(|h| Contact::parse(self.value(h)))
    }

    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'a>>> + '_ {
        self.all(HeaderKind::Route)
            .map(|h| NameAddr::parse(self.value(h)))
    }

    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'a>>> + '_ {
        self.all(HeaderKind::RecordRoute)
            .map(|h| NameAddr::parse(self.value(h)))
    }

    /// Digest credentials of an Authorization (or, with `proxy`,
    /// Proxy-Authorization) header, each parsed when reached.
    pub fn credentials(
        &self,
        proxy: bool,
    ) -> impl Iterator<Item = Result<DigestCredentials<'a>>> + '_ {
        let kind = if proxy {
            HeaderKind::ProxyAuthorization
        } else {
            HeaderKind::Authorization
        };
        self.all(kind)
            .map(|h| DigestCredentials::parse(self.value(h)))
    }
}

/// End of the line starting at `pos`: (end of its content, start of the
/// next line). Accepts CRLF and, leniently, a bare LF.
#[inline(always)]
fn line_end(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let lf = pos + find_byte(&buf[pos..], b'\n')?;
    let end = if lf > pos && buf[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((end, lf + 1))
}

fn parse_start_line(buf: &[u8], begin: usize, end: usize) -> Result<StartLine> {
    let line = &buf[begin..end];
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(begin, line);
    }
    // Method SP Request-URI SP SIP-Version, single spaces (RFC 3261 §7.1).
    let sp1 = find_byte(line, b' ').ok_or(ParseError::BadStartLine)?;
    let sp2 = memchr::memrchr(b' ', line).ok_or(ParseError::BadStartLine)?;
    if sp1 == sp2 {
        return Err(ParseError::BadStartLine);
    }
    let method = &line[..sp1];
    let uri = &line[sp1 + 1..sp2];
    let version = &line[sp2 + 1..];
    if !method.iter().all(|&b| is_token_char(b)) || method.is_empty() {
        return Err(ParseError::BadMethod);
    }
    // sp1 and sp2 are the first and last SP: the URI holds no SP iff the
    // next SP after sp1 is sp2; a tab or line break is caught by Uri::parse.
    if uri.is_empty() || find_byte(uri, b' ').is_some() {
        return Err(ParseError::BadStartLine);
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(if version.is_empty() {
            ParseError::BadStartLine
        } else {
            ParseError::BadVersion
        });
    }
    Ok(StartLine::Request {
        method: Method::from_bytes(method),
        method_span: Span::new(begin, begin + sp1),
        uri: Span::new(begin + sp1 + 1, begin + sp2),
    })
}

/// SIP-Version SP Status-Code SP Reason-Phrase (RFC 3261 §7.2). An empty
/// reason phrase is legal (RFC 4475 §3.1.1.13); its SP is not required here.
fn parse_status_line(begin: usize, line: &[u8]) -> Result<StartLine> {
    let sp1 = find_byte(line, b' ').ok_or(ParseError::BadStartLine)?;
    if !line[..sp1].eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(ParseError::BadVersion);
    }
    let rest = &line[sp1 + 1..];
    let code_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let code = &rest[..code_end];
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadStatusCode);
    }
    let code = parse_u32(code).map_err(|_| ParseError::BadStatusCode)? as u16;
    if !(100..=699).contains(&code) {
        return Err(ParseError::BadStatusCode);
    }
    let reason_start = begin + sp1 + 1 + (code_end + 1).min(rest.len());
    Ok(StartLine::Response {
        code,
        reason: Span::new(reason_start, begin + line.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Host;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds, SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKabc\r\n\
v: SIP/2.0/TCP third.example.com\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
f: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@pc33.atlanta.com>, \"x,y\" <sip:other@h>;q=0.5\r\n\
Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>\r\n\
X-Folded: first\r\n second\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\n";

    #[test]
    fn frames_a_request() {
        let m = Message::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.request_uri_raw(), b"sip:bob@biloxi.com");
        assert_eq!(m.ruri().unwrap().host, Host::Name(b"biloxi.com"));
        assert_eq!(m.via_count(), 3);
        assert_eq!(m.top_via().unwrap().branch, Some(&b"z9hG4bK776asdhds"[..]));
        let vias: Vec<_> = m.vias().map(|v| v.unwrap().port).collect();
        assert_eq!(vias, vec![None, Some(5070), None]);
        let at: Vec<_> = (0..4)
            .map(|n| m.via_at(n).map(|v| v.unwrap().port))
            .collect();
        assert_eq!(at, vec![Some(None), Some(Some(5070)), Some(None), None]);
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        assert_eq!(m.to().unwrap().tag, None);
        assert_eq!(m.from().unwrap().tag, Some(&b"1928301774"[..]));
        assert_eq!(m.call_id(), Ok(&b"a84b4c76e66710@pc33.atlanta.com"[..]));
        assert_eq!(m.cseq().unwrap().number, 314159);
        assert_eq!(m.contacts().count(), 2);
        assert_eq!(m.routes().count(), 2);
        let folded = m.named(b"x-folded").next().unwrap();
        assert_eq!(m.value(folded), b"first\r\n second");
        assert!(
            m.content_type()
                .unwrap()
                .unwrap()
                .is(b"application", b"sdp")
        );
        assert_eq!(m.body(), b"v=0\r");
    }

    #[test]
    fn a_bad_address_in_to_leaves_the_tag_readable_and_fails_validation() {
        let text = String::from_utf8_lossy(INVITE)
            .replace("To: Bob <sip:bob@biloxi.com>", "To: Bob <sip:bob@>;tag=b1");
        let m = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(m.to().unwrap().tag, Some(&b"b1"[..]));
        assert!(m.to().unwrap().uri().is_err());
        assert_eq!(m.validate(), Err(ParseError::BadNameAddr));
    }

    #[test]
    fn frames_a_response_and_missing_content_length() {
        let m = Message::parse(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h\r\n\r\nbody").unwrap();
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.reason(), b"Ringing");
        assert_eq!(m.body(), b"body");
        let m = Message::parse(b"SIP/2.0 100\r\n\r\n").unwrap();
        assert_eq!(m.reason(), b"");
    }

    #[test]
    fn framing_errors() {
        let cases: [(&[u8], ParseError); 12] = [
            (b"", ParseError::Empty),
            // A control character inside a name, even where a known
            // name has its '-'.
            (
                b"INVITE sip:a@b SIP/2.0\r\nCall\rID: x\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\nX-F\x01o: x\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (b"\r\n\r\n", ParseError::Empty),
            (
                b"INVITE sip:a@b SIP/2.0\r\nTo: x\r\n",
                ParseError::Truncated,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\nl: 10\r\n\r\nshort",
                ParseError::ContentLengthTooLarge,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\nl: -1\r\n\r\n",
                ParseError::BadContentLength,
            ),
            (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", ParseError::BadStartLine),
            (b"INVITE sip:a@b SIP/7.0\r\n\r\n", ParseError::BadVersion),
            (b"SIP/2.0 4294967301 x\r\n\r\n", ParseError::BadStatusCode),
            (
                b"INVITE sip:a@b SIP/2.0\r\nNoColon\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (
                b"INVITE sip:a@b SIP/2.0\r\n folded\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                Message::parse(input).err(),
                Some(want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn leading_crlf_is_ignored_and_extra_bytes_discarded() {
        let m = Message::parse(b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\nl: 2\r\n\r\nabcdef").unwrap();
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.body(), b"ab");
    }
}
