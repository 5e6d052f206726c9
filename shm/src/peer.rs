//! A socket address as plain bytes, to live in shared memory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peer {
    ip: [u8; 16],
    port: u16,
    v6: bool,
}

impl Peer {
    /// The port (0 for the default value, an address never set).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        let mut ip = [0; 16];
        let v6 = match a.ip() {
            IpAddr::V4(v4) => {
                ip[..4].copy_from_slice(&v4.octets());
                false
            }
            IpAddr::V6(v6) => {
                ip = v6.octets();
                true
            }
        };
        Peer {
            ip,
            port: a.port(),
            v6,
        }
    }
}

impl From<Peer> for SocketAddr {
    fn from(p: Peer) -> SocketAddr {
        let ip = if p.v6 {
            IpAddr::V6(Ipv6Addr::from(p.ip))
        } else {
            IpAddr::V4(Ipv4Addr::new(p.ip[0], p.ip[1], p.ip[2], p.ip[3]))
        };
        SocketAddr::new(ip, p.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for a in ["127.0.0.1:5060", "[::1]:5070", "[2001:db8::7]:1"] {
            let s: SocketAddr = a.parse().unwrap();
            assert_eq!(SocketAddr::from(Peer::from(s)), s);
        }
    }
}
