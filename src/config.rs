//! Typed configuration: TOML file < `DASHGATE_*` environment < command-line flags.
//!
//! Every key is declared once in [`KEYS`] with its kind, its environment variable and its
//! default. The three layers are merged into one TOML table, then validated key by key so that
//! every error names the key (and the environment variable or flag it came from).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

pub mod sources;
pub use sources::{LdapConfig, OidcConfig, SourceKind};

/// Validation failure that names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("unknown config key `{0}`")]
    UnknownKey(String),
    #[error("config key `{key}` (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
    #[error("config key `{0}` is required for this command")]
    Missing(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    /// Unsigned integer within the inclusive bounds.
    Int(u64, u64),
    /// Human duration ("15m", "30s") within the inclusive bounds, in seconds.
    Duration(u64, u64),
    StrList,
    /// A table of strings to lists of strings (group → roles); JSON in the environment.
    RoleMap,
}

struct Key {
    name: &'static str,
    kind: Kind,
    /// Environment variable; `None` means `DASHGATE_` + upper-cased name with `.` as `_`.
    env: Option<&'static str>,
    /// What applies when nothing sets the key.
    default: Fallback,
}

/// A key's default, declared beside it in [`KEYS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fallback {
    /// Not set: an empty string or list, `false`.
    Unset,
    /// A string or duration, as it would be written in the file.
    Text(&'static str),
    Bool(bool),
    Int(u64),
    /// Half the CPU count, at least 1 (password hashers: the other half stays with traffic).
    HalfTheCores,
}

const fn key(name: &'static str, kind: Kind) -> Key {
    Key {
        name,
        kind,
        env: None,
        default: Fallback::Unset,
    }
}

impl Key {
    const fn or(self, text: &'static str) -> Key {
        Key {
            default: Fallback::Text(text),
            ..self
        }
    }

    const fn or_bool(self, b: bool) -> Key {
        Key {
            default: Fallback::Bool(b),
            ..self
        }
    }

    const fn or_int(self, n: u64) -> Key {
        Key {
            default: Fallback::Int(n),
            ..self
        }
    }

    const fn or_half_the_cores(self) -> Key {
        Key {
            default: Fallback::HalfTheCores,
            ..self
        }
    }
}

const DAY: u64 = 86_400;

