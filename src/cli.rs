//! The command line: `serve`, `users …`, `keys rotate`, `check-config`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::clock;
use crate::config::{Config, LogFormat, Sources};
use crate::directory::{Directory, password};
use crate::error::Error;
use crate::names::canonical_name;
use crate::store::{RevocationKind, Store};
use crate::token::KeySet;

/// Longest thing read from stdin as a password (the policy limit applies after).
const MAX_STDIN_PASSWORD_BYTES: u64 = 16 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "dashgate",
    version,
    about = "Authentication and authorization gateway for Dash apps and other dashboards"
)]
pub struct Cli {
    /// Configuration file (TOML). Env: DASHGATE_CONFIG.
    #[arg(long, global = true, env = "DASHGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// User database, sqlite://PATH (default sqlite://dashgate.db). Env: DASHGATE_DATABASE_URL.
    #[arg(long, global = true, value_name = "URL")]
    database: Option<String>,
    /// Shared state store for many replicas, redis://… or rediss://… (default: the database).
    /// Env: DASHGATE_STORE_URL.
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway in front of an upstream app.
    Serve(ServeArgs),
    /// Manage local users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage roles and their permissions.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Validate the configuration and exit.
    CheckConfig(ServeArgs),
}

#[derive(Args, Debug, Default)]
struct ServeArgs {
    /// Listen address (default 127.0.0.1:4180).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Upstream URL, e.g. http://127.0.0.1:8050 (repeatable).
    #[arg(long, value_name = "URL")]
    upstream: Vec<String>,
    /// Policy file (TOML): path rules and Dash callback-output rules.
    #[arg(long, value_name = "FILE")]
    policy: Option<String>,
    /// Directory of signing and CSRF keys (created on first start).
    #[arg(long, value_name = "DIR")]
    keys_dir: Option<String>,
    /// Set cookies with Secure and the __Host- prefix (default true; false only for plain-HTTP
    /// development).
    #[arg(long, value_name = "BOOL")]
    cookie_secure: Option<String>,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Add a user; the password is read from standard input.
    Add {
        name: String,
        /// Role to grant (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Show one user.
    Show { name: String },
    /// Set a new password (from standard input); ends the user's sessions.
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Disable a user and end all of their sessions.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// Remove a user and end all of their sessions.
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
enum RolesCommand {
    /// Create a role, or add permissions to an existing one.
    Add {
        role: String,
        /// Permission to add (repeatable), e.g. salaries:read.
        #[arg(long = "perm", value_name = "PERM")]
        perms: Vec<String>,
    },
    /// Give a user a role (effective at the user's next token refresh at the latest).
    Grant { user: String, role: String },
    /// Take a role from a user (effective at the user's next token refresh at the latest).
    Revoke { user: String, role: String },
    /// List roles with their permissions and member counts.
    List,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Add a new signing key; it signs from the next start, old keys keep verifying.
    Rotate {
        #[arg(long, value_name = "DIR")]
        keys_dir: Option<String>,
    },
}

/// Errors of the command line, printed as one line.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{}", .0.public_message_cli())]
    Gateway(#[from] Error),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    fn public_message_cli(&self) -> String {
        match self {
            Error::Internal(d) | Error::Unavailable(d) => d.clone(),
            other => other.to_string(),
        }
    }
}

/// Parse arguments, run the command, and turn the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dashgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dashgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sources(cli: &Cli, serve: Option<&ServeArgs>) -> Sources {
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    if let Some(db) = &cli.database {
        flags.push(("database", db.clone()));
    }
    if let Some(store) = &cli.store {
        flags.push(("store", store.clone()));
    }
    if let Some(s) = serve {
        if let Some(v) = &s.listen {
            flags.push(("listen", v.clone()));
        }
        if !s.upstream.is_empty() {
            flags.push(("upstream", s.upstream.join(",")));
        }
        if let Some(v) = &s.policy {
            flags.push(("policy", v.clone()));
        }
        if let Some(v) = &s.keys_dir {
            flags.push(("keys_dir", v.clone()));
        }
        if let Some(v) = &s.cookie_secure {
            flags.push(("cookie_secure", v.clone()));
        }
    }
    Sources {
        file: cli.config.clone(),
        flags,
    }
}

