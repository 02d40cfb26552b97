"""Fixtures of the Dash 4 suite: real Dash 4.4.1 apps behind the gateway, driven by Chromium.

Once per session, each on loopback ports with a fresh temp dir (database, keys, logs):
  * `ws_site`: tests/dash4/ws_app.py (FastAPI backend, every callback over Dash's WebSocket,
    uvicorn) with the gateway in front of it and tests/dash4/policy.toml;
  * `csrf_site`: tests/dash4/csrf_app.py (Flask backend, CSRF cookie `my_csrf` and header
    `X-My-Csrf`) with its own gateway and the same policy;
  * `short_site`: a second gateway in front of the WebSocket app whose access tokens live 30 s
    (`token.access_ttl`, the smallest allowed), for what happens when one expires;
each gateway with the users `admin` (role admin) and `viewer` (no role), random passwords given
on stdin. Per test: a fresh headless Chromium (Debian's /usr/bin/chromium and chromedriver)
with its own profile, its page network and console logs, and a DevTools connection that
records the WebSocket of dash-renderer's shared worker (dash4_browser.WorkerSockets).

The apps run on .venv-dash4/bin/python
(`DASHGATE_VENV=.venv-dash4 scripts/venv tests/dash/requirements-dash4.txt`).

Environment: DASHGATE_BIN (default <repo>/target/debug/dashgate), CHROMIUM_BIN, CHROMEDRIVER_BIN,
KEEP_TMP=1 keeps the temp dirs.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import (  # noqa: E402  (tests/processes.py, shared with tests/browser and tests/dash)
    LOGS,
    add_roles_and_users,
    all_logs,
    dash_interpreter,
    free_port,
    gateway_binary,
    self_signed_certificate,
    start,
    start_chromium,
    start_gateway,
    stop,
    wait_until_ready,
)

HERE = Path(__file__).resolve().parent
POLICY = HERE / "policy.toml"
DASH_VERSION = "4.4.1"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Site:
    """One Dash app behind one gateway."""

    name: str
    url: str  # the gateway
    app_url: str  # the app itself: only for its /_oracle endpoints
    log: Path  # the gateway's log
    passwords: dict[str, str] = field(default_factory=dict)

    def log_size(self) -> int:
        """Where the gateway's log ends now: pass it to `log_since`."""
        return self.log.stat().st_size

    def log_since(self, offset: int = 0) -> str:
        """The gateway's log from byte `offset` on, without colour codes."""
        with open(self.log, "rb") as f:
            f.seek(offset)
            return ANSI.sub("", f.read().decode(errors="replace"))

    def oracle(self, what: str) -> dict:
        r = requests.get(f"{self.app_url}/_oracle/{what}", timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="session")
def gateway_bin() -> Path:
    try:
        return gateway_binary()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@contextmanager
def _app(name: str, script: str, workdir: Path):
    """Start tests/dash4/`script` on a free port; yields its URL once it serves its layout."""
    port = free_port()
    env = dict(os.environ, PORT=str(port), PYTHONUNBUFFERED="1")
    proc = start(name, [str(dash_interpreter("4")), str(HERE / script)], HERE, workdir / f"{script}.log", env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url + "/_dash-layout", proc, name, expect_status=200)
        reported = requests.get(url + "/_oracle/version", timeout=10).json()["dash"]
        assert reported == DASH_VERSION, f"{name} runs Dash {reported}, not {DASH_VERSION}"
        yield url
    finally:
        stop(proc)


