//! JWT attacks (RFC 8725, PortSwigger's JWT catalog, jwt_tool's playbook). Each forged token
//! differs from a genuine one in exactly the attacked property: claims are copied from a real
//! login, and unless the attack is about the signature it is signed with the gateway's own key.
//! So a refusal is the named defence at work, and `control_forgery_is_accepted` shows that the
//! forging itself is right. Every refusal is checked as a bearer token and as the access cookie:
//! 401, the app never sees the request, and the answer never echoes the token or its signature.

use std::net::TcpListener;

use serde_json::{Value, json};

use crate::support::jws::{b64, gateway_key, kid, parts, sign_ed25519, sign_hs256, signing_input};
use crate::support::{ACCESS, Gateway, PASSWORD, TestResult, Upstream, client};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Target {
    up: Upstream,
    gw: Gateway,
    /// A genuine access token of alice and its header and claims.
    genuine: String,
    header: Value,
    claims: Value,
}

impl Target {
    async fn new() -> Res<Target> {
        let up = Upstream::start().await?;
        let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
        let (genuine, _) = gw.token_login("alice", PASSWORD).await?;
        let (header, claims) = parts(&genuine)?;
        Ok(Target {
            up,
            gw,
            genuine,
            header,
            claims,
        })
    }

    /// Sign with the gateway's real key.
    fn sign(&self, header: &Value, claims: &Value) -> Res<String> {
        Ok(sign_ed25519(&gateway_key(&self.gw)?, header, claims))
    }

    /// The genuine header with `field` replaced (or removed when `value` is null).
    fn header_with(&self, field: &str, value: Value) -> Value {
        with(&self.header, field, value)
    }

    fn claims_with(&self, field: &str, value: Value) -> Value {
        with(&self.claims, field, value)
    }

    /// Status and body of a request presenting `token` as bearer or as the access cookie.
    async fn present(&self, token: &str, as_cookie: bool) -> Res<(u16, String)> {
        let mut rb = client()
            .get(self.gw.url("/_dash-layout"))
            .header("accept", "application/json");
        rb = if as_cookie {
            rb.header("cookie", format!("{ACCESS}={token}"))
        } else {
            rb.bearer_auth(token)
        };
        let r = rb.send().await?;
        Ok((r.status().as_u16(), r.text().await?))
    }

    /// The token is refused both ways, cleanly, without reaching the app or being echoed.
    async fn refused(&self, token: &str) -> TestResult {
        let hits = self.up.hits();
        for as_cookie in [false, true] {
            let (status, body) = self.present(token, as_cookie).await?;
            assert_eq!(status, 401, "cookie={as_cookie}: {body}");
            let signature = token.rsplit('.').next().unwrap_or_default();
            if signature.len() >= 8 {
                assert!(!body.contains(signature), "the answer echoes the signature");
            }
            assert!(!body.contains(token), "the answer echoes the token");
        }
        assert_eq!(self.up.hits(), hits, "the app saw the forged request");
        Ok(())
    }
}

fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut v = base.clone();
    if let Some(map) = v.as_object_mut() {
        if value.is_null() {
            map.remove(field);
        } else {
            map.insert(field.to_owned(), value);
        }
    }
    v
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A loopback listener that records whether anything ever connected to it: the target of
/// `jku`/`x5u` URLs, to show the gateway never fetches them.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Res<Tripwire> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.set_nonblocking(true)?;
        Ok(Tripwire(l))
    }
    fn url(&self, path: &str) -> Res<String> {
        Ok(format!("http://{}{path}", self.0.local_addr()?))
    }
    /// Has anything connected? (A fetch would have happened before the answer was sent.)
    fn touched(&self) -> bool {
        self.0.accept().is_ok()
    }
}

#[tokio::test]
async fn control_forgery_is_accepted() -> TestResult {
    let t = Target::new().await?;
    let forged = t.sign(&t.header, &t.claims)?;
    for as_cookie in [false, true] {
        let (status, body) = t.present(&forged, as_cookie).await?;
        assert_eq!(status, 200, "{body}");
        let seen: Value = serde_json::from_str(&body)?;
        assert_eq!(seen["headers"]["x-forwarded-user"][0], "alice");
    }
    assert_eq!(t.present(&t.genuine, false).await?.0, 200);
    Ok(())
}

