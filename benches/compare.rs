//! The comparison harness: in one run, on loopback, with the same wrk settings for each, it
//! measures a trivial upstream directly, nginx as a bare proxy, dashgate (authenticated GET with
//! a 100-rule policy; Dash callback POST with a `dash_outputs` rule), the Flask +
//! Flask-JWT-Extended + Redis stack it replaces, and a Dash app's callback alone, behind dashgate
//! and behind dash-auth. Then Redis commands per request, memory at idle and after a soak, p99
//! under a login storm, the cost of a large revocation set and policy, and a Dash page's burst of
//! callbacks over TLS on HTTP/1.1 and on HTTP/2 ([`burst`]). It prints a table and writes
//! `BENCHMARKS.md`.
//!
//! Run it with `scripts/bench` (which installs wrk, nginx, redis-server and the Python stacks
//! first); options: `--duration SECS` (10), `--connections N` (32), `--soak SECS` (120),
//! `--quick` (3 s runs, 10 s soak, smaller scale: a smoke test of the harness itself).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "compare/burst.rs"]
mod burst;

use burst::Wire;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const BIN: &str = env!("CARGO_BIN_EXE_dashgate");
const PASSWORD: &str = "benchmark password 1";
/// Callbacks a Dash page fires at once in the burst measurement.
const BURST: usize = 32;

struct Settings {
    duration: u64,
    connections: u32,
    threads: u32,
    soak: u64,
    revocations: usize,
    big_policy: usize,
    quick: bool,
}

fn settings() -> Res<Settings> {
    let mut s = Settings {
        duration: 10,
        connections: 32,
        threads: 2,
        soak: 120,
        revocations: 1_000_000,
        big_policy: 10_000,
        quick: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--duration" => s.duration = value()?.parse()?,
            "--connections" => s.connections = value()?.parse()?,
            "--soak" => s.soak = value()?.parse()?,
            "--quick" => {
                s.quick = true;
                s.duration = 3;
                s.soak = 10;
                s.revocations = 100_000;
                s.big_policy = 2_000;
            }
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Processes and plain HTTP.

/// A child process killed (and reaped) on drop.
struct Proc {
    child: Child,
    name: String,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Res<Proc> {
        let log = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            child,
            name: name.to_owned(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("   ({} needed SIGKILL)", self.name);
    }
}

fn free_port() -> Res<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn set_cookies(&self) -> BTreeMap<String, String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    }
}

/// One HTTP/1.1 request on a fresh loopback connection (setup and checks only, not load).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Res<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer from port {port}: {text:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Poll `port` until GET `path` answers `want`, or fail after 60 s.
fn wait_ready(port: u16, path: &str, want: u16, what: &str, log: &Path) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http(port, "GET", path, &[], "").is_ok_and(|a| a.status == want) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    Err(format!("{what} did not become ready on port {port}; log:\n{log}").into())
}

fn rss_kib(pid: u32) -> Res<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

/// Clock ticks per second of `/proc/*/stat` times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `(parent pid, user + system ticks)` of a process, from `/proc/PID/stat`.
fn proc_times(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after its last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid (4), …, utime (14), stime (15).
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// CPU ticks spent so far by `root` and every process below it (nginx's workers, gunicorn's).
fn tree_ticks(root: u32) -> Res<u64> {
    let mut procs: Vec<(u32, u32, u64)> = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, ticks)) = proc_times(pid) {
            procs.push((pid, ppid, ticks));
        }
    }
    let mut tree = vec![root];
    let mut total = 0;
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        for (pid, ppid, ticks) in &procs {
            if *pid == p {
                total += ticks;
            }
            if *ppid == p && !tree.contains(pid) {
                tree.push(*pid);
            }
        }
        i += 1;
    }
    if !procs.iter().any(|(pid, _, _)| *pid == root) {
        return Err(format!("process {root} is gone").into());
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// wrk.

/// A request shape for wrk: method, path, headers, body.
#[derive(Clone)]
struct Shape {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Shape {
    fn get(path: &str, headers: &[(&str, &str)]) -> Shape {
        Shape {
            method: "GET",
            path: path.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: String::new(),
        }
    }

    fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Shape {
        let mut s = Shape::get(path, headers);
        s.method = "POST";
        s.body = body.to_owned();
        s
    }

    fn lua(&self) -> String {
        let mut l = format!("wrk.method = \"{}\"\n", self.method);
        if !self.body.is_empty() {
            l.push_str(&format!("wrk.body = [==[{}]==]\n", self.body));
        }
        for (k, v) in &self.headers {
            l.push_str(&format!("wrk.headers[\"{k}\"] = [==[{v}]==]\n"));
        }
        l
    }
}

#[derive(Clone, Copy, Default)]
struct Stats {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    /// CPU time (user + system) the measured process tree spent per request, in µs, when
    /// one was named ([`Wrk::run_counting`]).
    cpu_us: Option<f64>,
}

fn parse_ms(v: &str) -> Option<f64> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * scale)
}

