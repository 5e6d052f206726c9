//! TLS over rser's TCP connections, with rustls (no OpenSSL): the server
//! and client configurations built once from the tls module's parameters
//! (Kamailio's names: `certificate`, `private_key`, `ca_list`,
//! `verify_certificate`, `require_certificate`, `tls_method`) and its
//! `config` file of domains (`[server:default]`, `[client:default]`,
//! `[server:ADDR]` with a `server_name` chosen by SNI, `[client:ADDR]` for
//! connections to that address), each connection's session in its owning
//! worker only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::cfg::Config;

/// What connections use: the server side for accepted ones, the client
/// side for those rser opens.
#[derive(Clone)]
pub struct TlsSetup {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
    /// `[client:ADDR]` domains: connections to ADDR.
    clients: HashMap<SocketAddr, Arc<ClientConfig>>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

/// Kamailio's defaults for the files (Debian's package puts them there).
const DEFAULT_CERTIFICATE: &str = "/etc/kamailio/kamailio-selfsigned.pem";
const DEFAULT_PRIVATE_KEY: &str = "/etc/kamailio/kamailio-selfsigned.key";
/// Debian's bundle of the system's certificate authorities.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `tls_method`'s versions: TLS 1.2 and 1.3 are what rustls offers; an
/// older floor (`TLSv1+`, `SSLv23`) means both.
fn versions(method: &str) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let both = vec![&rustls::version::TLS13, &rustls::version::TLS12];
    Ok(match method.to_ascii_uppercase().as_str() {
        "TLSV1.3" | "TLSV1.3+" => vec![&rustls::version::TLS13],
        "TLSV1.2" => vec![&rustls::version::TLS12],
        "TLSV1.2+" | "TLSV1+" | "TLSV1.1+" | "SSLV23" | "" => both,
        other => {
            return Err(format!(
                "tls: tls_method \"{other}\": rser offers TLSv1.2 and TLSv1.3 \
                 (TLSv1.2+, TLSv1.2, TLSv1.3)"
            ));
        }
    })
}

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let all: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("tls: certificate file {path}: {e}"))?
        .collect();
    let all = all.map_err(|e| format!("tls: certificate file {path}: {e}"))?;
    if all.is_empty() {
        return Err(format!("tls: {path} holds no certificate"));
    }
    Ok(all)
}

fn key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("tls: private key file {path}: {e}"))
}

fn roots(path: &str) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store
            .add(c)
            .map_err(|e| format!("tls: ca_list {path}: {e}"))?;
    }
    Ok(Arc::new(store))
}

/// One TLS domain's settings (the module's parameters, or a section of
/// its `config` file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Domain {
    pub method: String,
    pub certificate: String,
    pub private_key: String,
    pub ca_list: String,
    pub verify: bool,
    pub require: bool,
    /// `server_name`: the SNI name a `[server:...]` domain answers to.
    pub server_name: Option<String>,
}

/// Which side a `config` section is for, and its address (`None`:
/// `default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub server: bool,
    pub addr: Option<SocketAddr>,
    pub domain: Domain,
}

fn yes(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" => Ok(true),
        "no" | "off" | "false" | "0" => Ok(false),
        _ => Err(format!("'{v}' is not yes or no")),
    }
}