/// Every configuration key dashgate knows. Anything else in the file is an error.
const KEYS: &[Key] = &[
    key("listen", Kind::Str).or("127.0.0.1:4180"),
    key("upstream", Kind::StrList),
    key("upstream_host", Kind::Str).or("client"),
    key("dash.csrf_cookie_name", Kind::Str),
    key("dash.csrf_header_name", Kind::Str),
    Key {
        name: "store",
        kind: Kind::Str,
        env: Some("DASHGATE_STORE_URL"),
        default: Fallback::Unset,
    },
    Key {
        name: "database",
        kind: Kind::Str,
        env: Some("DASHGATE_DATABASE_URL"),
        default: Fallback::Text("sqlite://dashgate.db"),
    },
    key("keys_dir", Kind::Str).or("dashgate-keys"),
    key("auth_prefix", Kind::Str).or("/auth"),
    key("policy", Kind::Str),
    key("cookie_secure", Kind::Bool).or_bool(true),
    key("log_format", Kind::Str).or("text"),
    key("token.issuer", Kind::Str).or("dashgate"),
    key("token.audience", Kind::Str).or("dashgate"),
    key("token.access_ttl", Kind::Duration(30, DAY)).or("15m"),
    key("token.leeway", Kind::Duration(0, 300)).or("30s"),
    key("token.assertion_audience", Kind::Str).or("dashgate-app"),
    key("token.assertion_ttl", Kind::Duration(10, 3600)).or("5m"),
    key("session.mode", Kind::Str).or("jwt"),
    key("trusted_proxies", Kind::StrList),
    key("login.window", Kind::Duration(1, 7 * DAY)).or("15m"),
    key("login.max_failures_per_ip", Kind::Int(1, 1_000_000)).or_int(50),
    key("login.free_attempts", Kind::Int(0, 1000)).or_int(3),
    key("login.max_delay", Kind::Duration(0, 3600)).or("60s"),
    key("login.lockout_after", Kind::Int(1, 1_000_000)).or_int(10),
    key("login.lockout", Kind::Duration(1, 7 * DAY)).or("15m"),
    key("session.refresh_idle_ttl", Kind::Duration(60, 90 * DAY)).or("8h"),
    key(
        "session.refresh_absolute_ttl",
        Kind::Duration(60, 365 * DAY),
    )
    .or("24h"),
    key("session.refresh_grace", Kind::Duration(0, 120)).or("30s"),
    key("limits.max_header_bytes", Kind::Int(1024, 1024 * 1024)).or_int(16 * 1024),
    key("limits.max_body_bytes", Kind::Int(0, 1 << 40)).or_int(32 * 1024 * 1024),
    key("limits.header_read_timeout", Kind::Duration(1, 600)).or("10s"),
    key("limits.body_read_timeout", Kind::Duration(1, 3600)).or("30s"),
    key("limits.upstream_timeout", Kind::Duration(1, 3600)).or("60s"),
    key("limits.store_timeout", Kind::Duration(1, 60)).or("2s"),
    key("store_ca_file", Kind::Str),
    key("balancing.affinity", Kind::Bool).or_bool(false),
    key("metrics.public", Kind::Bool).or_bool(false),
    key("keys.activation_delay", Kind::Duration(0, 3600)).or("30s"),
    key("tls.cert_file", Kind::Str),
    key("tls.key_file", Kind::Str),
    key("tls.http2", Kind::Bool).or_bool(true),
    key("metrics.token_file", Kind::Str),
    key("balancing.health_path", Kind::Str).or("/"),
    key("balancing.health_interval", Kind::Duration(1, 300)).or("5s"),
    key("limits.max_inspect_bytes", Kind::Int(1024, 1 << 30)).or_int(16 * 1024 * 1024),
    key("limits.password_hash_concurrency", Kind::Int(1, 256)).or_half_the_cores(),
    key("limits.password_hash_priority", Kind::Str).or("low"),
    key("login.sources", Kind::StrList),
    key("ldap.url", Kind::Str),
    key("ldap.start_tls", Kind::Bool).or_bool(false),
    key("ldap.ca_file", Kind::Str),
    key("ldap.bind_dn", Kind::Str),
    key("ldap.bind_password_file", Kind::Str),
    key("ldap.user_base", Kind::Str),
    key("ldap.user_filter", Kind::Str).or("(&(objectClass=person)(uid={username}))"),
    key("ldap.group_attribute", Kind::Str).or("memberOf"),
    key("ldap.group_base", Kind::Str),
    key("ldap.group_filter", Kind::Str).or("(&(objectClass=groupOfNames)(member={dn}))"),
    key("ldap.group_roles", Kind::RoleMap),
    key("ldap.timeout", Kind::Duration(1, 60)).or("5s"),
    key("oidc.issuer", Kind::Str),
    key("oidc.client_id", Kind::Str),
    key("oidc.client_secret_file", Kind::Str),
    key("oidc.redirect_url", Kind::Str),
    key("oidc.scopes", Kind::StrList),
    key("oidc.display_name", Kind::Str).or("single sign-on"),
    key("oidc.username_claim", Kind::Str).or("preferred_username"),
    key("oidc.roles_claim", Kind::Str).or("groups"),
    key("oidc.claim_roles", Kind::RoleMap),
    key("oidc.end_session", Kind::Bool).or_bool(false),
    key("oidc.post_logout_redirect_url", Kind::Str),
    key("oidc.ca_file", Kind::Str),
    key("oidc.timeout", Kind::Duration(1, 60)).or("10s"),
];

impl Fallback {
    /// An integer default; half the cores are counted here.
    fn number(self) -> Option<u64> {
        match self {
            Fallback::Int(n) => Some(n),
            // Half the cores at most hash passwords, so a login storm leaves the other half to
            // the proxied traffic.
            Fallback::HalfTheCores => Some(
                (std::thread::available_parallelism().map_or(2, |n| n.get() as u64) / 2).max(1),
            ),
            _ => None,
        }
    }
}

