//! Unit tests of access-token signing and verification.

use super::*;
use crate::error::Error;

const NOW: i64 = 1_800_000_000;

fn keys() -> Result<(tempfile::TempDir, KeySet), Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::Internal(e.to_string()))?;
    let keys = KeySet::load_or_create(dir.path())?;
    Ok((dir, keys))
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "dashgate".into(),
        aud: "dashgate".into(),
        sub: "alice".into(),
        roles: vec!["viewer".into()],
        permissions: vec!["reports:read".into()],
        sid: "sid1".into(),
        jti: "jti1".into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 900,
    }
}

fn expect(now: i64) -> Expect<'static> {
    Expect {
        typ: ACCESS_TYP,
        issuer: "dashgate",
        audience: "dashgate",
        now,
        leeway: 30,
    }
}

/// Re-sign arbitrary header/payload JSON with the real key (to test claim rules, not crypto).
fn forge(keys: &KeySet, header: &serde_json::Value, payload: &serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig = ed25519_dalek::Signer::sign(keys.active().1, input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

#[test]
fn round_trip() -> Result<(), Error> {
    let (_d, k) = keys()?;
    let t = sign(&k, ACCESS_TYP, &claims())?;
    assert_eq!(verify_access(&t, &k, &expect(NOW)), Ok(claims()));
    Ok(())
}

#[test]
fn expiry_and_not_before_with_leeway() -> Result<(), Error> {
    let (_d, k) = keys()?;
    let t = sign(&k, ACCESS_TYP, &claims())?;
    assert!(verify_access(&t, &k, &expect(NOW + 900 + 29)).is_ok());
    assert_eq!(
        verify_access(&t, &k, &expect(NOW + 900 + 30)),
        Err(TokenError::Expired)
    );
    assert!(verify_access(&t, &k, &expect(NOW - 29)).is_ok());
    assert_eq!(
        verify_access(&t, &k, &expect(NOW - 31)),
        Err(TokenError::NotYetValid)
    );
    Ok(())
}

#[test]
fn header_rules() -> Result<(), Error> {
    let (_d, k) = keys()?;
    let kid = k.active().0.to_owned();
    let p = serde_json::to_value(claims()).map_err(|e| Error::Internal(e.to_string()))?;
    let cases = [
        (
            serde_json::json!({"alg":"none","typ":ACCESS_TYP,"kid":kid}),
            TokenError::BadAlgorithm,
        ),
        (
            serde_json::json!({"alg":"HS256","typ":ACCESS_TYP,"kid":kid}),
            TokenError::BadAlgorithm,
        ),
        (
            serde_json::json!({"alg":"EdDSA","typ":"JWT","kid":kid}),
            TokenError::BadType,
        ),
        (
            serde_json::json!({"alg":"EdDSA","typ":ACCESS_TYP,"kid":"../../dev/null"}),
            TokenError::UnknownKey,
        ),
        (
            serde_json::json!({"alg":"EdDSA","typ":ACCESS_TYP,"kid":""}),
            TokenError::UnknownKey,
        ),
        (
            serde_json::json!({"alg":"EdDSA","typ":ACCESS_TYP,"kid":"nope"}),
            TokenError::UnknownKey,
        ),
        (
            serde_json::json!({"alg":"EdDSA","typ":ACCESS_TYP,"kid":kid,"crit":["exp"]}),
            TokenError::BadHeader,
        ),
        (
            serde_json::json!({"alg":"EdDSA","typ":ACCESS_TYP,"kid":kid,"jku":"http://127.0.0.1:1/"}),
            TokenError::BadHeader,
        ),
        (
            serde_json::json!({"alg":"EdDSA","typ":ACCESS_TYP}),
            TokenError::BadHeader,
        ),
    ];
    for (h, want) in cases {
        assert_eq!(
            verify_access(&forge(&k, &h, &p), &k, &expect(NOW)),
            Err(want),
            "{h}"
        );
    }
    Ok(())
}

#[test]
fn claim_types_are_strict() -> Result<(), Error> {
    let (_d, k) = keys()?;
    let h = serde_json::json!({"alg":"EdDSA","typ":ACCESS_TYP,"kid":k.active().0});
    let mut p = serde_json::to_value(claims()).map_err(|e| Error::Internal(e.to_string()))?;
    p["exp"] = serde_json::json!("99999999999");
    assert_eq!(
        verify_access(&forge(&k, &h, &p), &k, &expect(NOW)),
        Err(TokenError::BadClaims)
    );
    let mut p = serde_json::to_value(claims()).map_err(|e| Error::Internal(e.to_string()))?;
    p["aud"] = serde_json::json!("other");
    assert_eq!(
        verify_access(&forge(&k, &h, &p), &k, &expect(NOW)),
        Err(TokenError::WrongAudience)
    );
    let mut p = serde_json::to_value(claims()).map_err(|e| Error::Internal(e.to_string()))?;
    p["iss"] = serde_json::json!("evil");
    assert_eq!(
        verify_access(&forge(&k, &h, &p), &k, &expect(NOW)),
        Err(TokenError::WrongAudience)
    );
    Ok(())
}

#[test]
fn tampering_and_garbage() -> Result<(), Error> {
    let (_d, k) = keys()?;
    let t = sign(&k, ACCESS_TYP, &claims())?;
    let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
    // Tampered roles with the original signature.
    let mut c = claims();
    c.roles = vec!["admin".into()];
    parts[1] = b64(&serde_json::to_vec(&c).map_err(|e| Error::Internal(e.to_string()))?);
    assert_eq!(
        verify_access(&parts.join("."), &k, &expect(NOW)),
        Err(TokenError::BadSignature)
    );
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(
        verify_access(&stripped, &k, &expect(NOW)),
        Err(TokenError::BadSignature)
    );
    for bad in ["", ".", "..", "a.b.c", "a.b.c.d", "\u{0}", "eyJ.eyJ.===="] {
        assert!(verify_access(bad, &k, &expect(NOW)).is_err(), "{bad:?}");
    }
    assert_eq!(
        verify_access(&"a".repeat(MAX_TOKEN_LEN + 1), &k, &expect(NOW)),
        Err(TokenError::TooLarge)
    );
    // A key from another key set does not verify.
    let (_d2, other) = keys()?;
    let foreign = sign(&other, ACCESS_TYP, &claims())?;
    assert_eq!(
        verify_access(&foreign, &k, &expect(NOW)),
        Err(TokenError::UnknownKey)
    );
    Ok(())
}
