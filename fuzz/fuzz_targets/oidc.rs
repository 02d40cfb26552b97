//! What an OpenID sign-in reads from outside: ID tokens, JWKS documents, the flow cookie and
//! claims. Nothing panics; nothing unsigned is accepted; claims map to valid names or fail.
#![no_main]

use dashgate::sign_in::oidc::{flow, id_token};
use libfuzzer_sys::fuzz_target;

/// RFC 7517 A.1's P-256 public key: nobody here holds its private half.
const JWKS: &str = r#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "1",
    "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
    "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(JWKS) else {
        return;
    };
    let keys = id_token::parse_jwks(&doc);
    assert_eq!(keys.len(), 1);
    let expect = id_token::Expect {
        issuer: "https://idp.example.com",
        client_id: "dashgate",
        nonce: "n",
        now: 1_800_000_000,
        leeway: 30,
    };
    assert!(id_token::validate(text, &keys, &expect).is_err());
    // Any JWKS document parses to keys or nothing; a token checked against it still needs a
    // signature nobody can make here.
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = id_token::parse_jwks(&doc);
    }
    assert!(flow::open(&[3; 32], Some(text), text, 1_800_000_000).is_err());
});
