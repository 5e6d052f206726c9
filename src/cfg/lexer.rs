//! The routing script's lexer: SER's `ser.cfg` language as tokens with
//! their source positions. Comments (`#` to end of line, `/* ... */`) are
//! skipped wherever they appear, argument lists included.

use std::fmt;

/// A 1-based line and column in the script, for `FILE:LINE:COL` errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A name, hostname or dotted address: `route`, `forward`, `foo.bar`,
    /// `192.168.0.1`, `sl.so`, `t_relay`.
    Word(String),
    /// A decimal integer.
    Int(i64),
    /// A double-quoted string, escapes resolved.
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Semi,
    Comma,
    Colon,
    Slash,
    /// `=` (global parameters).
    Assign,
    Eq,
    Ne,
    Match,
    NotMatch,
    Lt,
    Gt,
    Le,
    Ge,
    Not,
    And,
    Or,
    /// Kamailio's expression operators: `+`, `*`, `%`, `|`, `&` (a lone
    /// `-` is a word, a `/` is [`Tok::Slash`]).
    Plus,
    Star,
    Percent,
    Pipe,
    Amp,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Tok::Word(w) => return write!(f, "'{w}'"),
            Tok::Int(n) => return write!(f, "{n}"),
            Tok::Str(s) => return write!(f, "\"{s}\""),
            Tok::LParen => "'('",
            Tok::RParen => "')'",
            Tok::LBrace => "'{'",
            Tok::RBrace => "'}'",
            Tok::LBracket => "'['",
            Tok::RBracket => "']'",
            Tok::Semi => "';'",
            Tok::Comma => "','",
            Tok::Colon => "':'",
            Tok::Slash => "'/'",
            Tok::Assign => "'='",
            Tok::Eq => "'=='",
            Tok::Ne => "'!='",
            Tok::Match => "'=~'",
            Tok::NotMatch => "'!~'",
            Tok::Lt => "'<'",
            Tok::Gt => "'>'",
            Tok::Le => "'<='",
            Tok::Ge => "'>='",
            Tok::Not => "'!'",
            Tok::And => "'&&'",
            Tok::Or => "'||'",
            Tok::Plus => "'+'",
            Tok::Star => "'*'",
            Tok::Percent => "'%'",
            Tok::Pipe => "'|'",
            Tok::Amp => "'&'",
        };
        f.write_str(s)
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

/// A lexical error and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub pos: Pos,
    pub msg: String,
}

/// Splits a script into tokens. Lexing continues after an error so that
/// one bad character does not hide later ones; all errors are returned.
pub fn lex(src: &str) -> (Vec<Token>, Vec<LexError>) {
    let mut lx = Lexer {
        src: src.as_bytes(),
        i: 0,
        pos: Pos { line: 1, col: 1 },
        tokens: Vec::new(),
        errors: Vec::new(),
    };
    lx.run();
    (join_strings(lx.tokens), lx.errors)
}

/// Adjacent quoted strings are one (`"a" "b"` is `"ab"`, as C and
/// Kamailio read them: long values split over lines).
fn join_strings(tokens: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    for t in tokens {
        if let (
            Tok::Str(next),
            Some(Token {
                tok: Tok::Str(prev),
                ..
            }),
        ) = (&t.tok, out.last_mut())
        {
            prev.push_str(next);
            continue;
        }
        out.push(t);
    }
    out
}

struct Lexer<'s> {
    src: &'s [u8],
    i: usize,
    pos: Pos,
    tokens: Vec<Token>,
    errors: Vec<LexError>,
}

