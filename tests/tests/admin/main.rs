//! The admin console and admin API over HTTP, one test binary: sign-in (argon2id, rate limit), sessions and
//! CSRF on every state-changing route, escaping, API tokens, signing credentials, applications, providers,
//! SSO sessions, audit, export and import. The request helpers are `sts_tests::admin`'s.

mod api;
mod applications;
mod console;
mod providers;
mod transfer;

use std::collections::HashMap;

use base64::Engine;
use sts_tests::admin::{
    PASSWORD, api_get, audit_total, create_user, csrf_of, named_api_token, post_form, pre,
    sign_in_as, signed_in_root,
};
use sts_tests::{browser, spawn_app};