fn parse_wrk(out: &str) -> Res<Stats> {
    let mut s = Stats::default();
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("50%") {
            s.p50_ms = parse_ms(v).ok_or("bad p50")?;
        } else if let Some(v) = t.strip_prefix("99%") {
            s.p99_ms = parse_ms(v).ok_or("bad p99")?;
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            s.rps = v.trim().parse()?;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            s.non_2xx = v.trim().parse()?;
        } else if t.contains("requests in") {
            s.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    if s.rps == 0.0 {
        return Err(format!("could not read wrk's output:\n{out}").into());
    }
    Ok(s)
}

struct Wrk<'a> {
    dir: &'a Path,
    threads: u32,
}

impl Wrk<'_> {
    /// A warm-up of 2 s (discarded), then the measured run.
    fn run(&self, port: u16, shape: &Shape, conns: u32, secs: u64) -> Res<Stats> {
        self.run_counting(port, shape, conns, secs, None)
    }

    /// [`Wrk::run`], counting the CPU time the process tree of `pid` spends during the
    /// measured part, per request.
    fn run_counting(
        &self,
        port: u16,
        shape: &Shape,
        conns: u32,
        secs: u64,
        pid: Option<u32>,
    ) -> Res<Stats> {
        let script = self.dir.join(format!("wrk-{port}-{}.lua", shape.method));
        std::fs::write(&script, shape.lua())?;
        let url = format!("http://127.0.0.1:{port}{}", shape.path);
        let once = |d: u64| -> Res<Stats> {
            let out = Command::new("wrk")
                .args(["-t", &self.threads.min(conns).to_string()])
                .args(["-c", &conns.to_string()])
                .args(["-d", &format!("{d}s")])
                .arg("--latency")
                .args(["-s", &script.display().to_string()])
                .arg(&url)
                .output()
                .map_err(|e| format!("cannot run wrk: {e}"))?;
            parse_wrk(&String::from_utf8_lossy(&out.stdout))
        };
        once(2)?;
        let before = pid.map(tree_ticks).transpose()?;
        let mut s = once(secs)?;
        if let (Some(pid), Some(before)) = (pid, before) {
            let spent = tree_ticks(pid)?.saturating_sub(before) as f64 / clock_ticks();
            s.cpu_us = Some(spent * 1e6 / s.requests.max(1) as f64);
        }
        if s.non_2xx > 0 {
            return Err(format!(
                "{} {url}: {} of {} answers were not 2xx/3xx: the measurement is void",
                shape.method, s.non_2xx, s.requests
            )
            .into());
        }
        Ok(s)
    }

    /// Start a background wrk (for load alongside a measurement).
    fn background(&self, port: u16, shape: &Shape, conns: u32, secs: u64) -> Res<Child> {
        let script = self.dir.join(format!("wrk-bg-{port}.lua"));
        std::fs::write(&script, shape.lua())?;
        Ok(Command::new("wrk")
            .args([
                "-t",
                "1",
                "-c",
                &conns.to_string(),
                "-d",
                &format!("{secs}s"),
            ])
            .args(["-s", &script.display().to_string()])
            .arg(format!("http://127.0.0.1:{port}{}", shape.path))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?)
    }

    /// What a background wrk did, once it has finished.
    fn finished(child: Child) -> Res<Stats> {
        parse_wrk(&String::from_utf8_lossy(&child.wait_with_output()?.stdout))
    }
}

// ---------------------------------------------------------------------------------------------
// The systems under test.

fn nginx(dir: &Path, name: &str, server_block: &str, workers: &str) -> Res<Proc> {
    let prefix = dir.join(name);
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes {workers};\ndaemon off;\npid {pid};\nerror_log stderr warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {tmp};\n  proxy_temp_path {tmp};\n\
             {server_block}\n}}\n",
            pid = prefix.join("nginx.pid").display(),
            tmp = prefix.display(),
        ),
    )?;
    Proc::spawn(
        name,
        Command::new("nginx")
            .args(["-p", &prefix.display().to_string()])
            .args(["-c", &conf.display().to_string()]),
        &prefix.join("out.log"),
    )
}

/// nginx as a bare hop: `proxy_pass` on `port` to `upstream`, keeping upstream connections
/// alive where the upstream lets it, one worker per core.
fn nginx_proxy(dir: &Path, name: &str, upstream: u16, port: u16) -> Res<Proc> {
    nginx(
        dir,
        name,
        &format!(
            "upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n\
             server {{ listen 127.0.0.1:{port} backlog=4096; keepalive_requests 100000; \
             location / {{ proxy_pass http://app; proxy_http_version 1.1; \
             proxy_set_header Connection \"\"; }} }}"
        ),
        "auto",
    )
}