@contextmanager
def _gateway(
    gateway_bin: Path, name: str, app_url: str, workdir: Path, config: str | None = None, tls: bool = False
):
    """A gateway with its own database and keys in `workdir`, in front of `app_url`; with `tls`,
    serving HTTPS (and so HTTP/2) with a self-signed certificate."""
    workdir.mkdir(parents=True, exist_ok=True)
    certificate = self_signed_certificate(workdir) if tls else None
    passwords = {"admin": secrets.token_urlsafe(18), "viewer": secrets.token_urlsafe(18)}
    users = {"admin": (passwords["admin"], ["admin"]), "viewer": (passwords["viewer"], [])}
    add_roles_and_users(gateway_bin, workdir, {"admin": []}, users)
    port = free_port()
    proc = start_gateway(gateway_bin, workdir, port, app_url, POLICY, config=config, name=name, tls=certificate)
    scheme = "https" if tls else "http"
    try:
        yield Site(name=name, url=f"{scheme}://127.0.0.1:{port}", app_url=app_url, log=workdir / f"{name}.log", passwords=passwords)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def tmp_root():
    d = Path(tempfile.mkdtemp(prefix="dashgate-dash4-"))
    yield d
    if os.environ.get("KEEP_TMP"):
        print(f"\nkept temp dir {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def ws_app(tmp_root: Path):
    with _app("dash4 websocket app", "ws_app.py", tmp_root) as url:
        yield url


@pytest.fixture(scope="session")
def ws_site(gateway_bin: Path, ws_app: str, tmp_root: Path):
    with _gateway(gateway_bin, "gateway (websocket app)", ws_app, tmp_root / "ws") as site:
        yield site


@pytest.fixture(scope="session")
def tls_site(gateway_bin: Path, ws_app: str, tmp_root: Path):
    with _gateway(gateway_bin, "gateway (TLS)", ws_app, tmp_root / "tls", tls=True) as site:
        yield site


@pytest.fixture(scope="session")
def short_site(gateway_bin: Path, ws_app: str, tmp_root: Path):
    config = '[token]\naccess_ttl = "30s"\nleeway = "0s"\n'
    with _gateway(gateway_bin, "gateway (30 s tokens)", ws_app, tmp_root / "short", config) as site:
        yield site


@pytest.fixture(scope="session")
def csrf_site(gateway_bin: Path, tmp_root: Path):
    with _app("dash4 csrf app", "csrf_app.py", tmp_root) as app_url:
        with _gateway(gateway_bin, "gateway (csrf app)", app_url, tmp_root / "csrf") as site:
            yield site


# ---------------------------------------------------------------------------
# per-test browser
# ---------------------------------------------------------------------------


@dataclass
class Browser:
    driver: Any  # selenium.webdriver.Chrome
    sockets: Any  # dash4_browser.WorkerSockets: the shared worker's WebSocket traffic
    page: Any  # dash4_browser.PageLog: the page's network and console logs


@pytest.fixture
def browser(tmp_path: Path):
    from dash4_browser import PageLog, WorkerSockets

    drv = start_chromium(tmp_path, logs=("performance", "browser"))
    sockets = None
    try:
        sockets = WorkerSockets(drv.capabilities["goog:chromeOptions"]["debuggerAddress"])
        yield Browser(driver=drv, sockets=sockets, page=PageLog(drv))
    finally:
        if sockets is not None:
            sockets.close()
        drv.quit()


# ---------------------------------------------------------------------------
# failure reports: process logs, browser state, the socket's frames
# ---------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    if LOGS:
        rep.sections.append(("gateway and Dash app logs", all_logs()))
    b = item.funcargs.get("browser") if hasattr(item, "funcargs") else None
    if b is not None and rep.when == "call":
        try:
            frames = "\n".join(f"{f.direction} {f.socket}: {f.data[:400]}" for f in b.sockets.frames())
            rep.sections.append(
                (
                    "browser",
                    f"url: {b.driver.current_url}\ncookies: {[c['name'] for c in b.driver.get_cookies()]}\n"
                    f"websocket events: {[m for _, m, _ in b.sockets.events]}\nframes:\n{frames}\n"
                    f"console: {b.page.console_messages()}\n\n{b.driver.page_source[:4000]}",
                )
            )
        except Exception as e:  # the browser may be gone
            rep.sections.append(("browser", f"<unavailable: {e!r}>"))
