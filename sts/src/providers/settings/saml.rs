//! `type = "saml"` entries: the IdP metadata source, the SP options and the keys that do not apply to
//! SAML, validated without network (a metadata URL is fetched later, by `providers::metadata`).

use super::*;

impl RawProvider {
    pub(super) fn validate_saml(self, id: String) -> Result<ProviderSettings, SettingsError> {
        let err = |m: String| SettingsError {
            id: id.clone(),
            message: m,
        };
        for (present, key) in [
            (self.client_id.is_some(), "client_id"),
            (
                self.client_secret_env.is_some() || self.client_secret_file.is_some(),
                "client_secret_env/client_secret_file",
            ),
            (self.client_auth.is_some(), "client_auth"),
            (self.scopes.is_some(), "scopes"),
            (!self.auth_params.is_empty(), "auth_params"),
            (self.issuer.is_some(), "issuer"),
            (
                self.discovery.is_some() || self.discovery_refresh_seconds.is_some(),
                "discovery",
            ),
            (self.id_token_algs.is_some(), "id_token_algs"),
            (self.use_userinfo.is_some(), "use_userinfo"),
            (self.jwks_uri.is_some(), "jwks_uri"),
            (
                self.authorization_endpoint.is_some()
                    || self.token_endpoint.is_some()
                    || self.userinfo_endpoint.is_some(),
                "*_endpoint",
            ),
            (self.pkce.is_some(), "pkce"),
        ] {
            if present {
                return Err(err(format!("key `{key}` does not apply to type saml")));
            }
        }
        let sources = [
            self.idp_metadata_file.is_some(),
            self.idp_metadata_xml.is_some(),
            self.idp_metadata_url.is_some(),
        ];
        if sources.iter().filter(|x| **x).count() != 1 {
            return Err(err(
                "IdP metadata is required: exactly one of `idp_metadata_url`, `idp_metadata_file` or `idp_metadata_xml`".into(),
            ));
        }
        let metadata_url = self
            .idp_metadata_url
            .as_deref()
            .map(|u| endpoint_url(u).map_err(|m| err(format!("`idp_metadata_url`: {m}"))))
            .transpose()?;
        let xml = match (&self.idp_metadata_file, &self.idp_metadata_xml) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map_err(|e| err(format!("idp_metadata_file {}: {e}", path.display())))?,
            (None, Some(x)) => x.clone(),
            // Fetched at start and refreshed; checked the same way each time.
            (None, None) => String::new(),
        };
        // A SAML provider without IdP signing certificates cannot be saved: samael would skip signature checks.
        if metadata_url.is_none() {
            crate::providers::saml::parse_idp_metadata(&xml)
                .map_err(|m| err(format!("IdP metadata: {m}")))?;
        }
        let refresh = self.metadata_refresh_seconds.unwrap_or(3600);
        if !(60..=86_400).contains(&refresh) {
            return Err(err("`metadata_refresh_seconds` must be 60..=86400".into()));
        }
        let (connect_timeout_ms, timeout_ms) = (
            self.connect_timeout_ms.unwrap_or(3000),
            self.timeout_ms.unwrap_or(10_000),
        );
        if !(100..=60_000).contains(&connect_timeout_ms) || !(100..=120_000).contains(&timeout_ms) {
            return Err(err(
                "timeouts must be 100..=60000 ms (connect) and 100..=120000 ms (total)".into(),
            ));
        }
        let skew = self.clock_skew_seconds.unwrap_or(120);
        if !(0..=600).contains(&skew) {
            return Err(err("`clock_skew_seconds` must be 0..=600".into()));
        }
        validate_roles(&self.roles).map_err(err)?;
        Ok(ProviderSettings {
            display_name: self.display_name.clone().unwrap_or_else(|| id.clone()),
            id: id.clone(),
            kind: Kind::Saml,
            enabled: self.enabled,
            client_id: String::new(),
            client_secret: None,
            client_auth: ClientAuth::Basic,
            scopes: vec![],
            auth_params: BTreeMap::new(),
            issuer: None,
            oidc_endpoints: None,
            id_token_algs: vec![],
            use_userinfo: false,
            authorization_endpoint: None,
            token_endpoint: None,
            userinfo_endpoint: None,
            pkce: false,
            claims: ClaimPaths {
                subject: self
                    .subject_claim
                    .clone()
                    .unwrap_or_else(|| "NameID".into()),
                username: self.username_claim.clone().unwrap_or_else(|| "uid".into()),
                email: self.email_claim.clone().unwrap_or_else(|| "mail".into()),
                name: self
                    .name_claim
                    .clone()
                    .unwrap_or_else(|| "displayName".into()),
                groups: self.groups_claim.clone().unwrap_or_else(|| "groups".into()),
            },
            roles: self.roles,
            constraints: self.constraints,
            connect_timeout_ms,
            timeout_ms,
            saml: Some(SamlSettings {
                idp_metadata_xml: xml,
                sp_entity_id: self.sp_entity_id.clone(),
                sign_authn_requests: self.sign_authn_requests.unwrap_or(true),
                force_authn: self.force_authn.unwrap_or(false),
                name_id_format: self.name_id_format.clone(),
                allow_sha1: self.allow_sha1.unwrap_or(false),
                clock_skew_seconds: skew,
                per_provider_acs: self.per_provider_acs.unwrap_or(false),
                allow_idp_initiated: self.allow_idp_initiated.unwrap_or(false),
                idp_metadata_url: metadata_url,
                metadata_refresh_seconds: refresh,
            }),
        })
    }
}
