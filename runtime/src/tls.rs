//! TLS for a backend's outbound requests: the authorities it trusts (the
//! bundled public roots, plus the operator's CA file and, if asked, the
//! system's store), the client certificate it presents (mTLS), and ALPN
//! (`h2`, `http/1.1`).
//!
//! Each backend gets a `rustls::ClientConfig` of its own, built when the
//! backend is resolved, so its TLS session cache (resumption) and its
//! trust are its alone: a CA one backend trusts is never trusted for
//! another's requests.
//!
//! A module of its own, outside `capabilities::egress`, because the host's
//! own requests (failure notifications, sent by the queue) use it too and
//! the queue does not depend on the capabilities.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// A backend's TLS settings (`tls = { … }` in its configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// A PEM file of certificate authorities to trust for this backend as
    /// well as the public ones (a company's private CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    /// Also trust the operating system's certificate store (the CAs an
    /// administrator installed there).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub system_roots: bool,
    /// A PEM certificate chain presented to servers that ask for one
    /// (mutual TLS); needs `client_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub client_cert: Option<PathBuf>,
    /// The PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub client_key: Option<PathBuf>,
}

/// Why a backend's TLS settings cannot be used; names the setting and the
/// file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tls.{setting}: {reason}")]
pub struct TlsError {
    pub setting: &'static str,
    pub reason: String,
}

fn bad(setting: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError {
        setting,
        reason: reason.into(),
    }
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| bad(setting, format!("{} cannot be read: {e}", path.display())))
}

fn certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(setting, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(setting, format!("{} is not valid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(
            setting,
            format!(
                "{} holds no certificate (expected PEM blocks starting with -----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

impl TlsSettings {
    /// The client configuration these settings make, offering HTTP/2 by
    /// ALPN when `http2`, and a fingerprint of what went into it (the
    /// files' contents included): connections made under one
    /// configuration may be kept for another with the same fingerprint.
    pub(crate) fn client_config(
        &self,
        http2: bool,
    ) -> Result<(Arc<rustls::ClientConfig>, u64), TlsError> {
        use std::hash::{Hash, Hasher};
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        (http2, self.system_roots).hash(&mut fingerprint);
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        if let Some(path) = &self.ca_file {
            let certs = certificates("ca_file", path)?;
            certs.hash(&mut fingerprint);
            for (i, cert) in certs.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    bad(
                        "ca_file",
                        format!(
                            "certificate {} in {} is not a usable CA certificate: {e}",
                            i + 1,
                            path.display()
                        ),
                    )
                })?;
            }
        }
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "it is empty".to_string(), |e| e.to_string());
                return Err(bad(
                    "system_roots",
                    format!(
                        "no certificate could be loaded from the system's store ({why}); \
                         point SSL_CERT_FILE or SSL_CERT_DIR at it, or use tls.ca_file"
                    ),
                ));
            }
            // A store holds some certificates rustls cannot use (old
            // formats, expired roots); those are skipped, as browsers do.
            roots.add_parsable_certificates(found.certs);
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots);
        let mut config = match (&self.client_cert, &self.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = certificates("client_cert", cert)?;
                let pem = read("client_key", key)?;
                chain.hash(&mut fingerprint);
                pem.hash(&mut fingerprint);
                let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                    bad(
                        "client_key",
                        format!(
                            "{} holds no usable private key (PEM PKCS#8, PKCS#1 or SEC1): {e}",
                            key.display()
                        ),
                    )
                })?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    bad(
                        "client_key",
                        format!(
                            "{} cannot be used with {}: {e}",
                            key.display(),
                            cert.display()
                        ),
                    )
                })?
            }
            (Some(_), None) => {
                return Err(bad(
                    "client_key",
                    "is missing: a client certificate needs its private key (set both)",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "client_cert",
                    "is missing: a client key needs its certificate (set both)",
                ));
            }
        };
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok((Arc::new(config), fingerprint.finish()))
    }
}

/// The public roots, HTTP/1.1: for the host's own requests (the failure
/// notification webhook), built once.
pub(crate) fn default_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            TlsSettings::default()
                .client_config(false)
                .expect("the default TLS settings read no file")
                .0
        })
        .clone()
}

/// The rustls error in `error`'s chain (a hyper or I/O error wrapping it),
/// if there is one.
pub(crate) fn rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        if let Some(tls) = e
            .downcast_ref::<rustls::Error>()
            .or_else(|| inner.and_then(|i| i.downcast_ref::<rustls::Error>()))
        {
            return Some(tls);
        }
        current = inner.or_else(|| e.source());
    }
    None
}

/// Whether `tls` is about a certificate: the server's refused here, or
/// this backend's (missing or refused) by the server.
pub(crate) fn about_certificates(tls: &rustls::Error) -> bool {
    use rustls::{AlertDescription, Error};
    matches!(
        tls,
        Error::InvalidCertificate(_)
            | Error::AlertReceived(
                AlertDescription::CertificateRequired
                    | AlertDescription::HandshakeFailure
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnknownCA
            )
    )
}

/// What went wrong in a TLS exchange with `host`, in the operator's words
/// and with the setting that fixes it (a refused certificate, a server
/// asking for a client certificate).
pub(crate) fn describe(host: &str, tls: &rustls::Error) -> String {
    use rustls::{AlertDescription, CertificateError, Error};
    match tls {
        Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "TLS: the certificate of {host} is not signed by an authority this backend trusts; \
                 if the server uses a private CA, set the backend's tls.ca_file to that CA's PEM file \
                 (or tls.system_roots = true if the CA is in the system's store)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "TLS: the certificate the server sent is not valid for {host}; \
                     check the backend's base_url names the host the certificate was issued for"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("TLS: the certificate of {host} has expired; the server must renew it")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!(
                    "TLS: the certificate of {host} is not valid yet; check the clocks of this node and the server"
                )
            }
            other => format!("TLS: the certificate of {host} was refused: {other:?}"),
        },
        Error::AlertReceived(AlertDescription::CertificateRequired)
        | Error::AlertReceived(AlertDescription::HandshakeFailure) => format!(
            "TLS: {host} refused the connection ({tls}); if it requires a client certificate, \
             set the backend's tls.client_cert and tls.client_key"
        ),
        Error::AlertReceived(AlertDescription::BadCertificate | AlertDescription::UnknownCA) => {
            format!(
                "TLS: {host} refused this backend's client certificate ({tls}); \
                 check tls.client_cert is issued by a CA the server trusts"
            )
        }
        other => format!("TLS with {host} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = TlsSettings {
            ca_file: Some(missing.clone()),
            ..TlsSettings::default()
        }
        .client_config(true)
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("tls.ca_file:") && e.contains("nope.pem"),
            "{e}"
        );

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = TlsSettings {
            ca_file: Some(empty),
            ..TlsSettings::default()
        }
        .client_config(true)
        .unwrap_err()
        .to_string();
        assert!(e.contains("holds no certificate"), "{e}");

        let e = TlsSettings {
            client_cert: Some(missing),
            ..TlsSettings::default()
        }
        .client_config(true)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("tls.client_key") && e.contains("set both"),
            "{e}"
        );
    }

    #[test]
    fn alpn_offers_h2_only_when_asked() {
        let (on, _) = TlsSettings::default().client_config(true).unwrap();
        assert_eq!(
            on.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let (off, _) = TlsSettings::default().client_config(false).unwrap();
        assert_eq!(off.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}