impl Key {
    fn env_name(&self) -> String {
        match self.env {
            Some(e) => e.to_owned(),
            None => format!(
                "DASHGATE_{}",
                self.name.replace('.', "_").to_ascii_uppercase()
            ),
        }
    }
}

/// Where to find the configuration: an optional file plus flag overrides `(key, value)`.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub file: Option<PathBuf>,
    /// Flag values, already named by config key, applied last.
    pub flags: Vec<(&'static str, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub leeway: Duration,
    /// `aud` of the `X-Dashgate-Assertion` JWT the upstream receives.
    pub assertion_audience: String,
    pub assertion_ttl: Duration,
}

impl TokenConfig {
    /// After this time no access token issued at `now` under this configuration can be valid
    /// (its lifetime and the clock leeway have passed): how long a revocation must be kept.
    pub fn revocation_horizon(&self, now: i64) -> i64 {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        horizon(now, secs(self.access_ttl), secs(self.leeway))
    }

    /// The same for a token issued under any configuration the bounds of `token.access_ttl`
    /// and `token.leeway` allow: for the command line, which cannot know what the running
    /// gateways were given.
    pub fn revocation_horizon_for_any(now: i64) -> i64 {
        let most = |name: &str| {
            KEYS.iter()
                .find(|k| k.name == name)
                .and_then(|k| match k.kind {
                    Kind::Duration(_, hi) => i64::try_from(hi).ok(),
                    _ => None,
                })
                .unwrap_or(i64::MAX)
        };
        horizon(now, most("token.access_ttl"), most("token.leeway"))
    }
}

fn horizon(now: i64, access_ttl: i64, leeway: i64) -> i64 {
    now.saturating_add(access_ttl)
        .saturating_add(leeway)
        .saturating_add(1)
}

/// How a browser session is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// Short-lived access JWT + rotating refresh token in cookies (default): no store lookup
    /// on the hot path.
    Jwt,
    /// One opaque session-id cookie; the session record lives in the state store and is
    /// looked up on every request, so revocation is immediate everywhere.
    Server,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub mode: SessionMode,
    pub refresh_idle_ttl: Duration,
    pub refresh_absolute_ttl: Duration,
    /// How long a just-rotated refresh token still yields an access token (concurrent Dash
    /// callbacks present the same token at once) without counting as reuse.
    pub refresh_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub upstream_timeout: Duration,
    /// Deadline of every state-store (Redis) command.
    pub store_timeout: Duration,
    /// Largest Dash callback body the gateway reads to apply `dash_outputs` rules.
    pub max_inspect_bytes: usize,
    pub password_hash_concurrency: usize,
    pub password_hash_priority: HashPriority,
}

/// The CPU priority of password hashing (`limits.password_hash_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPriority {
    /// `SCHED_IDLE`: hashes run only on CPU time nothing else wants.
    Idle,
    /// Nice 19: hashes yield to proxied requests, and still get a share when the CPU is busy.
    Low,
    /// The same priority as everything else.
    Normal,
}

/// Spreading requests over several upstreams.
#[derive(Debug, Clone)]
pub struct Balancing {
    /// One session, one upstream (for Dash apps that keep per-user state in process).
    pub affinity: bool,
    /// Path of the active health check (any answer below 500 counts as healthy).
    pub health_path: String,
    pub health_interval: Duration,
}

/// Which `Host` header the upstream receives (`upstream_host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamHost {
    /// The client's, as apps behind an auth proxy expect and Dash's WebSocket same-origin
    /// check needs (the default).
    Client,
    /// The upstream URL's authority.
    Upstream,
}

/// Regulation settings, in seconds and counts.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// How long a counter lives after its last failure.
    pub window: i64,
    /// Failures from one address before it is refused for `window`.
    pub max_failures_per_ip: i64,
    /// Failures for one username before delays start.
    pub free_attempts: i64,
    /// Longest delay between attempts for one username.
    pub max_delay: i64,
    /// Failures of one username from one address before that pair is locked.
    pub lockout_after: i64,
    /// How long a locked pair stays locked.
    pub lockout: i64,
}

