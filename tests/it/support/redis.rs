//! A real `redis-server` (Debian package) on a free loopback port, for the replica tests.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
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
        let mut r = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir()?,
            child: None,
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