/// `alg: none` in the given spelling, with the signature left empty.
async fn alg_none(spelling: &str) -> TestResult {
    let t = Target::new().await?;
    let header = t.header_with("alg", json!(spelling));
    let input = signing_input(&header, &t.claims);
    t.refused(&format!("{input}.")).await?;
    // With the genuine signature kept, too.
    let sig = t.genuine.rsplit('.').next().unwrap_or_default();
    t.refused(&format!("{input}.{sig}")).await
}

#[tokio::test]
async fn alg_none_lowercase() -> TestResult {
    alg_none("none").await
}

#[tokio::test]
async fn alg_none_capitalised() -> TestResult {
    alg_none("None").await
}

#[tokio::test]
async fn alg_none_uppercase() -> TestResult {
    alg_none("NONE").await
}

#[tokio::test]
async fn alg_none_mixed_case() -> TestResult {
    alg_none("nOnE").await
}

#[tokio::test]
async fn signature_stripped() -> TestResult {
    let t = Target::new().await?;
    let input = t.genuine.rsplit_once('.').map(|(i, _)| i).ok_or("jws")?;
    t.refused(&format!("{input}.")).await?;
    t.refused(input).await
}

#[tokio::test]
async fn signature_corrupted() -> TestResult {
    let t = Target::new().await?;
    let (input, sig) = t.genuine.rsplit_once('.').ok_or("jws")?;
    let mut bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig)?;
    for i in [0, 31, 63] {
        if let Some(b) = bytes.get_mut(i) {
            *b ^= 0x01;
        }
        t.refused(&format!("{input}.{}", b64(&bytes))).await?;
        if let Some(b) = bytes.get_mut(i) {
            *b ^= 0x01;
        }
    }
    // Truncated, and padded with an extra byte.
    t.refused(&format!("{input}.{}", b64(&bytes[..63]))).await?;
    bytes.push(0);
    t.refused(&format!("{input}.{}", b64(&bytes))).await
}

#[tokio::test]
async fn key_confusion_hmac_with_the_public_key() -> TestResult {
    let t = Target::new().await?;
    let jwks: Value = client()
        .get(t.gw.url("/auth/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    let jwk = jwks["keys"][0].clone();
    let x = jwk["x"].as_str().ok_or("x")?.to_owned();
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &x)?;
    let public = gateway_key(&t.gw)?.verifying_key();
    assert_eq!(raw, public.as_bytes(), "the JWKS publishes the signing key");
    for alg in ["HS256", "HS384", "HS512"] {
        let header = t.header_with("alg", json!(alg));
        for secret in [
            raw.clone(),
            x.clone().into_bytes(),
            jwk.to_string().into_bytes(),
        ] {
            t.refused(&sign_hs256(&secret, &header, &t.claims)).await?;
        }
    }
    Ok(())
}

/// A key pair the attacker controls.
fn attacker_key() -> ed25519_dalek::SigningKey {
    let mut seed = [7u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = b.wrapping_mul(i as u8).wrapping_add(3);
    }
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

#[tokio::test]
async fn embedded_jwk_is_not_trusted() -> TestResult {
    let t = Target::new().await?;
    let mine = attacker_key();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(mine.verifying_key().as_bytes())});
    let header = t.header_with("jwk", jwk.clone());
    t.refused(&sign_ed25519(&mine, &header, &t.claims)).await?;
    // Without a kid, so only the embedded key could verify it.
    t.refused(&sign_ed25519(
        &mine,
        &with(&header, "kid", Value::Null),
        &t.claims,
    ))
    .await?;
    // Even signed with the real key, the extra header parameter is refused.
    t.refused(&t.sign(&header, &t.claims)?).await
}

async fn url_header_is_never_fetched(param: &str) -> TestResult {
    let t = Target::new().await?;
    let trap = Tripwire::new()?;
    let mine = attacker_key();
    let header = t.header_with(param, json!(trap.url("/keys.json")?));
    t.refused(&sign_ed25519(&mine, &header, &t.claims)).await?;
    t.refused(&t.sign(&header, &t.claims)?).await?;
    let headless = with(&header, "kid", Value::Null);
    t.refused(&sign_ed25519(&mine, &headless, &t.claims))
        .await?;
    assert!(!trap.touched(), "the gateway fetched the {param} URL");
    Ok(())
}

#[tokio::test]
async fn jku_header_is_never_fetched() -> TestResult {
    url_header_is_never_fetched("jku").await
}

