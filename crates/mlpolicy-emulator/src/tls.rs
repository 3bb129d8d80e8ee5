//! Self-signed TLS for `--tls`: a throwaway CA (whose PEM clients add as a root) signs a server
//! certificate for `localhost` and `127.0.0.1`; the CA PEM is written to a file next to the
//! state file (or in the temp directory) so other processes can trust it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::EmulatorError;

/// A TLS acceptor and the CA that signed its certificate.
pub struct Tls {
    /// Wraps accepted TCP streams.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// PEM of the CA certificate.
    pub ca_pem: String,
}

fn tls_err(e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Tls(e.to_string())
}

/// Creates a fresh CA and server certificate and writes the CA PEM beside `state_file`.
pub fn self_signed(state_file: Option<&Path>, port: u16) -> Result<Tls, EmulatorError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca_params.distinguished_name.push(DnType::CommonName, "mlpolicy emulator CA");
    let ca_key = KeyPair::generate().map_err(tls_err)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(tls_err)?;
    leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().map_err(tls_err)?;
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(tls_err)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca_cert.der().clone()], key)
        .map_err(tls_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    let ca_pem = ca_cert.pem();
    let ca_path = match state_file {
        Some(state) => {
            let mut name = state.as_os_str().to_owned();
            name.push(".ca.pem");
            PathBuf::from(name)
        }
        None => std::env::temp_dir().join(format!("mlpolicy-emulator-{port}.ca.pem")),
    };
    std::fs::write(&ca_path, &ca_pem).map_err(tls_err)?;
    Ok(Tls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_pem })
}
