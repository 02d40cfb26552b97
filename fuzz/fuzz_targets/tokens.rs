//! Tokens as presented: access tokens (JWS), refresh tokens, bearer headers and CSRF tokens.
//! Nothing panics, and nothing unsigned is ever accepted.
#![no_main]

use std::sync::OnceLock;

use dashgate::session::csrf;
use dashgate::token::jwt::{self, ACCESS_TYP, Expect};
use dashgate::token::keys::KeySet;
use dashgate::token::refresh;
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dashgate-fuzz-keys-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        match KeySet::load_or_create(&dir) {
            Ok(k) => k,
            Err(e) => panic!("cannot create fuzzing keys in {}: {e}", dir.display()),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expect = Expect {
        typ: ACCESS_TYP,
        issuer: "dashgate",
        audience: "dashgate",
        now: 1_800_000_000,
        leeway: 30,
    };
    // Random input never carries a valid Ed25519 signature by our fresh key.
    assert!(jwt::verify_access(text, keys(), &expect).is_err());
    let _ = refresh::parse(text);
    let binding = csrf::Binding::Session("sid");
    assert!(
        csrf::check(
            keys().csrf_key(),
            Some(text),
            Some(text),
            binding,
            1_800_000_000,
            None
        )
        .is_err()
    );
    if let Ok(v) = HeaderValue::from_str(text) {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v);
        let _ = dashgate::session::bearer(&h);
    }
});
