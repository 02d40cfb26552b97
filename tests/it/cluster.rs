//! Redis Cluster as the state store: a session's keys share a slot (the family id is their hash
//! tag), so rotation stays atomic; revocations and counters work across nodes and replicas.

use std::process::Command;
use std::time::Duration;

use crate::support::redis::command;
use crate::support::{
    ACCESS, Gateway, Options, PASSWORD, RedisServer, TestResult, Upstream, client, eventually,
};

#[tokio::test]
async fn sessions_on_a_redis_cluster() -> TestResult {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(
            RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-node-timeout",
                "2000",
            ])
            .await?,
        );
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .arg("--cluster-yes")
        .output()?;
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let ready = eventually(Duration::from_secs(20), || {
        let ports = ports.clone();
        async move {
            ports
                .iter()
                .all(|p| command(*p, "CLUSTER INFO").contains("cluster_state:ok"))
        }
    })
    .await;
    assert!(ready, "cluster formed");

    let up = Upstream::start().await?;
    let shared = tempfile::tempdir()?;
    let url = format!("redis+cluster://{}", addrs.join(","));
    let opts = || {
        Options::new(&up.url)
            .env("DASHGATE_STORE_URL", &url)
            .env(
                "DASHGATE_DATABASE_URL",
                &format!("sqlite://{}", shared.path().join("users.db").display()),
            )
            .env(
                "DASHGATE_KEYS_DIR",
                &shared.path().join("keys").display().to_string(),
            )
    };
    let r1 = Gateway::start_with(opts(), &[("alice", &[])]).await?;
    let r2 = Gateway::start_with(opts().env("DASHGATE_SESSION_REFRESH_GRACE", "0s"), &[]).await?;

    // Many sessions, so their keys land on every node; each refreshes on the other replica.
    for _ in 0..6 {
        let jar = r1.login("alice", PASSWORD).await?;
        let r = client()
            .get(r2.url("/x"))
            .header("cookie", jar.without(ACCESS).header())
            .send()
            .await?;
        assert_eq!(r.status(), 200, "refresh through the cluster");
        let mut next = jar.without(ACCESS);
        next.update(r.headers());
        assert_ne!(
            next.get(crate::support::REFRESH),
            jar.get(crate::support::REFRESH)
        );
    }
    // Logout on one replica reaches the other through cluster pub/sub.
    let jar = r1.login("alice", PASSWORD).await?;
    assert_eq!(r2.status("/x", &jar).await?, 200);
    let r = client()
        .post(r1.url("/auth/logout"))
        .header("cookie", jar.header())
        .header("x-csrftoken", jar.csrf())
        .header("accept", "application/json")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let refused = eventually(Duration::from_secs(5), || async {
        r2.status("/x", &jar).await.is_ok_and(|s| s == 401)
    })
    .await;
    assert!(refused, "revocation reached the other replica");
    // Failed-login counters and their reset work across slots.
    assert_eq!(
        client()
            .post(r2.url("/auth/login"))
            .json(&serde_json::json!({"username": "alice", "password": "nope nope"}))
            .send()
            .await?
            .status(),
        401
    );
    assert!(r1.login("alice", PASSWORD).await.is_ok());
    assert_eq!(
        client().get(r1.url("/auth/readyz")).send().await?.status(),
        200
    );
    Ok(())
}
