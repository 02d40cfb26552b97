"""Fixtures of the Dash attack suite: for each Dash version users run (2.18, 3.x, 4.x), the
attack app (tests/dash/app.py) on its own interpreter, and the gateway (binary from
$DASHGATE_BIN, default target/debug/dashgate) in front of it with tests/dash/policy.toml, a
fresh database and key directory, an `admin` (role admin) and a `viewer` (no role). One
version's processes run at a time.

The interpreters are the virtualenvs scripts/test makes from tests/dash/requirements-dash*.txt
(.venv-dash2, .venv-dash3, .venv-dash4); DASH_VERSIONS (e.g. "4" or "2,4") picks some.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from attack_site import PREFIX, Site  # noqa: E402  (tests/dash/attack_site.py)
from processes import (  # noqa: E402  (tests/processes.py, shared with tests/browser)
    LOGS,
    add_roles_and_users,
    all_logs,
    dash_interpreter,
    free_port,
    gateway_binary,
    start,
    start_gateway,
    stop,
    wait_until_ready,
)

HERE = Path(__file__).resolve().parent
APP = HERE / "app.py"
POLICY = HERE / "policy.toml"
VERSIONS = [v.strip() for v in os.environ.get("DASH_VERSIONS", "2,3,4").split(",") if v.strip()]


@pytest.fixture(scope="session", params=VERSIONS, ids=lambda v: f"dash{v}")
def site(request):
    version = request.param
    python = dash_interpreter(version)
    try:
        gateway_bin = gateway_binary()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix=f"dashgate-dash{version}-"))
    app_port, gateway_port = free_port(), free_port()
    while gateway_port == app_port:
        gateway_port = free_port()
    env = dict(os.environ, DASH_PORT=str(app_port), DASH_CACHE_DIR=str(workdir / "cache"), PYTHONUNBUFFERED="1")
    app = start(f"dash {version} app", [str(python), str(APP)], HERE, workdir / "app.log", env)
    gateway = None
    try:
        app_url = f"http://127.0.0.1:{app_port}"
        wait_until_ready(app_url + PREFIX + "_dash-layout", app, f"Dash {version} app", expect_status=200)
        passwords = {"admin": secrets.token_urlsafe(18), "viewer": secrets.token_urlsafe(18)}
        users = {"admin": (passwords["admin"], ["admin"]), "viewer": (passwords["viewer"], [])}
        add_roles_and_users(gateway_bin, workdir, {"admin": []}, users)
        gateway = start_gateway(gateway_bin, workdir, gateway_port, app_url, POLICY, name=f"gateway (dash {version})")
        url = f"http://127.0.0.1:{gateway_port}"
        tokens = {}
        for user, password in passwords.items():
            r = requests.post(url + "/auth/login", json={"username": user, "password": password}, timeout=30)
            assert r.status_code == 200, r.text
            tokens[user] = r.json()["access_token"]
        reported = requests.get(app_url + "/_oracle/version", timeout=10).json()["dash"]
        assert reported.split(".")[0] == version, f"the .venv-dash{version} interpreter runs Dash {reported}"
        yield Site(version=reported, url=url, app_url=app_url, tokens=tokens)
    finally:
        stop(gateway)
        stop(app)
        for name in list(LOGS):
            if f"dash {version}" in name:
                del LOGS[name]
        if os.environ.get("KEEP_TMP"):
            print(f"\nkept temp dir {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and LOGS:
        rep.sections.append(("gateway and Dash app logs", all_logs()))
