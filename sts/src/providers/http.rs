//! Outbound HTTP to identity providers: connect and total timeouts, no redirects followed, TLS
//! verification on, and a response size limit enforced while reading.

use std::time::Duration;

use serde::de::DeserializeOwned;

/// Largest response accepted from an IdP (discovery, JWKS, token, userinfo).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboundError {
    #[error("timed out")]
    Timeout,
    #[error("unreachable: {0}")]
    Connect(String),
    #[error("HTTP {status}")]
    Status {
        status: u16,
        body: serde_json::Value,
    },
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("request failed: {0}")]
    Other(String),
}

impl OutboundError {
    pub fn code(&self) -> &'static str {
        match self {
            OutboundError::Timeout => "idp_timeout",
            OutboundError::Connect(_) => "idp_unreachable",
            OutboundError::Status { .. } => "idp_http_error",
            OutboundError::TooLarge => "idp_response_too_large",
            OutboundError::Json(_) => "idp_invalid_json",
            OutboundError::Other(_) => "idp_request_failed",
        }
    }
}

fn classify(e: reqwest::Error) -> OutboundError {
    if e.is_timeout() {
        OutboundError::Timeout
    } else if e.is_connect() {
        OutboundError::Connect(e.to_string())
    } else {
        OutboundError::Other(e.to_string())
    }
}

/// An HTTP client for one provider. Each call is timed and counted (`measure::upstream`) under the
/// provider's id and the call's name.
#[derive(Clone, Debug)]
pub struct Outbound {
    client: reqwest::Client,
    provider: String,
}

impl Outbound {
    #[allow(
        clippy::expect_used,
        reason = "building fails only when the TLS backend cannot start; the server cannot work without it"
    )]
    pub fn new(provider: &str, connect_timeout_ms: u64, timeout_ms: u64) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(connect_timeout_ms))
            .timeout(Duration::from_millis(timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sts/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client");
        Self {
            client,
            provider: provider.to_string(),
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Send, then read the body up to the limit and parse it as JSON. Non-2xx answers become `Status`
    /// (with the JSON error body when there is one).
    pub async fn json<T: DeserializeOwned>(
        &self,
        call: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, OutboundError> {
        let (status, bytes) = self.send(call, req).await?;
        if !(200..300).contains(&status) {
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            return Err(OutboundError::Status { status, body });
        }
        serde_json::from_slice(&bytes).map_err(|e| OutboundError::Json(e.to_string()))
    }

    /// Like [`Outbound::json`] for a UTF-8 text body (e.g. SAML metadata).
    pub async fn text(
        &self,
        call: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<String, OutboundError> {
        let (status, bytes) = self.send(call, req).await?;
        if !(200..300).contains(&status) {
            return Err(OutboundError::Status {
                status,
                body: serde_json::Value::Null,
            });
        }
        String::from_utf8(bytes)
            .map_err(|_| OutboundError::Other("the response is not UTF-8".into()))
    }

    /// [`Self::receive`], timed and counted: an error or a non-2xx answer counts as an upstream error.
    /// Send and read the body up to the limit, whatever the status: (status, body). Timed as `call`.
    pub async fn send(
        &self,
        call: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), OutboundError> {
        let started = std::time::Instant::now();
        let out = self.receive(req).await;
        let ok = matches!(&out, Ok((status, _)) if (200..300).contains(status));
        crate::measure::upstream(&self.provider, call, started.elapsed().as_secs_f64(), ok);
        out
    }

    async fn receive(&self, req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), OutboundError> {
        let mut res = req.send().await.map_err(classify)?;
        let status = res.status().as_u16();
        if res
            .content_length()
            .is_some_and(|l| l > MAX_RESPONSE_BYTES as u64)
        {
            return Err(OutboundError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(OutboundError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}
