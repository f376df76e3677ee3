//! The OpenAPI 3.1 document of the API, built from `ROUTES`.

use super::*;

// ---------------------------------------------------------------------------------------------- OpenAPI

pub(super) fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

pub(super) fn paged(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "additionalProperties": false,
        "properties": {
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1, "maximum": 200},
            "offset": {"type": "integer", "minimum": 0}
        }
    })
}

pub(super) fn schemas() -> Value {
    let application = json!({
        "type": "object",
        "required": ["id", "name", "type", "redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "audience", "roles", "auth_method", "access_token_lifetime_seconds", "refresh_token_lifetime_seconds", "providers", "enabled", "secret_set", "managed_by"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "type": {"type": "string", "enum": ["confidential", "public"]},
            "redirect_uris": strings(), "post_logout_redirect_uris": strings(), "grant_types": strings(), "scopes": strings(),
            "audience": strings(), "roles": strings(), "auth_method": {"type": "string"}, "enabled": {"type": "boolean"},
            "secret_set": {"type": "boolean"}, "managed_by": {"type": "string", "enum": ["config", "admin"]},
            "access_token_lifetime_seconds": {"type": ["integer", "null"], "minimum": 1},
            "refresh_token_lifetime_seconds": {"type": "integer", "minimum": 60},
            "providers": strings()
        }
    });
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
        "Key": {"type": "object", "required": ["kid", "algorithm", "source", "state", "created_at", "retire_at"], "additionalProperties": false, "properties": {
            "kid": {"type": "string"}, "algorithm": {"type": "string"}, "source": {"type": "string"}, "state": {"type": "string", "enum": ["next", "active", "published", "retired"]},
            "created_at": {"type": "integer"}, "retire_at": {"type": ["integer", "null"]}}},
        "KeyPage": paged("Key"),
        "KidResult": {"type": "object", "required": ["kid"], "additionalProperties": false, "properties": {"kid": {"type": "string"}}},
        "StagedKey": {"type": "object", "required": ["kid", "state", "activate_after"], "additionalProperties": false, "properties": {
            "kid": {"type": "string"}, "state": {"type": "string", "enum": ["next"]},
            "activate_after": {"type": "integer", "description": "unix time from which it signs"}}},
        "KeystoreImport": {"type": "object", "required": ["keystore_base64", "password"], "additionalProperties": false, "properties": {
            "keystore_base64": {"type": "string", "description": "the PKCS#12 file, base64"}, "password": {"type": "string", "minLength": 1}}},
        "Session": {"type": "object", "required": ["sid", "subject", "provider", "username", "created_at", "expires_at", "applications"], "additionalProperties": false, "properties": {
            "sid": {"type": "string"}, "subject": {"type": "string"}, "provider": {"type": "string"}, "username": {"type": "string"},
            "created_at": {"type": "integer"}, "expires_at": {"type": "integer"}, "applications": strings()}},
        "SessionPage": paged("Session"),
        "Application": application,
        "ApplicationPage": paged("Application"),
        "NewApplication": {"type":"object","required":["id","type"],"additionalProperties":false,"properties":{"id":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,64}$"},"name":{"type":["string","null"],"minLength":1,"maxLength":128,"pattern":"^[^\\x00-\\x1f\\x7f-\\x9f]*$"},"type":{"type":"string","enum":["confidential","public"]},"redirect_uris":{"type":"array","items":{"type":"string","pattern":"^https://[a-z]+(\\.[a-z]+)*(/[A-Za-z0-9._~-]*)*$"}},"post_logout_redirect_uris":{"type":"array","items":{"type":"string","pattern":"^https://[a-z]+(\\.[a-z]+)*(/[A-Za-z0-9._~-]*)*$"}},"grant_types":{"type":["array","null"],"minItems":1,"items":{"type":"string","enum":["authorization_code","refresh_token","client_credentials","urn:ietf:params:oauth:grant-type:device_code","urn:ietf:params:oauth:grant-type:token-exchange"]}},"scopes":{"type":["array","null"],"items":{"type":"string","pattern":"^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,128}$"}},"audience":{"type":["array","null"],"minItems":1,"items":{"type":"string","minLength":1,"maxLength":512,"pattern":"^[^\\x00-\\x1f\\x7f-\\x9f]*$"}},"roles":{"type":"array","items":{"type":"string","minLength":1,"maxLength":256,"pattern":"^[^\\x00-\\x1f\\x7f-\\x9f]*$"}},"access_token_lifetime_seconds":{"type":["integer","null"],"minimum":0,"maximum":3600},"refresh_token_lifetime_seconds":{"type":["integer","null"],"minimum":0,"maximum":2592000},"providers":{"type":["array","null"],"items":{"type":"string","pattern":"^[A-Za-z0-9._-]{1,64}$"}}},"allOf":[{"if":{"required":["type"],"properties":{"type":{"const":"public"}}},"then":{"properties":{"grant_types":{"type":["array","null"],"items":{"enum":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code"]}}}}},{"if":{"required":["grant_types"],"properties":{"grant_types":{"type":"array","contains":{"const":"refresh_token"}}}},"then":{"properties":{"grant_types":{"anyOf":[{"contains":{"const":"authorization_code"}},{"contains":{"const":"urn:ietf:params:oauth:grant-type:device_code"}}]}}}},{"if":{"anyOf":[{"not":{"required":["grant_types"]}},{"properties":{"grant_types":{"type":"null"}}},{"properties":{"grant_types":{"type":"array","contains":{"const":"authorization_code"}}}}]},"then":{"required":["redirect_uris"],"properties":{"redirect_uris":{"minItems":1}}}},{"if":{"required":["roles"],"properties":{"roles":{"minItems":1}}},"then":{"required":["grant_types"],"properties":{"grant_types":{"type":"array","contains":{"const":"client_credentials"}}}}}]},
        "CreatedApplication": {"type": "object", "required": ["application", "client_secret"], "additionalProperties": false, "properties": {
            "application": {"$ref": "#/components/schemas/Application"}, "client_secret": {"type": ["string", "null"]}}},
        "SecretResult": {"type": "object", "required": ["client_secret"], "additionalProperties": false, "properties": {"client_secret": {"type": "string"}}},
        "Enabled": {"type": "object", "required": ["enabled"], "additionalProperties": false, "properties": {"enabled": {"type": "boolean"}}},
        "AuditEntry": {"type": "object", "required": ["at", "actor", "action", "target", "details"], "additionalProperties": false, "properties": {
            "at": {"type": "integer"}, "actor": {"type": "string"}, "action": {"type": "string"}, "target": {"type": ["string", "null"]}, "details": {}}},
        "AuditPage": paged("AuditEntry"),
        "ExportDocument": {"type": "object", "required": ["format", "version"], "properties": {
            "format": {"const": "sts-export"}, "version": {"const": 1}, "exported_at": {},
            "providers": {"type": ["array", "null"], "items": {}},
            "applications": {"type": ["array", "null"], "items": {"type": "object", "required": ["settings", "managed_by", "enabled"], "properties": {
                "settings": {"type": "object"}, "managed_by": {"type": "string", "enum": ["config", "admin"]}, "enabled": {"type": "boolean"},
                "secret_hash": {"type": "string"}, "secret_key_id": {"type": "string"}}}},
            "keys": {"type": ["array", "null"], "items": {}}}},
        "ImportSummary": {"type": "object", "required": ["applications", "applications_skipped", "providers", "providers_skipped", "keys_skipped"], "additionalProperties": false, "properties": {
            "applications": {"type": "integer"}, "applications_skipped": {"type": "integer"}, "providers": {"type": "integer"}, "providers_skipped": {"type": "integer"}, "keys_skipped": {"type": "integer"}}},
        "Provider": {"type": "object", "required": ["id", "type", "display_name", "enabled", "managed_by", "source", "callback_url", "sp_metadata_url", "last_outcome", "last_at"], "additionalProperties": false, "properties": {
            "id": {"type": "string"}, "type": {"type": "string", "enum": ["oidc", "oauth2", "saml"]}, "display_name": {"type": "string"},
            "enabled": {"type": "boolean"}, "managed_by": {"type": "string", "enum": ["config", "admin"]}, "source": {"type": ["string", "null"]},
            "callback_url": {"type": "string"}, "sp_metadata_url": {"type": ["string", "null"]}, "last_outcome": {"type": ["string", "null"]}, "last_at": {"type": ["integer", "null"]}}},
        "ProviderPage": paged("Provider"),
        "ProviderSource": {"type": "object", "required": ["source"], "additionalProperties": false, "properties": {
            "source": {"type": "string", "description": "TOML: the keys of a [[providers]] entry"}, "client_secret": {"type": ["string", "null"]}}},
        "SampleClaims": {"type": "object", "required": ["claims"], "additionalProperties": false, "properties": {"claims": {"type": "object"}}},
        "RolePreview": {"type": "object", "required": ["external_values", "roles"], "additionalProperties": false, "properties": {
            "external_values": strings(), "roles": strings()}}
    })
}