/// Kamailio's tls.cfg: `[server|client:default|IP:PORT]` sections of
/// `key = value` lines, each starting from `base`; `#` comments. Keys
/// rser does not apply are errors naming them.
pub fn parse_config(text: &str, base: &Domain) -> Result<Vec<Section>, String> {
    let mut out: Vec<Section> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let at = |e: String| format!("tls config line {}: {e}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (side, addr) = head
                .split_once(':')
                .ok_or_else(|| at(format!("[{head}]: not [server:...] or [client:...]")))?;
            let server = match side.trim() {
                "server" => true,
                "client" => false,
                other => return Err(at(format!("[{other}:...]: not server or client"))),
            };
            let addr = match addr.trim() {
                "default" | "any" => None,
                a => Some(
                    a.trim_start_matches('[')
                        .replace("]:", ":")
                        .parse::<SocketAddr>()
                        .or_else(|_| a.parse())
                        .map_err(|_| at(format!("'{a}' is not IP:PORT or default")))?,
                ),
            };
            out.push(Section {
                server,
                addr,
                domain: base.clone(),
            });
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| at(format!("'{line}' is not key = value")))?;
        let (k, v) = (k.trim(), v.trim().trim_matches('"'));
        let d = &mut out
            .last_mut()
            .ok_or_else(|| at("a setting before any [section]".into()))?
            .domain;
        match k {
            "method" | "tls_method" => d.method = v.into(),
            "certificate" => d.certificate = v.into(),
            "private_key" => d.private_key = v.into(),
            "ca_list" => d.ca_list = v.into(),
            "verify_certificate" => d.verify = yes(v).map_err(at)?,
            "require_certificate" => d.require = yes(v).map_err(at)?,
            "server_name" => d.server_name = Some(v.to_ascii_lowercase()),
            // Kamailio's SNI matching mode and the ids it logs: rser
            // matches the name exactly.
            "server_name_mode" | "server_id" => {}
            other => return Err(at(format!("'{other}' is not applied by rser's TLS"))),
        }
    }
    Ok(out)
}

/// A domain's certificate and key, as rustls holds them.
fn certified(d: &Domain) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let chain = certs(&d.certificate)?;
    let key = key(&d.private_key)?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("tls: {}: {e}", d.private_key))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(chain, signing)))
}

/// The server side's certificate: by SNI name when a `[server:...]`
/// domain has that `server_name`, else the default's.
#[derive(Debug)]
struct BySni {
    default: Arc<rustls::sign::CertifiedKey>,
    names: HashMap<String, Arc<rustls::sign::CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for BySni {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let named = hello
            .server_name()
            .and_then(|n| self.names.get(&n.to_ascii_lowercase()));
        Some(named.unwrap_or(&self.default).clone())
    }
}

fn server_config(d: &Domain, sni: BySni) -> Result<ServerConfig, String> {
    let versions = versions(&d.method)?;
    let roots = match d.ca_list.as_str() {
        "" if d.verify || d.require => {
            return Err("tls: verify_certificate and require_certificate need ca_list".into());
        }
        "" => None,
        path => Some(roots(path)?),
    };
    // Clients' certificates checked against ca_list when asked for,
    // required with require_certificate.
    let client_auth = match (&roots, d.verify || d.require) {
        (Some(r), true) => {
            let b = WebPkiClientVerifier::builder_with_provider(r.clone(), provider());
            let b = if d.require {
                b
            } else {
                b.allow_unauthenticated()
            };
            b.build().map_err(|e| format!("tls: ca_list: {e}"))?
        }
        _ => WebPkiClientVerifier::no_client_auth(),
    };
    Ok(ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls: {e}"))?
        .with_client_cert_verifier(client_auth)
        .with_cert_resolver(Arc::new(sni)))
}

/// Connections rser opens: the server's certificate checked against
/// ca_list with verify_certificate (else taken as it comes, Kamailio's
/// default), ours presented to servers that ask.
fn client_config(d: &Domain) -> Result<ClientConfig, String> {
    let versions = versions(&d.method)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match (d.ca_list.as_str(), d.verify) {
        // No ca_list: the system's authorities, as OpenSSL's default
        // paths give Kamailio.
        ("", true) if Path::new(SYSTEM_CAS).exists() => {
            builder.with_root_certificates(roots(SYSTEM_CAS)?)
        }
        ("", true) => {
            return Err(format!(
                "tls: a client's verify_certificate needs ca_list (and {SYSTEM_CAS} is not there)"
            ));
        }
        (path, true) => builder.with_root_certificates(roots(path)?),
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(
                provider().signature_verification_algorithms,
            ))),
    };
    // A certificate is presented when the domain's file is there (the
    // server side's default paths need not be, for a client).
    if !Path::new(&d.certificate).exists() {
        return Ok(builder.with_no_client_auth());
    }
    builder
        .with_client_auth_cert(certs(&d.certificate)?, key(&d.private_key)?)
        .map_err(|e| format!("tls: {} and {}: {e}", d.certificate, d.private_key))
}