/// CSRF names the operator set (`dash.csrf_cookie_name`, `dash.csrf_header_name`).
#[derive(Debug, Clone, Default)]
pub struct DashCsrfNames {
    pub cookie: Option<String>,
    pub header: Option<http::HeaderName>,
}

/// Who may read `/auth/metrics`.
#[derive(Debug, Clone)]
pub struct MetricsAccess {
    /// Anyone (only behind a network boundary that keeps outsiders away).
    pub public: bool,
    /// A file holding a bearer token for the scraper (Prometheus `bearer_token_file`).
    pub token_file: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstreams: Vec<http::Uri>,
    /// The `Host` the upstream sees: the client's (with `X-Forwarded-Host`), as apps behind
    /// an auth proxy expect and Dash's WebSocket same-origin check needs, or the upstream's own.
    pub upstream_host: UpstreamHost,
    /// CSRF cookie and header names set by the operator for apps that renamed them
    /// (`Dash(csrf_token_name=…, csrf_header_name=…)`); otherwise learned from the app.
    pub dash_csrf: DashCsrfNames,
    pub database: String,
    /// Shared state store (`redis://`, `rediss://`, …); `None`: the user database.
    pub store: Option<String>,
    /// CA certificate (PEM) that signs a `rediss://` server's certificate, when it is not in
    /// the public trust store.
    pub store_ca_file: Option<PathBuf>,
    pub keys_dir: PathBuf,
    /// A rotated-in key signs only this long after it appeared (every replica knows it by then).
    pub key_activation_delay: Duration,
    pub policy: Option<PathBuf>,
    pub auth_prefix: String,
    pub cookie_secure: bool,
    pub log_format: LogFormat,
    pub token: TokenConfig,
    pub session: SessionConfig,
    pub limits: Limits,
    pub balancing: Balancing,
    pub metrics: MetricsAccess,
    /// Proxies whose `X-Forwarded-For` is believed (the OpenShift router, an ingress).
    pub trusted_proxies: Vec<crate::cidr::Cidr>,
    /// Brute-force regulation of logins.
    pub login: LoginLimits,
    /// Certificate and key (PEM) for TLS on the listener.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Offer HTTP/2 (ALPN `h2`) to clients of the TLS listener.
    pub http2: bool,
    /// Where users sign in, in the order password sign-ins try them.
    pub sources: Vec<sources::SourceKind>,
    pub ldap: Option<sources::LdapConfig>,
    pub oidc: Option<sources::OidcConfig>,
}

impl Config {
    /// Load file, environment and flags, and validate. `env` is injected for tests.
    pub fn load(
        sources: &Sources,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut table = match &sources.file {
            Some(path) => read_file(path)?,
            None => Table::new(),
        };
        reject_unknown(&table, "")?;
        let mut origins: Vec<(String, String)> = Vec::new();
        if let Some(path) = &sources.file {
            for k in KEYS {
                if get(&table, k.name).is_some() {
                    origins.push((k.name.to_owned(), format!("file {}", path.display())));
                }
            }
        }
        for k in KEYS {
            let var = k.env_name();
            if let Some(raw) = env(&var) {
                let value = parse_raw(k, &raw, &var)?;
                set(&mut table, k.name, value);
                origins.push((k.name.to_owned(), format!("environment {var}")));
            }
        }
        for (name, raw) in &sources.flags {
            let k = KEYS
                .iter()
                .find(|k| k.name == *name)
                .ok_or_else(|| ConfigError::UnknownKey((*name).to_owned()))?;
            let origin = format!("flag --{}", name.rsplit('.').next().unwrap_or(name));
            let value = parse_raw(k, raw, &origin)?;
            set(&mut table, k.name, value);
            origins.push((k.name.to_owned(), origin));
        }
        let origin_of = |name: &str| {
            origins
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, o)| o.clone())
                .unwrap_or_else(|| "default".to_owned())
        };
        let v = Validator {
            table: &table,
            origin_of: &origin_of,
        };
        build(&v)
    }

    /// Environment variable names of every key, for documentation and warnings.
    pub fn env_names() -> Vec<String> {
        KEYS.iter().map(Key::env_name).collect()
    }
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.parse::<Table>().map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn reject_unknown(table: &Table, prefix: &str) -> Result<(), ConfigError> {
    for (k, v) in table {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(inner) if KEYS.iter().any(|x| x.name.starts_with(&format!("{full}."))) => {
                reject_unknown(inner, &full)?
            }
            _ if KEYS.iter().any(|x| x.name == full) => {}
            _ => return Err(ConfigError::UnknownKey(full)),
        }
    }
    Ok(())
}

