//! Provider presets: the settings every admin looks up for the common identity providers (discovery URL or
//! endpoints, claim names, the role claim), as console TOML with `<placeholders>` to complete. The console's
//! "Add a provider" form starts from one (`/admin/providers?preset=ID`); docs/operator-guide.md, "Presets",
//! shows the same text. tests/tests/presets.rs fills the placeholders and validates each one like a real
//! provider.

/// One preset: its id (the `preset=` value), the name shown, and the TOML.
pub struct Preset {
    pub id: &'static str,
    pub name: &'static str,
    pub toml: &'static str,
}

pub const PRESETS: &[Preset] = &[
    Preset {
        id: "entra-id",
        name: "Microsoft Entra ID",
        toml: r#"id = "entra"
type = "oidc"
display_name = "Microsoft Entra ID"
# v2.0 endpoints of your tenant (discovery: <issuer>/.well-known/openid-configuration).
issuer = "https://login.microsoftonline.com/<tenant-id>/v2.0"
client_id = "<application-client-id>"
scopes = ["openid", "email", "profile"]
username_claim = "preferred_username"
groups_claim = "groups"
# App roles (App registration > App roles) arrive in "roles"; group object IDs in "groups" once the app
# registration's Token configuration adds the groups claim. Group overage: a user in more than 200 groups
# gets no "groups" claim at all, only a pointer to Microsoft Graph ("_claim_names"), which the STS does not
# follow. Use app roles, or "Groups assigned to the application", to stay under the limit.

[roles]
claim = "roles"
rules = [ { match = "STS.Admin", roles = ["admin"] } ]
default_roles = ["user"]
"#,
    },
    Preset {
        id: "okta",
        name: "Okta",
        toml: r#"id = "okta"
type = "oidc"
display_name = "Okta"
# A custom authorization server ("default" or yours); the org server is https://<your-org>.okta.com.
issuer = "https://<your-org>.okta.com/oauth2/default"
client_id = "<client-id>"
# "groups" is a scope you add to the authorization server, with a groups claim (Security > API > Claims).
scopes = ["openid", "email", "profile", "groups"]
username_claim = "preferred_username"

[roles]
claim = "groups"
rules = [ { match = "sts-admins", roles = ["admin"] } ]
default_roles = ["user"]
"#,
    },
    Preset {
        id: "google",
        name: "Google Workspace",
        toml: r#"id = "google"
type = "oidc"
display_name = "Google"
issuer = "https://accounts.google.com"
client_id = "<client-id>.apps.googleusercontent.com"
scopes = ["openid", "email", "profile"]
# Offer only your domain's accounts at Google's page; the constraint below is what enforces it.
auth_params = { hd = "<your-domain.example>" }

[constraints]
allowed_email_domains = ["<your-domain.example>"]

# Google's ID tokens carry no groups: roles come from the hosted domain (hd) and the defaults.
[roles]
claim = "hd"
rules = [ { match = "<your-domain.example>", roles = ["staff"] } ]
default_roles = ["user"]
"#,
    },
    Preset {
        id: "github",
        name: "GitHub",
        toml: r#"id = "github"
type = "oauth2"
display_name = "GitHub"
authorization_endpoint = "https://github.com/login/oauth/authorize"
token_endpoint = "https://github.com/login/oauth/access_token"
userinfo_endpoint = "https://api.github.com/user"
# Organisations and teams as groups: read with the same access token (read:org), put into the claims.
userinfo_extra = { orgs = "https://api.github.com/user/orgs", teams = "https://api.github.com/user/teams" }
client_id = "<client-id>"
scopes = ["read:user", "user:email", "read:org"]
subject_claim = "id"
username_claim = "login"
name_claim = "name"
email_claim = "email"
groups_claim = "orgs.login"

[constraints]
required_groups = ["<your-organisation>"]

# Team slugs; "teams.organization.login" would give their organisations.
[roles]
claim = "teams.slug"
rules = [ { match = "<admins-team-slug>", roles = ["admin"] } ]
default_roles = ["user"]
"#,
    },
    Preset {
        id: "keycloak",
        name: "Keycloak",
        toml: r#"id = "keycloak"
type = "oidc"
display_name = "Keycloak"
issuer = "https://<keycloak-host>/realms/<realm>"
client_id = "<client-id>"
scopes = ["openid", "email", "profile"]
username_claim = "preferred_username"
# Realm roles are in realm_access.roles; for groups, add a "Group Membership" mapper (claim "groups",
# full path off) to the client's dedicated scope and use claim = "groups".
groups_claim = "groups"

[roles]
claim = "realm_access.roles"
rules = [ { match = "sts-admin", roles = ["admin"] } ]
default_roles = ["user"]
"#,
    },
    Preset {
        id: "adfs",
        name: "ADFS (SAML)",
        toml: r#"id = "adfs"
type = "saml"
display_name = "ADFS"
idp_metadata_url = "https://<adfs-host>/FederationMetadata/2007-06/FederationMetadata.xml"
name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
# The claim rules of the relying party trust decide what ADFS sends: "Send LDAP Attributes as Claims"
# (UPN, E-Mail-Addresses, Display-Name, Token-Groups - Unqualified Names as Role).
username_claim = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
email_claim = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
name_claim = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
groups_claim = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"

[roles]
claim = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
rules = [ { match = "STS Admins", roles = ["admin"] } ]
default_roles = ["user"]
"#,
    },
    Preset {
        id: "active-directory",
        name: "Active Directory (LDAP)",
        toml: r#"id = "ad"
type = "ldap"
display_name = "Active Directory"
url = "ldaps://<domain-controller>"
# The CA that signed the domain controllers' certificates (the console takes it inline).
ca_pem = '''
<-----BEGIN CERTIFICATE----- ... ----END CERTIFICATE----->
'''
user_base_dn = "<OU=Staff,DC=corp,DC=example,DC=com>"
user_filter = "(&(objectClass=user)(sAMAccountName={username}))"
# The service account's password goes in the secret field.
bind_dn = "<CN=sts-reader,OU=Service Accounts,DC=corp,DC=example,DC=com>"
group_base_dn = "<DC=corp,DC=example,DC=com>"
nested_groups = true
subject_claim = "sAMAccountName"
username_claim = "sAMAccountName"
name_claim = "displayName"
email_claim = "mail"
user_attributes = ["sAMAccountName", "displayName", "mail", "userPrincipalName"]

[roles]
claim = "groups"
rules = [ { match = "STS-Admins", roles = ["admin"] } ]
default_roles = ["user"]
"#,
    },
];

/// The preset with this id.
pub fn preset(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id == id)
}