fn load(cli: &Cli, serve: Option<&ServeArgs>) -> Result<Config, CliError> {
    Ok(Config::load(&sources(cli, serve), |k| {
        std::env::var(k).ok()
    })?)
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DASHGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Serve(args) => {
            let config = load(&cli, Some(args))?;
            init_logging(config.log_format, "info");
            config.require_upstream()?;
            warn_unknown_env();
            crate::server::serve(config).await?;
            Ok(())
        }
        Command::CheckConfig(args) => {
            let config = load(&cli, Some(args))?;
            let policy = match &config.policy {
                Some(p) => {
                    let policy = crate::policy::Policy::load(p)
                        .map_err(|e| CliError::Usage(e.to_string()))?;
                    format!(
                        "policy {} with {} rule(s)",
                        p.display(),
                        policy.rule_count()
                    )
                }
                None => "no policy file (every path needs a signed-in user)".to_owned(),
            };
            for w in config.warnings() {
                println!("warning: {w}");
            }
            println!(
                "configuration OK: listen {}, {} upstream(s), database {}, keys in {}, {policy}",
                config.listen,
                config.upstreams.len(),
                crate::config::redact(&config.database),
                config.keys_dir.display()
            );
            Ok(())
        }
        Command::Users(cmd) => {
            let config = load(&cli, None)?;
            init_logging(config.log_format, "warn");
            users(&config, cmd).await
        }
        Command::Roles(cmd) => {
            let config = load(&cli, None)?;
            init_logging(config.log_format, "warn");
            roles(&config, cmd).await
        }
        Command::Keys(KeysCommand::Rotate { keys_dir }) => {
            let mut config = load(&cli, None)?;
            init_logging(config.log_format, "warn");
            if let Some(d) = keys_dir {
                config.keys_dir = PathBuf::from(d);
            }
            KeySet::load_or_create(&config.keys_dir)?;
            let kid = KeySet::rotate(&config.keys_dir)?;
            println!(
                "added signing key {kid}: gateways sharing this key directory verify with it within a second \
                 and sign with it after keys.activation_delay; older keys keep verifying until their tokens have expired"
            );
            Ok(())
        }
    }
}

fn warn_unknown_env() {
    let known = Config::env_names();
    for (k, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if k.starts_with("DASHGATE_")
            && !known.contains(&k)
            && k != "DASHGATE_CONFIG"
            && k != "DASHGATE_LOG"
        {
            tracing::warn!(variable = %k, "unknown DASHGATE_ environment variable is ignored");
        }
    }
}

fn name_arg(raw: &str) -> Result<String, CliError> {
    canonical_name(raw).map_err(|e| CliError::Usage(format!("{raw:?}: {e}")))
}

/// Read a password from stdin: everything up to the first newline (a trailing `\r` too),
/// nothing trimmed, nothing truncated.
fn read_password() -> Result<Zeroizing<String>, CliError> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_STDIN_PASSWORD_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| {
            CliError::Usage(format!("cannot read the password from standard input: {e}"))
        })?;
    if buf.len() as u64 > MAX_STDIN_PASSWORD_BYTES {
        return Err(CliError::Usage(
            "password on standard input is too long".to_owned(),
        ));
    }
    let text = std::str::from_utf8(&buf)
        .map_err(|_| CliError::Usage("the password must be UTF-8".to_owned()))?;
    let line = text.split('\n').next().unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    password::check_policy(line).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(Zeroizing::new(line.to_owned()))
}

async fn hash(password: Zeroizing<String>) -> Result<String, CliError> {
    Ok(
        tokio::task::spawn_blocking(move || password::hash_blocking(&password))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??,
    )
}

/// End every session of a user now: their refresh families in the store, and their access
/// tokens in running gateways, which pick up these revocations within a second. Each live
/// session is revoked by id, which is exact; a user-wide revocation covers tokens issued in
/// earlier seconds. (A user-wide "issued at or before now" alone would also kill a session the
/// user starts again within the same second, since `iat` has one-second resolution.)
async fn end_sessions(
    store: &Store,
    user_id: i64,
    username: &str,
    reason: &'static str,
) -> Result<usize, CliError> {
    let now = clock::now();
    // Kept as long as an access token issued now could live under any configuration: the
    // command line does not know what the running gateways were given.
    let horizon = crate::config::TokenConfig::revocation_horizon_for_any(now);
    let made = store
        .end_user_sessions(user_id, username, reason, now, horizon)
        .await?;
    Ok(made
        .iter()
        .filter(|r| r.kind == RevocationKind::Session)
        .count())
}

