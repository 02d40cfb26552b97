//! OpenID Connect logins against a real `oidc-provider` on Node: the code flow end to end
//! through the gateway, claims mapped to roles, refused callbacks (state, cookie, replay,
//! provider errors, mix-up), key rotation, name conflicts, provider logout and outages.

use crate::support::oidc::{OidcProvider, query_param};
use crate::support::*;

const CLIENT_SECRET: &str = "a-client-secret-of-decent-length";

/// A provider, and a gateway in front of an echo upstream that signs in with it.
struct Sso {
    op: OidcProvider,
    gw: Gateway,
    _up: Upstream,
    _secrets: tempfile::TempDir,
}

fn account(sub: &str, username: &str, email: &str, groups: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "sub": sub, "username": username, "password": PASSWORD,
        "email": email, "name": username, "groups": groups,
    })
}

fn accounts() -> serde_json::Value {
    serde_json::json!([
        account(
            "u-jane",
            "jane",
            "jane@example.com",
            &["admins", "analysts"]
        ),
        account("u-max", "max", "max@example.com", &["analysts"]),
    ])
}

impl Sso {
    /// `oidc_extra`: more lines for `[oidc]`; `head`: top-level lines; `public`: a public
    /// client (PKCE only, no secret).
    async fn start(
        accounts: serde_json::Value,
        users: &[(&str, &[&str])],
        head: &str,
        oidc_extra: &str,
        public: bool,
    ) -> Result<Sso, Box<dyn std::error::Error>> {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut client = serde_json::json!({
            "client_id": "dashgate",
            "redirect_uris": [format!("{base}/auth/oidc/callback")],
            "post_logout_redirect_uris": [format!("{base}/auth/login")],
        });
        if public {
            client["token_endpoint_auth_method"] = "none".into();
        } else {
            client["client_secret"] = CLIENT_SECRET.into();
            client["token_endpoint_auth_method"] = "client_secret_basic".into();
        }
        let op = OidcProvider::start(serde_json::json!([client]), accounts).await?;
        let secrets = tempfile::tempdir()?;
        let secret_file = secrets.path().join("oidc-client-secret");
        std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n"))?;
        let secret_line = if public {
            String::new()
        } else {
            format!("client_secret_file = \"{}\"", secret_file.display())
        };
        let config = format!(
            r#"{head}
[oidc]
issuer = "{issuer}"
client_id = "dashgate"
{secret_line}
redirect_url = "{base}/auth/oidc/callback"
scopes = ["openid", "profile", "email", "groups"]
display_name = "Test IdP"
timeout = "3s"
{oidc_extra}
[oidc.claim_roles]
"admins" = ["admin"]
"analysts" = "analyst"
"#,
            issuer = op.issuer(),
        );
        let up = Upstream::start().await?;
        let gw =
            Gateway::start_with(Options::new(&up.url).config(&config).port(port), users).await?;
        Ok(Sso {
            op,
            gw,
            _up: up,
            _secrets: secrets,
        })
    }

    async fn default() -> Result<Sso, Box<dyn std::error::Error>> {
        Sso::start(accounts(), &[], "", "", false).await
    }

    /// Click "Sign in with …": the gateway's redirect to the provider, with its cookies.
    async fn begin(&self, next: &str) -> Result<(Jar, String), Box<dyn std::error::Error>> {
        let r = self
            .gw
            .client()
            .get(
                self.gw
                    .url(&format!("/auth/oidc/start?next={}", urlenc(next))),
            )
            .send()
            .await?;
        assert_eq!(r.status(), 303, "{}", self.gw.log());
        let mut jar = Jar::default();
        jar.update(r.headers());
        let location = r.headers()["location"].to_str()?.to_owned();
        Ok((jar, location))
    }

    /// The provider's answer arriving at the gateway's callback.
    async fn callback(&self, jar: &Jar, url: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.gw
            .client()
            .get(url)
            .header("cookie", jar.header())
            .send()
            .await
    }

