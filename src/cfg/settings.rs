//! Global parameters (`listen=`, `children=`, `alias=`, ...) checked and
//! turned into the core's settings.

use std::net::IpAddr;

use super::ConfigError;
use super::ast::{Global, Value};

/// Transport of a listen address or a forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
    Sctp,
}

/// How datagrams are spread over the workers' SO_REUSEPORT sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    Hash,
    Random,
    Cpu,
}

impl Proto {
    pub fn parse(s: &str) -> Option<Proto> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            "tls" => Proto::Tls,
            "sctp" => Proto::Sctp,
            _ => return None,
        })
    }

    /// A one-byte code for records in shared memory (0 is none).
    pub fn code(self) -> u8 {
        self as u8 + 1
    }

    /// The transport of a code from `code`.
    pub fn of_code(c: u8) -> Option<Proto> {
        [Proto::Udp, Proto::Tcp, Proto::Tls, Proto::Sctp]
            .get(usize::from(c).checked_sub(1)?)
            .copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
            Proto::Sctp => "sctp",
        }
    }

    /// Its name in a Via's sent-protocol (RFC 3261 §20.42).
    pub fn via_name(self) -> &'static [u8] {
        match self {
            Proto::Udp => b"UDP",
            Proto::Tcp => b"TCP",
            Proto::Tls => b"TLS",
            Proto::Sctp => b"SCTP",
        }
    }

    /// A stream transport: reliable, so no retransmissions (RFC 3261
    /// §17.1.1.2, §17.2.1), and framed by Content-Length (§18.3).
    pub fn is_stream(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Tls)
    }
}

/// `listen=[proto:]addr[:port]`; `port` falls back to `port=` or 5060.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: Option<u16>,
}

impl Listen {
    /// Whether this build can serve it: UDP, TCP or TLS on a specific
    /// address.
    pub fn servable(&self) -> Result<(), String> {
        if self.proto == Proto::Sctp {
            return Err(format!(
                "listen on {}:{}: SCTP is not served by this build",
                self.proto.name(),
                self.addr
            ));
        }
        if self.addr.is_unspecified() {
            return Err(format!(
                "listen on {}: give a specific address (the Via and myself need one)",
                self.addr
            ));
        }
        Ok(())
    }

    /// `udp:127.0.0.1:5060`, `127.0.0.1:5060`, `127.0.0.1`, `udp:[::1]:5060`.
    pub fn parse(s: &str) -> Result<Listen, String> {
        let (proto, rest) = s
            .split_once(':')
            .and_then(|(p, rest)| Some((Proto::parse(p)?, rest)))
            .unwrap_or((Proto::Udp, s));
        let (host, port) = split_host_port(rest)?;
        let addr = host
            .parse::<IpAddr>()
            .map_err(|_| format!("'{host}' is not an IP address"))?;
        Ok(Listen { proto, addr, port })
    }
}

/// A name `uri==myself` matches besides the listen addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// Lower-cased host name or address text (IPv6 without brackets).
    pub host: String,
    /// `None` matches any port.
    pub port: Option<u16>,
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{s}': unclosed '['"))?;
        (h, after.strip_prefix(':'))
    } else if s.matches(':').count() > 1 {
        (s, None) // bare IPv6
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            // 0 asks the kernel for a port (listen), as for any bind.
            p.parse::<u16>()
                .map_err(|_| format!("'{p}' is not a port number"))?,
        ),
    };
    if host.is_empty() {
        return Err(format!("'{s}' has no host"));
    }
    Ok((host, port))
}

