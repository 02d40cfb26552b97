//! The shared state store for many replicas: refresh families and revocations in Redis, every
//! key with an expiry so nothing grows without bound. Rotation runs as one Lua script, so two
//! replicas presenting the same refresh token at once are serialised by Redis itself. Every
//! command has a deadline; a Redis that is down or slow is an `Unavailable` error (503), never
//! an open door.
//!
//! Revocations are published on a channel and kept in a sorted set (score: expiry). Every
//! replica loads the set at start and after each reconnect, and applies published revocations
//! as they arrive, so an authenticated request never waits for Redis.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{Family, RefreshPolicy, Revocation, RevocationKind, RevocationSet, Rotation};
use crate::error::Error;
use crate::token::refresh::{self, RefreshKey};

const REVOCATIONS: &str = "dg:revs";
const CHANNEL: &str = "dg:revocations";

/// Rotate a refresh token atomically. KEYS: old token, new token, family (one hash slot: the
/// family id is their hash tag). ARGV: now, idle, grace. Returns {outcome, family id, user id,
/// absolute expiry}. The family's `prev` names the token its current one replaced: the only one
/// the grace window covers (RFC 9700 4.14.2).
const ROTATE: &str = r"
local t = redis.call('HMGET', KEYS[1], 'fam', 'idle', 'rot')
if not t[1] then return {'invalid'} end
local now, idle, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local famkey = KEYS[3]
local f = redis.call('HMGET', famkey, 'uid', 'abs', 'rev', 'prev')
if not f[1] then return {'invalid'} end
local abs = tonumber(f[2])
if f[3] == '1' or abs <= now then return {'invalid'} end
local rot = tonumber(t[3])
if rot > 0 then
  if f[4] == KEYS[1] and now - rot <= grace then return {'grace', t[1], f[1], f[2]} end
  redis.call('HSET', famkey, 'rev', '1')
  return {'reused', t[1], f[1], f[2]}
end
if tonumber(t[2]) <= now then return {'invalid'} end
redis.call('HSET', KEYS[1], 'rot', ARGV[1])
redis.call('HSET', famkey, 'prev', KEYS[1])
redis.call('HSET', KEYS[2], 'fam', t[1], 'idle', math.min(now + idle, abs), 'rot', '0')
redis.call('EXPIREAT', KEYS[2], abs)
return {'rotated', t[1], f[1], f[2]}
";

/// A server-mode session lookup. KEYS: token, family. ARGV: now, idle, touch-every.
/// Returns {family id, user id, absolute expiry} or {} when the session is not valid.
const TOUCH: &str = r"
local t = redis.call('HMGET', KEYS[1], 'fam', 'idle', 'rot')
if not t[1] or tonumber(t[3]) > 0 then return {} end
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
local f = redis.call('HMGET', KEYS[2], 'uid', 'abs', 'rev')
if not f[1] or f[3] == '1' then return {} end
local abs, cur = tonumber(f[2]), tonumber(t[2])
if abs <= now or cur <= now then return {} end
local extended = math.min(now + idle, abs)
if extended - cur > tonumber(ARGV[3]) then redis.call('HSET', KEYS[1], 'idle', extended) end
return {t[1], f[1], f[2]}
";

/// Create a family and its first token. KEYS: family, token (one slot). ARGV: user id,
/// absolute expiry, idle expiry, family id.
const CREATE: &str = r"
redis.call('HSET', KEYS[1], 'uid', ARGV[1], 'abs', ARGV[2], 'rev', '0')
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'fam', ARGV[4], 'idle', ARGV[3], 'rot', '0')
redis.call('EXPIREAT', KEYS[2], ARGV[2])
return 1
";

/// Mark a family revoked if it still exists (never recreate an expired key without a TTL).
const REVOKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'rev', '1') return 1 end
return 0
";