async fn users(config: &Config, cmd: &UsersCommand) -> Result<(), CliError> {
    let (dir, db) = Directory::open(config).await?;
    let store = Store::for_config(config, db.as_ref())?;
    let missing = |n: &str| CliError::Usage(format!("no user named {n:?}"));
    match cmd {
        UsersCommand::Add { name, roles, .. } => {
            let name = name_arg(name)?;
            let roles = roles
                .iter()
                .map(|r| name_arg(r))
                .collect::<Result<Vec<_>, _>>()?;
            let password = read_password()?;
            let user = dir.add(name, hash(password).await?, roles).await?;
            println!(
                "added user {} (roles: {})",
                user.username,
                display_roles(&user.roles)
            );
        }
        UsersCommand::List => {
            for u in dir.list().await? {
                println!(
                    "{}\t{}\t{}\troles: {}",
                    u.username,
                    if u.disabled { "disabled" } else { "enabled" },
                    u.source,
                    display_roles(&u.roles)
                );
            }
        }
        UsersCommand::Show { name } => {
            let name = name_arg(name)?;
            let u = dir
                .user(name.clone())
                .await?
                .ok_or_else(|| missing(&name))?;
            println!("username: {}", u.username);
            println!(
                "status:   {}",
                if u.disabled { "disabled" } else { "enabled" }
            );
            match (&u.external_id, u.source.as_str()) {
                (Some(id), crate::sign_in::ldap::SOURCE) => {
                    println!("source:   ldap (entry {id})");
                }
                (Some(id), crate::sign_in::oidc::SOURCE) => {
                    println!("source:   oidc (subject {id})");
                }
                _ => println!("source:   {}", u.source),
            }
            println!("roles:    {}", display_roles(&u.roles));
            if u.source != crate::directory::LOCAL {
                println!(
                    "  from {} groups at the last sign-in: {}",
                    u.source,
                    display_roles(&u.mapped_roles)
                );
                println!("  granted here: {}", display_roles(&u.granted_roles));
            }
            println!("permissions: {}", display_roles(&u.permissions));
            println!(
                "created:  {}",
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(u.created_at.max(0).unsigned_abs())
                )
            );
        }
        UsersCommand::Passwd { name, .. } => {
            let name = name_arg(name)?;
            let u = dir
                .user(name.clone())
                .await?
                .ok_or_else(|| missing(&name))?;
            if u.source != crate::directory::LOCAL {
                return Err(CliError::Usage(format!(
                    "{name} signs in through {}: their password is changed there",
                    u.source
                )));
            }
            let password = read_password()?;
            dir.set_password(name.clone(), hash(password).await?)
                .await?;
            let n = end_sessions(&store, u.id, &u.username, "password changed").await?;
            println!("password of {name} changed; {n} session(s) ended");
        }
        UsersCommand::Disable { name } => {
            let name = name_arg(name)?;
            let u = dir
                .user(name.clone())
                .await?
                .ok_or_else(|| missing(&name))?;
            dir.set_disabled(name.clone(), true).await?;
            let n = end_sessions(&store, u.id, &u.username, "user disabled").await?;
            println!("disabled {name}; {n} session(s) ended");
        }
        UsersCommand::Enable { name } => {
            let name = name_arg(name)?;
            if !dir.set_disabled(name.clone(), false).await? {
                return Err(missing(&name));
            }
            println!("enabled {name}");
        }
        UsersCommand::Remove { name } => {
            let name = name_arg(name)?;
            let u = dir
                .user(name.clone())
                .await?
                .ok_or_else(|| missing(&name))?;
            let n = end_sessions(&store, u.id, &u.username, "user removed").await?;
            dir.remove(name.clone()).await?;
            println!("removed {name}; {n} session(s) ended");
        }
    }
    Ok(())
}

async fn roles(config: &Config, cmd: &RolesCommand) -> Result<(), CliError> {
    let (dir, _) = Directory::open(config).await?;
    let perm_arg = |p: &String| {
        crate::names::canonical_permission(p).map_err(|e| CliError::Usage(format!("{p:?}: {e}")))
    };
    match cmd {
        RolesCommand::Add { role, perms } => {
            let role = name_arg(role)?;
            let perms = perms.iter().map(perm_arg).collect::<Result<Vec<_>, _>>()?;
            let r = dir.add_role(role, perms).await?;
            println!(
                "role {} (permissions: {})",
                r.name,
                display_roles(&r.permissions)
            );
        }
        RolesCommand::Grant { user, role } => {
            let (user, role) = (name_arg(user)?, name_arg(role)?);
            dir.grant(user.clone(), role.clone()).await.map_err(usage)?;
            println!("granted {role} to {user}; it takes effect at the user's next token refresh");
        }
        RolesCommand::Revoke { user, role } => {
            let (user, role) = (name_arg(user)?, name_arg(role)?);
            if !dir
                .revoke(user.clone(), role.clone())
                .await
                .map_err(usage)?
            {
                return Err(CliError::Usage(format!(
                    "{user} does not have the role {role}"
                )));
            }
            println!(
                "revoked {role} from {user}; it takes effect at the user's next token refresh"
            );
        }
        RolesCommand::List => {
            for r in dir.roles().await? {
                println!(
                    "{}\tmembers: {}\tpermissions: {}",
                    r.name,
                    r.members,
                    display_roles(&r.permissions)
                );
            }
        }
    }
    Ok(())
}

fn usage(e: Error) -> CliError {
    match e {
        Error::BadRequest(m) => CliError::Usage(m.to_owned()),
        other => CliError::Gateway(other),
    }
}

fn display_roles(roles: &[String]) -> String {
    if roles.is_empty() {
        "-".to_owned()
    } else {
        roles.join(", ")
    }
}
