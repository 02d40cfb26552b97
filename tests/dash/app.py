"""A Dash app with every way the gateway's rules were once walked around, for the attack tests
in this folder. It has no role logic at all: what a viewer may see is decided by the gateway's
policy (policy.toml next to this file). Every secret is a marker string the tests look for.

- Dash Pages under the prefix `/app/` (`url_base_pathname`): `/` (home), `/admin` (admins
  only) and a template page `/reports/<rid>` (admins only, rule `/app/reports/*`).
- `cards`: a visible card and the hidden `ops-panel`; two callbacks on the allowed output
  `cards.children` answer with a `Patch` that writes into the hidden child by position.
- A background callback (DiskcacheManager) whose progress output `ops-progress` is hidden.
- A callback whose `running` output `ops-status` is hidden.
- A clientside callback whose output `ops-cs` is hidden (its code embeds a secret).
- A component with the dict id {"type": "vault", "index": 1}, hidden by an exact pattern.

Environment: DASH_PORT (127.0.0.1), DASH_CACHE_DIR (the background callbacks' diskcache).
Runs on Dash 2.18, 3.x and 4.x. `GET /_oracle/page?pathname=P` (on the app's own port, never
through the gateway) answers which page Dash itself renders for P, from Dash's own functions.
"""

from __future__ import annotations

import os
import time

import dash
import diskcache
from dash import Dash, DiskcacheManager, Input, Output, Patch, dcc, html

PREFIX = "/app/"

app = Dash(
    __name__,
    url_base_pathname=PREFIX,
    use_pages=True,
    pages_folder="",
    suppress_callback_exceptions=True,
    background_callback_manager=DiskcacheManager(
        diskcache.Cache(os.environ.get("DASH_CACHE_DIR", "/tmp/dashgate-dash-cache"))
    ),
)
server = app.server


def home_layout(**_query):
    return html.Div("HOME-PAGE", id="home-page")


def admin_layout(**_query):
    return html.Div("ADMIN-PAGE-SECRET", id="admin-page")


def reports_layout(rid=None, **_query):
    return html.Div(f"REPORTS-PAGE-SECRET {rid}", id="reports-page")


dash.register_page("home", path="/", layout=home_layout)
dash.register_page("admin", path="/admin", layout=admin_layout)
dash.register_page("reports", path_template="/reports/<rid>", layout=reports_layout)

app.layout = html.Div(
    [
        dash.page_container,
        html.Div(
            id="cards",
            children=[
                html.Div("visible card", id="card-visible"),
                html.Div("OPS-PANEL-SECRET", id="ops-panel"),
            ],
        ),
        html.Button("patch", id="patch-btn"),
        html.Button("merge", id="merge-btn"),
        html.Button("background", id="bg-btn"),
        html.Div(id="bg-result"),
        html.Div(id="ops-progress"),
        html.Button("run", id="run-btn"),
        html.Div(id="run-out"),
        html.Div(id="ops-status"),
        html.Button("clientside", id="cs-btn"),
        html.Div(id="ops-cs"),
        html.Button("vault", id="vault-btn"),
        html.Div("VAULT-SECRET", id={"type": "vault", "index": 1}),
        html.Div("PUBLIC-VAULT", id={"type": "vault", "index": 2}),
    ]
)


@app.callback(
    Output("cards", "children", allow_duplicate=True),
    Input("patch-btn", "n_clicks"),
    prevent_initial_call=True,
)
def patch_into_a_child(_n):
    # Writes into the second child (the hidden ops-panel) by position.
    p = Patch()
    p[1]["props"]["children"] = "PATCH-SECRET"
    p[0]["props"]["title"] = "PATCH-VISIBLE-TITLE"
    return p


@app.callback(
    Output("cards", "children", allow_duplicate=True),
    Input("merge-btn", "n_clicks"),
    prevent_initial_call=True,
)
def merge_into_a_child(_n):
    # Merges props into the second child without naming `props` in the location.
    p = Patch()
    p[1].update({"props": {"children": "MERGE-SECRET"}})
    p.append(html.Div("PATCH-APPENDED", id="appended"))
    p.append(html.Div("OPS-APPENDED-SECRET", id="ops-appended"))
    return p


@app.callback(
    Output("bg-result", "children"),
    Input("bg-btn", "n_clicks"),
    progress=[Output("ops-progress", "children")],
    progress_default=["PROGRESS-DEFAULT-SECRET"],
    background=True,
    prevent_initial_call=True,
)
def background_job(set_progress, _n):
    set_progress(("PROGRESS-SECRET",))
    # Long enough for a poll to see the progress value.
    time.sleep(1.5)
    return "background done"


@app.callback(
    Output("run-out", "children"),
    Input("run-btn", "n_clicks"),
    running=[(Output("ops-status", "children"), "RUNNING-SECRET-ON", "RUNNING-SECRET-OFF")],
    prevent_initial_call=True,
)
def run_with_status(n):
    return f"ran {n}"


app.clientside_callback(
    "function(n) { return 'CLIENTSIDE-SECRET ' + n; }",
    Output("ops-cs", "children"),
    Input("cs-btn", "n_clicks"),
    prevent_initial_call=True,
)


@app.callback(
    Output({"type": "vault", "index": 1}, "children"),
    Input("vault-btn", "n_clicks"),
    prevent_initial_call=True,
)
def vault(_n):
    return "VAULT-CALLBACK-SECRET"


@server.route("/_oracle/version")
def oracle_version():
    return {"dash": dash.__version__}


@server.route("/_oracle/page")
def oracle():
    """Which page Dash renders for a pathname, from Dash's own functions (the test oracle)."""
    from flask import request
    from dash._pages import _path_to_page

    pathname = request.args.get("pathname", "")
    try:
        page, _variables = _path_to_page(app.strip_relative_path(pathname))
    except Exception as e:  # Dash itself would answer the callback with an error
        return {"page": None, "error": type(e).__name__}
    return {"page": page.get("module") if page else "404"}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("DASH_PORT", "8050")), debug=False)