/// A token's key: `dg:{family}:rt:<hash>` — the braces make the family id the hash tag, so a
/// Redis Cluster keeps a session's keys in one slot.
fn token_key(key: &RefreshKey) -> String {
    let mut s = format!("dg:{{{}}}:rt:", key.family);
    for b in key.hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn family_key(id: &str) -> String {
    format!("dg:{{{id}}}:fam")
}

fn user_key(user_id: i64) -> String {
    format!("dg:ufam:{user_id}")
}

/// Where Redis is: one address, whatever Redis Sentinel says the master is now, or a Redis
/// Cluster (keys of one session share a slot through their hash tag; pub/sub messages reach
/// every node).
enum Source {
    Direct(redis::Client),
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
    /// Boxed: the cluster client is large; the source is built once.
    Cluster(Box<(redis::cluster::ClusterClient, redis::Client)>),
}

/// A connection to a single server or to a cluster; both reconnect by themselves.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The Redis in use: a client for pub/sub and a reconnecting connection for commands.
type Master = (redis::Client, Conn);

/// Refresh families and revocations in Redis.
#[derive(Clone)]
pub struct RedisStore {
    source: Arc<Source>,
    master: Arc<tokio::sync::RwLock<Option<Master>>>,
    timeout: Duration,
    create: Arc<Script>,
    rotate: Arc<Script>,
    revoke: Arc<Script>,
    touch: Arc<Script>,
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// Prepare a store for `url`: `redis://`, `rediss://`, or
    /// `redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE[/DB]`. Connects lazily, so the gateway
    /// starts (and reports not-ready) while Redis is down.
    pub fn open(url: &str, timeout: Duration) -> Result<RedisStore, Error> {
        let bad = |e: &dyn std::fmt::Display| Error::Internal(format!("store URL: {e}"));
        let source = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            Source::Sentinel(tokio::sync::Mutex::new(
                sentinel_client(rest).map_err(|e| bad(&e))?,
            ))
        } else if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = rest
                .trim_end_matches('/')
                .split(',')
                .filter(|n| !n.is_empty())
                .map(|n| format!("redis://{n}"))
                .collect();
            let first = nodes
                .first()
                .ok_or_else(|| bad(&"no cluster node address"))?;
            let pubsub = redis::Client::open(first.as_str()).map_err(|e| bad(&e))?;
            let cluster = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .build()
                .map_err(|e| bad(&e))?;
            Source::Cluster(Box::new((cluster, pubsub)))
        } else {
            Source::Direct(redis::Client::open(url).map_err(|e| bad(&e))?)
        };
        Ok(RedisStore {
            source: Arc::new(source),
            master: Arc::new(tokio::sync::RwLock::new(None)),
            timeout,
            create: Arc::new(Script::new(CREATE)),
            rotate: Arc::new(Script::new(ROTATE)),
            revoke: Arc::new(Script::new(REVOKE)),
            touch: Arc::new(Script::new(TOUCH)),
        })
    }

    /// A `rediss://` store whose certificate is signed by the CA in `ca_pem`.
    pub fn open_tls(url: &str, ca_pem: Vec<u8>, timeout: Duration) -> Result<RedisStore, Error> {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca_pem),
        };
        let client = redis::Client::build_with_tls(url, certs)
            .map_err(|e| Error::Internal(format!("store URL: {e}")))?;
        let mut store = RedisStore::open(url, timeout)?;
        store.source = Arc::new(Source::Direct(client));
        Ok(store)
    }

    /// The current master, found (through Sentinel) and connected lazily.
    async fn master(&self) -> Result<Master, Error> {
        if let Some(m) = self.master.read().await.as_ref() {
            return Ok(m.clone());
        }
        let mut slot = self.master.write().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let client = match &*self.source {
            Source::Direct(c) => c.clone(),
            Source::Sentinel(s) => {
                let mut s = s.lock().await;
                self.deadline(s.async_get_client()).await?
            }
            Source::Cluster(both) => {
                let (cluster, pubsub) = &**both;
                let conn = self.deadline(cluster.get_async_connection()).await?;
                *slot = Some((pubsub.clone(), Conn::Cluster(conn.clone())));
                return Ok((pubsub.clone(), Conn::Cluster(conn)));
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(unavailable)?;
        *slot = Some((client.clone(), Conn::Single(conn.clone())));
        Ok((client, Conn::Single(conn)))
    }

    /// Forget the master after a failure that may mean it moved (Sentinel failover), so the
    /// next command asks Sentinel again.
    async fn forget_master(&self) {
        if matches!(&*self.source, Source::Sentinel(_)) {
            *self.master.write().await = None;
        }
    }

    /// Run one Redis operation under the store deadline. A connection that broke while Redis
    /// was away (or a master that Sentinel has replaced) fails the first command after it
    /// returns; that one is retried once on a fresh connection (every operation here is safe
    /// to repeat).
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (_, conn) = self.master().await?;
            match tokio::time::timeout(self.timeout, op(conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    let moved = e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_connection_refusal()
                        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
                    if moved {
                        self.forget_master().await;
                    }
                    if attempt == 1 && moved {
                        continue;
                    }
                    return Err(unavailable(e));
                }
                Err(_) => {
                    self.forget_master().await;
                    return Err(unavailable("timed out"));
                }
            }
        }
    }

    /// One attempt under the store deadline (for the pub/sub connection, which is not pooled).
    async fn deadline<T>(
        &self,
        op: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    pub async fn ping(&self) -> Result<(), Error> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    pub async fn create_family(
        &self,
        user_id: i64,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<(Family, String), Error> {
        let id = crate::token::random_id()?;
        let (token, key) = refresh::generate(&id)?;
        let abs = now.saturating_add(policy.absolute);
        let family = Family {
            id,
            user_id,
            absolute_expires_at: abs,
        };
        let idle = now.saturating_add(policy.idle).min(abs);
        // The user's set of families lives in another slot: a second, plain pipeline.
        let mut index = redis::pipe();
        index
            .sadd(user_key(user_id), &family.id)
            .ignore()
            .expire(user_key(user_id), policy.absolute)
            .ignore();
        self.run(|mut c| {
            let mut inv = self.create.prepare_invoke();
            inv.key(family_key(&family.id))
                .key(token_key(&key))
                .arg(user_id)
                .arg(abs)
                .arg(idle)
                .arg(&family.id);
            async move { inv.invoke_async::<i64>(&mut c).await }
        })
        .await?;
        self.run(|mut c| {
            let index = index.clone();
            async move { index.query_async::<()>(&mut c).await }
        })
        .await?;
        Ok((family, token))
    }

    pub async fn rotate(
        &self,
        key: RefreshKey,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<Rotation, Error> {
        let (new_token, new_key) = refresh::generate(&key.family)?;
        let out: Vec<String> = self
            .run(|mut c| {
                let mut inv = self.rotate.prepare_invoke();
                inv.key(token_key(&key))
                    .key(token_key(&new_key))
                    .key(family_key(&key.family))
                    .arg(now)
                    .arg(policy.idle)
                    .arg(policy.grace);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        let family = |out: &[String]| -> Option<Family> {
            Some(Family {
                id: out.get(1)?.clone(),
                user_id: out.get(2)?.parse().ok()?,
                absolute_expires_at: out.get(3)?.parse().ok()?,
            })
        };
        Ok(match (out.first().map(String::as_str), family(&out)) {
            (Some("rotated"), Some(family)) => Rotation::Rotated {
                family,
                token: new_token,
            },
            (Some("grace"), Some(family)) => Rotation::Grace { family },
            (Some("reused"), Some(f)) => Rotation::Reused {
                family_id: f.id,
                user_id: f.user_id,
            },
            _ => Rotation::Invalid,
        })
    }

    /// A server-mode session lookup (see [`super::SqliteStore::touch`]).
    pub async fn touch(
        &self,
        key: RefreshKey,
        now: i64,
        policy: RefreshPolicy,
    ) -> Result<Option<Family>, Error> {
        let out: Vec<String> = self
            .run(|mut c| {
                let mut inv = self.touch.prepare_invoke();
                inv.key(token_key(&key))
                    .key(family_key(&key.family))
                    .arg(now)
                    .arg(policy.idle)
                    .arg(super::sqlite::TOUCH_EVERY);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(match out.as_slice() {
            [id, uid, abs] => match (uid.parse(), abs.parse()) {
                (Ok(user_id), Ok(absolute_expires_at)) => Some(Family {
                    id: id.clone(),
                    user_id,
                    absolute_expires_at,
                }),
                _ => None,
            },
            _ => None,
        })
    }

    pub async fn family_of(&self, key: RefreshKey, now: i64) -> Result<Option<Family>, Error> {
        let fam: Option<String> = self
            .run(|mut c| {
                let k = token_key(&key);
                async move { c.hget(k, "fam").await }
            })
            .await?;
        let Some(id) = fam else { return Ok(None) };
        let key = family_key(&id);
        let (uid, abs, rev): (Option<i64>, Option<i64>, Option<String>) = self
            .run(|mut c| {
                let key = key.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(&key)
                        .arg("uid")
                        .arg("abs")
                        .arg("rev")
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(match (uid, abs, rev.as_deref()) {
            (Some(user_id), Some(abs), Some("0")) if abs > now => Some(Family {
                id,
                user_id,
                absolute_expires_at: abs,
            }),
            _ => None,
        })
    }

    pub async fn revoke_family(&self, family_id: String) -> Result<(), Error> {
        self.revoke_one(&family_id).await.map(|_| ())
    }

    /// Mark one family revoked; true if it existed.
    async fn revoke_one(&self, family_id: &str) -> Result<bool, Error> {
        let n: i64 = self
            .run(|mut c| {
                let mut inv = self.revoke.prepare_invoke();
                inv.key(family_key(family_id));
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Ok(n == 1)
    }

    pub async fn revoke_user(&self, user_id: i64) -> Result<Vec<String>, Error> {
        let ids: Vec<String> = self
            .run(|mut c| async move { c.smembers(user_key(user_id)).await })
            .await?;
        let mut revoked = Vec::with_capacity(ids.len());
        for id in ids {
            if self.revoke_one(&id).await? {
                revoked.push(id);
            }
        }
        Ok(revoked)
    }

    /// Failed-login counters: (failures, time of the last one) per key, 0 when none.
    pub async fn attempts(&self, keys: Vec<String>) -> Result<Vec<(i64, i64)>, Error> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let key = format!("dg:att:{k}");
            let (n, last): (Option<i64>, Option<i64>) = self
                .run(|mut c| {
                    let key = key.clone();
                    async move {
                        redis::cmd("HMGET")
                            .arg(&key)
                            .arg("n")
                            .arg("last")
                            .query_async(&mut c)
                            .await
                    }
                })
                .await?;
            out.push((n.unwrap_or(0), last.unwrap_or(0)));
        }
        Ok(out)
    }

    /// Count one failure for each key; a counter lives `window` seconds after its last failure.
    pub async fn record_failure(
        &self,
        keys: Vec<String>,
        at_ms: i64,
        window: i64,
    ) -> Result<(), Error> {
        // One small pipeline per counter: in a cluster each lives in its own slot.
        for k in &keys {
            let key = format!("dg:att:{k}");
            let mut pipe = redis::pipe();
            pipe.hincr(&key, "n", 1)
                .ignore()
                .hset(&key, "last", at_ms)
                .ignore()
                .expire(&key, window)
                .ignore();
            self.run(|mut c| {
                let pipe = pipe.clone();
                async move { pipe.query_async::<()>(&mut c).await }
            })
            .await?;
        }
        Ok(())
    }

    /// Forget the counters (after a successful login).
    pub async fn reset_attempts(&self, keys: Vec<String>) -> Result<(), Error> {
        for k in &keys {
            let key = format!("dg:att:{k}");
            self.run(|mut c| {
                let key = key.clone();
                async move { c.del::<_, ()>(key).await }
            })
            .await?;
        }
        Ok(())
    }

    pub async fn add_revocation(&self, r: Revocation) -> Result<(), Error> {
        let member = encode(&r);
        // Stored first, then published: a replica that misses the message still finds it when
        // it resynchronises. Entries past their expiry are swept out on the way.
        let now = crate::clock::now();
        self.run(|mut c| {
            let member = member.clone();
            async move {
                let _: i64 = c.zrembyscore(REVOCATIONS, "-inf", now).await?;
                c.zadd::<_, _, _, ()>(REVOCATIONS, member, r.expires_at)
                    .await
            }
        })
        .await?;
        self.run(|mut c| {
            let member = member.clone();
            async move { c.publish::<_, _, ()>(CHANNEL, member).await }
        })
        .await
    }

    /// Every revocation still in force (and expired ones swept out).
    pub async fn load_revocations(&self, now: i64) -> Result<Vec<Revocation>, Error> {
        let members: Vec<String> = self
            .run(|mut c| async move {
                let _: i64 = c.zrembyscore(REVOCATIONS, "-inf", now).await?;
                c.zrangebyscore(REVOCATIONS, format!("({now}"), "+inf")
                    .await
            })
            .await?;
        Ok(members.iter().filter_map(|m| decode(m)).collect())
    }

    /// Keep `set` current: load everything, then apply what is published; after any error,
    /// reconnect (with backoff) and load everything again.
    pub async fn follow(self, set: Arc<RevocationSet>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.follow_once(&set).await {
                Ok(()) => tracing::warn!("revocation channel closed; resubscribing"),
                Err(e) => tracing::warn!(error = %e, "revocation channel unavailable; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn follow_once(&self, set: &RevocationSet) -> Result<(), Error> {
        let (client, _) = self.master().await?;
        let mut pubsub = match self.deadline(client.get_async_pubsub()).await {
            Ok(p) => p,
            Err(e) => {
                self.forget_master().await;
                return Err(e);
            }
        };
        self.deadline(pubsub.subscribe(CHANNEL)).await?;
        // Subscribed first, then loaded: nothing published in between is missed.
        let now = crate::clock::now();
        let all = self.load_revocations(now).await?;
        let n = all.len();
        for r in all {
            set.insert(r);
        }
        tracing::info!(revocations = n, "revocations loaded from redis");
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            if let Some(r) = msg.get_payload::<String>().ok().as_deref().and_then(decode) {
                set.insert(r);
            }
        }
        Ok(())
    }
}

/// `HOST:PORT[,HOST:PORT…]/SERVICE[/DB]` (after `redis+sentinel://`).
fn sentinel_client(rest: &str) -> Result<redis::sentinel::SentinelClient, String> {
    let (nodes, path) = rest
        .split_once('/')
        .ok_or("expected redis+sentinel://HOST:PORT,…/SERVICE[/DB]")?;
    let mut path = path.split('/');
    let service = path
        .next()
        .filter(|s| !s.is_empty())
        .ok_or("missing the Sentinel service name")?;
    let db = match path.next() {
        None | Some("") => 0,
        Some(d) => d
            .parse::<i64>()
            .map_err(|_| format!("bad database number {d:?}"))?,
    };
    let nodes: Vec<String> = nodes
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|n| format!("redis://{n}"))
        .collect();
    if nodes.is_empty() {
        return Err("no Sentinel address".to_owned());
    }
    let info = redis::sentinel::SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(redis::RedisConnectionInfo::default().set_db(db));
    redis::sentinel::SentinelClient::build(
        nodes,
        service,
        Some(info),
        redis::sentinel::SentinelServerType::Master,
    )
    .map_err(|e| e.to_string())
}

fn encode(r: &Revocation) -> String {
    serde_json::json!({"k": r.kind.as_str(), "v": r.value, "c": r.created_at, "e": r.expires_at})
        .to_string()
}

fn decode(s: &str) -> Option<Revocation> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    Some(Revocation {
        kind: RevocationKind::parse(v["k"].as_str()?)?,
        value: v["v"].as_str()?.to_owned(),
        created_at: v["c"].as_i64()?,
        expires_at: v["e"].as_i64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_round_trip_and_keys_are_namespaced() {
        let r = Revocation {
            kind: RevocationKind::Session,
            value: "s\"1".into(),
            created_at: 5,
            expires_at: 9,
        };
        assert_eq!(decode(&encode(&r)), Some(r));
        assert_eq!(decode("{}"), None);
        assert_eq!(decode("not json"), None);
        let key = RefreshKey {
            family: "fam1".into(),
            hash: [0xab; 32],
        };
        assert_eq!(
            token_key(&key),
            format!("dg:{{fam1}}:rt:{}", "ab".repeat(32))
        );
        assert_eq!(
            family_key("fam1"),
            "dg:{fam1}:fam",
            "same hash tag: one cluster slot"
        );
    }
}