/// The OpenAPI 3.1 document, generated from [`ROUTES`].
pub fn openapi_document() -> Value {
    let err = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let mut params = Vec::new();
        for seg in r.path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        if r.op == Op::Export {
            params.push(json!({"name": "with_secrets", "in": "query", "required": false, "schema": {"type": "boolean", "default": false}}));
        }
        if r.paged {
            params.push(json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}));
            params.push(json!({"name": "offset", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0}}));
        }
        let mut responses = serde_json::Map::new();
        let (status, schema) = r.response;
        responses.insert(
            status.to_string(),
            match schema {
                Some(s) => json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}}),
                None => json!({"description": "success, no content"}),
            },
        );
        responses.insert("400".into(), err("invalid request"));
        responses.insert("401".into(), err("missing, unknown or revoked API token"));
        if r.path.contains('{') {
            responses.insert("404".into(), err("no such resource"));
        }
        if r.request.is_some() {
            responses.insert("415".into(), err("the body must be application/json"));
        }
        if matches!(
            r.op,
            Op::CreateApplication
                | Op::UpdateApplication
                | Op::RotateSecret
                | Op::SetApplicationEnabled
                | Op::CreateProvider
                | Op::UpdateProvider
                | Op::SetProviderEnabled
                | Op::RotateKey
        ) {
            responses.insert("409".into(), err("conflicts with the current state (an id that exists, a configuration-file entry, no secret)"));
        }
        let mut op = json!({
            "operationId": format!("{:?}", r.op),
            "summary": r.summary,
            "parameters": params,
            "responses": responses,
            "security": [{"bearer": []}],
        });
        if let Some(s) = r.request {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}}});
        }
        let entry = paths
            .entry(format!("/admin/api/v1{}", r.path))
            .or_insert_with(|| json!({}));
        entry[r.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "STS admin API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an admin API token (Admin console → API tokens)"}}
        }
    })
}

pub(super) async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(openapi_document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document_once() {
        let doc = openapi_document();
        let mut n = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                n += 1;
                assert!(
                    ROUTES
                        .iter()
                        .any(|r| format!("/admin/api/v1{}", r.path) == *path
                            && r.method.eq_ignore_ascii_case(method)),
                    "{method} {path}"
                );
                for (_, resp) in op["responses"].as_object().unwrap() {
                    if let Some(s) = resp
                        .pointer("/content/application~1json/schema/$ref")
                        .and_then(Value::as_str)
                    {
                        let name = s.trim_start_matches("#/components/schemas/");
                        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
                    }
                }
            }
        }
        assert_eq!(n, ROUTES.len());
    }
}
