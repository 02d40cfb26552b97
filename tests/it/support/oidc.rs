//! A real OpenID provider (`oidc-provider` from npm, on Node) on a free loopback port.