    /// The whole flow; returns the callback's answer and the cookies after it.
    async fn sign_in(
        &self,
        user: &str,
        next: &str,
    ) -> Result<(reqwest::Response, Jar), Box<dyn std::error::Error>> {
        self.op.forget_sessions();
        let (mut jar, authorize) = self.begin(next).await?;
        let back = self.op.sign_in(&authorize, user, PASSWORD).await?;
        let r = self.callback(&jar, &back).await?;
        jar.update(r.headers());
        Ok((r, jar))
    }

    async fn userinfo(&self, jar: &Jar) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let r = self.gw.xhr("/auth/userinfo", jar).await?;
        assert_eq!(r.status(), 200, "{}", self.gw.log());
        Ok(r.json().await?)
    }
}

fn urlenc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

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

#[tokio::test]
async fn sign_in_with_the_provider_end_to_end() -> TestResult {
    let sso = Sso::default().await?;
    let gw = &sso.gw;
    // The login page offers the button beside the password form.
    let page = gw
        .client()
        .get(gw.url("/auth/login?next=/reports"))
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("Sign in with Test IdP"), "{page}");
    assert!(page.contains("/auth/oidc/start?next=%2Freports"), "{page}");

    // The redirect to the provider: code flow, PKCE S256, state, nonce, our redirect URL.
    let (jar, authorize) = sso.begin("/reports?q=1").await?;
    assert!(authorize.starts_with(&sso.op.issuer()), "{authorize}");
    for (k, v) in [
        ("response_type", "code"),
        ("client_id", "dashgate"),
        ("code_challenge_method", "S256"),
        ("scope", "openid profile email groups"),
    ] {
        assert_eq!(
            query_param(&authorize, k).as_deref(),
            Some(v),
            "{k} in {authorize}"
        );
    }
    for k in ["state", "nonce", "code_challenge"] {
        assert!(
            query_param(&authorize, k).is_some_and(|v| v.len() >= 43),
            "{k}"
        );
    }
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        Some(gw.url("/auth/oidc/callback"))
    );
    assert!(jar.get("__Host-dashgate-oidc").is_some(), "a flow cookie");
    let raw = gw.client().get(gw.url("/auth/oidc/start")).send().await?;
    let set = raw.headers()["set-cookie"].to_str()?.to_owned();
    assert!(
        set.contains("HttpOnly")
            && set.contains("Secure")
            && set.contains("SameSite=Lax")
            && set.contains("Max-Age=600"),
        "{set}"
    );

    // The provider signs jane in and sends the browser back with a code.
    sso.op.forget_sessions();
    let back = sso.op.sign_in(&authorize, "jane", PASSWORD).await?;
    assert_eq!(
        query_param(&back, "state"),
        query_param(&authorize, "state")
    );
    let r = sso.callback(&jar, &back).await?;
    assert_eq!(r.status(), 303, "{}", gw.log());
    assert_eq!(r.headers()["location"], "/reports?q=1");
    assert!(
        r.headers().get_all("set-cookie").iter().any(|c| c
            .to_str()
            .is_ok_and(|c| c.starts_with("__Host-dashgate-oidc=;") && c.contains("Max-Age=0"))),
        "the flow cookie is spent"
    );
    let mut session = jar.clone();
    session.update(r.headers());
    assert!(session.get(ACCESS).is_some() && session.get(REFRESH).is_some());

    // A gateway session like any other: the groups claim became roles.
    let info = sso.userinfo(&session).await?;
    assert_eq!(info["sub"], "jane");
    assert_eq!(info["roles"], serde_json::json!(["admin", "analyst"]));
    let echoed: serde_json::Value = gw
        .client()
        .get(gw.url("/x"))
        .header("cookie", session.header())
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(echoed["headers"]["x-forwarded-user"][0], "jane");
    assert_eq!(echoed["headers"]["x-forwarded-roles"][0], "admin,analyst");
    let out = gw.cli(&["users", "show", "jane"], None)?;
    assert!(
        output_text(&out).contains("source:   oidc (subject u-jane)"),
        "{}",
        output_text(&out)
    );

    // Local roles on top of the mapped ones, kept at the next sign-in.
    assert!(gw.cli(&["roles", "add", "ops"], None)?.status.success());
    assert!(gw.cli(&["roles", "grant", "max", "ops"], None).is_ok());
    let (r, max) = sso.sign_in("max", "/").await?;
    assert_eq!(r.status(), 303);
    assert_eq!(
        sso.userinfo(&max).await?["roles"],
        serde_json::json!(["analyst"])
    );
    assert!(
        gw.cli(&["roles", "grant", "max", "ops"], None)?
            .status
            .success()
    );
    let (_, max) = sso.sign_in("max", "/").await?;
    assert_eq!(
        sso.userinfo(&max).await?["roles"],
        serde_json::json!(["analyst", "ops"])
    );
    Ok(())
}