/// The core's settings, from the global parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub listen: Vec<Listen>,
    pub port: u16,
    pub children: u32,
    pub aliases: Vec<Alias>,
    /// SER's debug level (0 errors .. 4 debug and more).
    pub debug: i64,
    pub fork: bool,
    pub log_stderror: bool,
    pub check_via: bool,
    pub dns: bool,
    pub rev_dns: bool,
    pub mhomed: bool,
    /// `reuse_port=yes`: one SO_REUSEPORT socket per worker instead of one
    /// socket shared by all.
    pub reuse_port: bool,
    /// `reuse_port_balance=hash|random|cpu` (rser's): how the kernel picks
    /// a worker's socket for a datagram with `reuse_port`: its own hash of
    /// the addresses (one peer, one worker), at random (a classic BPF
    /// selector: one peer over every worker), or by the receiving CPU
    /// (for NICs spreading flows over CPUs).
    pub reuse_port_balance: Balance,
    /// `ctl_socket="/path"`: the control interface's Unix socket (`-s`
    /// overrides); none, no control process.
    pub ctl_socket: Option<String>,
    /// `metrics_port=N`: Prometheus' `/metrics` over HTTP on 127.0.0.1:N,
    /// served by the control process.
    pub metrics_port: Option<u16>,
    /// `use_dst_blocklist=yes` (or SER's `use_dst_blacklist`): tm skips
    /// destinations that let an INVITE time out.
    pub use_dst_blocklist: bool,
    /// `dst_blocklist_expire=S`: how long they are skipped (seconds).
    pub dst_blocklist_expire: u32,
    /// `blst_503=yes`: a 503 from a destination blocklists it for its
    /// Retry-After (clamped to `blst_503_min_timeout`..`max`), or
    /// `blst_503_def_timeout` without one (0: not at all).
    pub blst_503: bool,
    pub blst_503_def_timeout: u32,
    pub blst_503_min_timeout: u32,
    pub blst_503_max_timeout: u32,
    /// Methods (Kamailio's bits: 1 INVITE, 2 CANCEL, 4 ACK, 8 BYE, ...)
    /// whose failures add to the blocklist, and for which tm looks it up.
    pub blst_methods_add: Option<u32>,
    pub blst_methods_lookup: u32,
    /// `fifo="/tmp/ser_fifo"`: SER's FIFO control interface, served by
    /// the control process on this named pipe.
    pub fifo: Option<String>,
    /// `fifo_mode=0600`: the pipe's permission bits (octal).
    pub fifo_mode: u32,
    /// `auto_aliases=no`: `myself` is the listen addresses and `alias=`
    /// only, not also the host's name and the names its addresses have.
    pub auto_aliases: bool,
    /// Seconds an unused TCP connection is kept (Kamailio's
    /// `tcp_connection_lifetime`).
    pub tcp_connection_lifetime: u32,
    /// TCP connections open at once, accepted and opened (Kamailio's
    /// `tcp_max_connections`).
    pub tcp_max_connections: u32,
    /// Seconds a connection we open may take to be accepted, and a
    /// write may wait on a peer that does not read.
    pub tcp_connect_timeout: u32,
    pub tcp_send_timeout: u32,
    /// `disable_tcp=yes`: a `tcp:` listen address is refused.
    pub disable_tcp: bool,
    /// Connections accepted from one address at once (Kamailio's
    /// `tcp_accept_iplimit`).
    pub tcp_accept_iplimit: u32,
    /// `enable_tls=yes`: `tls:` listen addresses are served (with the tls
    /// module loaded).
    pub enable_tls: bool,
    /// `tcp_accept_aliases=yes`: a request over TCP whose top Via has an
    /// `alias` parameter (RFC 5923) makes its sent-by reach the same
    /// connection.
    pub tcp_accept_aliases: bool,
    /// `udp_mtu`: a request larger than this that would go over UDP
    /// without its URI or the action asking for UDP goes over
    /// `udp_mtu_try_proto` instead (RFC 3261 §18.1.1's 1300 bytes; 0:
    /// never), when rser serves it.
    pub udp_mtu: u32,
    pub udp_mtu_try_proto: Proto,
}

/// Upper bound on `children=`; more workers than this is a typo.
pub const MAX_CHILDREN: i64 = 1024;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: Vec::new(),
            port: 5060,
            children: 8,
            aliases: Vec::new(),
            debug: 0,
            fork: true,
            log_stderror: false,
            check_via: false,
            dns: false,
            rev_dns: false,
            mhomed: false,
            reuse_port: false,
            reuse_port_balance: Balance::Hash,
            ctl_socket: None,
            metrics_port: None,
            use_dst_blocklist: false,
            dst_blocklist_expire: 60,
            blst_503: false,
            blst_503_def_timeout: 0,
            blst_503_min_timeout: 0,
            blst_503_max_timeout: 3600,
            blst_methods_add: None,
            // Kamailio's default: every method but BYE.
            blst_methods_lookup: !8,
            fifo: None,
            fifo_mode: 0o600,
            auto_aliases: true,
            // Kamailio's defaults.
            tcp_connection_lifetime: 120,
            tcp_max_connections: 2048,
            tcp_connect_timeout: 10,
            tcp_send_timeout: 10,
            disable_tcp: false,
            tcp_accept_iplimit: 1024,
            enable_tls: false,
            tcp_accept_aliases: false,
            udp_mtu: 1300,
            udp_mtu_try_proto: Proto::Tcp,
        }
    }
}

