//! A real PostgreSQL server (Debian package) in a temporary directory on a free loopback port.
//! PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

pub struct PostgresServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn bin(name: &str) -> String {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin").join(name))
                .find(|p| p.exists())
        })
        .map_or_else(|| name.to_owned(), |p| p.display().to_string())
}

/// Run a PostgreSQL program, as `postgres` when we are root.
fn pg_command(program: &str) -> Command {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &bin(program)]);
        c
    } else {
        Command::new(bin(program))
    }
}

impl PostgresServer {
    pub async fn start() -> Result<PostgresServer, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
        let _ = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status();
        let out = pg_command("initdb")
            .args(["-A", "trust", "-U", "dashgate", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| format!("cannot run initdb (apt-get install postgresql): {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let port = free_port();
        let child = pg_command("postgres")
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-k",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = PostgresServer {
            port,
            dir,
            child: Some(child),
        };
        let url = server.url();
        let up = eventually(Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    Ok((client, conn)) => {
                        tokio::spawn(conn);
                        client.simple_query("SELECT 1").await.is_ok()
                    }
                    Err(_) => false,
                }
            }
        })
        .await;
        if !up {
            return Err("postgres did not accept connections".into());
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://dashgate@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Killing `runuser` does not reach the server it started: find that by its data directory.
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg("--")
            .arg(self.dir.path().join("data"))
            .status();
    }
}
