//! OpenID Connect logins against a real `oidc-provider` on Node.

use crate::support::*;

/// The fixture itself: a real `oidc-provider` runs the authorization code flow with PKCE,
/// puts the profile and groups in the ID token, refuses a wrong password, and rotates keys.
#[tokio::test]
async fn provider_runs_the_code_flow() -> TestResult {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use oidc::{OidcProvider, query_param};
    use sha2::Digest;

    const REDIRECT: &str = "http://127.0.0.1:9/cb";
    const BYE: &str = "http://127.0.0.1:9/bye";
    const SECRET: &str = "a-client-secret-of-decent-length";
    let op = &mut OidcProvider::start(
        serde_json::json!([{
            "client_id": "dashgate",
            "client_secret": SECRET,
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [BYE],
            "token_endpoint_auth_method": "client_secret_basic",
        }]),
        serde_json::json!([{
            "sub": "u-ada", "username": "ada", "password": PASSWORD,
            "email": "ada@example.com", "name": "Ada Lovelace", "groups": ["admins", "analysts"],
        }]),
    )
    .await?;
    let disco = op.discovery().await?;
    assert_eq!(disco["issuer"], op.issuer());
    assert_eq!(
        disco["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // An authorization request by hand: state, nonce, PKCE S256.
    let random = || -> Result<String, getrandom::Error> {
        let mut b = [0u8; 32];
        getrandom::getrandom(&mut b)?;
        Ok(URL_SAFE_NO_PAD.encode(b))
    };
    let (state, nonce, verifier) = (random()?, random()?, random()?);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let authorize = |with_pkce: bool| -> Result<String, Box<dyn std::error::Error>> {
        let endpoint = disco["authorization_endpoint"]
            .as_str()
            .ok_or("no authorization_endpoint")?;
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", "dashgate"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid profile email groups"),
            ("state", &state),
            ("nonce", &nonce),
        ];
        if with_pkce {
            params.extend([
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ]);
        }
        Ok(reqwest::Url::parse_with_params(endpoint, &params)?.to_string())
    };
    let token_endpoint = disco["token_endpoint"]
        .as_str()
        .ok_or("no token_endpoint")?;
    let exchange = async |code: &str, verifier: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ];
        form.extend(verifier.map(|v| ("code_verifier", v)));
        client()
            .post(token_endpoint)
            .basic_auth("dashgate", Some(SECRET))
            .form(&form)
            .send()
            .await
    };
    let id_token = |tokens: &serde_json::Value| -> Result<
        (serde_json::Value, serde_json::Value),
        Box<dyn std::error::Error>,
    > { jws::parts(tokens["id_token"].as_str().ok_or("no id_token")?) };

    // A wrong password gets the form again, not a code.
    let refused = op
        .sign_in(&authorize(true)?, "ada", "not the password")
        .await;
    assert!(refused.is_err(), "wrong password signed in: {refused:?}");

    // Without a code challenge the request goes back to the client with an error.
    let no_pkce = op.sign_in(&authorize(false)?, "ada", PASSWORD).await?;
    assert!(no_pkce.starts_with(REDIRECT), "{no_pkce}");
    assert_eq!(
        query_param(&no_pkce, "error").as_deref(),
        Some("invalid_request"),
        "{no_pkce}"
    );

    let back = op.sign_in(&authorize(true)?, "ada", PASSWORD).await?;
    assert!(back.starts_with(&format!("{REDIRECT}?")), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some(state.as_str()));
    assert_eq!(query_param(&back, "iss"), Some(op.issuer()));
    let code = query_param(&back, "code").ok_or("no code")?;

    // PKCE is enforced at the token endpoint: no verifier, no tokens (the code survives).
    let resp = exchange(&code, None).await?;
    assert_eq!(resp.status(), 400);
    let err: serde_json::Value = resp.json().await?;
    assert_eq!(err["error"], "invalid_grant", "{err}");

    let resp = exchange(&code, Some(&verifier)).await?;
    assert_eq!(resp.status(), 200);
    let (header, claims) = id_token(&resp.json().await?)?;
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], op.issuer());
    assert_eq!(claims["aud"], "dashgate");
    assert_eq!(claims["nonce"], nonce.as_str());
    assert_eq!(claims["sub"], "u-ada");
    assert_eq!(claims["preferred_username"], "ada");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["groups"], serde_json::json!(["admins", "analysts"]));
    let first_kid = header["kid"].as_str().ok_or("no kid")?.to_owned();
    let jwks = op.jwks().await?;
    assert_eq!(jwks["keys"][0]["kid"], first_kid.as_str());
    assert!(jwks["keys"][0].get("d").is_none(), "private key published");

    // RP-initiated logout with only client_id: back to the client, and the session is gone
    // (the login form shows again, so a wrong password is refused again).
    let end_session = disco["end_session_endpoint"]
        .as_str()
        .ok_or("no end_session_endpoint")?;
    let logout = reqwest::Url::parse_with_params(
        end_session,
        &[
            ("client_id", "dashgate"),
            ("post_logout_redirect_uri", BYE),
            ("state", "s1"),
        ],
    )?;
    assert_eq!(
        op.confirm_logout(logout.as_str()).await?,
        format!("{BYE}?state=s1")
    );
    assert!(op.sign_in(&authorize(true)?, "ada", "nope").await.is_err());

    // A new key signs after rotation; the old one stays published.
    op.rotate_keys().await?;
    let jwks = op.jwks().await?;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert_ne!(kids[0], first_kid);
    assert_eq!(kids[1], first_kid);
    let back = op.sign_in(&authorize(true)?, "ada", PASSWORD).await?;
    let code = query_param(&back, "code").ok_or_else(|| format!("no code in {back}"))?;
    let resp = exchange(&code, Some(&verifier)).await?;
    assert_eq!(resp.status(), 200);
    let tokens: serde_json::Value = resp.json().await?;
    let (header, _) = id_token(&tokens)?;
    assert_eq!(header["kid"], kids[0]);

    // RP-initiated logout with id_token_hint.
    let logout = reqwest::Url::parse_with_params(
        end_session,
        &[
            (
                "id_token_hint",
                tokens["id_token"].as_str().ok_or("no id_token")?,
            ),
            ("post_logout_redirect_uri", BYE),
            ("state", "s2"),
        ],
    )?;
    assert_eq!(
        op.confirm_logout(logout.as_str()).await?,
        format!("{BYE}?state=s2")
    );
    Ok(())
}