impl Settings {
    /// The port a listen address without one uses.
    pub fn port_of(&self, l: &Listen) -> u16 {
        l.port.unwrap_or(self.port)
    }
}

pub fn settings(globals: &[Global], errors: &mut Vec<ConfigError>) -> Settings {
    let mut s = Settings::default();
    for g in globals {
        match apply(&mut s, g) {
            Ok(()) => {}
            Err(Said::Error(msg)) => errors.push(ConfigError::new(g.pos, msg)),
            Err(Said::Warning(msg)) => errors.push(ConfigError::warning(g.pos, msg)),
        }
    }
    let listens = globals.iter().filter(|g| g.name == "listen");
    if let Some(g) = listens.clone().nth(crate::server::limits::MAX_SOCKETS) {
        errors.push(ConfigError::new(
            g.pos,
            format!(
                "at most {} listen addresses",
                crate::server::limits::MAX_SOCKETS
            ),
        ));
    }
    let blst = globals.iter().find(|g| g.name.starts_with("blst_"));
    if let (Some(g), false) = (blst, s.use_dst_blocklist) {
        errors.push(ConfigError::warning(
            g.pos,
            format!(
                "{}: no blocklist is kept without use_dst_blocklist=yes",
                g.name
            ),
        ));
    }
    s
}

/// What `apply` says of a global: refused, or accepted and not done as
/// written.
enum Said {
    Error(String),
    Warning(String),
}

impl From<String> for Said {
    fn from(msg: String) -> Said {
        Said::Error(msg)
    }
}

impl From<&str> for Said {
    fn from(msg: &str) -> Said {
        Said::Error(msg.to_string())
    }
}

/// SER's switches rser accepts but does not honour when set the other
/// way: the value it always runs with, and what it does instead.
fn fixed_switch(name: &str, asked: bool) -> Result<(), Said> {
    let (always, instead) = match name {
        "fork" if asked => (
            false,
            "rser pre-forks its workers but stays in the foreground (--daemon detaches)",
        ),
        "fork" => (true, "rser always pre-forks workers (-n 1 runs one)"),
        "log_stderror" => (true, "rser logs to standard error only, not to syslog"),
        "check_via" => (
            true,
            "rser always drops a reply whose top Via is not its own (RFC 3261 §16.7 step 3)",
        ),
        "dns" | "rev_dns" => (
            false,
            "rser never looks the Via's sent-by up in DNS: received= is added whenever it is not the source address (RFC 3261 §18.2.1)",
        ),
        "mhomed" => (
            false,
            "rser sends from its listen socket of the destination's address family; it does not ask the routing table",
        ),
        _ => return Ok(()),
    };
    if asked == always {
        return Ok(());
    }
    Err(Said::Warning(format!(
        "{name}={}: accepted and ignored: {instead}",
        if asked { "yes" } else { "no" }
    )))
}