#[tokio::test]
async fn x5u_header_is_never_fetched() -> TestResult {
    url_header_is_never_fetched("x5u").await
}

/// A `kid` that points somewhere it should not: refused whether the token is signed with the
/// real key (so the kid alone decides) or with HMAC and the secret the trick aims at.
async fn bad_kid(kid: &str, guessed_secret: &[u8]) -> TestResult {
    let t = Target::new().await?;
    let header = t.header_with("kid", json!(kid));
    t.refused(&t.sign(&header, &t.claims)?).await?;
    let hs = with(&header, "alg", json!("HS256"));
    t.refused(&sign_hs256(guessed_secret, &hs, &t.claims)).await
}

#[tokio::test]
async fn kid_empty() -> TestResult {
    bad_kid("", b"").await
}

#[tokio::test]
async fn kid_path_traversal() -> TestResult {
    bad_kid("../../../../../../etc/hostname", b"").await
}

#[tokio::test]
async fn kid_dev_null() -> TestResult {
    bad_kid("/dev/null", b"").await?;
    bad_kid("../../../../../../dev/null", b"").await
}

#[tokio::test]
async fn kid_sql_injection() -> TestResult {
    bad_kid("x' UNION SELECT 'attacker-secret' -- ", b"attacker-secret").await?;
    bad_kid("' OR '1'='1", b"").await
}

#[tokio::test]
async fn kid_shell_injection() -> TestResult {
    let dir = tempfile::tempdir()?;
    let marker = dir.path().join("pwned");
    let cmd = format!(
        "$(touch {0})`touch {0}`;touch {0}|touch {0}",
        marker.display()
    );
    bad_kid(&cmd, b"").await?;
    assert!(!marker.exists(), "the kid was run as a command");
    Ok(())
}

#[tokio::test]
async fn kid_unknown() -> TestResult {
    let t = Target::new().await?;
    // Well-formed, but not one of ours: signed by an attacker key whose kid looks real.
    let mine = attacker_key();
    let header = t.header_with("kid", json!("AAAAAAAAAAAAAAAA"));
    t.refused(&sign_ed25519(&mine, &header, &t.claims)).await?;
    t.refused(&t.sign(&header, &t.claims)?).await?;
    assert_ne!(kid(&t.genuine)?, "AAAAAAAAAAAAAAAA");
    Ok(())
}

#[tokio::test]
async fn crit_header_is_refused() -> TestResult {
    let t = Target::new().await?;
    let header = with(
        &t.header_with("crit", json!(["exp"])),
        "exp",
        json!(now() + 3600),
    );
    t.refused(&t.sign(&header, &t.claims)?).await?;
    t.refused(&t.sign(&t.header_with("crit", json!(["b64"])), &t.claims)?)
        .await
}

#[tokio::test]
async fn expired() -> TestResult {
    let t = Target::new().await?;
    let n = now();
    let claims = with(
        &with(
            &t.claims_with("exp", json!(n - 3600)),
            "iat",
            json!(n - 7200),
        ),
        "nbf",
        json!(n - 7200),
    );
    t.refused(&t.sign(&t.header, &claims)?).await
}

#[tokio::test]
async fn not_yet_valid() -> TestResult {
    let t = Target::new().await?;
    let n = now();
    let claims = with(
        &t.claims_with("nbf", json!(n + 3600)),
        "exp",
        json!(n + 7200),
    );
    t.refused(&t.sign(&t.header, &claims)?).await?;
    // Issued in the future.
    let claims = with(
        &t.claims_with("iat", json!(n + 3600)),
        "exp",
        json!(n + 7200),
    );
    t.refused(&t.sign(&t.header, &claims)?).await
}

#[tokio::test]
async fn exp_as_string() -> TestResult {
    let t = Target::new().await?;
    let exp = t.claims["exp"].as_i64().ok_or("exp")?;
    t.refused(&t.sign(&t.header, &t.claims_with("exp", json!(exp.to_string())))?)
        .await?;
    t.refused(&t.sign(&t.header, &t.claims_with("exp", json!(exp as f64 + 0.5)))?)
        .await?;
    t.refused(&t.sign(&t.header, &t.claims_with("exp", Value::Null))?)
        .await
}

