"""A Dash 4.4.1 app (Flask backend) with its MCP server on and two callbacks that are also API
endpoints, for tests/dash4/test_mcp_api.py. `salary-out` is protected by a `dash_outputs` rule
and `secret-panel` by a `dash_components` rule (tests/dash4/mcp_policy.toml).

Port from DASH_PORT. Whether the gateway learns which callback each endpoint and tool runs
depends on whether dashgate-client (its Dash plugin) is importable: the tests start this app
twice, with and without it on PYTHONPATH; the app's code is the same.
"""

import os

from dash import Dash, Input, Output, callback, dcc, html

app = Dash(__name__, enable_mcp=True)
app.layout = html.Div(
    [
        dcc.Input(id="who", value="x"),
        html.Div(id="public-out"),
        html.Div(id="salary-out"),
        html.Div(id="secret-panel", children="TOP-SECRET-PANEL"),
    ]
)


@callback(Output("public-out", "children"), Input("who", "value"), api_endpoint="/api/public")
def show_public(who):
    return f"public {who}"


@callback(Output("salary-out", "children"), Input("who", "value"), api_endpoint="/api/salary")
def show_salary(who):
    return f"SALARY-DATA {who}"


app.setup_apis()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["DASH_PORT"]), debug=False)