fn apply(s: &mut Settings, g: &Global) -> Result<(), Said> {
    let name = g.name.as_str();
    match name {
        "listen" => {
            let l = Listen::parse(&text(&g.value))?;
            l.servable()?;
            s.listen.push(l);
        }
        "port" => s.port = int_in(name, &g.value, 1, 65535)? as u16,
        "children" => s.children = int_in(name, &g.value, 1, MAX_CHILDREN)? as u32,
        "alias" => {
            let v = text(&g.value);
            let (host, port) = split_host_port(&v)?;
            s.aliases.push(Alias {
                host: host.to_ascii_lowercase(),
                port,
            });
        }
        "debug" | "log_level" => s.debug = int_in(name, &g.value, -10, 10)?,
        "fork" | "log_stderror" | "check_via" | "dns" | "rev_dns" | "mhomed" => {
            let v = boolean(name, &g.value)?;
            match name {
                "fork" => s.fork = v,
                "log_stderror" => s.log_stderror = v,
                "check_via" => s.check_via = v,
                "dns" => s.dns = v,
                "rev_dns" => s.rev_dns = v,
                _ => s.mhomed = v,
            }
            fixed_switch(name, v)?;
        }
        "auto_aliases" => s.auto_aliases = boolean(name, &g.value)?,
        // Kamailio's own allocator's debugging, and syslog: rser has
        // neither.
        "memdbg" | "memlog" | "mem_summary" | "mem_join" => {
            int_in(name, &g.value, -10, 100)?;
            return Err(Said::Warning(format!(
                "{name}: accepted and ignored: rser has no memory debugging of Kamailio's kind"
            )));
        }
        "log_facility" | "log_name" => {
            return Err(Said::Warning(format!(
                "{name}: accepted and ignored: rser logs to standard error only, not to syslog"
            )));
        }
        "log_prefix" => {
            return Err(Said::Warning(
                "log_prefix: accepted and ignored: rser's log lines carry no per-message prefix"
                    .into(),
            ));
        }
        "tcp_connection_lifetime" => {
            s.tcp_connection_lifetime = int_in(name, &g.value, 1, 86_400 * 30)? as u32
        }
        "tcp_max_connections" => s.tcp_max_connections = int_in(name, &g.value, 1, 1 << 20)? as u32,
        "tcp_connect_timeout" => s.tcp_connect_timeout = int_in(name, &g.value, 1, 3600)? as u32,
        "tcp_send_timeout" => s.tcp_send_timeout = int_in(name, &g.value, 1, 3600)? as u32,
        "tcp_children" => {
            int_in(name, &g.value, 0, MAX_CHILDREN)?;
            return Err(Said::Warning(
                "tcp_children: accepted and ignored: every worker serves TCP as well as UDP \
                 (children=)"
                    .into(),
            ));
        }
        "tcp_accept_no_cl" => {
            if boolean(name, &g.value)? {
                return Err(Said::Error(
                    "tcp_accept_no_cl=yes: rser requires Content-Length on streams \
                     (RFC 3261 §18.3)"
                        .into(),
                ));
            }
        }
        // The transports this build does not serve: a setting for them
        // changes nothing (what would turn them on is refused).
        "tls_max_connections" => {
            return Err(Said::Warning(format!(
                "{name}: accepted; TLS connections count toward tcp_max_connections"
            )));
        }
        "disable_tcp" => s.disable_tcp = boolean(name, &g.value)?,
        "enable_tls" => s.enable_tls = boolean(name, &g.value)?,
        "tcp_accept_aliases" => s.tcp_accept_aliases = boolean(name, &g.value)?,
        "tcp_accept_iplimit" => s.tcp_accept_iplimit = int_in(name, &g.value, 1, 1 << 20)? as u32,
        "udp_mtu" => s.udp_mtu = int_in(name, &g.value, 0, 65_535)? as u32,
        "udp_mtu_try_proto" => {
            s.udp_mtu_try_proto = match Proto::parse(&text(&g.value)) {
                Some(p @ (Proto::Tcp | Proto::Udp)) => p,
                _ => {
                    return Err(Said::Error(
                        "udp_mtu_try_proto: TCP or UDP (TLS and SCTP are not served)".into(),
                    ));
                }
            }
        }
        "enable_sctp" | "disable_sctp" => {
            let on = boolean(name, &g.value)?;
            let serves = match name {
                "disable_sctp" => !on,
                _ => on,
            };
            // Asked to serve SCTP: refused; SCTP left on (Kamailio's
            // default) is said not to be served.
            if serves && name == "enable_sctp" {
                return Err(Said::Error(format!(
                    "{name}=yes: SCTP is not served by this build"
                )));
            }
            if serves {
                return Err(Said::Warning(format!(
                    "{name}={}: accepted and ignored: {} is not served by this build",
                    if on { "yes" } else { "no" },
                    "SCTP"
                )));
            }
        }
        "blst_503" | "dst_blacklist_503" => s.blst_503 = boolean(name, &g.value)?,
        "blst_503_def_timeout" => {
            s.blst_503_def_timeout = int_in(name, &g.value, 0, 86_400)? as u32
        }
        "blst_503_min_timeout" => {
            s.blst_503_min_timeout = int_in(name, &g.value, 0, 86_400)? as u32
        }
        "blst_503_max_timeout" => {
            s.blst_503_max_timeout = int_in(name, &g.value, 0, 86_400)? as u32
        }
        "blst_methods_add" => {
            s.blst_methods_add = Some(int_in(name, &g.value, 0, i64::from(u32::MAX))? as u32)
        }
        "blst_methods_lookup" => {
            s.blst_methods_lookup = int_in(name, &g.value, 0, i64::from(u32::MAX))? as u32
        }
        "fifo" => {
            let path = text(&g.value);
            if path.is_empty() {
                return Err("'fifo' expects a path".into());
            }
            s.fifo = Some(path);
        }
        "fifo_mode" => s.fifo_mode = file_mode(name, &g.value)?,
        "reuse_port" => s.reuse_port = boolean(name, &g.value)?,
        "reuse_port_balance" => {
            s.reuse_port_balance = match text(&g.value).to_ascii_lowercase().as_str() {
                "hash" => Balance::Hash,
                "random" => Balance::Random,
                "cpu" => Balance::Cpu,
                v => return Err(format!("'reuse_port_balance' {v}: hash, random or cpu").into()),
            }
        }
        "ctl_socket" => {
            // Kamailio's ctl module writes `unix:/path`; take both.
            let v = text(&g.value);
            let path = v.strip_prefix("unix:").unwrap_or(&v);
            if path.is_empty() {
                return Err("'ctl_socket' expects a path".into());
            }
            s.ctl_socket = Some(path.to_string());
        }
        "metrics_port" => s.metrics_port = Some(int_in(name, &g.value, 1, 65535)? as u16),
        "use_dst_blocklist" | "use_dst_blacklist" => s.use_dst_blocklist = boolean(name, &g.value)?,
        "dst_blocklist_expire" | "dst_blacklist_expire" => {
            s.dst_blocklist_expire = int_in(name, &g.value, 1, 86_400)? as u32
        }
        _ => return Err(format!("unknown global parameter '{name}'").into()),
    }
    Ok(())
}

