//! The checks on a SAMLResponse (see the ordered list in the module documentation of `saml`): the
//! signature reduction, the namespace check, samael's checks, our audience check and the values read by
//! namespace (`SamlProvider::validate`).

use super::*;

/// The signed content of `xml`, as libxmlsec1 verified it against the IdP metadata certificates (samael's
/// reduction, the same one its own parse makes). The error says whether a signature is missing or does
/// not verify.
pub(super) fn reduce_to_signed(sp: &ServiceProvider, xml: &str) -> Result<String, ProviderError> {
    use samael::crypto::{Crypto, CryptoProvider, ReduceMode};
    let certs = sp.idp_signing_certs().ok().flatten().unwrap_or_default();
    Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        ReduceMode::default(),
        sp.allowed_signature_algorithms.as_deref(),
    )
    .map_err(|_| {
        ProviderError::Saml(
            "saml_invalid",
            if count_start_tags(xml, "Signature") == 0 {
                "the response carries no signature".into()
            } else if let Err(e) = roxmltree::Document::parse(xml) {
                // Only for the message: nothing is read from this parse.
                format!("the response is not well-formed XML ({e}), so its signature cannot be checked")
            } else {
                "no signature verifies against the IdP metadata certificates with an allowed algorithm"
                    .into()
            },
        )
    })
}

/// [`saml_xml::check_namespaces`] on verified XML, as a provider error.
pub(super) fn check_namespaces(verified: &str) -> Result<(), ProviderError> {
    let doc = saml_xml::parse(verified).map_err(|e| ProviderError::Saml("saml_invalid", e.0))?;
    saml_xml::check_namespaces(&doc).map_err(|e| ProviderError::Saml("saml_namespace", e.0))
}

/// The values of the verified assertion read by namespace, refused unless samael read the same NameID and
/// attributes (two parsers that disagree about signed content mean an attack or a broken IdP).
pub(super) fn namespace_aware_values(
    verified: &str,
    assertion: &samael::schema::Assertion,
) -> Result<saml_xml::AssertionValues, ProviderError> {
    let bad = |m: saml_xml::XmlRefused| ProviderError::Saml("saml_namespace", m.0);
    let doc = saml_xml::parse(verified).map_err(bad)?;
    let ours = saml_xml::assertion_values(&doc).map_err(bad)?;
    let theirs_name_id = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.clone())
        .filter(|v| !v.is_empty());
    let theirs_attrs: Vec<(Option<String>, Option<String>, Vec<String>)> = assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| s.attributes.iter())
        .map(|a| {
            (
                a.name.clone(),
                a.friendly_name.clone(),
                a.values
                    .iter()
                    .filter_map(|v| v.value.clone())
                    .filter(|v| !v.is_empty())
                    .collect(),
            )
        })
        .collect();
    if ours.name_id != theirs_name_id || ours.attributes != theirs_attrs {
        return Err(bad(
            "the namespace-aware reading of the signed assertion differs from the SAML library's"
                .into(),
        ));
    }
    Ok(ours)
}