/// A callback that does not belong to a flow this browser started is refused: no cookie
/// (login CSRF: an attacker's code in the victim's browser), another state, a forged cookie,
/// a replayed code, a provider error, an answer naming another issuer.
#[tokio::test]
async fn callbacks_that_do_not_belong_to_this_browser_are_refused() -> TestResult {
    let sso = Sso::default().await?;
    let gw = &sso.gw;
    let (jar, authorize) = sso.begin("/").await?;
    sso.op.forget_sessions();
    let back = sso.op.sign_in(&authorize, "jane", PASSWORD).await?;

    let signed_in = |r: &reqwest::Response| {
        r.headers().get_all("set-cookie").iter().any(|c| {
            c.to_str()
                .is_ok_and(|c| c.starts_with(&format!("{ACCESS}=ey")))
        })
    };
    // Without the flow cookie (another browser).
    let r = sso.callback(&Jar::default(), &back).await?;
    assert_eq!(r.status(), 400);
    assert!(!signed_in(&r));
    assert!(r.text().await?.contains("not started in this browser"));
    // With a cookie of another flow.
    let (other, _) = sso.begin("/").await?;
    let r = sso.callback(&other, &back).await?;
    assert_eq!(r.status(), 400);
    assert!(!signed_in(&r));
    // With this flow's cookie, edited.
    let cookie = jar.get("__Host-dashgate-oidc").ok_or("no flow cookie")?;
    let forged = jar.with("__Host-dashgate-oidc", &format!("x{cookie}"));
    assert_eq!(sso.callback(&forged, &back).await?.status(), 400);
    // Naming another issuer (RFC 9207).
    let mixed = back.replace(
        &urlenc(&sso.op.issuer()),
        &urlenc("https://evil.example.com"),
    );
    assert_ne!(mixed, back);
    assert_eq!(sso.callback(&jar, &mixed).await?.status(), 400);
    // The real one works once; the same code again is refused by the provider.
    let r = sso.callback(&jar, &back).await?;
    assert_eq!(r.status(), 303, "{}", gw.log());
    assert!(signed_in(&r));
    let r = sso.callback(&jar, &back).await?;
    assert_eq!(r.status(), 401);
    assert!(!signed_in(&r));
    assert!(gw.log().contains("invalid_grant"), "{}", gw.log());

    // The provider says no (the user cancelled).
    let (jar, authorize) = sso.begin("/").await?;
    let state = query_param(&authorize, "state").ok_or("no state")?;
    let denied = gw.url(&format!(
        "/auth/oidc/callback?error=access_denied&state={state}"
    ));
    let r = sso.callback(&jar, &denied).await?;
    assert_eq!(r.status(), 401);
    assert!(r.text().await?.contains("did not work"));
    // Nonsense in the query is a clean 4xx.
    for q in [
        "",
        "?code=",
        "?state=%ff%fe&code=x",
        "?code=x&state=y&state=z",
    ] {
        let r = sso
            .callback(&jar, &gw.url(&format!("/auth/oidc/callback{q}")))
            .await?;
        assert!(r.status().is_client_error(), "{q}: {}", r.status());
    }
    assert_eq!(
        gw.client()
            .post(gw.url("/auth/oidc/callback"))
            .send()
            .await?
            .status(),
        405
    );
    Ok(())
}