fn get<'a>(table: &'a Table, dotted: &str) -> Option<&'a Value> {
    let mut parts = dotted.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        let v = current.get(part)?;
        if parts.peek().is_none() {
            return Some(v);
        }
        current = v.as_table()?;
    }
    None
}

fn set(table: &mut Table, dotted: &str, value: Value) {
    let parts: Vec<&str> = dotted.split('.').collect();
    let mut current = table;
    for part in &parts[..parts.len() - 1] {
        let entry = current
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(t) = entry else { return };
        current = t;
    }
    if let Some(last) = parts.last() {
        current.insert((*last).to_owned(), value);
    }
}

/// Parse an environment or flag string into the TOML value the key expects.
fn parse_raw(k: &Key, raw: &str, origin: &str) -> Result<Value, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: k.name.to_owned(),
        origin: origin.to_owned(),
        message,
    };
    Ok(match k.kind {
        Kind::Str | Kind::Duration(..) => Value::String(raw.to_owned()),
        Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Boolean(true),
            "false" | "0" | "no" | "off" => Value::Boolean(false),
            _ => return Err(invalid(format!("expected true or false, got {raw:?}"))),
        },
        Kind::Int(..) => Value::Integer(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| invalid(format!("expected a whole number, got {raw:?}")))?,
        ),
        Kind::RoleMap => {
            let json: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
                invalid(format!(
                    "expected a JSON object like {{\"GROUP\": [\"role\"]}}, got an error: {e}"
                ))
            })?;
            toml::Value::try_from(json)
                .map_err(|e| invalid(format!("cannot use this JSON: {e}")))?
        }
        Kind::StrList => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

struct Validator<'a> {
    table: &'a Table,
    origin_of: &'a dyn Fn(&str) -> String,
}

impl Validator<'_> {
    fn invalid(&self, name: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            key: name.to_owned(),
            origin: (self.origin_of)(name),
            message,
        }
    }

    /// The declared key `name`: reading one that [`KEYS`] does not declare is a mistake in
    /// this file, refused here (and by a unit test over every name it reads).
    fn key(&self, name: &str) -> Result<&'static Key, ConfigError> {
        KEYS.iter().find(|k| k.name == name).ok_or_else(|| {
            self.invalid(
                name,
                "internal: not a declared configuration key".to_owned(),
            )
        })
    }

    fn str(&self, name: &str) -> Result<String, ConfigError> {
        let default = match self.key(name)?.default {
            Fallback::Text(t) => t,
            _ => "",
        };
        match get(self.table, name) {
            None => Ok(default.to_owned()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.invalid(name, format!("expected a string, got {other}"))),
        }
    }

    fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        let default = self.key(name)?.default == Fallback::Bool(true);
        match get(self.table, name) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(self.invalid(name, format!("expected true or false, got {other}"))),
        }
    }

    fn int(&self, name: &str) -> Result<u64, ConfigError> {
        let key = self.key(name)?;
        let (Kind::Int(min, max), Some(default)) = (key.kind, key.default.number()) else {
            return Err(self.invalid(name, "internal: not an integer key".to_owned()));
        };
        let n = match get(self.table, name) {
            None => return Ok(default),
            Some(Value::Integer(i)) => u64::try_from(*i)
                .map_err(|_| self.invalid(name, format!("must not be negative, got {i}")))?,
            Some(other) => {
                return Err(self.invalid(name, format!("expected a whole number, got {other}")));
            }
        };
        if n < min || n > max {
            return Err(self.invalid(name, format!("must be between {min} and {max}, got {n}")));
        }
        Ok(n)
    }

    fn duration(&self, name: &str) -> Result<Duration, ConfigError> {
        let Kind::Duration(min, max) = self.key(name)?.kind else {
            return Err(self.invalid(name, "internal: not a duration key".to_owned()));
        };
        let raw = self.str(name)?;
        let d = humantime::parse_duration(raw.trim()).map_err(|e| {
            self.invalid(
                name,
                format!("expected a duration like \"15m\" or \"30s\", got {raw:?} ({e})"),
            )
        })?;
        if d.as_secs() < min || d.as_secs() > max {
            return Err(self.invalid(
                name,
                format!("must be between {min}s and {max}s, got {raw:?}"),
            ));
        }
        Ok(d)
    }

    fn str_list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        self.key(name)?;
        match get(self.table, name) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.invalid(name, format!("expected strings, got {other}"))),
                })
                .collect(),
            Some(other) => {
                Err(self.invalid(name, format!("expected a list of strings, got {other}")))
            }
        }
    }
}

