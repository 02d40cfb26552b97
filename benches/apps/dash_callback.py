"""A minimal Dash app with one callback, for end-to-end callback throughput: alone, behind
dashgate, or with dash-auth's BasicAuth (BENCH_DASH_AUTH=1). Run under gunicorn."""

import os

from dash import Dash, Input, Output, dcc, html

app = Dash(__name__)
app.layout = html.Div([dcc.Input(id="name", value="world"), html.Div(id="salary-greeting")])


@app.callback(Output("salary-greeting", "children"), Input("name", "value"))
def greet(name):
    return f"hello {name}"


if os.environ.get("BENCH_DASH_AUTH"):
    import dash_auth

    dash_auth.BasicAuth(app, {"bench": os.environ.get("BENCH_DASH_PASSWORD", "bench-password")})

server = app.server
