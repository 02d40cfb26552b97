"""The Dash plugin's registry (dashgate_client._plugin) against a real Dash app: API endpoints
map to the keys `_dash-dependencies` lists, and MCP tools are named exactly as Dash's own MCP
server names them."""

from __future__ import annotations

import json

from dash import Dash, Input, Output, html

from dashgate_client import _plugin


def build_app() -> Dash:
    app = Dash(__name__)
    app.layout = html.Div(
        [html.Button(id="go"), html.Div(id="a"), html.Div(id="b"), html.Div(id="c"), html.Div(id="d")]
    )

    @app.callback(Output("a", "children"), Input("go", "n_clicks"), api_endpoint="/api/a")
    def show_a(n):
        return n

    @app.callback([Output("b", "children"), Output("c", "children")], Input("go", "n_clicks"), api_endpoint="api/bc")
    def update(n):
        return n, n

    @app.callback(Output("d", "children"), Input("go", "n_clicks"))
    def update(n):  # noqa: F811  (a second `update`: Dash then names tools by output)
        return n

    app.setup_apis()
    return app


def test_api_endpoints_map_to_callback_keys():
    app = build_app()
    with app.server.test_request_context("/"):
        deps = {d["output"] for d in json.loads(app.server.test_client().get("/_dash-dependencies").data)}
        reg = _plugin.registry(app)
    assert reg["version"] == 1
    assert reg["api_endpoints"]["/api/a"] == {"output": "a.children"}
    assert reg["api_endpoints"]["/api/bc"] == {"output": "..b.children...c.children.."}
    for entry in reg["api_endpoints"].values():
        assert entry["output"] in deps


def test_mcp_tools_are_named_as_dash_names_them():
    from dash.mcp.primitives.tools.callback_adapter_collection import CallbackAdapterCollection

    app = build_app()
    with app.server.test_request_context("/"):
        app.server.test_client().get("/_dash-dependencies")
        ours = _plugin.mcp_tools(app)
    raw = [(k, v) for k, v in app.callback_map.items() if "callback" in v]
    dash_names = CallbackAdapterCollection._build_tool_names(raw)
    assert {name: {"output": key} for key, name in dash_names.items()} == ours
    assert ours["show_a"] == {"output": "a.children"}
    assert "update" not in ours, "two functions named update: named by their outputs"


def test_the_plugin_serves_its_route():
    app = build_app()
    r = app.server.test_client().get("/" + _plugin.ROUTE)
    assert r.status_code == 200, r.data[:300]
    assert r.get_json()["api_endpoints"]["/api/a"] == {"output": "a.children"}
