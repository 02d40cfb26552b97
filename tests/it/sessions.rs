//! Tokens, JWKS, silent refresh, rotation, reuse detection, userinfo.

use crate::support::jws::{kid, sign_with_gateway_key};
use crate::support::{
    ACCESS, CSRF, Gateway, Jar, Options, PASSWORD, REFRESH, TestResult, Upstream, client, jws_part,
    verify_with_jwks,
};

#[tokio::test]
async fn access_token_claims_and_jwks() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &["admin", "viewer"])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let token = jar.get(ACCESS).ok_or("no access cookie")?;
    // The JWKS publishes the key that verifies it.
    let (key, header, claims) = verify_with_jwks(&gw, token).await?;
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], "dashgate");
    assert_eq!(claims["aud"], "dashgate");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], serde_json::json!(["admin", "viewer"]));
    for k in ["sid", "jti"] {
        assert!(claims[k].as_str().is_some_and(|s| s.len() >= 16), "{k}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0),
        900
    );
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key.get("d").is_none(), "no private part");

    // userinfo
    let info: serde_json::Value = gw.xhr("/auth/userinfo", &jar).await?.json().await?;
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["roles"], serde_json::json!(["admin", "viewer"]));
    assert!(info["permissions"].is_array() && info["exp"].is_i64());
    assert_eq!(
        gw.xhr("/auth/userinfo", &Jar::default()).await?.status(),
        401
    );
    Ok(())
}

#[tokio::test]
async fn keys_persist_across_restarts() -> TestResult {
    let up = Upstream::start().await?;
    let mut gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    let before = kid(jar.get(ACCESS).ok_or("access")?)?;
    gw.restart(Some(&up.url)).await?;
    assert_eq!(
        gw.xhr("/x", &jar).await?.status(),
        200,
        "session survives a restart"
    );
    let jar2 = gw.login("alice", PASSWORD).await?;
    assert_eq!(kid(jar2.get(ACCESS).ok_or("access")?)?, before);
    Ok(())
}

#[tokio::test]
async fn silent_refresh_on_missing_or_expired_access() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &["viewer"])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;

    // Missing access cookie, valid refresh cookie: forwarded as alice, new cookies set.
    let r = gw.xhr("/_dash-layout", &jar.without(ACCESS)).await?;
    assert_eq!(r.status(), 200);
    let mut next = jar.without(ACCESS);
    next.update(r.headers());
    assert!(next.get(ACCESS).is_some());
    assert_ne!(next.get(REFRESH), jar.get(REFRESH), "refresh token rotated");
    assert_eq!(
        next.get(CSRF),
        jar.get(CSRF),
        "CSRF token kept: bound to the session, not the token"
    );
    let seen: serde_json::Value = r.json().await?;
    assert_eq!(seen["headers"]["x-forwarded-user"][0], "alice");

    // Expired (genuinely signed) access cookie: same.
    let claims = jws_part(
        jar.get(ACCESS)
            .ok_or("access")?
            .split('.')
            .nth(1)
            .ok_or("claims")?,
    )?;
    let mut expired = claims.clone();
    expired["iat"] = serde_json::json!(1_000);
    expired["nbf"] = serde_json::json!(1_000);
    expired["exp"] = serde_json::json!(2_000);
    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid(jar.get(ACCESS).ok_or("a")?)?});
    let expired_token = sign_with_gateway_key(&gw, &header, &expired)?;
    let stale = next.with(ACCESS, &expired_token);
    assert_eq!(
        gw.xhr("/x", &stale.without(REFRESH)).await?.status(),
        401,
        "expired alone is refused"
    );
    let r = gw.xhr("/x", &stale).await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap_or("").starts_with(ACCESS))
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_refreshes_keep_the_user_signed_in() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start(&up.url, &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?.without(ACCESS);
    // A Dash page fires several callbacks at once, all with the same refresh cookie.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = gw.url(&format!("/_dash-update-component?n={i}"));
        let cookie = jar.header();
        let csrf = jar.csrf();
        tasks.push(tokio::spawn(async move {
            client()
                .post(url)
                .header("cookie", cookie)
                .header("x-csrftoken", csrf)
                .header("accept", "application/json")
                .json(&serde_json::json!({"output": "out.children"}))
                .send()
                .await
        }));
    }
    let mut final_jar = jar.clone();
    let mut rotated = 0;
    for t in tasks {
        let r = t.await??;
        assert_eq!(r.status(), 200);
        if r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap_or("").starts_with(REFRESH))
        {
            rotated += 1;
            final_jar.update(r.headers());
        }
    }
    assert_eq!(
        rotated, 1,
        "exactly one request rotated; the others used the grace window"
    );
    assert_eq!(
        gw.xhr("/after", &final_jar.without(ACCESS)).await?.status(),
        200,
        "the session lives on"
    );
    Ok(())
}

