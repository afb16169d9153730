//! TLS for a listener: the operator's certificate, or a self-signed one made on first
//! start and kept in the data directory, so that its fingerprint stays the same across
//! restarts and can be pinned.

use crate::error::HttpError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// A listener's TLS: the acceptor and what to log about the certificate.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// The certificate file in use.
    pub cert_file: PathBuf,
    /// SHA-256 of the leaf certificate, as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint: String,
    /// Whether the certificate is the generated one.
    pub generated: bool,
}

/// Where the generated certificate and key live under the data directory.
pub fn generated_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// TLS with the operator's `cert_file` and `key_file` (PEM).
pub fn with_certificate(cert_file: &Path, key_file: &Path) -> Result<Tls, HttpError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            HttpError::Tls(format!(
                "cannot read the TLS certificate {}: {e}; give a PEM certificate chain in tls_cert_file",
                cert_file.display()
            ))
        })?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        HttpError::Tls(format!(
            "cannot read the TLS key {}: {e}; give a PEM private key in tls_key_file",
            key_file.display()
        ))
    })?;
    let Some(leaf) = certs.first() else {
        return Err(HttpError::Tls(format!(
            "the TLS certificate file {} holds no certificate",
            cert_file.display()
        )));
    };
    let fingerprint = fingerprint(leaf);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| HttpError::Tls(format!("TLS set-up failed: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        HttpError::Tls(format!(
            "the TLS key {} does not fit the certificate {}: {e}",
            key_file.display(),
            cert_file.display()
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_file: cert_file.to_owned(),
        fingerprint,
        generated: false,
    })
}

/// TLS with the certificate generated under `data_dir`, made now (for `names`: host
/// names and IP addresses) when it does not exist yet.
pub fn generated(data_dir: &Path, names: &[String]) -> Result<Tls, HttpError> {
    let (cert_file, key_file) = generated_paths(data_dir);
    if !cert_file.is_file() || !key_file.is_file() {
        generate(&cert_file, &key_file, names)?;
    }
    let mut tls = with_certificate(&cert_file, &key_file)?;
    tls.generated = true;
    Ok(tls)
}

fn generate(cert_file: &Path, key_file: &Path, names: &[String]) -> Result<(), HttpError> {
    let failed = |e: &dyn std::fmt::Display| {
        HttpError::Tls(format!(
            "cannot create the TLS certificate {}: {e}; check that the data directory is writable, or set tls_cert_file and tls_key_file",
            cert_file.display()
        ))
    };
    let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| failed(&e))?;
    if let Some(dir) = cert_file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
    }
    let key_pem = zeroize::Zeroizing::new(made.key_pair.serialize_pem());
    write_private(key_file, key_pem.as_bytes()).map_err(|e| failed(&e))?;
    std::fs::write(cert_file, made.cert.pem()).map_err(|e| failed(&e))?;
    tracing::info!(
        "generated a self-signed TLS certificate {} for {}",
        cert_file.display(),
        names.join(", ")
    );
    Ok(())
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// `AB:CD:...`: SHA-256 of the DER certificate.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_certificate_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = generated(dir.path(), &["localhost".into()]).unwrap();
        assert!(first.generated);
        let (cert, key) = generated_paths(dir.path());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is private: {mode:o}");
        let second = generated(dir.path(), &["other".into()]).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(second.cert_file, cert);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
    }

    #[test]
    fn a_missing_certificate_names_the_file() {
        let err = with_certificate(Path::new("/nonexistent/cert.pem"), Path::new("/x"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
    }
}