/// A permission mode, written in octal as in C (`0660`; the lexer reads
/// the digits, so `660` means the same): read and write bits only.
fn file_mode(name: &str, v: &Value) -> Result<u32, String> {
    let digits = text(v);
    let mode = u32::from_str_radix(digits.trim_start_matches("0o"), 8)
        .map_err(|_| format!("'{name}' expects an octal mode such as 0600"))?;
    if mode & !0o666 != 0 || mode & 0o600 != 0o600 {
        return Err(format!(
            "'{name}' {mode:04o}: read and write bits only, and the owner's both (0600 to 0666)"
        ));
    }
    Ok(mode)
}

fn text(v: &Value) -> String {
    match v {
        Value::Int(n) => n.to_string(),
        Value::Str(s) | Value::Word(s) => s.clone(),
    }
}

fn int_in(name: &str, v: &Value, min: i64, max: i64) -> Result<i64, String> {
    match v {
        Value::Int(n) if (min..=max).contains(n) => Ok(*n),
        _ => Err(format!("'{name}' expects a number from {min} to {max}")),
    }
}

fn boolean(name: &str, v: &Value) -> Result<bool, String> {
    let word = match v {
        Value::Int(1) => return Ok(true),
        Value::Int(0) => return Ok(false),
        Value::Str(s) | Value::Word(s) => s.to_ascii_lowercase(),
        Value::Int(_) => String::new(),
    };
    match word.as_str() {
        "yes" | "on" | "true" => Ok(true),
        "no" | "off" | "false" => Ok(false),
        _ => Err(format!("'{name}' expects yes or no")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let l = Listen::parse("udp:127.0.0.1:5060").unwrap();
        assert_eq!(
            (l.proto, l.addr.to_string(), l.port),
            (Proto::Udp, "127.0.0.1".into(), Some(5060))
        );
        let l = Listen::parse("127.0.0.1").unwrap();
        assert_eq!(l.port, None);
        let l = Listen::parse("tcp:[::1]:5070").unwrap();
        assert_eq!(
            (l.proto, l.addr.to_string(), l.port),
            (Proto::Tcp, "::1".into(), Some(5070))
        );
        assert!(Listen::parse("udp:example.com:5060").is_err());
        assert!(Listen::parse("127.0.0.1:99999").is_err());
    }
}
