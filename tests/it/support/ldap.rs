//! A real OpenLDAP `slapd` (Debian package) on free loopback ports, with a seeded directory.
//!
//! Each fixture has its own temporary directory: a `slapd.conf` made from
//! `tests/ldap/slapd.conf.in`, an mdb database, a per-run CA and server certificate (rcgen), and
//! slapd's log. slapd runs in the foreground (`-d`), so the child process is slapd itself; it
//! listens on `ldap://` (plain, StartTLS capable) and `ldaps://`. On first start the directory in
//! `tests/ldap/seed.ldif` is added with `ldapadd` as the rootdn through the running server, so the
//! `memberof` overlay gives people their `memberOf` attribute (slapadd would skip overlays).
//! Readiness is an LDAP bind polled with a deadline; the process is killed on drop.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings};

use super::{eventually, free_port};

pub const BASE_DN: &str = "dc=example,dc=com";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=com";
pub const GROUPS_DN: &str = "ou=groups,dc=example,dc=com";

/// The gateway's search account: may read people and groups, never passwords.
pub const SERVICE_DN: &str = "cn=dashgate-svc,ou=services,dc=example,dc=com";
pub const SERVICE_PASSWORD: &str = "svc-secret-123";

pub const ALICE_DN: &str = "uid=alice,ou=people,dc=example,dc=com";
pub const ALICE_PASSWORD: &str = "alice-pass-1";
pub const BOB_DN: &str = "uid=bob,ou=people,dc=example,dc=com";
pub const BOB_PASSWORD: &str = "bob-pass-1";
/// In no group.
pub const CAROL_DN: &str = "uid=carol,ou=people,dc=example,dc=com";
pub const CAROL_PASSWORD: &str = "carol-pass-1";
/// Dave's DN needs escaping (RDN value `Dave (Contractor), Jr.`); this is the form slapd returns
/// (the seed writes it as `cn=Dave \28Contractor\29\2C Jr.,...`: the same DN). His uid is `dave`.
pub const DAVE_DN: &str = r"cn=Dave (Contractor)\2C Jr.,ou=people,dc=example,dc=com";
pub const DAVE_PASSWORD: &str = "dave-pass-1";
/// A directory user with the same name as a typical local account.
pub const ADMIN_DN: &str = "uid=admin,ou=people,dc=example,dc=com";
pub const ADMIN_PASSWORD: &str = "ldap-admin-pass";

/// Members: alice.
pub const DASH_ADMINS_DN: &str = "cn=dash-admins,ou=groups,dc=example,dc=com";
/// Members: bob, alice, dave.
pub const DASH_VIEWERS_DN: &str = "cn=dash-viewers,ou=groups,dc=example,dc=com";
/// Members: dave.
pub const DASH_DAVE_ONLY_DN: &str = "cn=dash-dave-only,ou=groups,dc=example,dc=com";

const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
const CONFIG_TEMPLATE: &str = include_str!("../../ldap/slapd.conf.in");
const SEED: &str = include_str!("../../ldap/seed.ldif");
const INSTALL: &str = "apt-get install slapd ldap-utils";

pub struct Slapd {
    /// Plain LDAP (StartTLS capable).
    pub port: u16,
    /// LDAP over TLS.
    pub tls_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    ca_pem: String,
}