/// The provider rotates its signing key: the gateway fetches the new JWKS by itself. Here as
/// a public client (PKCE only, no secret).
#[tokio::test]
async fn rotated_provider_keys_are_followed() -> TestResult {
    let mut sso = Sso::start(accounts(), &[], "", "", true).await?;
    let (r, _) = sso.sign_in("jane", "/").await?;
    assert_eq!(r.status(), 303, "{}", sso.gw.log());
    let before = sso.op.jwks().await?;
    sso.op.rotate_keys().await?;
    let after = sso.op.jwks().await?;
    assert_ne!(before["keys"][0]["kid"], after["keys"][0]["kid"]);
    let (r, jar) = sso.sign_in("max", "/").await?;
    assert_eq!(r.status(), 303, "{}", sso.gw.log());
    assert_eq!(sso.userinfo(&jar).await?["sub"], "max");
    Ok(())
}

/// A provider user never takes over a local account, nor another subject's name.
#[tokio::test]
async fn names_held_by_others_are_refused() -> TestResult {
    let accounts = serde_json::json!([
        account("u-jane", "jane", "jane@example.com", &["admins"]),
        account("u-kim", "kim", "kim@example.com", &[]),
        account("u-kim-2", "kim2", "kim@example.com", &["admins"]),
    ]);
    // Username from the email claim: two subjects share one address.
    let sso = Sso::start(
        accounts,
        &[("jane", &[])],
        "",
        "username_claim = \"email\"",
        false,
    )
    .await?;
    let (r, _) = sso.sign_in("kim", "/").await?;
    assert_eq!(r.status(), 303, "{}", sso.gw.log());
    let (r, _) = sso.sign_in("kim2", "/").await?;
    assert_eq!(r.status(), 403);
    assert!(r.text().await?.contains("cannot sign in here"));
    // jane@example.com is a new name; the local `jane` is untouched.
    let (r, jar) = sso.sign_in("jane", "/").await?;
    assert_eq!(r.status(), 303);
    assert_eq!(sso.userinfo(&jar).await?["sub"], "jane@example.com");

    // Username from preferred_username: `jane` is local here.
    let sso = Sso::start(
        serde_json::json!([account("u-jane", "jane", "jane@example.com", &["admins"])]),
        &[("jane", &[])],
        "",
        "",
        false,
    )
    .await?;
    let (r, _) = sso.sign_in("jane", "/").await?;
    assert_eq!(r.status(), 403);
    assert!(sso.gw.log().contains("source_conflict"));
    let out = sso.gw.cli(&["users", "show", "jane"], None)?;
    assert!(output_text(&out).contains("source:   local"));
    // Disabled here: the provider's yes is not enough.
    let sso = Sso::default().await?;
    assert_eq!(sso.sign_in("max", "/").await?.0.status(), 303);
    assert!(
        sso.gw
            .cli(&["users", "disable", "max"], None)?
            .status
            .success()
    );
    assert_eq!(sso.sign_in("max", "/").await?.0.status(), 403);
    Ok(())
}

