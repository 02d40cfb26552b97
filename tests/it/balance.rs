//! Several upstreams: round-robin, ejection of failed ones and re-admission, session affinity.

use std::time::Duration;

use crate::support::{Gateway, Jar, Options, PASSWORD, TestResult, Upstream, client, eventually};

async fn served_by(gw: &Gateway, jar: &Jar) -> Result<Option<String>, reqwest::Error> {
    let r = client()
        .get(gw.url("/which"))
        .header("cookie", jar.header())
        .send()
        .await?;
    if r.status() != 200 {
        return Ok(None);
    }
    let v: serde_json::Value = r.json().await?;
    Ok(v["headers"]["host"][0].as_str().map(str::to_owned))
}

fn two(a: &Upstream, b: &Upstream) -> Options {
    Options::new(&a.url)
        .arg("--upstream")
        .arg(&b.url)
        .env("DASHGATE_BALANCING_HEALTH_INTERVAL", "1s")
        // Which upstream answered shows in the Host it was sent (`served_by`).
        .env("DASHGATE_UPSTREAM_HOST", "upstream")
}

#[tokio::test]
async fn round_robin_ejection_and_readmission() -> TestResult {
    let a = Upstream::start().await?;
    let b = Upstream::start().await?;
    let b_addr = b.url.trim_start_matches("http://").to_owned();
    let gw = Gateway::start_with(two(&a, &b), &[("alice", &[])]).await?;
    let jar = gw.login("alice", PASSWORD).await?;
    for _ in 0..10 {
        assert!(served_by(&gw, &jar).await?.is_some());
    }
    assert_eq!((a.hits(), b.hits()), (5, 5), "requests alternate");

    drop(b);
    // At most the request that discovers the failure sees a 502; then everything goes to A.
    let recovered = eventually(Duration::from_secs(10), || async {
        let mut ok = true;
        for _ in 0..6 {
            ok &= served_by(&gw, &jar).await.ok().flatten().is_some();
        }
        ok
    })
    .await;
    assert!(recovered, "B was ejected");
    assert!(gw.log().contains("ejected"));

    let b2 = Upstream::start_at(&b_addr).await?;
    let readmitted = eventually(Duration::from_secs(10), || async {
        served_by(&gw, &jar).await.ok().flatten().as_deref() == Some(b_addr.as_str())
    })
    .await;
    assert!(readmitted, "B is used again once its health check passes");
    assert!(b2.hits() > 0);
    Ok(())
}

#[tokio::test]
async fn affinity_pins_a_session_to_one_upstream() -> TestResult {
    let a = Upstream::start().await?;
    let b = Upstream::start().await?;
    let gw = Gateway::start_with(
        two(&a, &b).env("DASHGATE_BALANCING_AFFINITY", "true"),
        &[("alice", &[])],
    )
    .await?;
    for _ in 0..4 {
        let jar = gw.login("alice", PASSWORD).await?;
        let first = served_by(&gw, &jar).await?.ok_or("no answer")?;
        for _ in 0..6 {
            assert_eq!(served_by(&gw, &jar).await?.as_deref(), Some(first.as_str()));
        }
    }
    assert_eq!(a.hits() + b.hits(), 28, "every request was served");
    Ok(())
}
