"""Fixtures for the dashgate browser test.

Starts, once per session:
  * the example Dash app (examples/dash_app/app.py) on a free loopback port,
    with DASHGATE_JWKS_URL pointing at the gateway's /auth/jwks.json,
  * the dashgate gateway in front of it (binary from $DASHGATE_BIN, default
    target/debug/dashgate) with the example's policy
    (examples/dash_app/policy.toml), a fresh SQLite database and key directory
    in a temp dir, the roles of the quickstart (admin: salaries:read +
    reports:read, viewer: reports:read) and two users (admin/admin,
    viewer/viewer) with random passwords given on stdin,
  * a real OpenID provider (tests/oidc/provider.mjs: the npm package
    oidc-provider on Node) with two accounts, ana (group dash-admins) and vic
    (group dash-viewers); the gateway offers "Sign in with Test IdP" and maps
    those groups to the admin and viewer roles,
and, per test, a fresh headless Chromium (Debian's /usr/bin/chromium and
/usr/bin/chromedriver) with its own profile.

Environment:
  DASHGATE_BIN        gateway binary (default: <repo>/target/debug/dashgate)
  DASH_PYTHON         interpreter for the Dash app (default: this interpreter)
  CHROMIUM_BIN        default /usr/bin/chromium
  CHROMEDRIVER_BIN    default /usr/bin/chromedriver
  NODE_BIN            default: node on PATH
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DASH_APP = REPO_ROOT / "examples" / "dash_app" / "app.py"
POLICY = REPO_ROOT / "examples" / "dash_app" / "policy.toml"
OIDC_DIR = REPO_ROOT / "tests" / "oidc"
# Accounts at the test OpenID provider: username -> groups (the gateway maps the groups).
SSO_ACCOUNTS = {"ana": ["dash-admins"], "vic": ["dash-viewers"]}
# role -> permissions, as scripts/quickstart creates them
ROLE_PERMISSIONS = {
    "admin": ["salaries:read", "reports:read"],
    "viewer": ["reports:read"],
}

STARTUP_DEADLINE = 30.0  # seconds, for both the Dash app and the gateway
CLI_TIMEOUT = 60.0

# Log files of the processes we start; appended to every failing test's report.
_LOGS: dict[str, Path] = {}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_log(path: Path, limit: int = 20000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return text if len(text) <= limit else "...\n" + text[-limit:]


def all_logs() -> str:
    return "\n".join(f"===== {name} ({p}) =====\n{read_log(p)}" for name, p in _LOGS.items())


def wait_until_ready(url: str, proc: subprocess.Popen, what: str, expect_status: int | None = None) -> None:
    """Poll `url` until it answers (with `expect_status` if given) or the deadline passes."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {proc.returncode}\n{all_logs()}")
        try:
            r = requests.get(url, timeout=2, allow_redirects=False)
            last = f"HTTP {r.status_code}: {r.text[:300]!r}"
            if expect_status is None or r.status_code == expect_status:
                return
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.1)  # poll interval, not a readiness assumption
    raise RuntimeError(f"{what} not ready at {url} within {STARTUP_DEADLINE}s (last: {last})\n{all_logs()}")


def stop(proc: subprocess.Popen | None) -> None:
    """Terminate a process we started (its own process group), then kill if needed."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------
# session fixtures: Dash app, users, gateway
# ---------------------------------------------------------------------------


@dataclass
class Gateway:
    url: str  # e.g. http://127.0.0.1:41234
    dash_url: str
    workdir: Path
    passwords: dict[str, str] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    jwks_url: str = ""
    provider: "Provider | None" = None


@dataclass
class Provider:
    issuer: str
    passwords: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def gateway_bin() -> Path:
    raw = os.environ.get("DASHGATE_BIN", "target/debug/dashgate")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"gateway binary not found or not executable: {path} "
            "(build it with `cargo build`, or set DASHGATE_BIN)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="dashgate-browser-"))
    yield d
    if os.environ.get("KEEP_TMP"):
        print(f"\nkept temp dir {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def gateway_port() -> int:
    """Chosen before the Dash app starts: the app needs the gateway's JWKS URL."""
    return free_port()


@pytest.fixture(scope="session")
def dash_app(workdir: Path, gateway_port: int):
    port = free_port()
    while port == gateway_port:  # the gateway's port is not bound yet
        port = free_port()
    log = workdir / "dash-app.log"
    _LOGS["dash app"] = log
    env = dict(
        os.environ,
        DASH_PORT=str(port),
        PYTHONUNBUFFERED="1",
        # the app fetches the keys lazily, on the first current_user(verify=True)
        DASHGATE_JWKS_URL=f"http://127.0.0.1:{gateway_port}/auth/jwks.json",
    )
    python = os.environ.get("DASH_PYTHON", sys.executable)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [python, str(DASH_APP)],
            cwd=DASH_APP.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url + "/_dash-layout", proc, "Dash app", expect_status=200)
        yield url
    finally:
        stop(proc)