#[tokio::test]
async fn refresh_endpoint_and_token_kinds_do_not_mix() -> TestResult {
    let up = Upstream::start().await?;
    let gw = Gateway::start_with(
        Options::new(&up.url).env("DASHGATE_SESSION_REFRESH_GRACE", "0s"),
        &[("alice", &[])],
    )
    .await?;
    let (access, refresh) = gw.token_login("alice", PASSWORD).await?;
    let c = client();
    // A refresh token is not an access token, and the reverse.
    assert_eq!(
        c.get(gw.url("/x"))
            .bearer_auth(&refresh)
            .send()
            .await?
            .status(),
        401
    );
    let jar = Jar::default().with(ACCESS, &refresh);
    assert_eq!(gw.xhr("/x", &jar).await?.status(), 401);
    let r = c
        .post(gw.url("/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": access}))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let jar = Jar::default().with(REFRESH, &access);
    assert_eq!(gw.xhr("/x", &jar).await?.status(), 401);
    // JSON refresh rotates.
    let r = c
        .post(gw.url("/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": refresh}))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await?;
    let new_refresh = v["refresh_token"].as_str().ok_or("refresh")?.to_owned();
    assert_ne!(new_refresh, refresh);
    assert_eq!(
        c.get(gw.url("/x"))
            .bearer_auth(v["access_token"].as_str().ok_or("a")?)
            .send()
            .await?
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn key_rotation_reaches_a_running_gateway() -> TestResult {
    let up = Upstream::start().await?;
    let opts = Options::new(&up.url).env("DASHGATE_KEYS_ACTIVATION_DELAY", "1s");
    let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
    let old = gw.login("alice", PASSWORD).await?;
    let old_kid = kid(old.get(ACCESS).ok_or("access")?)?;
    let out = gw.cli(&["keys", "rotate"], None)?;
    assert!(
        out.status.success(),
        "{}",
        crate::support::output_text(&out)
    );
    let published = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        let jwks: Option<serde_json::Value> =
            match client().get(gw.url("/auth/jwks.json")).send().await {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
        jwks.and_then(|j| j["keys"].as_array().map(Vec::len)) == Some(2)
    })
    .await;
    assert!(published, "the new key is published without a restart");
    let switched = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        match gw.login("alice", PASSWORD).await {
            Ok(jar) => jar
                .get(ACCESS)
                .and_then(|t| kid(t).ok())
                .is_some_and(|k| k != old_kid),
            Err(_) => false,
        }
    })
    .await;
    assert!(
        switched,
        "new logins are signed with the new key after the activation delay"
    );
    assert_eq!(
        gw.xhr("/x", &old).await?.status(),
        200,
        "tokens signed with the old key still verify"
    );
    Ok(())
}

/// RFC 9700 4.14.2: the refresh grace window covers only the token the current one replaced,
/// and only until that current token is used. On every state store.
#[tokio::test]
async fn refresh_grace_covers_only_the_direct_predecessor() -> TestResult {
    let up = Upstream::start().await?;
    let redis = crate::support::redis::RedisServer::start().await?;
    let pg = crate::support::postgres::PostgresServer::start().await?;
    let stores: [(&str, Vec<(&str, String)>); 3] = [
        ("sqlite", vec![]),
        ("redis", vec![("DASHGATE_STORE_URL", redis.url())]),
        ("postgres", vec![("DASHGATE_DATABASE_URL", pg.url())]),
    ];
    for (store, env) in stores {
        let mut opts = Options::new(&up.url).env("DASHGATE_SESSION_REFRESH_GRACE", "60s");
        for (k, v) in &env {
            opts = opts.env(k, v);
        }
        let gw = Gateway::start_with(opts, &[("alice", &[])]).await?;
        let refresh = |token: String| {
            let url = gw.url("/auth/refresh");
            async move {
                let r = client()
                    .post(url)
                    .json(&serde_json::json!({ "refresh_token": token }))
                    .send()
                    .await?;
                let status = r.status().as_u16();
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                let next = v["refresh_token"].as_str().map(str::to_owned);
                Ok::<_, reqwest::Error>((status, next))
            }
        };
        let (_, t0) = gw.token_login("alice", PASSWORD).await?;
        let (s, t1) = refresh(t0.clone()).await?;
        let t1 = t1.ok_or(format!("{store}: t0 rotates ({s})"))?;
        // t0 is t1's direct predecessor and t1 is unused: grace, no new refresh token.
        let (s, again) = refresh(t0.clone()).await?;
        assert_eq!((s, again), (200, None), "{store}: predecessor within grace");
        let (s, t2) = refresh(t1.clone()).await?;
        let t2 = t2.ok_or(format!("{store}: t1 rotates ({s})"))?;
        // t0 is two generations back now, well inside the 60 s window: reuse, family revoked.
        assert_eq!(
            refresh(t0.clone()).await?.0,
            401,
            "{store}: two generations back"
        );
        assert_eq!(
            refresh(t2).await?.0,
            401,
            "{store}: the reuse revoked the family"
        );
        assert!(
            gw.log().contains("refresh_reuse"),
            "{store}: reported as reuse"
        );

        // A predecessor whose successor has been used is no longer covered either.
        let (_, u0) = gw.token_login("alice", PASSWORD).await?;
        let u1 = refresh(u0.clone()).await?.1.ok_or("u0 rotates")?;
        let u2 = refresh(u1).await?.1.ok_or("u1 rotates")?;
        assert_eq!(refresh(u0).await?.0, 401, "{store}: u0 after u1 was used");
        assert_eq!(refresh(u2).await?.0, 401, "{store}: family revoked");
    }
    Ok(())
}
