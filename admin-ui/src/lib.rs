//! Admin console (askama templates + handlers). Stub until the admin-console issue: it will define the\n//! store trait it needs and `sts` will implement it (admin-ui must not depend on sts).