fn build(v: &Validator<'_>) -> Result<Config, ConfigError> {
    let listen_raw = v.str("listen")?;
    let listen = listen_raw.parse::<SocketAddr>().map_err(|_| {
        v.invalid(
            "listen",
            format!("expected an address like 127.0.0.1:4180, got {listen_raw:?}"),
        )
    })?;

    let mut upstreams = Vec::new();
    for raw in v.str_list("upstream")? {
        upstreams.push(parse_upstream(&raw).map_err(|m| v.invalid("upstream", m))?);
    }

    let database = v.str("database")?;
    let postgres = database.starts_with("postgres://") || database.starts_with("postgresql://");
    if !database.starts_with("sqlite://") && !postgres {
        return Err(v.invalid(
            "database",
            format!(
                "expected sqlite://PATH or postgres://…, got {:?}",
                redact(&database)
            ),
        ));
    }
    if !postgres && database.len() <= "sqlite://".len() {
        return Err(v.invalid("database", "sqlite:// needs a file path".to_owned()));
    }

    let auth_prefix = v.str("auth_prefix")?;
    let prefix_ok = auth_prefix.starts_with('/')
        && auth_prefix.len() > 1
        && !auth_prefix.ends_with('/')
        && auth_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
        && !auth_prefix.split('/').any(|s| s == "." || s == "..")
        && !auth_prefix.contains("//");
    if !prefix_ok {
        return Err(v.invalid(
            "auth_prefix",
            format!("expected a path like /auth (letters, digits, -, _, no trailing slash), got {auth_prefix:?}"),
        ));
    }

    let log_format = match v.str("log_format")?.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(v.invalid(
                "log_format",
                format!("expected \"text\" or \"json\", got {other:?}"),
            ));
        }
    };

    let non_empty = |name: &str| -> Result<String, ConfigError> {
        let s = v.str(name)?;
        if s.trim().is_empty() {
            return Err(v.invalid(name, "must not be empty".to_owned()));
        }
        Ok(s)
    };

    let token = TokenConfig {
        issuer: non_empty("token.issuer")?,
        audience: non_empty("token.audience")?,
        access_ttl: v.duration("token.access_ttl")?,
        leeway: v.duration("token.leeway")?,
        assertion_audience: non_empty("token.assertion_audience")?,
        assertion_ttl: v.duration("token.assertion_ttl")?,
    };
    let mode = match v.str("session.mode")?.as_str() {
        "jwt" => SessionMode::Jwt,
        "server" => SessionMode::Server,
        other => {
            return Err(v.invalid(
                "session.mode",
                format!("expected \"jwt\" or \"server\", got {other:?}"),
            ));
        }
    };
    let session = SessionConfig {
        mode,
        refresh_idle_ttl: v.duration("session.refresh_idle_ttl")?,
        refresh_absolute_ttl: v.duration("session.refresh_absolute_ttl")?,
        refresh_grace: v.duration("session.refresh_grace")?,
    };
    if session.refresh_idle_ttl > session.refresh_absolute_ttl {
        return Err(v.invalid(
            "session.refresh_idle_ttl",
            "must not be longer than session.refresh_absolute_ttl".to_owned(),
        ));
    }
    let limits = Limits {
        max_header_bytes: to_usize(v.int("limits.max_header_bytes")?),
        max_body_bytes: v.int("limits.max_body_bytes")?,
        header_read_timeout: v.duration("limits.header_read_timeout")?,
        body_read_timeout: v.duration("limits.body_read_timeout")?,
        upstream_timeout: v.duration("limits.upstream_timeout")?,
        store_timeout: v.duration("limits.store_timeout")?,
        max_inspect_bytes: to_usize(v.int("limits.max_inspect_bytes")?),
        password_hash_concurrency: to_usize(v.int("limits.password_hash_concurrency")?),
        password_hash_priority: match v.str("limits.password_hash_priority")?.as_str() {
            "idle" => HashPriority::Idle,
            "low" => HashPriority::Low,
            "normal" => HashPriority::Normal,
            other => {
                return Err(v.invalid(
                    "limits.password_hash_priority",
                    format!("expected \"idle\", \"low\" or \"normal\", got {other:?}"),
                ));
            }
        },
    };

    let ldap = sources::ldap(v)?;
    let oidc = sources::oidc(v, &auth_prefix)?;

    let health_path = v.str("balancing.health_path")?;
    if !health_path.starts_with('/') || health_path.contains(char::is_whitespace) {
        return Err(v.invalid(
            "balancing.health_path",
            format!("expected a path like /healthz, got {health_path:?}"),
        ));
    }
    let balancing = Balancing {
        affinity: v.bool("balancing.affinity")?,
        health_path,
        health_interval: v.duration("balancing.health_interval")?,
    };

    let upstream_host = match v.str("upstream_host")?.as_str() {
        "client" => UpstreamHost::Client,
        "upstream" => UpstreamHost::Upstream,
        other => {
            return Err(v.invalid(
                "upstream_host",
                format!("expected \"client\" or \"upstream\", got {other:?}"),
            ));
        }
    };
    let dash_csrf = DashCsrfNames {
        cookie: match v.str("dash.csrf_cookie_name")? {
            n if n.is_empty() => None,
            n if crate::http_util::is_plain_cookie_name(&n) => Some(n),
            n => {
                return Err(v.invalid(
                    "dash.csrf_cookie_name",
                    format!(
                        "expected a cookie name (letters, digits, -, _, ., no __Host-/__Secure-), got {n:?}"
                    ),
                ));
            }
        },
        header: match v.str("dash.csrf_header_name")? {
            n if n.is_empty() => None,
            n => Some(
                http::HeaderName::from_bytes(n.as_bytes())
                    .ok()
                    .filter(|h| crate::http_util::is_free_header_name(h.as_str()))
                    .ok_or_else(|| {
                        v.invalid(
                            "dash.csrf_header_name",
                            format!(
                                "expected a header name that carries nothing else the gateway reads or sets, got {n:?}"
                            ),
                        )
                    })?,
            ),
        },
    };

    Ok(Config {
        listen,
        upstreams,
        upstream_host,
        dash_csrf,
        database,
        keys_dir: PathBuf::from(v.str("keys_dir")?),
        store_ca_file: match v.str("store_ca_file")? {
            p if p.trim().is_empty() => None,
            p => Some(PathBuf::from(p)),
        },
        store: match v.str("store")? {
            // Without a store, session state lives in the database, whichever it is.
            s if s.trim().is_empty() => None,
            s if [
                "postgres://",
                "postgresql://",
                "redis://",
                "rediss://",
                "redis+sentinel://",
                "redis+cluster://",
            ]
            .iter()
            .any(|p| s.starts_with(p)) =>
            {
                Some(s)
            }
            s => {
                return Err(v.invalid(
                    "store",
                    format!(
                        "expected redis://…, rediss://…, redis+sentinel://…, redis+cluster://… or postgres://…, got {:?}",
                        redact(&s)
                    ),
                ));
            }
        },
        key_activation_delay: v.duration("keys.activation_delay")?,
        policy: match v.str("policy")? {
            p if p.trim().is_empty() => None,
            p => Some(PathBuf::from(p)),
        },
        auth_prefix,
        cookie_secure: v.bool("cookie_secure")?,
        log_format,
        token,
        session,
        limits,
        balancing,
        tls: match (v.str("tls.cert_file")?, v.str("tls.key_file")?) {
            (c, k) if c.is_empty() && k.is_empty() => None,
            (c, k) if !c.is_empty() && !k.is_empty() => Some((PathBuf::from(c), PathBuf::from(k))),
            (c, _) if c.is_empty() => {
                return Err(v.invalid(
                    "tls.cert_file",
                    "needed together with tls.key_file".to_owned(),
                ));
            }
            _ => {
                return Err(v.invalid(
                    "tls.key_file",
                    "needed together with tls.cert_file".to_owned(),
                ));
            }
        },
        http2: v.bool("tls.http2")?,
        trusted_proxies: v
            .str_list("trusted_proxies")?
            .iter()
            .map(|c| c.parse().map_err(|m| v.invalid("trusted_proxies", m)))
            .collect::<Result<Vec<_>, _>>()?,
        login: LoginLimits {
            window: dur_secs(v.duration("login.window")?),
            max_failures_per_ip: to_i64(v.int("login.max_failures_per_ip")?),
            free_attempts: to_i64(v.int("login.free_attempts")?),
            max_delay: dur_secs(v.duration("login.max_delay")?),
            lockout_after: to_i64(v.int("login.lockout_after")?),
            lockout: dur_secs(v.duration("login.lockout")?),
        },
        metrics: MetricsAccess {
            public: v.bool("metrics.public")?,
            token_file: match v.str("metrics.token_file")? {
                p if p.trim().is_empty() => None,
                p => Some(PathBuf::from(p)),
            },
        },
        sources: sources::order(v, ldap.is_some(), oidc.is_some())?,
        ldap,
        oidc,
    })
}

