//! Redis behind Sentinel: the gateway asks Sentinel for the master, and finds the new one after
//! a failover by itself.

use std::time::Duration;

use crate::support::redis::command;
use crate::support::{
    Gateway, Options, PASSWORD, RedisServer, SentinelServer, TestResult, Upstream, eventually,
};

#[tokio::test]
async fn follows_the_master_through_a_failover() -> TestResult {
    let mut master = RedisServer::start().await?;
    let master_port = master.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port]).await?;
    let port = master.port;
    let linked = eventually(Duration::from_secs(15), || async move {
        command(port, "INFO replication").contains("connected_slaves:1")
    })
    .await;
    assert!(linked, "replica connected to the master");
    let sentinel = SentinelServer::start(master.port).await?;
    let (sport, rport) = (sentinel.port, replica.port);
    let knows_replica = eventually(Duration::from_secs(20), || async move {
        command(sport, "SENTINEL replicas mymaster").contains(&rport.to_string())
    })
    .await;
    assert!(knows_replica, "sentinel discovered the replica");

    let up = Upstream::start().await?;
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster", sentinel.port);
    let gw = Gateway::start_with(
        Options::new(&up.url).env("DASHGATE_STORE_URL", &url),
        &[("alice", &[])],
    )
    .await?;
    let jar = gw.login("alice", PASSWORD).await?;
    assert_eq!(gw.status("/x", &jar).await?, 200);

    master.stop();
    // Sentinel promotes the replica; the gateway finds it without a restart.
    let recovered = eventually(Duration::from_secs(45), || async {
        gw.login("alice", PASSWORD).await.is_ok()
    })
    .await;
    assert!(recovered, "logins work again on the promoted replica");
    assert!(
        command(replica.port, "ROLE").contains("master"),
        "the replica was promoted"
    );
    assert_eq!(
        gw.status("/x", &jar).await?,
        200,
        "sessions issued before the failover go on"
    );
    Ok(())
}