/// Characters of a word: names, hostnames, dotted addresses, file names.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'$' | b'@')
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek(0)?;
        self.i += 1;
        if b == b'\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else if b & 0xC0 != 0x80 {
            // Columns count characters, not UTF-8 continuation bytes.
            self.pos.col += 1;
        }
        Some(b)
    }

    fn error(&mut self, pos: Pos, msg: impl Into<String>) {
        self.errors.push(LexError {
            pos,
            msg: msg.into(),
        });
    }

    fn run(&mut self) {
        while let Some(b) = self.peek(0) {
            let start = self.pos;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    self.bump();
                }
                b'#' => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.bump();
                    }
                }
                b'/' if self.peek(1) == Some(b'*') => self.block_comment(start),
                // Kamailio takes 'single-quoted' strings too.
                b'"' | b'\'' => self.string(start, b),
                _ if is_word_byte(b) => self.word(start),
                _ => self.punct(start, b),
            }
        }
    }

    fn block_comment(&mut self, start: Pos) {
        self.bump();
        self.bump();
        loop {
            match self.bump() {
                None => return self.error(start, "unterminated /* comment"),
                Some(b'*') if self.peek(0) == Some(b'/') => {
                    self.bump();
                    return;
                }
                Some(_) => {}
            }
        }
    }

    fn string(&mut self, start: Pos, quote: u8) {
        self.bump();
        let mut bytes = Vec::new();
        loop {
            match self.bump() {
                None | Some(b'\n') => {
                    let q = quote as char;
                    return self.error(start, format!("unterminated string (a '{q}' is missing)"));
                }
                Some(c) if c == quote => break,
                Some(b'\\') => match self.bump() {
                    Some(b'n') => bytes.push(b'\n'),
                    Some(b'r') => bytes.push(b'\r'),
                    Some(b't') => bytes.push(b'\t'),
                    Some(c) if c == quote || c == b'\\' => bytes.push(c),
                    // Regular expressions keep their escapes: "\." stays "\.".
                    Some(c) => bytes.extend_from_slice(&[b'\\', c]),
                    None => return self.error(start, "unterminated string"),
                },
                Some(c) => bytes.push(c),
            }
        }
        // The source is &str and escapes only add ASCII, so this holds UTF-8.
        let s = String::from_utf8_lossy(&bytes).into_owned();
        self.tokens.push(Token {
            tok: Tok::Str(s),
            pos: start,
        });
    }

    fn word(&mut self, start: Pos) {
        let from = self.i;
        while self.peek(0).is_some_and(is_word_byte) {
            self.bump();
        }
        // Kamailio's `$name(...)` and `$(pv{tr})` are one word, whatever
        // their parentheses hold (`$hdr(User-Agent)`, `$sht(t=>k)`).
        if self.src[from] == b'$' && self.peek(0) == Some(b'(') && !self.pv_parens(start) {
            return;
        }
        let text = &self.src[from..self.i];
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        let tok = if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
            match std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()) {
                Some(n) => Tok::Int(n),
                None => return self.error(start, "number too large"),
            }
        } else {
            Tok::Word(String::from_utf8_lossy(text).into_owned())
        };
        self.tokens.push(Token { tok, pos: start });
    }

    /// Consumes a pseudo-variable's `(...)` up to the matching `)`
    /// (braces of transformations may hold parentheses); false, with an
    /// error, when the line ends first.
    fn pv_parens(&mut self, start: Pos) -> bool {
        let rest = &self.src[self.i..];
        let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
        let end = super::pv::matching_paren(line);
        for _ in 0..end.map_or(line.len(), |e| e + 1) {
            self.bump();
        }
        if end.is_none() {
            self.error(start, "a pseudo-variable's ')' is missing");
        }
        end.is_some()
    }

    fn punct(&mut self, start: Pos, b: u8) {
        let next = self.peek(1);
        let (tok, len) = match (b, next) {
            (b'=', Some(b'=')) => (Tok::Eq, 2),
            (b'=', Some(b'~')) => (Tok::Match, 2),
            (b'!', Some(b'=')) => (Tok::Ne, 2),
            (b'!', Some(b'~')) => (Tok::NotMatch, 2),
            (b'<', Some(b'=')) => (Tok::Le, 2),
            (b'>', Some(b'=')) => (Tok::Ge, 2),
            (b'&', Some(b'&')) => (Tok::And, 2),
            (b'|', Some(b'|')) => (Tok::Or, 2),
            (b'=', _) => (Tok::Assign, 1),
            (b'!', _) => (Tok::Not, 1),
            (b'<', _) => (Tok::Lt, 1),
            (b'>', _) => (Tok::Gt, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b'[', _) => (Tok::LBracket, 1),
            (b']', _) => (Tok::RBracket, 1),
            (b';', _) => (Tok::Semi, 1),
            (b',', _) => (Tok::Comma, 1),
            (b':', _) => (Tok::Colon, 1),
            (b'/', _) => (Tok::Slash, 1),
            (b'+', _) => (Tok::Plus, 1),
            (b'*', _) => (Tok::Star, 1),
            (b'%', _) => (Tok::Percent, 1),
            (b'|', _) => (Tok::Pipe, 1),
            (b'&', _) => (Tok::Amp, 1),
            _ => {
                let shown = self.src[self.i..]
                    .utf8_chunks()
                    .next()
                    .and_then(|c| c.valid().chars().next())
                    .unwrap_or('?');
                self.bump();
                while self.peek(0).is_some_and(|c| c & 0xC0 == 0x80) {
                    self.bump();
                }
                return self.error(start, format!("unexpected character '{shown}'"));
            }
        };
        for _ in 0..len {
            self.bump();
        }
        self.tokens.push(Token { tok, pos: start });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let (t, e) = lex(src);
        assert!(e.is_empty(), "{e:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.to_string())
    }

    #[test]
    fn lexes_a_route_with_comments_everywhere() {
        let t = toks(
            "route[0] { # comment\n if (!proxy_authorize(\"foo.bar\" /* realm */, \"subscriber\")) { forward(192.168.0.10,5060); } }",
        );
        assert_eq!(
            t,
            vec![
                w("route"),
                Tok::LBracket,
                Tok::Int(0),
                Tok::RBracket,
                Tok::LBrace,
                w("if"),
                Tok::LParen,
                Tok::Not,
                w("proxy_authorize"),
                Tok::LParen,
                Tok::Str("foo.bar".into()),
                Tok::Comma,
                Tok::Str("subscriber".into()),
                Tok::RParen,
                Tok::RParen,
                Tok::LBrace,
                w("forward"),
                Tok::LParen,
                w("192.168.0.10"),
                Tok::Comma,
                Tok::Int(5060),
                Tok::RParen,
                Tok::Semi,
                Tok::RBrace,
                Tok::RBrace,
            ]
        );
    }

    #[test]
    fn operators_and_uri_host() {
        let t = toks("uri=~\"^sip:1\" && src_ip==10.0.0.0/8 || x!=y; forward(uri:host, uri:port)");
        assert!(t.contains(&Tok::Match));
        assert!(t.contains(&Tok::And));
        assert!(t.contains(&Tok::Slash));
        assert!(t.contains(&Tok::Or));
        assert!(t.contains(&Tok::Ne));
        assert!(t.windows(3).any(|x| x == [w("uri"), Tok::Colon, w("host")]));
    }

    #[test]
    fn pseudo_variables_with_parentheses_are_one_word() {
        assert_eq!(
            toks("$sht(t=>k) = $(hdr(To){tobody.uri}{s.select,0,)});"),
            vec![
                w("$sht(t=>k)"),
                Tok::Assign,
                w("$(hdr(To){tobody.uri}{s.select,0,)})"),
                Tok::Semi
            ]
        );
        let (_, e) = lex("$var(x\n);");
        assert!(e[0].msg.contains("')' is missing"), "{e:?}");
    }

    #[test]
    fn single_quoted_strings() {
        assert_eq!(
            toks(r#"subst_uri('/^sip:(.*)$/sip:\1;x=\'y\'/') "it's""#),
            vec![
                w("subst_uri"),
                Tok::LParen,
                Tok::Str(r"/^sip:(.*)$/sip:\1;x='y'/".into()),
                Tok::RParen,
                Tok::Str("it's".into())
            ]
        );
        let (_, e) = lex("'open");
        assert!(e[0].msg.contains("a ''' is missing"), "{e:?}");
    }

    #[test]
    fn negative_numbers() {
        assert_eq!(
            toks("return(-1)"),
            vec![w("return"), Tok::LParen, Tok::Int(-1), Tok::RParen]
        );
    }

    #[test]
    fn regex_escapes_are_kept() {
        assert_eq!(
            toks(r#""@bat\.iptel\.org""#),
            vec![Tok::Str(r"@bat\.iptel\.org".into())]
        );
        assert_eq!(toks(r#""say \"hi\"""#), vec![Tok::Str("say \"hi\"".into())]);
    }

    #[test]
    fn positions_and_errors() {
        let (t, e) = lex("a\n  b ` c\n\"open");
        assert_eq!(t[0].pos, Pos { line: 1, col: 1 });
        assert_eq!(t[1].pos, Pos { line: 2, col: 3 });
        assert_eq!(t[2].pos, Pos { line: 2, col: 7 });
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].pos, Pos { line: 2, col: 5 });
        assert!(e[1].msg.contains("unterminated string"));
        let (_, e) = lex("/* never closed");
        assert_eq!(e[0].msg, "unterminated /* comment");
    }
}

#[cfg(test)]
mod join_tests {
    use super::*;

    #[test]
    fn adjacent_strings_are_one() {
        let (t, e) = lex("modparam(\"acc\", \"log_extra\",\n\t\"a=$fU;\"\n\t\"b=$tU\")");
        assert!(e.is_empty());
        assert!(t.iter().any(|t| t.tok == Tok::Str("a=$fU;b=$tU".into())));
    }
}