impl SamlProvider {
    /// Validate a SAMLResponse (base64, from the ACS form) for the request `request_id`; returns the
    /// verified assertion as claims: `NameID`, `NameIDFormat`, `SessionIndex` and one entry per attribute
    /// Name and FriendlyName (arrays of strings), plus the assertion ID and expiry for the replay cache.
    pub fn validate(
        &self,
        saml_response: &str,
        request_id: Option<&str>,
    ) -> Result<(Value, String, i64), ProviderError> {
        let bad = |code: &'static str, m: String| ProviderError::Saml(code, m);
        let idp = self.idp()?;
        // Solicited: InResponseTo must be the request ID of this login flow. Unsolicited (IdP-initiated):
        // only when the provider allows it, and then the assertion must not answer any request.
        let (sp, ids): (&ServiceProvider, Option<Vec<&str>>) =
            match (request_id, &idp.sp_unsolicited) {
                (Some(id), _) => (&idp.sp, Some(vec![id])),
                (None, Some(sp)) => (sp, None),
                (None, None) => {
                    return Err(bad(
                        "saml_unsolicited",
                        "IdP-initiated login is not enabled for this provider".into(),
                    ));
                }
            };
        // Some IdPs wrap the base64 at 64/76 columns.
        let compact: String = saml_response
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = STANDARD
            .decode(compact)
            .map_err(|_| bad("saml_malformed", "SAMLResponse is not base64".into()))?;
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(bad("saml_malformed", "SAMLResponse is too large".into()));
        }
        let xml = String::from_utf8(bytes)
            .map_err(|_| bad("saml_malformed", "SAMLResponse is not UTF-8".into()))?;
        if has_unsafe_xml(&xml) || !xml_declaration_ok(&xml) || has_comment_or_pi(&xml) {
            return Err(bad(
                "saml_unsafe_xml",
                "DOCTYPE, entity declarations, comments, processing instructions or a non-1.0 XML declaration"
                    .into(),
            ));
        }
        if let Some(why) = misleading_tag(&xml) {
            return Err(bad("saml_unsafe_xml", why));
        }
        let xml = without_declaration(&xml).to_string();
        let assertions = count_start_tags(&xml, "Assertion");
        let encrypted = count_start_tags(&xml, "EncryptedAssertion");
        if assertions + encrypted == 0
            && let Some(status) = first_status_code(&xml)
            && status != "urn:oasis:names:tc:SAML:2.0:status:Success"
        {
            // Not trusted (unsigned), only reported: the IdP declined (cancelled, denied, no passive...).
            return Err(bad(
                "saml_idp_status",
                format!("the IdP answered with status {status}"),
            ));
        }
        if assertions + encrypted != 1 {
            return Err(bad(
                "saml_assertion_count",
                format!(
                    "exactly one assertion is required, found {}",
                    assertions + encrypted
                ),
            ));
        }
        if let Some(why) = unsafe_signature_structure(&xml) {
            return Err(bad("saml_unsafe_xml", why));
        }
        let (assertion, verified) = if encrypted == 1 {
            self.decrypt_and_validate(sp, &xml, ids.as_deref())?
        } else {
            // The signed content as libxmlsec1 verified it (what samael parses next): read by namespace.
            let verified = reduce_to_signed(sp, &xml)?;
            check_namespaces(&verified)?;
            let assertion = sp
                .parse_xml_response(&xml, ids.as_deref())
                .map_err(|e| bad("saml_invalid", e.to_string()))?;
            (assertion, verified)
        };
        // Unsolicited: nothing in it may answer a request (samael does not check the Response's own
        // InResponseTo in that mode, so any occurrence refuses it).
        if ids.is_none() && xml.contains("InResponseTo") {
            return Err(bad(
                "saml_unsolicited",
                "an unsolicited response must not answer a request (InResponseTo)".into(),
            ));
        }
        if ids.is_none()
            && assertion
                .subject
                .iter()
                .flat_map(|s| s.subject_confirmations.iter().flatten())
                .any(|c| {
                    c.subject_confirmation_data
                        .as_ref()
                        .is_some_and(|d| d.in_response_to.is_some())
                })
        {
            return Err(bad(
                "saml_unsolicited",
                "an unsolicited response must not answer a request (InResponseTo)".into(),
            ));
        }
        let conditions = assertion
            .conditions
            .as_ref()
            .ok_or_else(|| bad("saml_audience", "the assertion has no Conditions".into()))?;
        let audience_ok = conditions
            .audience_restrictions
            .iter()
            .flatten()
            .map(|r| r.audience.iter().any(|a| a == &self.entity_id))
            // SAML Core 2.5.1.4: every AudienceRestriction must be met; at least one is required.
            .fold(None, |acc: Option<bool>, ok| {
                Some(acc.unwrap_or(true) && ok)
            })
            .unwrap_or(false);
        if !audience_ok {
            return Err(bad(
                "saml_audience",
                format!("no AudienceRestriction names `{}`", self.entity_id),
            ));
        }
        let not_on_or_after = conditions
            .not_on_or_after
            .map(|t| t.timestamp())
            .into_iter()
            .chain(
                assertion
                    .subject
                    .iter()
                    .flat_map(|s| s.subject_confirmations.iter().flatten())
                    .filter_map(|c| {
                        c.subject_confirmation_data
                            .as_ref()
                            .and_then(|d| d.not_on_or_after)
                    })
                    .map(|t| t.timestamp()),
            )
            .max()
            .unwrap_or_else(|| chrono::Utc::now().timestamp() + 600);

        let values = namespace_aware_values(&verified, &assertion)?;
        let mut claims = Map::new();
        if let Some(v) = values.name_id {
            claims.insert("NameID".into(), Value::String(v));
        }
        if let Some(f) = values.name_id_format {
            claims.insert("NameIDFormat".into(), Value::String(f));
        }
        if let Some(idx) = values.session_index {
            claims.insert("SessionIndex".into(), Value::String(idx));
        }
        for (name, friendly, vals) in values.attributes {
            for key in name.into_iter().chain(friendly) {
                let entry = claims.entry(key).or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(list) = entry {
                    list.extend(vals.iter().cloned().map(Value::String));
                }
            }
        }
        Ok((Value::Object(claims), assertion.id.clone(), not_on_or_after))
    }
}
