//! Distance and TLS on loopback, for the tests and benchmarks of outbound
//! connections: a private certificate authority and the certificates it
//! issues, a TLS-terminating relay in front of a plain backend that counts
//! the handshakes it saw (full or resumed, with or without a client
//! certificate), and a relay that delays every byte by a fixed one-way
//! latency, as a backend across the internet would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A certificate authority of its own (what a company's private CA is).
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ring makes a key");
        Authority {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate"),
        }
    }

    /// Its certificate, as a backend's `tls.ca_file` holds it.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate for `names` (DNS names or IP addresses), usable by a
    /// server and as a client certificate.
    pub fn issue(&self, names: &[&str]) -> Identity {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("valid names");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("ring makes a key");
        let cert = params.signed_by(&key, &*self.issuer).expect("the CA signs");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A certificate and its private key, in PEM.
#[derive(Clone)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Identity {
    /// A server configuration presenting this identity, offering `alpn`
    /// (e.g. `[b"h2", b"http/1.1"]`), and requiring a client certificate
    /// issued by `clients` when given.
    pub fn server_config(
        &self,
        alpn: &[&[u8]],
        clients: Option<&Authority>,
    ) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions");
        let builder = match clients {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.der()).expect("a CA certificate");
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("a client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("our own PEM");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("our own key");
        let mut config = builder
            .with_single_cert(chain, key)
            .expect("certificate and key match");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// What a TLS relay saw.
#[derive(Debug, Default)]
pub struct TlsCounts {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Handshakes done in full (certificate exchange and key agreement).
    pub full: AtomicU64,
    /// Handshakes that resumed an earlier session.
    pub resumed: AtomicU64,
    /// Handshakes that failed (an untrusted certificate, a missing client
    /// certificate…).
    pub failed: AtomicU64,
    /// Handshakes in which the client presented a certificate.
    pub with_client_certificate: AtomicU64,
}

impl TlsCounts {
    pub fn handshakes(&self) -> u64 {
        self.full.load(Ordering::SeqCst) + self.resumed.load(Ordering::SeqCst)
    }
}

/// A TLS-terminating relay on loopback: each connection it accepts is
/// decrypted and piped to one new plain connection to `upstream`, so the
/// backend's keep-alive behaviour shows through unchanged.
pub struct TlsRelay {
    pub addr: SocketAddr,
    pub counts: Arc<TlsCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsRelay {
    pub async fn start(upstream: SocketAddr, config: Arc<rustls::ServerConfig>) -> TlsRelay {
        TlsRelay::bind("127.0.0.1:0".parse().expect("an address"), upstream, config).await
    }

    pub async fn bind(
        at: SocketAddr,
        upstream: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> TlsRelay {
        let listener = TcpListener::bind(at).await.expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        let counts = Arc::new(TlsCounts::default());
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let seen = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                seen.connections.fetch_add(1, Ordering::SeqCst);
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(_) => {
                            seen.failed.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                    };
                    let conn = tls.get_ref().1;
                    match conn.handshake_kind() {
                        Some(rustls::HandshakeKind::Resumed) => &seen.resumed,
                        _ => &seen.full,
                    }
                    .fetch_add(1, Ordering::SeqCst);
                    if conn.peer_certificates().is_some_and(|c| !c.is_empty()) {
                        seen.with_client_certificate.fetch_add(1, Ordering::SeqCst);
                    }
                    let Ok(mut plain) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = plain.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsRelay { addr, counts, task }
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A relay that holds every byte for `one_way` before passing it on, in
/// each direction: a round trip through it costs twice that, handshakes
/// included, as on a real network path (bandwidth is not limited).
pub struct Delay {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Delay {
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> Delay {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(delayed(cr, sw, one_way), delayed(sr, cw, one_way));
                });
            }
        });
        Delay { addr, task }
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copy `from` to `to`, each chunk written `delay` after it was read (in
/// order; reading goes on meanwhile, so the delay is latency, not a cap on
/// throughput).
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = tokio::time::Instant::now() + delay;
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
