//! Validation of an OpenID Connect ID token (OpenID Connect Core 1.0, 3.1.3.7, and RFC 8725):
//! an asymmetric algorithm from a fixed list (never `none`, never HMAC: the client secret is
//! not a signing key here), the key chosen by `kid` from the provider's JWKS and of the type the
//! algorithm needs, then issuer, audience, authorized party, expiry, issue time and nonce.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// Largest ID token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why an ID token was refused. The text is for the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// No key of the JWKS has the token's `kid`: the provider may have rotated its keys.
    #[error("no key with the token's kid")]
    UnknownKey,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("algorithm not allowed: {0}")]
    Algorithm(String),
    #[error("signature does not verify")]
    Signature,
    #[error("claim {0} is wrong")]
    Claim(&'static str),
    #[error("token expired")]
    Expired,
}

/// What the token must say.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: i64,
    pub leeway: i64,
}

/// One verification key of a JWKS.
#[derive(Debug, Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The `alg` the key is restricted to, if the JWKS says.
    pub alg: Option<String>,
    key: KeyMaterial,
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed point (0x04 || x || y) on P-256 or P-384.
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

/// The keys of a JWKS that can verify signatures; other entries (encryption keys, unknown
/// types) are skipped.
pub fn parse_jwks(doc: &Value) -> Vec<Jwk> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    keys.iter().filter_map(parse_jwk).collect()
}

fn b64(v: &Value, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(v.get(name)?.as_str()?.trim_end_matches('='))
        .ok()
}

fn parse_jwk(v: &Value) -> Option<Jwk> {
    if v.get("use")
        .and_then(Value::as_str)
        .is_some_and(|u| u != "sig")
    {
        return None;
    }
    let key = match v.get("kty")?.as_str()? {
        "RSA" => {
            let n = b64(v, "n")?;
            let e = b64(v, "e")?;
            // ring insists on minimal big-endian integers (no leading zero byte).
            let n = n.iter().skip_while(|b| **b == 0).copied().collect();
            KeyMaterial::Rsa { n, e }
        }
        "EC" => {
            let (curve, len) = match v.get("crv")?.as_str()? {
                "P-256" => (Curve::P256, 32),
                "P-384" => (Curve::P384, 48),
                _ => return None,
            };
            let (x, y) = (b64(v, "x")?, b64(v, "y")?);
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::Ec { curve, point }
        }
        "OKP" if v.get("crv")?.as_str()? == "Ed25519" => KeyMaterial::Ed25519(b64(v, "x")?),
        _ => return None,
    };
    Some(Jwk {
        kid: v.get("kid").and_then(Value::as_str).map(str::to_owned),
        alg: v.get("alg").and_then(Value::as_str).map(str::to_owned),
        key,
    })
}

/// Verify `sig` over `msg` with `key` under `alg`, if the key is of the type `alg` needs.
fn verify_signature(alg: &str, key: &KeyMaterial, msg: &[u8], sig: &[u8]) -> Result<(), Reject> {
    let wrong_key = || Reject::Algorithm(format!("{alg} with a key of another type"));
    let ok = match (alg, key) {
        ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512", KeyMaterial::Rsa { n, e }) => {
            let params: &signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            signature::RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok()
        }
        (
            "ES256",
            KeyMaterial::Ec {
                curve: Curve::P256,
                point,
            },
        ) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(msg, sig)
            .is_ok(),
        (
            "ES384",
            KeyMaterial::Ec {
                curve: Curve::P384,
                point,
            },
        ) => UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
            .verify(msg, sig)
            .is_ok(),
        ("EdDSA" | "Ed25519", KeyMaterial::Ed25519(x)) => {
            UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(msg, sig)
                .is_ok()
        }
        (
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "EdDSA"
            | "Ed25519",
            _,
        ) => return Err(wrong_key()),
        _ => return Err(Reject::Algorithm(alg.to_owned())),
    };
    if ok { Ok(()) } else { Err(Reject::Signature) }
}

fn decode_part(part: &str) -> Result<Map<String, Value>, Reject> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Reject::Malformed("not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Reject::Malformed("not a JSON object")),
    }
}

fn int_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Reject> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(Reject::Claim(name)),
    }
}