/// Logout ends the gateway session and, when configured, the provider's session too.
#[tokio::test]
async fn logout_can_end_the_provider_session() -> TestResult {
    let sso = Sso::start(accounts(), &[], "", "end_session = true", false).await?;
    let gw = &sso.gw;
    let (_, jar) = sso.sign_in("jane", "/").await?;
    // The confirmation form may lead on to the provider (CSP form-action covers redirects).
    let page = gw
        .client()
        .get(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .send()
        .await?;
    let csp = page.headers()["content-security-policy"]
        .to_str()?
        .to_owned();
    assert!(
        csp.contains(&format!("form-action 'self' {};", sso.op.issuer())),
        "{csp}"
    );
    let r = gw
        .client()
        .post(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .header("origin", &gw.base)
        .form(&[("csrf_token", jar.csrf())])
        .send()
        .await?;
    assert_eq!(r.status(), 303, "{}", gw.log());
    let end = r.headers()["location"].to_str()?.to_owned();
    assert!(end.starts_with(&sso.op.issuer()), "{end}");
    assert_eq!(query_param(&end, "client_id").as_deref(), Some("dashgate"));
    assert_eq!(
        query_param(&end, "post_logout_redirect_uri"),
        Some(gw.url("/auth/login"))
    );
    // The gateway session is over whatever the provider does.
    assert_eq!(gw.xhr("/auth/userinfo", &jar).await?.status(), 401);
    // The provider confirms and sends the browser back to the login page.
    let landed = sso.op.confirm_logout(&end).await?;
    assert!(landed.starts_with(&gw.url("/auth/login")), "{landed}");
    // Its session is gone: signing in needs the password again (a wrong one fails).
    let (_, authorize) = sso.begin("/").await?;
    assert!(
        sso.op
            .sign_in(&authorize, "jane", "wrong-password")
            .await
            .is_err()
    );

    // Local users, and JSON clients: a plain local logout, the URL in the answer for others.
    let (_, jar) = sso.sign_in("max", "/").await?;
    let r = gw
        .client()
        .post(gw.url("/auth/logout"))
        .header("cookie", jar.header())
        .header("origin", &gw.base)
        .header("x-csrftoken", jar.csrf())
        .header("accept", "application/json")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await?;
    assert!(
        body["end_session_url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&sso.op.issuer())),
        "{body}"
    );
    Ok(())
}

/// A provider that is down: 503 with a message that says so, at the start and at the
/// callback; local users still sign in; the button works again once it is back.
#[tokio::test]
async fn a_provider_that_is_down_answers_503() -> TestResult {
    let mut sso = Sso::start(accounts(), &[("zed", &[])], "", "", false).await?;
    let gw = &sso.gw;
    sso.op.stop();
    let r = gw.client().get(gw.url("/auth/oidc/start")).send().await?;
    assert_eq!(r.status(), 503);
    assert!(
        r.text()
            .await?
            .contains("single sign-on provider cannot be reached")
    );
    gw.token_login("zed", PASSWORD).await?;

    sso.op.restart().await?;
    let (jar, authorize) = sso.begin("/").await?;
    sso.op.forget_sessions();
    let back = sso.op.sign_in(&authorize, "jane", PASSWORD).await?;
    // Down between the redirect and the callback: the code cannot be exchanged.
    sso.op.stop();
    let r = sso.callback(&jar, &back).await?;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    Ok(())
}

/// With only the provider configured as a source there is no password form, and password
/// logins are refused even for local users.
#[tokio::test]
async fn provider_only_sign_in() -> TestResult {
    let sso = Sso::start(
        accounts(),
        &[("zed", &[])],
        "[login]\nsources = [\"oidc\"]",
        "",
        false,
    )
    .await?;
    let gw = &sso.gw;
    let page = gw
        .client()
        .get(gw.url("/auth/login"))
        .send()
        .await?
        .text()
        .await?;
    assert!(page.contains("Sign in with Test IdP"));
    assert!(!page.contains("type=\"password\""), "{page}");
    assert!(gw.token_login("zed", PASSWORD).await.is_err());
    let (r, _) = sso.sign_in("jane", "/").await?;
    assert_eq!(r.status(), 303);
    Ok(())
}

/// Without `[oidc]`, the endpoints do not exist.
#[tokio::test]
async fn without_a_provider_there_is_no_button() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[]).await?;
    assert_eq!(
        gw.client()
            .get(gw.url("/auth/oidc/start"))
            .send()
            .await?
            .status(),
        404
    );
    let page = gw
        .client()
        .get(gw.url("/auth/login"))
        .send()
        .await?
        .text()
        .await?;
    assert!(!page.contains("oidc/start"));
    Ok(())
}

/// A provider that keeps profile and groups out of the ID token: the gateway reads them from
/// the userinfo endpoint (whose `sub` must be the ID token's).
#[tokio::test]
async fn claims_missing_from_the_id_token_come_from_userinfo() -> TestResult {
    let mut sso = Sso::default().await?;
    sso.op.restart_with_minimal_id_tokens().await?;
    let (r, jar) = sso.sign_in("jane", "/").await?;
    assert_eq!(r.status(), 303, "{}", sso.gw.log());
    let info = sso.userinfo(&jar).await?;
    assert_eq!(info["sub"], "jane");
    assert_eq!(info["roles"], serde_json::json!(["admin", "analyst"]));
    assert!(
        sso.gw.log().contains("at the userinfo endpoint"),
        "{}",
        sso.gw.log()
    );
    Ok(())
}
