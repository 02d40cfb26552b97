//! The attack suite: one named test per case from the published catalogs (RFC 8725, OWASP
//! ASVS and WSTG, PortSwigger's labs, PayloadsAllTheThings, peers' advisories), each against the
//! real binary. `SECURITY.md` maps every guarantee to the tests here.

mod auth_endpoints;
mod csrf;
mod headers;
mod http2;
mod jwt;
mod paths;
mod redirects;
mod sessions;
mod smuggling;
mod websocket;
