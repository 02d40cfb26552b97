"""Dash 4.4.1's MCP server and API endpoints behind the gateway (tests/dash4/mcp_app.py, Flask
backend, tests/dash4/mcp_policy.toml): a viewer who fails the `salary-out` output rule and the
`secret-*` component rule gets neither through MCP nor through the API endpoint; an admin gets
both. The app runs twice: with the helper package's Dash plugin importable (it tells the
gateway which callback each endpoint and tool runs) and without it (then the policy's
`[api_endpoints]` table names the callback).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import (  # noqa: E402  (tests/processes.py)
    LOGS,
    REPO_ROOT,
    add_roles_and_users,
    dash_interpreter,
    free_port,
    gateway_binary,
    read_log,
    start,
    start_gateway,
    stop,
    wait_until_ready,
)

HERE = Path(__file__).resolve().parent
APP = HERE / "mcp_app.py"
POLICY = (HERE / "mcp_policy.toml").read_text()
FALLBACK = '\n[api_endpoints]\n"/api/salary" = "salary-out.children"\n'
CLOSED = '\n[mcp]\nroles = ["admin"]\n'


class Gw:
    def __init__(self, url: str, log: Path, tokens: dict[str, str]):
        self.url, self.log, self.tokens = url, log, tokens

    def post(self, path: str, user: str, body) -> requests.Response:
        return requests.post(
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.tokens[user]}", "Accept": "application/json"},
            timeout=30,
        )

    def mcp(self, user: str, method: str, params: dict | None = None) -> requests.Response:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
        return self.post("/_mcp", user, body)

    def log_text(self) -> str:
        return read_log(self.log, 200_000)


@pytest.fixture(scope="module")
def stack():
    python = dash_interpreter("4")
    gateway_bin = gateway_binary()
    work = Path(tempfile.mkdtemp(prefix="dashgate-mcp-"))
    procs = []
    # The helper package as pip installs it (its dash_hooks entry point included), for the
    # app that has the plugin.
    plugin_dir = work / "site-packages"
    built = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(plugin_dir), str(REPO_ROOT / "clients" / "python")],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    try:
        apps = {}
        for name, extra in (("plugin", {"PYTHONPATH": str(plugin_dir)}), ("bare", {})):
            port = free_port()
            env = dict(os.environ, DASH_PORT=str(port), PYTHONUNBUFFERED="1", **extra)
            env.pop("PYTHONPATH", None) if not extra else None
            proc = start(f"mcp app ({name})", [str(python), str(APP)], HERE, work / f"app-{name}.log", env)
            procs.append(proc)
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(url + "/_dash-layout", proc, f"mcp app ({name})", expect_status=200)
            apps[name] = url
        gateways = {}
        for name, app, policy in (
            ("plugin", apps["plugin"], POLICY),
            ("fallback", apps["bare"], POLICY + FALLBACK),
            ("bare", apps["bare"], POLICY),
            ("closed", apps["plugin"], POLICY + CLOSED),
        ):
            wd = work / name
            wd.mkdir()
            (wd / "policy.toml").write_text(policy)
            passwords = {"admin": secrets.token_urlsafe(18), "viewer": secrets.token_urlsafe(18)}
            add_roles_and_users(gateway_bin, wd, {"admin": []}, {"admin": (passwords["admin"], ["admin"]), "viewer": (passwords["viewer"], [])})
            port = free_port()
            gw = start_gateway(gateway_bin, wd, port, app, wd / "policy.toml", name=f"gateway ({name})")
            procs.append(gw)
            url = f"http://127.0.0.1:{port}"
            tokens = {}
            for user, password in passwords.items():
                r = requests.post(url + "/auth/login", json={"username": user, "password": password}, timeout=30)
                assert r.status_code == 200, r.text
                tokens[user] = r.json()["access_token"]
            # A page's first request: the gateway says then what of the app it covers.
            r = requests.get(url + "/_dash-layout", headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=30)
            assert r.status_code == 200, r.text[:300]
            gateways[name] = Gw(url, wd / f"gateway ({name}).log", tokens)
        yield gateways
    finally:
        for p in reversed(procs):
            stop(p)
        for name in list(LOGS):
            if "mcp app" in name or name.startswith("gateway ("):
                del LOGS[name]
        shutil.rmtree(work, ignore_errors=True)


def result_text(r: requests.Response) -> str:
    return json.dumps(r.json())


def test_api_endpoints_follow_the_output_rules_with_the_plugin(stack):
    gw = stack["plugin"]
    assert gw.post("/api/salary", "viewer", {"who": "v"}).status_code == 403
    r = gw.post("/api/public", "viewer", {"who": "v"})
    assert (r.status_code, r.json()) == (200, "public v")
    r = gw.post("/api/salary", "admin", {"who": "a"})
    assert (r.status_code, r.json()) == (200, "SALARY-DATA a")
    assert "request refused by policy" in gw.log_text()
    # The plugin's document is the gateway's: no client reaches it, whoever they are.
    for path in ("/_dashgate/callbacks", "/x/../_dashgate/callbacks", "/_DASHGATE/callbacks"):
        r = requests.get(gw.url + path, headers={"Authorization": f"Bearer {gw.tokens['admin']}"}, timeout=30)
        assert r.status_code in (400, 404), (path, r.status_code, r.text[:200])
    # The line logged when the app first served a page names what is covered.
    deadline_log = gw.log_text()
    assert "the app's Dash plugin reports its API endpoints" in deadline_log, deadline_log[-3000:]
    assert "/api/salary" in deadline_log


def test_api_endpoints_without_the_plugin(stack):
    # The policy's [api_endpoints] names the callback.
    gw = stack["fallback"]
    assert gw.post("/api/salary", "viewer", {"who": "v"}).status_code == 403
    assert gw.post("/api/salary", "admin", {"who": "a"}).json() == "SALARY-DATA a"
    assert gw.post("/api/public", "viewer", {"who": "v"}).json() == "public v"
    # Without either, the gateway says so when the app first serves a page.
    assert "has no dashgate Dash plugin" in stack["bare"].log_text()


def test_mcp_tools_follow_the_output_rules(stack):
    gw = stack["plugin"]
    names = {t["name"] for t in gw.mcp("viewer", "tools/list").json()["result"]["tools"]}
    assert "show_public" in names and "show_salary" not in names, names
    admin_names = {t["name"] for t in gw.mcp("admin", "tools/list").json()["result"]["tools"]}
    assert {"show_public", "show_salary"} <= admin_names, admin_names

    r = gw.mcp("viewer", "tools/call", {"name": "show_salary", "arguments": {"who": "v"}})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"].startswith("forbidden"), r.text
    assert "SALARY-DATA" not in r.text
    r = gw.mcp("viewer", "tools/call", {"name": "show_public", "arguments": {"who": "v"}})
    assert r.status_code == 200 and "public v" in result_text(r), r.text
    r = gw.mcp("admin", "tools/call", {"name": "show_salary", "arguments": {"who": "a"}})
    assert r.status_code == 200 and "SALARY-DATA a" in result_text(r), r.text
    # Without the plugin the tools cannot be told apart: refused to whoever a rule restricts.
    r = stack["bare"].mcp("viewer", "tools/call", {"name": "show_public", "arguments": {"who": "v"}})
    assert r.status_code == 403, r.text
    r = stack["bare"].mcp("admin", "tools/call", {"name": "show_salary", "arguments": {"who": "a"}})
    assert r.status_code == 200 and "SALARY-DATA" in result_text(r), r.text


def test_mcp_layouts_and_components_are_pruned(stack):
    gw = stack["plugin"]
    for uri in ("dash://layout", "dash://components"):
        viewer = gw.mcp("viewer", "resources/read", {"uri": uri})
        admin = gw.mcp("admin", "resources/read", {"uri": uri})
        assert viewer.status_code == 200 and admin.status_code == 200, (viewer.text, admin.text)
        assert "secret-panel" in admin.text, admin.text[:500]
        assert "secret-panel" not in viewer.text and "TOP-SECRET" not in viewer.text, viewer.text[:1000]
        assert "public-out" in viewer.text
    r = gw.mcp("viewer", "tools/call", {"name": "get_dash_component", "arguments": {"component_id": "secret-panel"}})
    assert r.status_code == 403 and "TOP-SECRET" not in r.text, r.text
    r = gw.mcp("admin", "tools/call", {"name": "get_dash_component", "arguments": {"component_id": "secret-panel"}})
    assert r.status_code == 200 and "TOP-SECRET-PANEL" in r.text, r.text
    # Dash matches resource URIs by prefix; the gateway only knows the exact ones.
    r = gw.mcp("viewer", "resources/read", {"uri": "dash://layoutX"})
    assert r.status_code == 403, r.text


def test_mcp_batches_and_cross_site_requests_are_refused(stack):
    gw = stack["plugin"]
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "show_public", "arguments": {"who": "v"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "show_salary", "arguments": {"who": "v"}}},
    ]
    r = gw.post("/_mcp", "viewer", batch)
    assert r.status_code == 400 and "SALARY" not in r.text, r.text
    # A browser session needs the CSRF token for MCP as for any POST.
    s = requests.Session()
    login = s.get(gw.url + "/auth/login", timeout=30)
    assert login.status_code == 200
    r = s.post(
        gw.url + "/_mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Origin": "https://evil.example"},
        timeout=30,
    )
    assert r.status_code in (401, 403), r.text


def test_policy_can_close_mcp_to_all_but_some_roles(stack):
    gw = stack["closed"]
    assert gw.mcp("viewer", "initialize").status_code == 403
    assert gw.mcp("viewer", "tools/list").status_code == 403
    r = gw.mcp("admin", "initialize")
    assert r.status_code == 200 and r.json()["result"]["serverInfo"]["name"] == "Plotly Dash", r.text
    # The API endpoints are not MCP: the [mcp] table does not touch them.
    assert gw.post("/api/public", "viewer", {"who": "v"}).status_code == 200
