//! Host names to addresses for forwarding (DNS A/AAAA through the system
//! resolver), cached per worker so a name costs one lookup a minute.
//! Addresses written as such never reach the resolver.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long a resolved name is reused.
const TTL: Duration = Duration::from_secs(60);
/// Most names cached; the cache starts over when full.
const MAX_NAMES: usize = 4096;

#[derive(Default)]
pub struct Resolver {
    cache: HashMap<Box<str>, (Option<IpAddr>, Instant)>,
}

impl Resolver {
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// `host` as an address or a name; prefers the address family of
    /// `prefer_v6`. A failed lookup is cached too (as the negative answer).
    pub fn resolve(&mut self, host: &str, port: u16, prefer_v6: bool) -> Option<SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        let now = Instant::now();
        if let Some((ip, at)) = self.cache.get(host) {
            if now.duration_since(*at) < TTL {
                return ip.map(|ip| SocketAddr::new(ip, port));
            }
        }
        let found: Vec<IpAddr> = (host, port)
            .to_socket_addrs()
            .map(|it| it.map(|a| a.ip()).collect())
            .unwrap_or_default();
        let ip = found
            .iter()
            .find(|ip| ip.is_ipv6() == prefer_v6)
            .or(found.first())
            .copied();
        if ip.is_none() {
            log::warn!("cannot resolve '{host}'");
        }
        if self.cache.len() >= MAX_NAMES {
            self.cache.clear();
        }
        self.cache.insert(host.into(), (ip, now));
        ip.map(|ip| SocketAddr::new(ip, port))
    }
}