/// A program from the Debian packages: its usual path, else whatever `PATH` finds.
fn program(path: &str) -> String {
    if std::path::Path::new(path).exists() {
        return path.to_owned();
    }
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

fn random_hex(bytes: usize) -> Result<String, Box<dyn std::error::Error>> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| format!("rng: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A CA and a server certificate for 127.0.0.1 / localhost signed by it: (CA PEM, cert PEM, key PEM).
fn certificates() -> Result<(String, String, String), Box<dyn std::error::Error>> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "dashgate test LDAP CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    let cert = server.signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

/// One simple bind; Ok if it succeeded.
async fn bind(url: &str, dn: &str, password: &str) -> Result<(), Box<dyn std::error::Error>> {
    let attempt = async {
        let settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(2));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url).await?;
        ldap3::drive!(conn);
        ldap.simple_bind(dn, password).await?.success()?;
        let _ = ldap.unbind().await;
        Ok::<(), ldap3::LdapError>(())
    };
    match tokio::time::timeout(Duration::from_secs(3), attempt).await {
        Ok(r) => Ok(r?),
        Err(_) => Err("LDAP bind timed out".into()),
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

enum Spawned {
    Ready,
    /// slapd exited; the log says why.
    Exited,
    TimedOut,
}

impl Slapd {
    /// Start a fresh, seeded directory.
    pub async fn start() -> Result<Slapd, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir(root.join("data"))?;
        let (ca_pem, cert_pem, key_pem) = certificates()?;
        std::fs::write(root.join("ca.pem"), &ca_pem)?;
        std::fs::write(root.join("server.pem"), cert_pem)?;
        std::fs::write(root.join("server.key"), key_pem)?;
        let root_password = random_hex(16)?;
        // For `ldapadd -y`, which takes the whole file as the password: no newline.
        std::fs::write(root.join("rootpw"), &root_password)?;
        std::fs::write(root.join("seed.ldif"), SEED)?;
        let dir_str = root
            .to_str()
            .ok_or("temporary directory path is not UTF-8")?;
        std::fs::write(
            root.join("slapd.conf"),
            CONFIG_TEMPLATE
                .replace("@DIR@", dir_str)
                .replace("@ROOTPW@", &root_password),
        )?;

        let mut s = Slapd {
            port: 0,
            tls_port: 0,
            dir,
            child: None,
            ca_pem,
        };
        // Free ports are only free until someone else binds them: pick others if slapd lost the race.
        let mut outcome = Spawned::TimedOut;
        for _attempt in 0..5 {
            s.port = free_port();
            s.tls_port = free_port();
            if s.port == s.tls_port {
                continue;
            }
            outcome = s.spawn(ROOT_DN, &root_password).await?;
            match outcome {
                Spawned::Exited if s.log().contains("Address already in use") => continue,
                _ => break,
            }
        }
        if !matches!(outcome, Spawned::Ready) {
            return Err(s.startup_error(&outcome).into());
        }
        s.seed()?;
        if let Err(e) = bind(&s.url(), SERVICE_DN, SERVICE_PASSWORD).await {
            return Err(format!(
                "slapd: the service account cannot bind after seeding: {e}\nslapd log:\n{}",
                tail(&s.log(), 30)
            )
            .into());
        }
        Ok(s)
    }

    /// Run slapd on the current ports and wait until `dn` can bind.
    async fn spawn(
        &mut self,
        dn: &str,
        password: &str,
    ) -> Result<Spawned, Box<dyn std::error::Error>> {
        let root = self.dir.path();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("slapd.log"))?;
        writeln!(log, "--- dashgate test fixture: starting slapd")?;
        let child = Command::new(program("/usr/sbin/slapd"))
            // In the foreground, logging to stderr: errors and one line per operation.
            .args(["-d", "stats", "-f"])
            .arg(root.join("slapd.conf"))
            .arg("-h")
            .arg(format!("{}/ {}/", self.url(), self.ldaps_url()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start slapd ({INSTALL}): {e}"))?;
        self.child = Some(child);

        let url = self.url();
        let mut exited = false;
        let child = &mut self.child;
        let ready = eventually(Duration::from_secs(20), || {
            exited = exited
                || child
                    .as_mut()
                    .is_none_or(|c| c.try_wait().ok().flatten().is_some());
            let gone = exited;
            let (url, dn, password) = (url.clone(), dn.to_owned(), password.to_owned());
            async move { gone || bind(&url, &dn, &password).await.is_ok() }
        })
        .await;
        Ok(if exited {
            self.child = None;
            Spawned::Exited
        } else if ready {
            Spawned::Ready
        } else {
            self.stop();
            Spawned::TimedOut
        })
    }

    fn startup_error(&self, outcome: &Spawned) -> String {
        let what = match outcome {
            Spawned::Exited => "slapd exited during startup",
            _ => "slapd did not accept an LDAP bind within 20 s",
        };
        format!(
            "{what} (ports {} and {}); slapd log:\n{}",
            self.port,
            self.tls_port,
            tail(&self.log(), 30)
        )
    }

    /// Add `tests/ldap/seed.ldif` through the running server, as the rootdn.
    fn seed(&self) -> Result<(), Box<dyn std::error::Error>> {
        let root = self.dir.path();
        let out = Command::new(program("/usr/bin/ldapadd"))
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-y"])
            .arg(root.join("rootpw"))
            .arg("-f")
            .arg(root.join("seed.ldif"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ldapadd ({INSTALL}): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ldapadd of tests/ldap/seed.ldif failed: {}{}\nslapd log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&self.log(), 30)
            )
            .into());
        }
        Ok(())
    }

    /// `ldap://127.0.0.1:PORT` (plain; StartTLS capable).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    /// The CA certificate (PEM file) that signed the server's certificate (for 127.0.0.1 and
    /// localhost): give it to the gateway as its LDAP `ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A rustls client configuration trusting only this fixture's CA (for ldap3's
    /// `LdapConnSettings::set_config`).
    pub fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, Box<dyn std::error::Error>> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// slapd's log so far (stderr at debug level `stats`: one line per connection/operation).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Is slapd running (not stopped, not exited)?
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kill it (SIGKILL, as a crash would), keeping ports and data for [`Slapd::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same ports with the same data (not re-seeded); ready when the service
    /// account can bind.
    pub async fn restart(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.stop();
        let outcome = self.spawn(SERVICE_DN, SERVICE_PASSWORD).await?;
        if !matches!(outcome, Spawned::Ready) {
            return Err(self.startup_error(&outcome).into());
        }
        Ok(())
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
