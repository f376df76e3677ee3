//! The authorization request's checks, in order: the client, the redirect URI (exact match; an unknown
//! client or URI gets an error page, never a redirect), then everything else answered at the redirect URI
//! (`response_type`, scopes, PKCE, `prompt`, `max_age`, `response_mode`, `state`/`nonce` bounds).

use super::*;
use crate::oauth::clients::{ClientType, GrantType};
use std::collections::HashMap;

impl Op<'_> {
    /// The authorization request's parameters checked, in the order of this module's doc.
    pub fn check_authorize(
        &self,
        p: &HashMap<String, String>,
    ) -> Result<(Arc<Client>, AuthRequest), Refusal> {
        let bad_page = |m: &str| Refusal::Page(m.to_string());
        let client_id = p
            .get("client_id")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad_page("client_id is missing"))?;
        let client = self
            .clients
            .get(client_id)
            .ok_or_else(|| bad_page("unknown or disabled client"))?;
        let redirect_uri = p
            .get("redirect_uri")
            .ok_or_else(|| bad_page("redirect_uri is missing"))?;
        if !redirect_uri_matches(&client.settings, redirect_uri) {
            return Err(bad_page("redirect_uri is not registered for this client"));
        }
        let state = p.get("state").cloned();
        if state.as_ref().is_some_and(|s| s.len() > 2048) {
            return Err(bad_page("state is longer than 2048 bytes"));
        }
        let mode = match p.get("response_mode").map(String::as_str) {
            None | Some("query") => ResponseMode::Query,
            Some("form_post") => ResponseMode::FormPost,
            Some(_) => ResponseMode::Query,
        };
        let target = Target {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            mode,
        };
        let back = |e: &'static str, d: &str| {
            Refusal::Redirect(Box::new(target.clone()), e, d.to_string())
        };
        if let Some(m) = p.get("response_mode")
            && m != "query"
            && m != "form_post"
        {
            return Err(back(
                "invalid_request",
                "response_mode must be query or form_post",
            ));
        }
        if p.contains_key("request") {
            return Err(back(
                "request_not_supported",
                "request objects are not supported",
            ));
        }
        if p.contains_key("request_uri") {
            return Err(back(
                "request_uri_not_supported",
                "request_uri is not supported",
            ));
        }
        match p.get("response_type").map(String::as_str) {
            Some("code") => {}
            None => return Err(back("invalid_request", "response_type is missing")),
            Some(_) => {
                return Err(back(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                ));
            }
        }
        let s = &client.settings;
        if !s.allows(GrantType::AuthorizationCode) {
            return Err(back(
                "unauthorized_client",
                "this client may not use the authorization code flow",
            ));
        }
        let mut scope: Vec<String> = Vec::new();
        for t in p
            .get("scope")
            .map(String::as_str)
            .unwrap_or("")
            .split(' ')
            .filter(|t| !t.is_empty())
        {
            if !s.scopes.iter().any(|a| a == t) {
                return Err(back(
                    "invalid_scope",
                    "a requested scope is not allowed for this client",
                ));
            }
            if !scope.iter().any(|x| x == t) {
                scope.push(t.to_string());
            }
        }
        let code_challenge = match (
            p.get("code_challenge"),
            p.get("code_challenge_method").map(String::as_str),
        ) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge_method without code_challenge",
                ));
            }
            (Some(c), Some("S256")) => Some(c.clone()),
            (Some(_), None | Some("plain")) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge_method must be S256",
                ));
            }
        };
        if let Some(c) = &code_challenge
            && (c.len() != 43
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(back(
                "invalid_request",
                "code_challenge must be a base64url SHA-256 (43 characters)",
            ));
        }
        if code_challenge.is_none() && s.client_type == ClientType::Public {
            return Err(back(
                "invalid_request",
                "PKCE (code_challenge, S256) is required for public clients",
            ));
        }
        let prompt: Vec<String> = p
            .get("prompt")
            .map(|v| {
                v.split(' ')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if prompt
            .iter()
            .any(|x| !["none", "login", "consent", "select_account"].contains(&x.as_str()))
        {
            return Err(back(
                "invalid_request",
                "prompt must be none, login, consent or select_account",
            ));
        }
        if prompt.iter().any(|x| x == "none") && prompt.len() > 1 {
            return Err(back(
                "invalid_request",
                "prompt=none cannot be combined with other values",
            ));
        }
        let max_age = match p.get("max_age") {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    return Err(back(
                        "invalid_request",
                        "max_age must be a non-negative integer",
                    ));
                }
            },
        };
        let nonce = p.get("nonce").cloned();
        if nonce
            .as_ref()
            .is_some_and(|n| n.is_empty() || n.len() > 512 || n.chars().any(char::is_control))
        {
            return Err(back("invalid_request", "nonce must be 1..=512 characters"));
        }
        let hint_sub = p.get("id_token_hint").map(|h| {
            self.verify_own(h, "JWT", true)
                .ok()
                .and_then(|c| c["sub"].as_str().map(str::to_string))
                .unwrap_or_default()
        });
        let login_hint = p.get("login_hint").cloned();
        if login_hint
            .as_ref()
            .is_some_and(|h| h.len() > 256 || h.chars().any(char::is_control))
        {
            return Err(back(
                "invalid_request",
                "login_hint is too long or has control characters",
            ));
        }
        Ok((
            client.clone(),
            AuthRequest {
                client_id: client_id.clone(),
                redirect_uri: redirect_uri.clone(),
                state,
                response_mode: mode,
                scope,
                nonce,
                code_challenge,
                prompt,
                max_age,
                login_hint,
                hint_sub,
                browser_hash: None,
                fresh: false,
            },
        ))
    }
}
