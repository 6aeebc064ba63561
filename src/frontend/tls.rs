//! TLS towards clients (rustls with the ring provider), built once from the configured PEM files.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {message}")]
    Pem { path: String, message: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

pub(crate) fn acceptor(c: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let pem_err = |path: &std::path::Path, e: rustls_pki_types::pem::Error| TlsError::Pem {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert)
        .map_err(|e| pem_err(&c.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&c.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| pem_err(&c.key, e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
