//! TLS over rser's TCP connections, with rustls (no OpenSSL): the server
//! and client configurations built once from the tls module's parameters
//! (Kamailio's names: `certificate`, `private_key`, `ca_list`,
//! `verify_certificate`, `require_certificate`, `tls_method`), each
//! connection's session in its owning worker only.

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
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

/// Kamailio's defaults for the files (Debian's package puts them there).
const DEFAULT_CERTIFICATE: &str = "/etc/kamailio/kamailio-selfsigned.pem";
const DEFAULT_PRIVATE_KEY: &str = "/etc/kamailio/kamailio-selfsigned.key";

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

impl TlsSetup {
    /// From the tls module's parameters; every file read and checked here,
    /// so a start (and `rser -c`) refuses what would fail later.
    pub fn from_config(config: &Config) -> Result<TlsSetup, String> {
        let param = |name: &str, default: &'static str| {
            config.modparam_str("tls", name, default).to_string()
        };
        let certificate = param("certificate", DEFAULT_CERTIFICATE);
        let private_key = param("private_key", DEFAULT_PRIVATE_KEY);
        let ca_list = param("ca_list", "");
        let verify = config.modparam_int("tls", "verify_certificate", 0) != 0;
        let require = config.modparam_int("tls", "require_certificate", 0) != 0;
        let versions = versions(&param("tls_method", "TLSv1.2+"))?;
        let chain = certs(&certificate)?;
        let key_der = key(&private_key)?;
        let roots = match ca_list.as_str() {
            "" if verify || require => {
                return Err("tls: verify_certificate and require_certificate need ca_list".into());
            }
            "" => None,
            path => Some(roots(path)?),
        };
        // The server side: clients' certificates checked against ca_list
        // when asked for, required with require_certificate.
        let client_auth = match (&roots, verify || require) {
            (Some(r), true) => {
                let b = WebPkiClientVerifier::builder_with_provider(r.clone(), provider());
                let b = if require {
                    b
                } else {
                    b.allow_unauthenticated()
                };
                b.build().map_err(|e| format!("tls: ca_list: {e}"))?
            }
            _ => WebPkiClientVerifier::no_client_auth(),
        };
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls: {e}"))?
            .with_client_cert_verifier(client_auth)
            .with_single_cert(chain.clone(), key_der.clone_key())
            .map_err(|e| format!("tls: {certificate} and {private_key}: {e}"))?;
        // The client side: servers' certificates checked against ca_list
        // with verify_certificate (else taken as they come, as Kamailio's
        // default); ours presented to servers that ask.
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls: {e}"))?;
        let builder = match (&roots, verify) {
            (Some(r), true) => builder.with_root_certificates(r.clone()),
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(
                    provider().signature_verification_algorithms,
                ))),
        };
        let client = builder
            .with_client_auth_cert(chain, key_der)
            .map_err(|e| format!("tls: {certificate} and {private_key}: {e}"))?;
        Ok(TlsSetup {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// A server session for an accepted connection.
    pub fn accept(&self) -> Result<rustls::Connection, rustls::Error> {
        rustls::ServerConnection::new(self.server.clone()).map(rustls::Connection::Server)
    }

    /// A client session for a connection to `peer` (its certificate, when
    /// verified, must name that address).
    pub fn connect(&self, peer: std::net::SocketAddr) -> Result<rustls::Connection, rustls::Error> {
        let name = ServerName::IpAddress(peer.ip().into());
        rustls::ClientConnection::new(self.client.clone(), name).map(rustls::Connection::Client)
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