def _cli(gateway_bin: Path, workdir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    cmd = [str(gateway_bin), "--database", "sqlite://dashgate.db", *args]
    res = subprocess.run(
        cmd,
        cwd=workdir,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=dict(os.environ, DASHGATE_COOKIE_SECURE="false"),
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"`dashgate {' '.join(args)}` failed with code {res.returncode}\n"
            f"stdout: {res.stdout}\nstderr: {res.stderr}"
        )
    return res


@pytest.fixture(scope="session")
def oidc_provider(workdir: Path, gateway_port: int):
    """The npm `oidc-provider` on Node, with the gateway registered as a client."""
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefix", str(OIDC_DIR), "--no-audit", "--no-fund"],
            check=True, capture_output=True, timeout=600,
        )
    port = free_port()
    while port == gateway_port:
        port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    gateway = f"http://127.0.0.1:{gateway_port}"
    passwords = {name: secrets.token_urlsafe(12) for name in SSO_ACCOUNTS}
    (workdir / "oidc-client-secret").write_text(secrets.token_urlsafe(24) + "\n")
    config = {
        "port": port,
        "issuer": issuer,
        "keys_file": str(workdir / "oidc-keys.json"),
        "clients": [{
            "client_id": "dashgate",
            "client_secret": (workdir / "oidc-client-secret").read_text().strip(),
            "token_endpoint_auth_method": "client_secret_basic",
            "redirect_uris": [f"{gateway}/auth/oidc/callback"],
            "post_logout_redirect_uris": [f"{gateway}/auth/login"],
        }],
        "accounts": [
            {"sub": f"sub-{name}", "username": name, "password": passwords[name],
             "email": f"{name}@example.com", "name": name.title(), "groups": groups}
            for name, groups in SSO_ACCOUNTS.items()
        ],
    }
    config_file = workdir / "oidc-provider.json"
    config_file.write_text(json.dumps(config))
    log = workdir / "oidc-provider.log"
    _LOGS["oidc provider"] = log
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [os.environ.get("NODE_BIN", "node"), str(OIDC_DIR / "provider.mjs"), str(config_file)],
            cwd=OIDC_DIR,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(issuer + "/.well-known/openid-configuration", proc, "OpenID provider", expect_status=200)
        yield Provider(issuer=issuer, passwords=passwords)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def gateway(gateway_bin: Path, workdir: Path, dash_app: str, gateway_port: int, oidc_provider: Provider):
    passwords = {"admin": secrets.token_urlsafe(18), "viewer": secrets.token_urlsafe(18)}
    roles = {"admin": ["admin"], "viewer": ["viewer"]}
    for role, perms in ROLE_PERMISSIONS.items():
        _cli(gateway_bin, workdir, "roles", "add", role, *[a for p in perms for a in ("--perm", p)])
    for name, pw in passwords.items():
        role_args = [a for r in roles[name] for a in ("--role", r)]
        # password only on stdin, never on argv
        _cli(gateway_bin, workdir, "users", "add", name, *role_args, "--password-stdin", stdin=pw + "\n")

    port = gateway_port
    log = workdir / "gateway.stderr.log"
    _LOGS["gateway stderr"] = log
    env = dict(
        os.environ,
        DASHGATE_COOKIE_SECURE="false",  # plain HTTP on loopback
        RUST_BACKTRACE="1",
    )
    env.setdefault("RUST_LOG", "info")
    config_file = workdir / "dashgate.toml"
    config_file.write_text(
        f"""
[oidc]
issuer = "{oidc_provider.issuer}"
client_id = "dashgate"
client_secret_file = "{workdir / 'oidc-client-secret'}"
redirect_url = "http://127.0.0.1:{port}/auth/oidc/callback"
scopes = ["openid", "profile", "email", "groups"]
display_name = "Test IdP"
end_session = true

[oidc.claim_roles]
"dash-admins" = ["admin"]
"dash-viewers" = ["viewer"]
"""
    )
    cmd = [
        str(gateway_bin),
        "serve",
        "--config", str(config_file),
        "--listen", f"127.0.0.1:{port}",
        "--upstream", dash_app,
        "--database", "sqlite://dashgate.db",  # relative to cwd = workdir
        "--keys-dir", str(workdir / "keys"),
        "--policy", str(POLICY),
    ]
    with open(log, "wb") as err, open(workdir / "gateway.stdout.log", "wb") as out:
        _LOGS["gateway stdout"] = workdir / "gateway.stdout.log"
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url + "/auth/healthz", proc, "gateway", expect_status=200)
        yield Gateway(
            url=url,
            dash_url=dash_app,
            workdir=workdir,
            passwords=passwords,
            roles=roles,
            jwks_url=f"{url}/auth/jwks.json",
            provider=oidc_provider,
        )
    finally:
        stop(proc)


# ---------------------------------------------------------------------------
# per-test browser
# ---------------------------------------------------------------------------


@pytest.fixture
def driver(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    chromedriver = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
    for p in (chromium, chromedriver):
        if not os.access(p, os.X_OK):
            pytest.fail(f"{p} missing (apt-get install chromium chromium-driver)", pytrace=False)

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opts = Options()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    # Network events, so a test can read the answers the browser received (test_pruning.py).
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(executable_path=chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


# ---------------------------------------------------------------------------
# failure reporting: attach process logs and browser state
# ---------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    if _LOGS:
        rep.sections.append(("dashgate / dash app logs", all_logs()))
    drv = item.funcargs.get("driver") if hasattr(item, "funcargs") else None
    if drv is not None and rep.when == "call":
        try:
            rep.sections.append(
                ("browser", f"url: {drv.current_url}\ncookies: {drv.get_cookies()}\n\n{drv.page_source[:4000]}")
            )
        except Exception as e:  # the browser may be gone
            rep.sections.append(("browser", f"<unavailable: {e!r}>"))