/// A dashgate with its own state directory.
struct Gate {
    proc: Proc,
    port: u16,
}

fn gate_env(dir: &Path) -> Vec<(String, String)> {
    vec![
        (
            "DASHGATE_DATABASE_URL".into(),
            format!("sqlite://{}", dir.join("dashgate.db").display()),
        ),
        (
            "DASHGATE_KEYS_DIR".into(),
            dir.join("keys").display().to_string(),
        ),
        ("DASHGATE_LOG".into(), "warn".into()),
        ("DASHGATE_TOKEN_ACCESS_TTL".into(), "2h".into()),
    ]
}

fn cli(dir: &Path, args: &[&str], stdin: Option<&str>) -> Res<()> {
    let mut c = Command::new(BIN);
    c.args(args)
        .envs(gate_env(dir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn()?;
    if let (Some(mut pipe), Some(s)) = (child.stdin.take(), stdin) {
        pipe.write_all(s.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "dashgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// A policy of `n` rules: many sections for other roles, the one the benchmark hits, public
/// assets, and a `dash_outputs` rule.
fn policy(n: usize) -> String {
    let mut p = String::from("default = \"authenticated\"\n\n");
    p.push_str("[[rule]]\npaths = [\"/assets/**\"]\npublic = true\n\n");
    p.push_str("[[rule]]\ndash_outputs = [\"salary-*\"]\npermissions = [\"salaries:read\"]\n\n");
    for i in 0..n.saturating_sub(3) {
        p.push_str(&format!(
            "[[rule]]\npaths = [\"/section-{i}/**\", \"/team-{i}/*/report\"]\nroles = [\"role-{i}\"]\n\n"
        ));
    }
    p.push_str("[[rule]]\npaths = [\"/reports/**\"]\npermissions = [\"reports:read\"]\n");
    p
}

/// Set up a state directory with the role and user the benchmarks use.
fn gate_state(dir: &Path) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    cli(
        dir,
        &[
            "roles",
            "add",
            "analyst",
            "--perm",
            "reports:read",
            "--perm",
            "salaries:read",
        ],
        None,
    )?;
    cli(
        dir,
        &[
            "users",
            "add",
            "alice",
            "--role",
            "analyst",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    )
}

fn gate(dir: &Path, upstream: u16, rules: usize, extra: &[(&str, &str)]) -> Res<Gate> {
    let g = spawn_gate(dir, upstream, rules, extra)?;
    wait_ready(
        g.port,
        "/auth/healthz",
        200,
        "dashgate",
        &dir.join("gateway.log"),
    )?;
    Ok(g)
}

/// Start a dashgate without waiting for it.
fn spawn_gate(dir: &Path, upstream: u16, rules: usize, extra: &[(&str, &str)]) -> Res<Gate> {
    let port = free_port()?;
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, policy(rules))?;
    let mut c = Command::new(BIN);
    c.arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &format!("http://127.0.0.1:{upstream}")])
        .args(["--policy", &policy_file.display().to_string()])
        .envs(gate_env(dir))
        .envs(extra.iter().map(|(k, v)| (*k, *v)));
    let proc = Proc::spawn("dashgate", &mut c, &dir.join("gateway.log"))?;
    Ok(Gate { proc, port })
}

/// A signed-in browser session: the `Cookie` header and the CSRF token.
fn session(g: &Gate) -> Res<(String, String)> {
    let body = format!("{{\"username\":\"alice\",\"password\":\"{PASSWORD}\"}}");
    let a = http(
        g.port,
        "POST",
        "/auth/login",
        &[("Content-Type", "application/json")],
        &body,
    )?;
    if a.status != 200 {
        return Err(format!("login answered {}: {}", a.status, a.body).into());
    }
    let v: serde_json::Value = serde_json::from_str(&a.body)?;
    let access = v["access_token"].as_str().ok_or("no access_token")?;
    let cookie = format!("__Host-dashgate-access={access}");
    // The first request repairs the missing CSRF cookie; take it from there.
    let a = http(
        g.port,
        "GET",
        "/reports/q3",
        &[("Cookie", &cookie), ("Accept", "application/json")],
        "",
    )?;
    let csrf = a
        .set_cookies()
        .get("_csrf_token")
        .cloned()
        .ok_or("no CSRF cookie")?;
    Ok((format!("{cookie}; _csrf_token={csrf}"), csrf))
}

fn gunicorn(dir: &Path, name: &str, app: &str, env: &[(&str, &str)]) -> Res<(Proc, u16)> {
    let port = free_port()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("BENCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    let log = dir.join(format!("{name}.log"));
    let workers = (2 * std::thread::available_parallelism().map_or(2, |n| n.get()) + 1).to_string();
    let proc = Proc::spawn(
        name,
        Command::new(python)
            .args(["-m", "gunicorn", "--workers", &workers, "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--chdir", &root.join("benches/apps").display().to_string()])
            .arg(app)
            .envs(env.iter().map(|(k, v)| (*k, *v))),
        &log,
    )?;
    Ok((proc, port))
}

const DASH_BODY: &str = r#"{"output":"salary-greeting.children","outputs":{"id":"salary-greeting","property":"children"},"inputs":[{"id":"name","property":"value","value":"world"}],"changedPropIds":["name.value"],"state":[]}"#;

fn redis_commands(port: u16) -> Res<u64> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "commandstats"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum())
}

// ---------------------------------------------------------------------------------------------
// The run.

struct Row {
    key: &'static str,
    what: String,
    stats: Stats,
}

fn fmt_row(r: &Row) -> String {
    let cpu = r
        .stats
        .cpu_us
        .map_or_else(|| "—".to_owned(), |us| format!("{us:.0}"));
    format!(
        "| {} | {} | {:.0} | {:.2} | {:.2} | {cpu} |",
        r.key, r.what, r.stats.rps, r.stats.p50_ms, r.stats.p99_ms
    )
}

fn main() -> Res<()> {
    let cfg = settings()?;
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let wrk = Wrk {
        dir,
        threads: cfg.threads,
    };
    let (c, d) = (cfg.connections, cfg.duration);
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    // `cpu`: the process whose CPU time per request is reported (the gateway, or nginx).
    let mut measure =
        |key: &'static str, what: &str, port: u16, shape: &Shape, cpu: Option<u32>| -> Res<Stats> {
            eprintln!("==> ({key}) {what}");
            let stats = wrk.run_counting(port, shape, c, d, cpu)?;
            eprintln!(
                "    {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, CPU {} µs/req",
                stats.rps,
                stats.p50_ms,
                stats.p99_ms,
                stats.cpu_us.map_or("-".to_owned(), |us| format!("{us:.0}"))
            );
            rows.push(Row {
                key,
                what: what.to_owned(),
                stats,
            });
            Ok(stats)
        };

    // The trivial upstream: nginx answering 200 from memory, one worker.
    let up_port = free_port()?;
    let upstream = nginx(
        dir,
        "upstream",
        &format!(
            "server {{ listen 127.0.0.1:{up_port} backlog=4096; keepalive_requests 100000; \
             location / {{ return 200 \"ok\\n\"; }} }}"
        ),
        "1",
    )?;
    wait_ready(
        up_port,
        "/",
        200,
        "nginx upstream",
        &dir.join("upstream/out.log"),
    )?;
    let a = measure(
        "a",
        "upstream directly (nginx `return 200`)",
        up_port,
        &Shape::get("/reports/q3", &[]),
        Some(upstream.pid()),
    )?;

    let px_port = free_port()?;
    let proxy = nginx_proxy(dir, "proxy", up_port, px_port)?;
    wait_ready(px_port, "/", 200, "nginx proxy", &dir.join("proxy/out.log"))?;
    let b = measure(
        "b",
        "nginx `proxy_pass`, upstream keepalive, no auth",
        px_port,
        &Shape::get("/reports/q3", &[]),
        Some(proxy.pid()),
    )?;

    let gdir = dir.join("gate");
    gate_state(&gdir)?;
    let g = gate(&gdir, up_port, 100, &[])?;
    let (cookie, csrf) = session(&g)?;
    let idle_rss = rss_kib(g.proc.pid())?;
    let cs = measure(
        "c",
        "dashgate, authenticated GET (cookie JWT), 100-rule policy",
        g.port,
        &Shape::get(
            "/reports/q3",
            &[("Cookie", &cookie), ("Accept", "application/json")],
        ),
        Some(g.proc.pid()),
    )?;
    let callback = Shape::post(
        "/_dash-update-component",
        &[
            ("Cookie", &cookie),
            ("X-CSRFToken", &csrf),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ],
        DASH_BODY,
    );
    measure(
        "d",
        "dashgate, Dash callback POST, `dash_outputs` rule + CSRF",
        g.port,
        &callback,
        Some(g.proc.pid()),
    )?;

    // (e) The Flask stack, with its own Redis for the blocklist.
    let redis_port = free_port()?;
    let _redis = Proc::spawn(
        "redis",
        Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--dir", &dir.display().to_string()]),
        &dir.join("redis.log"),
    )?;
    let redis_deadline = Instant::now() + Duration::from_secs(30);
    while redis_commands(redis_port).is_err() && Instant::now() < redis_deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let secret = format!("{:x}", std::process::id() as u64 * 0x9e37_79b9_7f4a_7c15);
    let rp = redis_port.to_string();
    let (flask, flask_port) = gunicorn(
        dir,
        "flask",
        "flask_jwt:app",
        &[("BENCH_JWT_SECRET", &secret), ("BENCH_REDIS_PORT", &rp)],
    )?;
    wait_ready(
        flask_port,
        "/protected",
        401,
        "Flask app",
        &dir.join("flask.log"),
    )?;
    let login = http(flask_port, "POST", "/login", &[], "")?;
    let flask_cookie = login
        .set_cookies()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let e = measure(
        "e",
        "Flask + Flask-JWT-Extended (cookie JWT + CSRF, Redis blocklist), gunicorn",
        flask_port,
        &Shape::get("/protected", &[("Cookie", &flask_cookie)]),
        Some(flask.pid()),
    )?;

    // (f) A Dash app's callback: alone, behind dashgate, with dash-auth.
    let (dash, dash_port) = gunicorn(dir, "dash", "dash_callback:server", &[])?;
    wait_ready(
        dash_port,
        "/_dash-layout",
        200,
        "Dash app",
        &dir.join("dash.log"),
    )?;
    let plain_cb = Shape::post(
        "/_dash-update-component",
        &[("Content-Type", "application/json")],
        DASH_BODY,
    );
    let f_alone = measure(
        "f1",
        "Dash callback, gunicorn alone",
        dash_port,
        &plain_cb,
        Some(dash.pid()),
    )?;
    let g2dir = dir.join("gate-dash");
    gate_state(&g2dir)?;
    let g2 = gate(&g2dir, dash_port, 100, &[])?;
    let (cookie2, csrf2) = session(&g2)?;
    let behind = Shape::post(
        "/_dash-update-component",
        &[
            ("Cookie", &cookie2),
            ("X-CSRFToken", &csrf2),
            ("Content-Type", "application/json"),
        ],
        DASH_BODY,
    );
    let f_gate = measure(
        "f2",
        "Dash callback behind dashgate (cookie session + CSRF)",
        g2.port,
        &behind,
        Some(g2.proc.pid()),
    )?;
    let (dash_auth, dash_auth_port) = gunicorn(
        dir,
        "dash-auth",
        "dash_callback:server",
        &[
            ("BENCH_DASH_AUTH", "1"),
            ("BENCH_DASH_PASSWORD", "bench-password"),
        ],
    )?;
    wait_ready(
        dash_auth_port,
        "/_dash-layout",
        401,
        "Dash app with dash-auth",
        &dir.join("dash-auth.log"),
    )?;
    let basic = Shape::post(
        "/_dash-update-component",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ="),
        ],
        DASH_BODY,
    );
    let f_auth = measure(
        "f3",
        "Dash callback with dash-auth BasicAuth",
        dash_auth_port,
        &basic,
        Some(dash_auth.pid()),
    )?;
    // The hop anchor for (f): nginx as a bare proxy in front of the same Dash app. gunicorn's
    // sync workers close every connection, so neither hop can keep one to the app.
    let nd_port = free_port()?;
    let nginx_dash = nginx_proxy(dir, "proxy-dash", dash_port, nd_port)?;
    wait_ready(
        nd_port,
        "/_dash-layout",
        200,
        "nginx in front of the Dash app",
        &dir.join("proxy-dash/out.log"),
    )?;
    let f_nginx = measure(
        "f4",
        "Dash callback behind nginx `proxy_pass` (bare hop, no auth)",
        nd_port,
        &plain_cb,
        Some(nginx_dash.pid()),
    )?;
    drop(nginx_dash);
    drop(g2);

    // A Dash page's burst of callbacks over TLS: HTTP/1.1 on six connections against HTTP/2
    // on one, in front of the trivial upstream and of the Dash app, each with the state (and
    // so the session) of the plain gateway measured above.
    let bursts = if cfg.quick { 60 } else { 300 };
    eprintln!("==> callback bursts over TLS: {bursts} bursts of {BURST}");
    let (cert_file, key_file, ca) = burst::certificate(dir)?;
    let (cert_file, key_file) = (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    let tls_env = [
        ("DASHGATE_TLS_CERT_FILE", cert_file.as_str()),
        ("DASHGATE_TLS_KEY_FILE", key_file.as_str()),
    ];
    let mut burst_rows: Vec<(&str, Wire, burst::Timing, f64)> = Vec::new();
    for (upstream_name, state, upstream, shape) in [
        ("trivial upstream", &gdir, up_port, &callback),
        ("Dash app", &g2dir, dash_port, &behind),
    ] {
        let gt = spawn_gate(state, upstream, 100, &tls_env)?;
        burst::ready(gt.port, &ca, &state.join("gateway.log"))?;
        for wire in [Wire::Http1, Wire::Http2] {
            let mut ticks = Vec::new();
            let timing = burst::measure(gt.port, &ca, wire, shape, BURST, bursts, || {
                ticks.push(tree_ticks(gt.proc.pid())?);
                Ok(())
            })?;
            let spent = ticks.get(1).zip(ticks.first()).map_or(0, |(b, a)| b - a);
            let cpu = spent as f64 / clock_ticks() * 1e6 / (BURST * bursts) as f64;
            eprintln!(
                "    {upstream_name}, {}: median {:.2} ms, p90 {:.2} ms, CPU {cpu:.0} µs/req",
                wire.name(),
                timing.median_ms,
                timing.p90_ms
            );
            burst_rows.push((upstream_name, wire, timing, cpu));
        }
    }

    // Redis commands per authenticated request, with Redis as dashgate's state store.
    eprintln!("==> Redis commands per authenticated request");
    let g3dir = dir.join("gate-redis");
    gate_state(&g3dir)?;
    let store = format!("redis://127.0.0.1:{redis_port}/1");
    let g3 = gate(&g3dir, up_port, 100, &[("DASHGATE_STORE_URL", &store)])?;
    let (cookie3, _) = session(&g3)?;
    let before = redis_commands(redis_port)?;
    let r3 = wrk.run(
        g3.port,
        &Shape::get("/reports/q3", &[("Cookie", &cookie3)]),
        c,
        d,
    )?;
    let after = redis_commands(redis_port)?;
    let per_request = (after - before) as f64 / r3.requests.max(1) as f64;
    eprintln!(
        "    {} commands over {} requests ({per_request:.4} per request)",
        after - before,
        r3.requests
    );
    drop(g3);

    // Memory: idle, then across a soak.
    eprintln!("==> soak: {} s of authenticated GETs", cfg.soak);
    let get_c = Shape::get(
        "/reports/q3",
        &[("Cookie", &cookie), ("Accept", "application/json")],
    );
    wrk.run(g.port, &get_c, c, 5)?;
    let rss_warm = rss_kib(g.proc.pid())?;
    wrk.run(g.port, &get_c, c, cfg.soak)?;
    let rss_after = rss_kib(g.proc.pid())?;
    eprintln!("    RSS idle {idle_rss} KiB, warm {rss_warm} KiB, after soak {rss_after} KiB");

    // Login storm: 64 logins at a time, continuously, beside authenticated traffic; at the
    // default hashing priority, then at the others (`limits.password_hash_priority`).
    let login_shape = Shape::post(
        "/auth/login",
        &[("Content-Type", "application/json")],
        &format!("{{\"username\":\"alice\",\"password\":\"{PASSWORD}\"}}"),
    );
    // Quiet, then the storm: it runs through the measurement's own 2 s warm-up and its whole
    // measured part. Returns (quiet, beside the storm, the storm's logins).
    let storm_run = |port: u16, get: &Shape| -> Res<(Stats, Stats, Stats)> {
        let quiet = wrk.run(port, get, 16, d)?;
        let storm = wrk.background(port, &login_shape, 64, d + 3)?;
        let stormy = wrk.run(port, get, 16, d)?;
        let logins = Wrk::finished(storm)?;
        eprintln!(
            "    p99 {:.2} ms quiet, {:.2} ms during the storm; the storm: {} logins ({:.0}/s), {} not 2xx/3xx",
            quiet.p99_ms, stormy.p99_ms, logins.requests, logins.rps, logins.non_2xx
        );
        Ok((quiet, stormy, logins))
    };
    eprintln!("==> login storm");
    let (quiet, stormy, logins) = storm_run(g.port, &get_c)?;
    drop(g);
    let mut storms_by_priority = vec![("low (the default)", (quiet, stormy, logins))];
    for priority in ["idle", "normal"] {
        eprintln!("==> login storm, password hashing at priority {priority}");
        let gp = gate(
            &gdir,
            up_port,
            100,
            &[("DASHGATE_LIMITS_PASSWORD_HASH_PRIORITY", priority)],
        )?;
        let (cookie_p, _) = session(&gp)?;
        let get_p = Shape::get(
            "/reports/q3",
            &[("Cookie", &cookie_p), ("Accept", "application/json")],
        );
        storms_by_priority.push((priority, storm_run(gp.port, &get_p)?));
    }

    // Scale: a large revocation set and a large policy.
    eprintln!(
        "==> scale: {} revocations, {} rules",
        cfg.revocations, cfg.big_policy
    );
    let g4dir = dir.join("gate-scale");
    gate_state(&g4dir)?;
    {
        let mut db = rusqlite::Connection::open(g4dir.join("dashgate.db"))?;
        let tx = db.transaction()?;
        {
            let mut st = tx.prepare("INSERT INTO revocations (kind, value, created_at, expires_at) VALUES ('jti', ?1, 0, 4102444800)")?;
            for i in 0..cfg.revocations {
                st.execute([format!("bench-revoked-{i:08}")])?;
            }
        }
        tx.commit()?;
    }
    let g4 = gate(&g4dir, up_port, cfg.big_policy, &[])?;
    let (cookie4, _) = session(&g4)?;
    let scale_rss = rss_kib(g4.proc.pid())?;
    let scaled = wrk.run(
        g4.port,
        &Shape::get("/reports/q3", &[("Cookie", &cookie4)]),
        c,
        d,
    )?;
    eprintln!(
        "    {:.0} req/s, p99 {:.2} ms, RSS {scale_rss} KiB",
        scaled.rps, scaled.p99_ms
    );
    drop(g4);

    // Report.
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    let checks = vec![
        (
            "(c) ≥ 0.9× nginx req/s".to_owned(),
            ratio(cs.rps, b.rps),
            ratio(cs.rps, b.rps) >= 0.9,
        ),
        (
            "(c) p99 ≤ 1.3× nginx p99".to_owned(),
            ratio(cs.p99_ms, b.p99_ms),
            ratio(cs.p99_ms, b.p99_ms) <= 1.3,
        ),
        (
            "(c) ≥ 15× the Flask stack".to_owned(),
            ratio(cs.rps, e.rps),
            ratio(cs.rps, e.rps) >= 15.0,
        ),
        (
            "(f) behind dashgate ≥ 0.95× Dash alone".to_owned(),
            ratio(f_gate.rps, f_alone.rps),
            ratio(f_gate.rps, f_alone.rps) >= 0.95,
        ),
        (
            "(f) behind dashgate / behind nginx's bare hop (f2 / f4) ≥ 1".to_owned(),
            ratio(f_gate.rps, f_nginx.rps),
            ratio(f_gate.rps, f_nginx.rps) >= 1.0,
        ),
        (
            "(c) CPU per request / nginx's (c / b) ≤ 1".to_owned(),
            ratio(cs.cpu_us.unwrap_or(0.0), b.cpu_us.unwrap_or(0.0)),
            matches!((cs.cpu_us, b.cpu_us), (Some(x), Some(y)) if x <= y),
        ),
        (
            "(f) CPU per callback / nginx's (f2 / f4) ≤ 1".to_owned(),
            ratio(f_gate.cpu_us.unwrap_or(0.0), f_nginx.cpu_us.unwrap_or(0.0)),
            matches!((f_gate.cpu_us, f_nginx.cpu_us), (Some(x), Some(y)) if x <= y),
        ),
        (
            "(f) dash-auth / Dash alone (reference, ~0.8×)".to_owned(),
            ratio(f_auth.rps, f_alone.rps),
            true,
        ),
        (
            "Redis commands per authenticated request = 0".to_owned(),
            per_request,
            per_request == 0.0,
        ),
        (
            "idle RSS ≤ 20 MB (MiB)".to_owned(),
            idle_rss as f64 / 1024.0,
            idle_rss <= 20 * 1024,
        ),
        (
            format!("RSS growth over a {} s soak (MiB)", cfg.soak),
            (rss_after as f64 - rss_warm as f64) / 1024.0,
            rss_after <= rss_warm + 2 * 1024,
        ),
        (
            "login storm: p99 ≤ 2× quiet p99".to_owned(),
            ratio(stormy.p99_ms, quiet.p99_ms),
            ratio(stormy.p99_ms, quiet.p99_ms) <= 2.0,
        ),
        (
            format!(
                "scale: req/s with {} revocations and {} rules / (c)",
                cfg.revocations, cfg.big_policy
            ),
            ratio(scaled.rps, cs.rps),
            ratio(scaled.rps, cs.rps) >= 0.9,
        ),
        (
            format!("scale: RSS with {} revocations (MiB)", cfg.revocations),
            scale_rss as f64 / 1024.0,
            true,
        ),
    ];
    notes.push(
        "CPU µs/req: user + system time of the process named in the row (with its children: \
         nginx's workers, gunicorn's) during the measured part, divided by the requests served; \
         for (a)–(d) and (f2) the proxy alone, for (e), (f1) and (f3) the whole app."
            .to_owned(),
    );
    notes.push(format!(
        "Proxy cost beside the bare upstream (a): nginx keeps {:.2}× of its req/s, dashgate {:.2}×.",
        ratio(b.rps, a.rps),
        ratio(cs.rps, a.rps)
    ));
    notes.push(format!(
        "Dash app (f): alone {:.0} req/s; behind nginx's bare hop {:.0} ({:.2}×, {:.0} µs of nginx CPU per callback); behind dashgate {:.0} ({:.2}×, {:.0} µs of dashgate CPU per callback).",
        f_alone.rps,
        f_nginx.rps,
        ratio(f_nginx.rps, f_alone.rps),
        f_nginx.cpu_us.unwrap_or(0.0),
        f_gate.rps,
        ratio(f_gate.rps, f_alone.rps),
        f_gate.cpu_us.unwrap_or(0.0)
    ));
    notes.push(format!(
        "Login storm: p99 of authenticated GETs (16 connections) {:.2} ms quiet, {:.2} ms beside 64 concurrent logins; {:.0} req/s quiet, {:.0} req/s in the storm; the storm's {} logins ({:.1}/s, {} answered other than 2xx/3xx).",
        quiet.p99_ms, stormy.p99_ms, quiet.rps, stormy.rps, logins.requests, logins.rps, logins.non_2xx
    ));
    notes.push(format!(
        "Login storm by `limits.password_hash_priority` (p99 quiet → beside the storm, the storm's logins): {}.",
        storms_by_priority
            .iter()
            .map(|(p, (q, s, l))| format!(
                "{p} {:.2} → {:.2} ms ({:.2}×), {} logins",
                q.p99_ms,
                s.p99_ms,
                ratio(s.p99_ms, q.p99_ms),
                l.requests
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    notes.push(format!(
        "Memory: RSS {idle_rss} KiB idle after start and one login, {rss_warm} KiB after a 5 s warm-up, {rss_after} KiB after the {} s soak.",
        cfg.soak
    ));
    notes.push(format!(
        "Redis: {} commands during {} authenticated requests with `store = redis://…`.",
        after - before,
        r3.requests
    ));
    notes.push(format!(
        "Scale: {} revocations and a {}-rule policy: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, RSS {} KiB.",
        cfg.revocations, cfg.big_policy, scaled.rps, scaled.p50_ms, scaled.p99_ms, scale_rss
    ));

    let machine = machine();
    let command = format!(
        "scripts/bench{}",
        std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .map(|a| format!(" {a}"))
            .collect::<String>()
    );
    let mut md = String::new();
    md.push_str(&format!(
        "Measured {} on {machine}, with `{command}` (wrk: {} threads, {} connections, {} s after a 2 s warm-up, loopback). Whole run: {:.0} s.\n\n",
        today(),
        cfg.threads,
        cfg.connections,
        cfg.duration,
        started.elapsed().as_secs_f64()
    ));
    md.push_str("| | system | req/s | p50 ms | p99 ms | CPU µs/req |\n| --- | --- | ---: | ---: | ---: | ---: |\n");
    for r in &rows {
        md.push_str(&fmt_row(r));
        md.push('\n');
    }
    md.push_str(&format!(
        "\nA Dash page's burst of {BURST} callbacks at once over TLS, {bursts} bursts on warm connections (a browser opens at most {} HTTP/1.1 connections to one host):\n\n| in front of | protocol | burst median ms | burst p90 ms | CPU µs/req |\n| --- | --- | ---: | ---: | ---: |\n",
        burst::BROWSER_CONNECTIONS
    ));
    for (upstream_name, wire, t, cpu) in &burst_rows {
        md.push_str(&format!(
            "| {upstream_name} | {} | {:.2} | {:.2} | {cpu:.0} |\n",
            wire.name(),
            t.median_ms,
            t.p90_ms
        ));
    }
    md.push_str("\n| target | measured | met |\n| --- | ---: | :---: |\n");
    for (what, value, ok) in &checks {
        md.push_str(&format!(
            "| {what} | {value:.3} | {} |\n",
            if *ok { "yes" } else { "**no**" }
        ));
    }
    md.push('\n');
    for n in &notes {
        md.push_str(&format!("- {n}\n"));
    }
    let out = std::env::var("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-latest.md"));
    let existing = std::fs::read_to_string(&out).unwrap_or_default();
    std::fs::write(&out, splice(&existing, &md))?;
    println!("{md}");
    eprintln!("written to {}", out.display());
    Ok(())
}

const BEGIN: &str = "<!-- results: written by benches/compare.rs -->";
const END: &str = "<!-- end of results -->";

/// Put the results between the markers of an existing report, keeping what is written around
/// them; a report without markers is replaced.
fn splice(existing: &str, results: &str) -> String {
    let block = format!("{BEGIN}\n{}\n{END}", results.trim_end());
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &existing[..b], &existing[e + END.len()..])
        }
        _ => format!("{block}\n"),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {}", kernel.trim())
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
