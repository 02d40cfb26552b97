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

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import (  # noqa: E402  (tests/processes.py, shared with tests/dash)
    LOGS,
    add_roles_and_users,
    all_logs,
    free_port,
    gateway_binary,
    start,
    start_chromium,
    start_gateway,
    stop,
    wait_until_ready,
)

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
    try:
        return gateway_binary()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


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
    env = dict(
        os.environ,
        DASH_PORT=str(port),
        PYTHONUNBUFFERED="1",
        # the app fetches the keys lazily, on the first current_user(verify=True)
        DASHGATE_JWKS_URL=f"http://127.0.0.1:{gateway_port}/auth/jwks.json",
    )
    python = os.environ.get("DASH_PYTHON", sys.executable)
    proc = start("dash app", [python, str(DASH_APP)], DASH_APP.parent, workdir / "dash-app.log", env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url + "/_dash-layout", proc, "Dash app", expect_status=200)
        yield url
    finally:
        stop(proc)


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
    node = os.environ.get("NODE_BIN", "node")
    cmd = [node, str(OIDC_DIR / "provider.mjs"), str(config_file)]
    proc = start("oidc provider", cmd, OIDC_DIR, workdir / "oidc-provider.log")
    try:
        wait_until_ready(issuer + "/.well-known/openid-configuration", proc, "OpenID provider", expect_status=200)
        yield Provider(issuer=issuer, passwords=passwords)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def gateway(gateway_bin: Path, workdir: Path, dash_app: str, gateway_port: int, oidc_provider: Provider):
    passwords = {"admin": secrets.token_urlsafe(18), "viewer": secrets.token_urlsafe(18)}
    roles = {"admin": ["admin"], "viewer": ["viewer"]}
    users = {name: (pw, roles[name]) for name, pw in passwords.items()}
    add_roles_and_users(gateway_bin, workdir, ROLE_PERMISSIONS, users)
    port = gateway_port
    config = f"""
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
    proc = start_gateway(gateway_bin, workdir, port, dash_app, POLICY, config)
    url = f"http://127.0.0.1:{port}"
    try:
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
    # Network events, so a test can read the answers the browser received (test_pruning.py).
    drv = start_chromium(tmp_path, logs=("performance",))
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
    if LOGS:
        rep.sections.append(("dashgate / dash app logs", all_logs()))
    drv = item.funcargs.get("driver") if hasattr(item, "funcargs") else None
    if drv is not None and rep.when == "call":
        try:
            rep.sections.append(
                ("browser", f"url: {drv.current_url}\ncookies: {drv.get_cookies()}\n\n{drv.page_source[:4000]}")
            )
        except Exception as e:  # the browser may be gone
            rep.sections.append(("browser", f"<unavailable: {e!r}>"))
