//! OpenID Connect logins against a real `oidc-provider` on Node.

use crate::support::*;
