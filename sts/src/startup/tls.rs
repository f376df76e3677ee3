//! The TLS server configuration (rustls with aws-lc-rs): a PEM certificate chain and key, or a PKCS#12
//! file; every failure names the configuration key and the file.

use std::sync::Arc;

use super::StartError;
use crate::config::TlsConfig;

pub(super) fn rustls_config(tls: &TlsConfig) -> Result<rustls::ServerConfig, StartError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let (certs, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) = match tls {
        TlsConfig::Pem {
            cert_file,
            key_file,
        } => {
            let certs = CertificateDer::pem_file_iter(cert_file)
                .map_err(|e| {
                    StartError::tls(format!("server.tls.cert_file {}", cert_file.display()))(
                        e.into(),
                    )
                })?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    StartError::tls(format!(
                        "server.tls.cert_file {}: not a PEM certificate chain",
                        cert_file.display()
                    ))(e.into())
                })?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
                StartError::tls(format!(
                    "server.tls.key_file {}: no PEM private key",
                    key_file.display()
                ))(e.into())
            })?;
            (certs, key)
        }
        TlsConfig::Pkcs12 { file, password } => {
            let data = std::fs::read(file).map_err(|e| {
                StartError::tls(format!("server.tls.pkcs12_file {}", file.display()))(e.into())
            })?;
            let store = p12_keystore::KeyStore::from_pkcs12(
                &data,
                password.expose(),
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )
            .map_err(|e| {
                StartError::tls(format!("server.tls.pkcs12_file {}", file.display()))(
                    e.to_string().into(),
                )
            })?;
            let (_, chain) = store.private_key_chain().ok_or_else(|| {
                StartError::tls(format!("server.tls.pkcs12_file {}", file.display()))(
                    "no private key with a certificate".into(),
                )
            })?;
            let certs = chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            (
                certs,
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())),
            )
        }
    };
    if certs.is_empty() {
        return Err(StartError::TlsEmptyChain);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::tls("TLS: the protocol versions".into())(e.into()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            StartError::tls(
                "TLS: the certificate does not match the private key, or the key is unsupported"
                    .into(),
            )(e.into())
        })?;
    Ok(config)
}
