//! The SP's own key pair and certificate: generated (RSA 2048, self-signed) or imported from PKCS#12,
//! sealed at rest under the master key, apart from the token-signing keys. It signs AuthnRequests and
//! unwraps the content keys of encrypted assertions, through aws-lc-rs.

use super::*;

use aws_lc_rs::rsa::KeyPair;

use crate::keys::{KeyMaterial, KeyService};

/// The SP's own key pair and self-signed certificate (apart from the token-signing keys).
pub struct SpCredentials {
    pub certificate_der: Vec<u8>,
    key: KeyPair,
    decrypting: aws_lc_rs::rsa::OaepPrivateDecryptingKey,
}

impl std::fmt::Debug for SpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpCredentials").finish_non_exhaustive()
    }
}

/// Why the SP credentials could not be made, loaded or imported.
#[derive(Debug, thiserror::Error)]
pub enum SpCredentialsError {
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Import(#[from] crate::keys::ImportError),
    #[error(transparent)]
    Material(#[from] crate::keys::material::MaterialError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the keystore has no certificate; the SAML SP metadata needs one")]
    NoCertificate,
    #[error("the SAML SP certificate is not base64: {0}")]
    Certificate(#[from] base64::DecodeError),
    #[error("the SAML SP credentials are missing right after they were stored")]
    Missing,
    #[error("the SAML SP key is sealed by master key id {0}, not by the configured master key")]
    OtherMasterKey(String),
    #[error("SAML SP key unusable: {0}")]
    Unusable(String),
    #[error("the SAML SP certificate could not be made: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error("the SAML SP key generation did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub const SP_KEY_AAD: &str = "sts saml sp key v1:default";

impl SpCredentials {
    /// Fresh credentials held in memory only (tests and fuzzing; the server loads them from the store).
    pub fn ephemeral() -> Result<Self, SpCredentialsError> {
        let material = KeyMaterial::generate(2048)?;
        let cert = self_signed_certificate(&material.pkcs8)?;
        Self::from_parts(cert, &material.pkcs8)
    }

    /// Replace the SP key and certificate with those of a PKCS#12 keystore (the same checks as token-key
    /// import; a certificate is required, it goes into the SP metadata). Nothing changes on error.
    /// A running server uses the new key after its next restart.
    pub async fn import_pkcs12(
        keys: &KeyService,
        pool: impl sqlx::AnyExecutor<'_>,
        data: &[u8],
        password: &str,
    ) -> Result<String, SpCredentialsError> {
        let material = crate::keys::import::from_pkcs12(data, password)?;
        let leaf = material
            .public
            .x5c
            .first()
            .ok_or(SpCredentialsError::NoCertificate)?;
        Self::from_parts(STANDARD.decode(leaf)?, &material.pkcs8)?;
        let sealed = keys.seal(&material.pkcs8, SP_KEY_AAD)?;
        crate::store::saml::store_sp_credentials(
            pool,
            leaf,
            &sealed,
            keys.master_key_id(),
            keys.now(),
            true,
        )
        .await?;
        Ok(material.kid())
    }

    /// Load the SP credentials, generating them (RSA 2048 + a 10-year self-signed certificate) the first time.
    pub async fn load_or_create(
        keys: &KeyService,
        pool: &crate::store::Pool,
    ) -> Result<Self, SpCredentialsError> {
        if crate::store::saml::sp_credentials(pool).await?.is_none() {
            let material = tokio::task::spawn_blocking(|| KeyMaterial::generate(2048)).await??;
            let cert = self_signed_certificate(&material.pkcs8)?;
            let sealed = keys.seal(&material.pkcs8, SP_KEY_AAD)?;
            crate::store::saml::store_sp_credentials(
                pool,
                &STANDARD.encode(&cert),
                &sealed,
                keys.master_key_id(),
                keys.now(),
                false,
            )
            .await?;
            tracing::info!("generated the SAML SP key pair and certificate");
        }
        let (cert, sealed, master_id) = crate::store::saml::sp_credentials(pool)
            .await?
            .ok_or(SpCredentialsError::Missing)?;
        if master_id != keys.master_key_id() {
            return Err(SpCredentialsError::OtherMasterKey(master_id));
        }
        let pkcs8 = keys.open_sealed(&sealed, SP_KEY_AAD)?;
        Self::from_parts(STANDARD.decode(cert)?, &pkcs8)
    }

    pub(super) fn from_parts(
        certificate_der: Vec<u8>,
        pkcs8: &[u8],
    ) -> Result<Self, SpCredentialsError> {
        let unusable = |e: String| SpCredentialsError::Unusable(e);
        let key = KeyPair::from_pkcs8(pkcs8).map_err(|e| unusable(e.to_string()))?;
        let dec = aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|e| unusable(e.to_string()))?;
        let decrypting = aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(dec)
            .map_err(|_| unusable("not usable for OAEP".into()))?;
        Ok(Self {
            certificate_der,
            key,
            decrypting,
        })
    }

    /// RSA-OAEP key transport through aws-lc-rs (see [`oaep_algorithm`]).
    pub(super) fn unwrap_key(
        &self,
        alg: &'static aws_lc_rs::rsa::OaepAlgorithm,
        wrapped: &[u8],
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let mut out = zeroize::Zeroizing::new(vec![0u8; self.decrypting.min_output_size()]);
        let n = self
            .decrypting
            .decrypt(alg, wrapped, &mut out, None)
            .ok()?
            .len();
        out.truncate(n);
        Some(out)
    }

    pub(super) fn sign_rsa_sha256(&self, msg: &[u8]) -> Result<Vec<u8>, SpCredentialsError> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                msg,
                &mut sig,
            )
            .map_err(|_| SpCredentialsError::Unusable("signing the AuthnRequest failed".into()))?;
        Ok(sig)
    }
}

pub(super) fn self_signed_certificate(pkcs8: &[u8]) -> Result<Vec<u8>, SpCredentialsError> {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "STS SAML service provider");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params.self_signed(&key)?.der().to_vec())
}