impl TlsSetup {
    /// From the tls module's parameters and its `config` file; every file
    /// read and checked here, so a start (and `rser -c`) refuses what
    /// would fail later.
    pub fn from_config(config: &Config) -> Result<TlsSetup, String> {
        let param = |name: &str, default: &'static str| {
            config.modparam_str("tls", name, default).to_string()
        };
        let base = Domain {
            method: param("tls_method", "TLSv1.2+"),
            certificate: param("certificate", DEFAULT_CERTIFICATE),
            private_key: param("private_key", DEFAULT_PRIVATE_KEY),
            ca_list: param("ca_list", ""),
            verify: config.modparam_int("tls", "verify_certificate", 0) != 0,
            require: config.modparam_int("tls", "require_certificate", 0) != 0,
            server_name: None,
        };
        let sections = match param("config", "").as_str() {
            "" => Vec::new(),
            path => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("tls: config file {path}: {e}"))?;
                parse_config(&text, &base)?
            }
        };
        let default_of = |server: bool| {
            sections
                .iter()
                .find(|s| s.server == server && s.addr.is_none())
                .map_or(base.clone(), |s| s.domain.clone())
        };
        let server_domain = default_of(true);
        let mut names = HashMap::new();
        for s in sections.iter().filter(|s| s.server && s.addr.is_some()) {
            let name = s.domain.server_name.clone().ok_or_else(|| {
                format!(
                    "tls: [server:{}]: rser chooses a server domain by SNI: give it a server_name",
                    s.addr.map_or(String::new(), |a| a.to_string())
                )
            })?;
            names.insert(name, certified(&s.domain)?);
        }
        let sni = BySni {
            default: certified(&server_domain)?,
            names,
        };
        let server = server_config(&server_domain, sni)?;
        let client = client_config(&default_of(false))?;
        let mut clients = HashMap::new();
        for s in sections.iter().filter(|s| !s.server) {
            if let Some(a) = s.addr {
                clients.insert(a, Arc::new(client_config(&s.domain)?));
            }
        }
        Ok(TlsSetup {
            server: Arc::new(server),
            client: Arc::new(client),
            clients,
        })
    }

    /// A server session for an accepted connection.
    pub fn accept(&self) -> Result<rustls::Connection, rustls::Error> {
        rustls::ServerConnection::new(self.server.clone()).map(rustls::Connection::Server)
    }

    /// A client session for a connection to `peer` (its certificate, when
    /// verified, must name that address).
    pub fn connect(&self, peer: SocketAddr) -> Result<rustls::Connection, rustls::Error> {
        let name = ServerName::IpAddress(peer.ip().into());
        let cfg = self.clients.get(&peer).unwrap_or(&self.client).clone();
        rustls::ClientConnection::new(cfg, name).map(rustls::Connection::Client)
    }
}

/// `verify_certificate=0` on the client side: any server certificate is
/// taken (its signatures over the handshake are still checked).
#[derive(Debug)]
struct AnyServer(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kamailios_tls_cfg_is_read_into_domains() {
        let base = Domain {
            method: "TLSv1.2+".into(),
            certificate: "/m.pem".into(),
            ..Domain::default()
        };
        let text = "# Debian's\n[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n\
                    private_key = /k.key\ncertificate = /c.pem\n\n[client:default]\n\
                    verify_certificate = yes\nrequire_certificate = yes\n\
                    [server:10.0.0.10:5061]\nserver_name = SIP.example.org\ncertificate = /o.pem\n";
        let s = parse_config(text, &base).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s[0].server && s[0].addr.is_none());
        assert_eq!(
            (
                s[0].domain.certificate.as_str(),
                s[0].domain.private_key.as_str()
            ),
            ("/c.pem", "/k.key")
        );
        assert!(!s[1].server && s[1].domain.verify && s[1].domain.require);
        assert_eq!(
            s[1].domain.certificate, "/m.pem",
            "from the module's parameters"
        );
        assert_eq!(s[2].addr, Some("10.0.0.10:5061".parse().unwrap()));
        assert_eq!(s[2].domain.server_name.as_deref(), Some("sip.example.org"));
        for bad in [
            "verify_certificate = yes\n",
            "[server:default]\ncrl = /x\n",
            "[peer:default]\n",
            "[server:default]\nverify_certificate = maybe\n",
        ] {
            assert!(parse_config(bad, &base).is_err(), "{bad}");
        }
    }
}
