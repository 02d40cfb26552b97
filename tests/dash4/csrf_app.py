"""A Dash 4 app on the default Flask backend that names its own CSRF cookie and header
(`csrf_token_name="my_csrf"`, `csrf_header_name="X-My-Csrf"`, Dash >= 4.2): dash-renderer
reads the token from the cookie `my_csrf` and sends it in `X-My-Csrf`. tests/dash4 runs it
behind the gateway on 127.0.0.1:$PORT; `/_oracle/...` is asked of the app directly.
"""

from __future__ import annotations

import os

import dash
import flask
from dash import Dash, Input, Output, html

app = Dash(__name__, csrf_token_name="my_csrf", csrf_header_name="X-My-Csrf", title="dash4 csrf app")
app.layout = html.Div(
    [
        html.H1("Dash 4 with its own CSRF names"),
        html.Button("Count", id="count"),
        html.Div("count: not yet", id="count-out"),
    ]
)


@app.callback(Output("count-out", "children"), Input("count", "n_clicks"), prevent_initial_call=True)
def count(n):
    user = flask.request.headers.get("X-Forwarded-User", "?")
    return f"count {n} by {user}"


@app.server.route("/_oracle/version")
def version():
    return {"dash": dash.__version__}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), debug=False)