#[tokio::test]
async fn nbf_as_string() -> TestResult {
    let t = Target::new().await?;
    let nbf = t.claims["nbf"].as_i64().ok_or("nbf")?;
    t.refused(&t.sign(&t.header, &t.claims_with("nbf", json!(nbf.to_string())))?)
        .await?;
    t.refused(&t.sign(&t.header, &t.claims_with("nbf", Value::Null))?)
        .await
}

#[tokio::test]
async fn wrong_issuer() -> TestResult {
    let t = Target::new().await?;
    t.refused(&t.sign(
        &t.header,
        &t.claims_with("iss", json!("https://evil.example")),
    )?)
    .await?;
    t.refused(&t.sign(&t.header, &t.claims_with("iss", json!(["dashgate"])))?)
        .await
}

#[tokio::test]
async fn wrong_audience() -> TestResult {
    let t = Target::new().await?;
    let aud = t.claims["aud"].clone();
    t.refused(&t.sign(&t.header, &t.claims_with("aud", json!("another-app")))?)
        .await?;
    // An array holding ours is not our audience either: ours is a single exact string.
    t.refused(&t.sign(
        &t.header,
        &t.claims_with("aud", json!([aud, "another-app"])),
    )?)
    .await
}

#[tokio::test]
async fn wrong_type() -> TestResult {
    let t = Target::new().await?;
    for typ in [
        json!("JWT"),
        json!("at+JWT"),
        json!("dashgate-assertion+jwt"),
        Value::Null,
    ] {
        t.refused(&t.sign(&t.header_with("typ", typ), &t.claims)?)
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn refresh_token_as_access_token() -> TestResult {
    let t = Target::new().await?;
    let (_, refresh) = t.gw.token_login("alice", PASSWORD).await?;
    assert!(refresh.starts_with("dgr_"), "{refresh}");
    t.refused(&refresh).await
}

#[tokio::test]
async fn assertion_as_access_token() -> TestResult {
    let t = Target::new().await?;
    let (status, body) = t.present(&t.genuine, false).await?;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(&body)?;
    let assertion = seen["headers"]["x-dashgate-assertion"][0]
        .as_str()
        .ok_or("no assertion forwarded")?
        .to_owned();
    // Signed by the same key, but a different kind of token for a different audience.
    assert_eq!(kid(&assertion)?, kid(&t.genuine)?);
    t.refused(&assertion).await
}

#[tokio::test]
async fn tampered_roles() -> TestResult {
    let t = Target::new().await?;
    let (h, _, sig) = {
        let mut it = t.genuine.split('.');
        (
            it.next().ok_or("h")?,
            it.next().ok_or("c")?,
            it.next().ok_or("s")?,
        )
    };
    let claims = with(
        &t.claims_with("roles", json!(["admin"])),
        "permissions",
        json!(["dashgate:metrics", "salaries:read"]),
    );
    t.refused(&format!("{h}.{}.{sig}", b64(claims.to_string().as_bytes())))
        .await?;
    // Another user, same trick.
    let claims = t.claims_with("sub", json!("root"));
    t.refused(&format!("{h}.{}.{sig}", b64(claims.to_string().as_bytes())))
        .await
}

#[tokio::test]
async fn oversized_token() -> TestResult {
    let t = Target::new().await?;
    let padding: Vec<String> = (0..600).map(|i| format!("role-{i}")).collect();
    let big = t.sign(&t.header, &t.claims_with("roles", json!(padding)))?;
    assert!(
        big.len() > 8 * 1024 && big.len() < 15 * 1024,
        "{}",
        big.len()
    );
    t.refused(&big).await
}

#[tokio::test]
async fn duplicate_claims_and_header_parameters() -> TestResult {
    // JSON with a repeated member: parsers disagree on which one wins, so it is refused.
    let t = Target::new().await?;
    let key = gateway_key(&t.gw)?;
    let header = t.header.to_string();
    let dup_header = format!(r#"{{"alg":"none",{}"#, header.trim_start_matches('{'));
    let claims = t.claims.to_string();
    let dup_sub = format!(r#"{{"sub":"root",{}"#, claims.trim_start_matches('{'));
    for (h, c) in [
        (dup_header.as_str(), claims.as_str()),
        (header.as_str(), dup_sub.as_str()),
    ] {
        let input = format!("{}.{}", b64(h.as_bytes()), b64(c.as_bytes()));
        let sig = ed25519_dalek::Signer::sign(&key, input.as_bytes());
        t.refused(&format!("{input}.{}", b64(&sig.to_bytes())))
            .await?;
    }
    Ok(())
}
