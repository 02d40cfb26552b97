//! Compact JWS by hand, independent of the gateway's own code: to read the tokens it issues,
//! check them against its JWKS as an app would, and forge tokens (genuinely signed with its
//! key, or with an attacker's) for the attack suite.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;

use super::{Gateway, client};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Decode a base64url JSON part of a compact JWS.
pub fn jws_part(part: &str) -> Res<serde_json::Value> {
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
}

/// Header and claims of a compact JWS (not verified).
pub fn parts(token: &str) -> Res<(serde_json::Value, serde_json::Value)> {
    let mut it = token.split('.');
    let (Some(h), Some(c)) = (it.next(), it.next()) else {
        return Err("not a compact JWS".into());
    };
    Ok((jws_part(h)?, jws_part(c)?))
}

/// The `kid` in a token's header.
pub fn kid(token: &str) -> Res<String> {
    let (h, _) = parts(token)?;
    Ok(h["kid"].as_str().ok_or("kid")?.to_owned())
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims` as the signing input, from JSON values.
pub fn signing_input(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// The gateway's active Ed25519 signing key, read from its key directory.
pub fn gateway_key(gw: &Gateway) -> Res<ed25519_dalek::SigningKey> {
    let keys = gw.dir.path().join("keys");
    let file = std::fs::read_dir(&keys)?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("signing-"))
        .ok_or("no key file")?;
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file.path())?)?;
    let seed: [u8; 32] = URL_SAFE_NO_PAD
        .decode(v["seed"].as_str().ok_or("seed")?)?
        .as_slice()
        .try_into()?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Sign with an Ed25519 key.
pub fn sign_ed25519(
    key: &ed25519_dalek::SigningKey,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let input = signing_input(header, claims);
    let sig = ed25519_dalek::Signer::sign(key, input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

/// Sign arbitrary claims with the gateway's own key, to make tokens that are genuine but
/// expired, not yet valid, and so on.
pub fn sign_with_gateway_key(
    gw: &Gateway,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Res<String> {
    Ok(sign_ed25519(&gateway_key(gw)?, header, claims))
}

/// HS256 with any secret: the key-confusion family of attacks.
pub fn sign_hs256(secret: &[u8], header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let input = signing_input(header, claims);
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return input,
    };
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// Verify a compact JWS with the gateway's published JWKS, as an app would; returns the JWK
/// used, the header and the claims.
pub async fn verify_with_jwks(
    gw: &Gateway,
    token: &str,
) -> Res<(serde_json::Value, serde_json::Value, serde_json::Value)> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return Err("not a compact JWS".into());
    };
    let header = jws_part(h)?;
    let claims = jws_part(c)?;
    let jwks: serde_json::Value = client()
        .get(gw.url("/auth/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    let key = jwks["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["kid"] == header["kid"]))
        .ok_or("kid not in JWKS")?
        .clone();
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().ok_or("x")?)?
        .as_slice()
        .try_into()?;
    let sig = ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(s)?)?;
    ed25519_dalek::VerifyingKey::from_bytes(&x)?
        .verify_strict(format!("{h}.{c}").as_bytes(), &sig)?;
    Ok((key, header, claims))
}
