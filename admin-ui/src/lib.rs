//! Admin console (askama templates + handlers). A stub until the admin-console issue: it will define the
//! store trait it needs, and `sts` will implement it (admin-ui must not depend on sts).