/// A URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn dur_secs(d: Duration) -> i64 {
    to_i64(d.as_secs())
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// An upstream must be an absolute `http://host[:port][/]` URL. (TLS to the upstream and
/// path-prefixed upstreams are not supported yet, so they are refused rather than ignored.)
fn parse_upstream(raw: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = raw
        .parse()
        .map_err(|_| format!("expected a URL like http://127.0.0.1:8050, got {raw:?}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// upstreams are supported, got {raw:?}"));
    }
    if uri.authority().is_none() {
        return Err(format!("upstream URL needs a host, got {raw:?}"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!("upstream URL must not have a path, got {raw:?}"));
    }
    if uri.query().is_some() {
        return Err(format!("upstream URL must not have a query, got {raw:?}"));
    }
    Ok(uri)
}

impl Config {
    /// Is `database` a PostgreSQL URL?
    pub fn database_is_postgres(&self) -> bool {
        self.database.starts_with("postgres://") || self.database.starts_with("postgresql://")
    }

    /// The SQLite file path of `database`.
    pub fn sqlite_path(&self) -> PathBuf {
        PathBuf::from(self.database.trim_start_matches("sqlite://"))
    }

    /// Checks only `serve` needs.
    pub fn require_upstream(&self) -> Result<(), ConfigError> {
        if self.upstreams.is_empty() {
            return Err(ConfigError::Missing("upstream"));
        }
        Ok(())
    }

    /// Config lines worth a warning at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.cookie_secure {
            w.push(
                "cookie_secure = false: cookies lose the Secure flag and the __Host- prefix; \
                 use this only for plain-HTTP development on loopback"
                    .to_owned(),
            );
        }
        if self.tls.is_some() && !self.cookie_secure {
            w.push(
                "TLS is on but cookie_secure = false: cookies lose the Secure flag for no reason"
                    .to_owned(),
            );
        }
        if !self.listen.ip().is_loopback() && !self.cookie_secure {
            w.push(format!(
                "listening on {} without secure cookies: session cookies can travel in clear text",
                self.listen
            ));
        }
        w
    }
}

#[cfg(test)]
mod tests;
