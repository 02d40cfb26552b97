//! A real `redis-server` (Debian package) on a free loopback port, for the replica tests.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

/// Send one inline command and return the raw reply.
pub fn command(port: u16, cmd: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = vec![0u8; 16 * 1024];
    if s.write_all(format!("{cmd}\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Does something answer PING on this port?
pub fn pong(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

impl RedisServer {
    pub async fn start() -> Result<RedisServer, Box<dyn std::error::Error>> {
        Self::start_with(&[]).await
    }

    /// Start with extra `redis-server` arguments (e.g. `--replicaof 127.0.0.1 PORT`).
    pub async fn start_with(extra: &[&str]) -> Result<RedisServer, Box<dyn std::error::Error>> {
        let mut r = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir()?,
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        r.spawn().await?;
        Ok(r)
    }

    async fn spawn(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server (apt-get install redis-server): {e}")
            })?;
        self.child = Some(child);
        let port = self.port;
        if !eventually(Duration::from_secs(10), || async move { pong(port) }).await {
            return Err("redis-server did not answer PING".into());
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it (as a crash would), keeping the port for [`RedisServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port, empty (no persistence).
    pub async fn restart(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.stop();
        self.spawn().await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Sentinel (`redis-server --sentinel`) watching one master as `mymaster`.
pub struct SentinelServer {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SentinelServer {
    pub async fn start(master_port: u16) -> Result<SentinelServer, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 3000\n"
            ),
        )?;
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server --sentinel: {e}"))?;
        let s = SentinelServer {
            port,
            _dir: dir,
            child: Some(child),
        };
        if !eventually(Duration::from_secs(10), || async move { pong(port) }).await {
            return Err("sentinel did not answer PING".into());
        }
        Ok(s)
    }
}

impl Drop for SentinelServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
