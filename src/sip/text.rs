//! Numbers and addresses written as message text on the packet path (a
//! Via's host and branch, `received=`, a Record-Route URI) without
//! `core::fmt`: its machinery costs about a thousand instructions an
//! address, a tenth of a relay's work.

use std::net::{IpAddr, Ipv4Addr};

/// Room for any address [`ip`] writes: an IPv6 address is at most 45
/// characters, 47 in brackets.
pub const IP_TEXT: usize = 48;

/// `n` in decimal into `digits`; returns the used tail.
pub fn decimal(n: u32, digits: &mut [u8; 10]) -> &[u8] {
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[i..];
        }
    }
}

/// `n` in lower-case hexadecimal, at least `min_digits` digits (zeros in
/// front), into `digits`; returns the used tail.
pub fn hex(n: u64, min_digits: usize, digits: &mut [u8; 16]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 && digits.len() - i >= min_digits {
            return &digits[i..];
        }
    }
}

/// Hexadecimal digits (either case, no sign) read back: `None` for
/// none, anything else, or more than 16.
pub fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16)?;
        Some(n << 4 | u64::from(d))
    })
}

/// An address as text, an IPv6 one in brackets when `bracket_v6` (a
/// host in a URI or a Via, RFC 3261 §25.1 IPv6reference), into `out`;
/// returns the used head.
pub fn ip(addr: IpAddr, bracket_v6: bool, out: &mut [u8; IP_TEXT]) -> &[u8] {
    match addr {
        IpAddr::V4(a) => {
            let n = ipv4(a, out);
            &out[..n]
        }
        // Rare on the packet path: the standard formatting, on the stack.
        IpAddr::V6(a) => {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut out[..]);
            let _ = match bracket_v6 {
                true => write!(cursor, "[{a}]"),
                false => write!(cursor, "{a}"),
            };
            let n = cursor.position() as usize;
            &out[..n]
        }
    }
}

/// A dotted quad into the head of `out`; returns its length (7 to 15).
fn ipv4(a: Ipv4Addr, out: &mut [u8]) -> usize {
    let mut n = 0;
    for (i, octet) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            out[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            out[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        out[n] = b'0' + octet % 10;
        n += 1;
    }
    n
}

/// Text this module wrote, as a `str` (it is ASCII).
pub fn ascii(text: &[u8]) -> &str {
    std::str::from_utf8(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn numbers_and_addresses_read_as_the_standard_formatting_writes_them() {
        for n in [0u32, 7, 10, 99, 100, 65_535, 4_294_967_295] {
            assert_eq!(decimal(n, &mut [0; 10]), n.to_string().as_bytes());
        }
        for n in [0u64, 0xf, 0x10, 0xdead_beef, u64::MAX] {
            assert_eq!(hex(n, 0, &mut [0; 16]), format!("{n:x}").as_bytes());
            assert_eq!(hex(n, 16, &mut [0; 16]), format!("{n:016x}").as_bytes());
        }
        let mut x = 0x1234_5678u32;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let a = IpAddr::V4(Ipv4Addr::from(x));
            assert_eq!(ip(a, true, &mut [0; IP_TEXT]), a.to_string().as_bytes());
        }
        for (s, n) in [
            (&b"0"[..], Some(0)),
            (b"fF", Some(255)),
            (b"ffffffffffffffff", Some(u64::MAX)),
        ] {
            assert_eq!(parse_hex(s), n);
        }
        for bad in [&b""[..], b"+1", b"-1", b"g", b"1 ", b"10000000000000000"] {
            assert_eq!(parse_hex(bad), None, "{bad:?}");
        }
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(ip(v6, true, &mut [0; IP_TEXT]), b"[2001:db8::1]");
        assert_eq!(ip(v6, false, &mut [0; IP_TEXT]), b"2001:db8::1");
        let widest = IpAddr::V6(
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            ip(widest, true, &mut [0; IP_TEXT]).len(),
            2 + widest.to_string().len()
        );
    }
}