/// Validate `token` against `keys` and `expect`; the verified claims on success.
pub fn validate(
    token: &str,
    keys: &[Jwk],
    expect: &Expect<'_>,
) -> Result<Map<String, Value>, Reject> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Reject::Malformed("too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reject::Malformed("not a compact JWS"));
    };
    let header = decode_part(h)?;
    // Only the members a signed ID token needs; anything that changes how it is processed
    // (crit, jku, x5u, embedded jwk, b64) is refused rather than ignored.
    if let Some(extra) = header
        .keys()
        .find(|k| !matches!(k.as_str(), "alg" | "kid" | "typ" | "x5t" | "x5t#S256"))
    {
        return Err(Reject::Algorithm(format!("header member {extra}")));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Reject::Malformed("no alg"))?;
    if let Some(typ) = header.get("typ") {
        // An access token, a logout token or anything else is not an ID token.
        if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
            return Err(Reject::Malformed("typ is not JWT"));
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(Reject::Malformed("kid is not a string")),
    };
    let candidates: Vec<&Jwk> = match kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect(),
        // Without a kid, only a JWKS of one usable key is unambiguous.
        None if keys.len() == 1 => keys.iter().collect(),
        None => Vec::new(),
    };
    let key = match candidates.as_slice() {
        [one] => *one,
        [] => return Err(Reject::UnknownKey),
        _ => return Err(Reject::Malformed("several keys share the kid")),
    };
    if key.alg.as_deref().is_some_and(|a| a != alg) {
        return Err(Reject::Algorithm(format!(
            "{alg} with a key for {:?}",
            key.alg
        )));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Reject::Malformed("signature not base64url"))?;
    let signed = &token[..h.len() + 1 + p.len()];
    verify_signature(alg, &key.key, signed.as_bytes(), &sig)?;

    let claims = decode_part(p)?;
    let str_claim = |name: &'static str| claims.get(name).and_then(Value::as_str);
    if str_claim("iss") != Some(expect.issuer) {
        return Err(Reject::Claim("iss"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(Reject::Claim("aud")),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(Reject::Claim("aud"));
    }
    match str_claim("azp") {
        Some(azp) if azp != expect.client_id => return Err(Reject::Claim("azp")),
        None if audiences.len() > 1 => return Err(Reject::Claim("azp")),
        _ => {}
    }
    if !str_claim("sub").is_some_and(|s| !s.is_empty() && s.len() <= 255) {
        return Err(Reject::Claim("sub"));
    }
    let exp = int_claim(&claims, "exp")?.ok_or(Reject::Claim("exp"))?;
    if expect.now > exp.saturating_add(expect.leeway) {
        return Err(Reject::Expired);
    }
    let iat = int_claim(&claims, "iat")?.ok_or(Reject::Claim("iat"))?;
    if iat > expect.now.saturating_add(expect.leeway) {
        return Err(Reject::Claim("iat"));
    }
    if let Some(nbf) = int_claim(&claims, "nbf")? {
        if nbf > expect.now.saturating_add(expect.leeway) {
            return Err(Reject::Claim("nbf"));
        }
    }
    let nonce = str_claim("nonce").ok_or(Reject::Claim("nonce"))?;
    if !bool::from(nonce.as_bytes().ct_eq(expect.nonce.as_bytes())) {
        return Err(Reject::Claim("nonce"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    const ISS: &str = "https://idp.example.com";
    const CLIENT: &str = "dashgate";
    const NONCE: &str = "n-0S6_WzA2Mj";
    const NOW: i64 = 1_800_000_000;

    struct Signer {
        ec: EcdsaKeyPair,
        ed: Ed25519KeyPair,
    }

    fn signer() -> Result<Signer, Box<dyn std::error::Error>> {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| e.to_string())?;
        let ec = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|e| e.to_string())?;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
        Ok(Signer { ec, ed })
    }

    impl Signer {
        fn jwks(&self) -> Vec<Jwk> {
            let p = self.ec.public_key().as_ref();
            parse_jwks(&json!({"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
                 "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..])},
                {"kty": "OKP", "crv": "Ed25519", "kid": "ed1",
                 "x": URL_SAFE_NO_PAD.encode(self.ed.public_key().as_ref())},
                {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            ]}))
        }

        fn sign(&self, header: Value, claims: Value) -> String {
            let msg = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = match header["alg"].as_str() {
                Some("ES256") => self
                    .ec
                    .sign(&SystemRandom::new(), msg.as_bytes())
                    .map(|s| s.as_ref().to_vec())
                    .unwrap_or_default(),
                _ => self.ed.sign(msg.as_bytes()).as_ref().to_vec(),
            };
            format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
        }
    }

    fn claims() -> Value {
        json!({"iss": ISS, "aud": CLIENT, "sub": "248289761001", "nonce": NONCE,
               "iat": NOW - 5, "exp": NOW + 300, "preferred_username": "jane"})
    }

    fn expect() -> Expect<'static> {
        Expect {
            issuer: ISS,
            client_id: CLIENT,
            nonce: NONCE,
            now: NOW,
            leeway: 30,
        }
    }

    fn with(claim: &str, value: Value) -> Value {
        let mut c = claims();
        c[claim] = value;
        c
    }

    fn without(claim: &str) -> Value {
        let mut c = claims();
        if let Some(m) = c.as_object_mut() {
            m.remove(claim);
        }
        c
    }

    #[test]
    fn good_tokens_validate_with_either_key() -> Result<(), Box<dyn std::error::Error>> {
        let s = signer()?;
        let keys = s.jwks();
        assert_eq!(keys.len(), 2, "the encryption key is skipped");
        for header in [
            json!({"alg": "ES256", "kid": "ec1"}),
            json!({"alg": "EdDSA", "kid": "ed1", "typ": "JWT"}),
        ] {
            let claims = validate(&s.sign(header, claims()), &keys, &expect())?;
            assert_eq!(claims["preferred_username"], "jane");
        }
        Ok(())
    }

    #[test]
    fn every_refusal_has_its_reason() -> Result<(), Box<dyn std::error::Error>> {
        let s = signer()?;
        let keys = s.jwks();
        let ec = json!({"alg": "ES256", "kid": "ec1"});
        let cases: Vec<(&str, String, Reject)> = vec![
            (
                "unknown kid",
                s.sign(json!({"alg": "ES256", "kid": "new"}), claims()),
                Reject::UnknownKey,
            ),
            (
                "alg none",
                s.sign(json!({"alg": "none", "kid": "ec1"}), claims()),
                Reject::Algorithm("none".into()),
            ),
            (
                "HMAC",
                s.sign(json!({"alg": "HS256", "kid": "ec1"}), claims()),
                Reject::Algorithm("HS256".into()),
            ),
            (
                "alg of another key type",
                s.sign(json!({"alg": "RS256", "kid": "ec1"}), claims()),
                Reject::Algorithm("RS256 with a key of another type".into()),
            ),
            (
                "embedded jwk",
                s.sign(json!({"alg": "ES256", "kid": "ec1", "jwk": {}}), claims()),
                Reject::Algorithm("header member jwk".into()),
            ),
            (
                "crit",
                s.sign(
                    json!({"alg": "ES256", "kid": "ec1", "crit": ["exp"]}),
                    claims(),
                ),
                Reject::Algorithm("header member crit".into()),
            ),
            (
                "access token typ",
                s.sign(
                    json!({"alg": "ES256", "kid": "ec1", "typ": "at+jwt"}),
                    claims(),
                ),
                Reject::Malformed("typ is not JWT"),
            ),
            (
                "issuer",
                s.sign(ec.clone(), with("iss", json!("https://evil.example.com"))),
                Reject::Claim("iss"),
            ),
            (
                "issuer prefix",
                s.sign(ec.clone(), with("iss", json!(format!("{ISS}/")))),
                Reject::Claim("iss"),
            ),
            (
                "audience",
                s.sign(ec.clone(), with("aud", json!("someone-else"))),
                Reject::Claim("aud"),
            ),
            (
                "several audiences, no azp",
                s.sign(ec.clone(), with("aud", json!([CLIENT, "other"]))),
                Reject::Claim("azp"),
            ),
            (
                "azp of another client",
                s.sign(ec.clone(), with("azp", json!("other"))),
                Reject::Claim("azp"),
            ),
            (
                "expired",
                s.sign(ec.clone(), with("exp", json!(NOW - 31))),
                Reject::Expired,
            ),
            (
                "issued in the future",
                s.sign(ec.clone(), with("iat", json!(NOW + 60))),
                Reject::Claim("iat"),
            ),
            (
                "not yet valid",
                s.sign(ec.clone(), with("nbf", json!(NOW + 60))),
                Reject::Claim("nbf"),
            ),
            (
                "no nonce",
                s.sign(ec.clone(), without("nonce")),
                Reject::Claim("nonce"),
            ),
            (
                "other nonce",
                s.sign(ec.clone(), with("nonce", json!("replayed"))),
                Reject::Claim("nonce"),
            ),
            (
                "no sub",
                s.sign(ec.clone(), without("sub")),
                Reject::Claim("sub"),
            ),
            (
                "no exp",
                s.sign(ec.clone(), without("exp")),
                Reject::Claim("exp"),
            ),
            (
                "exp as text",
                s.sign(ec.clone(), with("exp", json!("soon"))),
                Reject::Claim("exp"),
            ),
        ];
        for (name, token, want) in cases {
            assert_eq!(
                validate(&token, &keys, &expect()).err(),
                Some(want),
                "{name}"
            );
        }
        // A valid token with one byte of the payload changed.
        let good = s.sign(ec, claims());
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let forged = with("sub", json!("admin"));
        parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
        assert_eq!(
            validate(&parts.join("."), &keys, &expect()).err(),
            Some(Reject::Signature)
        );
        assert!(matches!(
            validate("a.b", &keys, &expect()),
            Err(Reject::Malformed(_))
        ));
        assert!(matches!(
            validate(&"x".repeat(MAX_TOKEN_BYTES + 1), &keys, &expect()),
            Err(Reject::Malformed(_))
        ));
        Ok(())
    }
}
