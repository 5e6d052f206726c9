//! Property tests, bounded so CI stays fast: arbitrary and mutated input
//! through every parser and builder entry point (see `exercise`), and
//! generated URIs that must parse and compare equal to themselves.

use proptest::prelude::*;

use super::exercise::exercise;
use super::uri::Uri;

const SEEDS: [&[u8]; 6] = [
    include_bytes!("testdata/invite.sip"),
    include_bytes!("testdata/rfc4475/wsinv.dat"),
    include_bytes!("testdata/rfc4475/longreq.dat"),
    include_bytes!("testdata/rfc4475/mpart01.dat"),
    include_bytes!("testdata/rfc4475/noreason.dat"),
    include_bytes!("testdata/rfc4475/esc01.dat"),
];

/// A seed message with random byte edits: flips, insertions of SIP's
/// delimiter characters, deletions and a truncation.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let delimiter = prop::sample::select(&b"\r\n ;,:<>\"\\%=@?/\t\0"[..]);
    (
        0..SEEDS.len(),
        prop::collection::vec((any::<u16>(), 0u8..3, delimiter, any::<u8>()), 0..8),
        any::<u16>(),
    )
        .prop_map(|(seed, edits, cut)| {
            let mut m = SEEDS[seed].to_vec();
            for (pos, op, delim, byte) in edits {
                if m.is_empty() {
                    break;
                }
                let at = usize::from(pos) % m.len();
                match op {
                    0 => m[at] = byte,
                    1 => m.insert(at, delim),
                    _ => {
                        m.remove(at);
                    }
                }
            }
            if cut % 4 == 0 && !m.is_empty() {
                let keep = usize::from(cut) % m.len();
                m.truncate(keep);
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&data);
    }

    #[test]
    fn mutated_messages_never_panic(data in mutated()) {
        exercise(&data);
    }

    #[test]
    fn generated_sip_uris_parse_and_equal_themselves(
        user in "[a-zA-Z0-9_.!~*'()-]{1,12}",
        host in "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        port in proptest::option::of(1u16..),
        transport in proptest::option::of(prop::sample::select(vec!["udp", "tcp", "tls"])),
    ) {
        let tail = port.map_or(String::new(), |p| format!(":{p}"))
            + &transport.map_or(String::new(), |t| format!(";transport={t}"));
        let text = format!("sip:{user}@{host}{tail}");
        let uri = Uri::parse(text.as_bytes()).expect("generated URI parses");
        prop_assert_eq!(uri.user, Some(user.as_bytes()));
        prop_assert_eq!(uri.port, port);
        prop_assert!(uri.equivalent(&uri));
        let upper = format!("sip:{user}@{}{tail}", host.to_uppercase());
        prop_assert!(uri.equivalent(&Uri::parse(upper.as_bytes()).expect("upper-case host")));
    }
}

#[test]
fn seeds_frame() {
    for seed in SEEDS {
        assert!(exercise(seed));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A stream of seeds and garbage, cut anywhere: framing never panics,
    /// every frame it hands on is within the buffer, and it stops.
    #[test]
    fn stream_framing_never_panics(
        picks in proptest::collection::vec((0usize..SEEDS.len(), any::<bool>()), 1..6),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
        cuts in proptest::collection::vec(1usize..512, 1..8),
    ) {
        let mut bytes = Vec::new();
        for (i, crlf) in picks {
            bytes.extend_from_slice(SEEDS[i]);
            if crlf {
                bytes.extend_from_slice(b"\r\n\r\n");
            }
        }
        bytes.extend_from_slice(&noise);
        let mut b = super::stream::StreamBuf::default();
        let mut at = 0;
        for (n, cut) in cuts.iter().cycle().enumerate().take(64) {
            let end = (at + cut).min(bytes.len());
            b.feed(&bytes[at..end], n as u64);
            let mut total = 0;
            if b.drain(n as u64, |e| {
                if let super::stream::Event::Message(m) = e {
                    total += m.len();
                }
            }).is_err() {
                break;
            }
            prop_assert!(total <= bytes.len());
            at = end;
            if at == bytes.len() {
                break;
            }
        }
    }
}
