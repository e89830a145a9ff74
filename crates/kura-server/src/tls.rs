//! TLS for both listeners: the operator's certificate when configured, otherwise a private
//! CA and a server certificate generated on first start and reused afterwards.
//!
//! The generated CA's private key is thrown away once it has signed the server
//! certificate, so nothing on disk can mint further certificates that clients trusting
//! `ca.pem` would accept. To renew, delete `DATA/tls/` and hand clients the new `ca.pem`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServerConfig;
use crate::secrets::write_private_file;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS setup shared by both listeners.
pub struct TlsMaterial {
    pub server_config: Arc<rustls::ServerConfig>,
    /// The generated CA certificate clients pass as `--ca-cert`; `None` with an
    /// operator-supplied certificate.
    pub ca_cert: Option<PathBuf>,
}

/// Makes aws-lc-rs the process-wide rustls provider. rustls panics at the first handshake
/// if a process has more than one provider compiled in and none installed; installing
/// twice is harmless.
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Loads the configured certificate, or the generated one (creating it on first start).
/// Where the generated CA certificate is, when no certificate is configured.
pub fn ca_path(data_dir: &Path) -> PathBuf {
    GeneratedPaths::in_dir(&data_dir.join("tls")).ca
}

pub fn load_or_generate(config: &ServerConfig) -> Result<TlsMaterial, TlsError> {
    let (cert_path, key_path, ca_cert) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), None),
        _ => {
            let dir = config.data_dir.join("tls");
            let generated = GeneratedPaths::in_dir(&dir);
            if !(generated.ca.exists() && generated.cert.exists() && generated.key.exists()) {
                generate(&dir, &generated)?;
            }
            (generated.cert, generated.key, Some(generated.ca))
        }
    };
    let chain = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| TlsError::Read {
            path: cert_path.clone(),
            message: err.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|err| TlsError::Read {
        path: key_path.clone(),
        message: err.to_string(),
    })?;
    let mut server_config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        server_config: Arc::new(server_config),
        ca_cert,
    })
}

struct GeneratedPaths {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl GeneratedPaths {
    fn in_dir(dir: &Path) -> Self {
        GeneratedPaths {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }
    }
}

fn generate(dir: &Path, paths: &GeneratedPaths) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "Kura");
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("Kura service CA {}", crate::secrets::random_hex(4)),
    );
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Some(host) = hostname().filter(|host| !names.contains(host)) {
        names.push(host);
    }
    let mut server_params = CertificateParams::new(names)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "kura-server");
    server_params.use_authority_key_identifier_extension = true;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    // Key first and the CA last: `load_or_generate` regenerates unless all three exist.
    write_private_file(&paths.key, server_key.serialize_pem().as_bytes()).map_err(write_error(&paths.key))?;
    std::fs::write(&paths.cert, server_cert.pem()).map_err(write_error(&paths.cert))?;
    std::fs::write(&paths.ca, ca_cert.pem()).map_err(write_error(&paths.ca))?;
    tracing::info!(ca_cert = %paths.ca.display(), "generated a TLS CA and server certificate");
    Ok(())
}

/// This machine's host name, so remote agents can address the server by it.
pub(crate) fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}
