"""Example Plotly Dash app that runs, unmodified, behind the dashgate gateway.

The app implements NO authentication of its own. It trusts the identity that
dashgate forwards on every proxied request (and strips from client requests),
read with the `dashgate_client` helper package (clients/python in this repo):

    X-Forwarded-User         the signed-in username
    X-Forwarded-Roles        comma-separated roles
    X-Forwarded-Permissions  comma-separated permissions of those roles
    X-Dashgate-Assertion     the same identity as a signed, short-lived JWT

It is a multi-page app (Dash Pages): the dashboard at `/` and an admin page at
`/admin` with a salary table. The gateway's policy (policy.toml next to this
file) lets only role `admin` reach `/admin` - as a page load AND as Dash Pages
client-side navigation - and only permission `salaries:read` run the callback
that fills `salary-table`. The app checks the same again (defence in depth).

The operations panel (`ops-panel`) has NO role logic at all: the app puts it in
every user's layout, and the gateway removes it (and everything in it) from the
answers of users without the admin role (`dash_components = ["ops-*"]` in the
policy), so its data never reaches their browser; its callback is refused to
them too. `suppress_callback_exceptions=True` (set below) keeps the renderer
quiet about callbacks whose components are not in a user's layout.

Never expose this app directly: it listens on 127.0.0.1 only, and anyone who
can reach it without the gateway in front could forge the plain headers.

Run (from the repository root, after `scripts/venv examples/dash_app/requirements.txt`):
    DASH_PORT=8050 .venv/bin/python examples/dash_app/app.py     # development server
    cd examples/dash_app && ../../.venv/bin/gunicorn -b 127.0.0.1:8050 app:server

Environment:
    DASH_PORT           port on 127.0.0.1 (default 8050)
    DASHGATE_JWKS_URL   the gateway's /auth/jwks.json; when set, the admin page
                        also verifies the signed assertion (`identity-verified`)
"""

from __future__ import annotations

import math
import os

import dash
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html
from dashgate_client import DashgateConfigError, current_user, has_role, logout_link, requires

ADMIN_ROLE = "admin"
SALARY_PERMISSION = "salaries:read"

# --------------------------------------------------------------------------
# Demo data (deterministic, no numpy needed)
# --------------------------------------------------------------------------

HOURS = list(range(24))
SERIES = {
    "requests": (
        "Requests per hour",
        [round(800 + 600 * math.sin((h - 8) / 24 * 2 * math.pi) + 40 * (h % 5)) for h in HOURS],
    ),
    "latency": (
        "p95 latency (ms)",
        [round(120 + 45 * math.cos(h / 24 * 2 * math.pi) + 7 * (h % 3), 1) for h in HOURS],
    ),
    "errors": (
        "Errors per hour",
        [max(0, round(6 + 5 * math.sin(h / 3.0) + (h % 4))) for h in HOURS],
    ),
}

# --------------------------------------------------------------------------
# Styling (inline, so the example has no asset files and needs no network)
# --------------------------------------------------------------------------

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
ACCENT = "#4f46e5"
PAGE = {
    "fontFamily": FONT,
    "background": "#f4f5fb",
    "minHeight": "100vh",
    "margin": "0",
    "color": "#1f2937",
}
HEADER = {
    "display": "flex",
    "alignItems": "center",
    "justifyContent": "space-between",
    "padding": "14px 28px",
    "background": "linear-gradient(90deg, #312e81, #4f46e5)",
    "color": "white",
}
MAIN = {"maxWidth": "1080px", "margin": "0 auto", "padding": "24px"}
GRID = {
    "display": "grid",
    "gridTemplateColumns": "repeat(auto-fit, minmax(230px, 1fr))",
    "gap": "16px",
    "marginBottom": "16px",
}
CARD = {
    "background": "white",
    "borderRadius": "12px",
    "padding": "18px 20px",
    "boxShadow": "0 1px 3px rgba(15, 23, 42, .08), 0 4px 12px rgba(15, 23, 42, .04)",
}
LABEL = {
    "fontSize": "12px",
    "textTransform": "uppercase",
    "letterSpacing": ".06em",
    "color": "#6b7280",
    "margin": "0 0 6px",
}
BIG = {"fontSize": "22px", "fontWeight": "600", "margin": "0"}
PILL = {
    "display": "inline-block",
    "padding": "2px 10px",
    "marginRight": "6px",
    "borderRadius": "999px",
    "background": "#eef2ff",
    "color": ACCENT,
    "fontSize": "13px",
    "fontWeight": "600",
}
BUTTON = {
    "background": ACCENT,
    "color": "white",
    "border": "none",
    "borderRadius": "8px",
    "padding": "9px 18px",
    "fontSize": "14px",
    "fontWeight": "600",
    "cursor": "pointer",
}
LOGOUT = {
    "color": "white",
    "textDecoration": "none",
    "border": "1px solid rgba(255,255,255,.6)",
    "borderRadius": "8px",
    "padding": "6px 14px",
    "fontSize": "14px",
}


def figure(series: str) -> go.Figure:
    title, values = SERIES.get(series, SERIES["requests"])
    fig = go.Figure(
        go.Scatter(
            x=HOURS,
            y=values,
            mode="lines+markers",
            line={"color": ACCENT, "width": 3, "shape": "spline"},
            marker={"size": 6},
            fill="tozeroy",
            fillcolor="rgba(79, 70, 229, .10)",
            name=title,
        )
    )
    fig.update_layout(
        title={"text": title, "x": 0.02, "font": {"size": 16}},
        margin={"l": 48, "r": 16, "t": 48, "b": 40},
        height=320,
        paper_bgcolor="white",
        plot_bgcolor="white",
        font={"family": FONT, "color": "#374151"},
        xaxis={"title": "hour of day", "gridcolor": "#eef0f4", "dtick": 2},
        yaxis={"gridcolor": "#eef0f4", "rangemode": "tozero"},
    )
    return fig


NAV_LINK = {
    "color": "white",
    "textDecoration": "none",
    "marginLeft": "18px",
    "fontSize": "14px",
    "opacity": ".9",
}

# Fictional employees (deterministic demo data).
SALARIES = [
    ("Ada Byrne", "Engineering", "Staff engineer", 128_000),
    ("Bruno Keller", "Engineering", "Data engineer", 97_500),
    ("Chiara Moretti", "Engineering", "SRE", 104_000),
    ("Dmitri Volkov", "Sales", "Account executive", 88_000),
    ("Elif Demir", "Sales", "Sales lead", 112_500),
    ("Femi Adebayo", "Finance", "Controller", 99_000),
    ("Grete Lund", "Finance", "Analyst", 71_500),
]
DEPARTMENTS = sorted({d for _, d, _, _ in SALARIES})


# --------------------------------------------------------------------------
# App
# --------------------------------------------------------------------------

# use_pages with pages registered below (no pages/ folder). suppress_callback_exceptions
# is REQUIRED here: without it Dash builds a "validation layout" from every page layout
# during the first request - with that request's user - and embeds it in the public
# index page, so admin-only content could leak to everyone.
app = Dash(
    __name__,
    title="dashgate demo",
    update_title=None,
    use_pages=True,
    pages_folder="",
    suppress_callback_exceptions=True,
)
app.index_string = app.index_string.replace(
    "{%css%}", "{%css%}\n        <style>body { margin: 0; }</style>", 1
)
server = app.server  # for gunicorn: `gunicorn app:server`


def card(*children, **style) -> html.Div:
    return html.Div(style={**CARD, **style}, children=list(children))


# --------------------------------------------------------------------------
# Shell: header, identity, nav - built per request inside `_dash-layout`
# --------------------------------------------------------------------------


def admin_panel() -> html.Div:
    return html.Div(
        id="admin-panel",
        style={**CARD, "borderLeft": "4px solid #dc2626", "marginTop": "16px"},
        children=[
            html.P("Admin only", style={**LABEL, "color": "#dc2626"}),
            html.H3("Administration", style={"margin": "0 0 8px"}),
            html.P(
                "You see this panel because the gateway reported the role "
                "'admin' for you. Users without that role never receive it: "
                "the layout is built per request on the server.",
                style={"margin": "0", "color": "#4b5563"},
            ),
        ],
    )


def ops_panel() -> html.Div:
    """Operations data for admins only - decided by the gateway, not here."""
    return html.Div(
        id="ops-panel",
        style={**CARD, "borderLeft": "4px solid #0891b2", "marginTop": "16px"},
        children=[
            html.P("Operations", style={**LABEL, "color": "#0891b2"}),
            html.H3("On call and error budget", style={"margin": "0 0 8px"}),
            html.P(
                id="ops-oncall",
                children="On call: Grete Lund, +49 30 5550 1234. Error budget left this month: 41 minutes.",
                style={"margin": "0 0 10px", "color": "#4b5563"},
            ),
            html.Button("Page the on-call engineer", id="ops-page", n_clicks=0, style=BUTTON),
            html.P(id="ops-status", children="Nobody paged yet", style={"margin": "10px 0 0"}),
        ],
    )


def shell() -> html.Div:
    """The page frame. A function: Dash calls it for every `_dash-layout` request.

    Outside a request (Dash may call it at start-up) current_user() is None,
    so that copy is the anonymous one.
    """
    user = current_user()
    is_admin = has_role(ADMIN_ROLE)
    role_pills: list = []
    for r in sorted(user.roles) if user else []:  # spaces keep the element's text readable
        role_pills += [html.Span(r, style=PILL), " "]
    role_pills = role_pills or [html.Span("no roles", style={"color": "#6b7280"})]
    nav = [dcc.Link("Dashboard", id="nav-home", href="/", style=NAV_LINK)]
    if is_admin:
        nav.append(dcc.Link("Admin", id="nav-admin", href="/admin", style=NAV_LINK))
    return html.Div(
        style=PAGE,
        children=[
            html.Header(
                style=HEADER,
                children=[
                    html.Div(
                        [
                            html.Span("dashgate", style={"fontWeight": "700", "fontSize": "18px"}),
                            html.Span(" demo", style={"opacity": ".8"}),
                            html.Nav(nav, style={"display": "inline-block", "marginLeft": "12px"}),
                        ]
                    ),
                    logout_link(id="logout", style=LOGOUT),
                ],
            ),
            html.Main(
                style=MAIN,
                children=[
                    html.Div(
                        style=GRID,
                        children=[
                            card(
                                html.P("Account", style=LABEL),
                                html.P(
                                    id="whoami",
                                    children=f"Signed in as {user.username if user else 'anonymous'}",
                                    style=BIG,
                                ),
                            ),
                            card(html.P("Roles", style=LABEL), html.Div(id="roles", children=role_pills)),
                        ],
                    ),
                    dash.page_container,
                    *([admin_panel()] if is_admin else []),
                    ops_panel(),
                ],
            ),
        ],
    )


app.layout = shell


# --------------------------------------------------------------------------
# Page "/": the dashboard
# --------------------------------------------------------------------------


def home_layout(**_query) -> html.Div:
    return html.Div(
        id="home-page",
        children=[
            html.Div(
                style=GRID,
                children=[
                    card(
                        html.P("Server callback", style=LABEL),
                        html.Button("Run job", id="run", n_clicks=0, style=BUTTON),
                        html.P(id="result", children="Not run yet", style={"margin": "10px 0 0", "color": "#374151"}),
                    ),
                    # Inside a Dash Pages page: the gateway removes it from the Pages
                    # callback's answer for non-admins (policy: dash_components "ops-*").
                    html.Div(
                        id="ops-summary",
                        style=CARD,
                        children=[
                            html.P("Operations", style=LABEL),
                            html.P("Error budget left: 41 minutes", style=BIG),
                        ],
                    ),
                ],
            ),
            card(
                dcc.RadioItems(
                    id="series",
                    options=[
                        {"label": " Requests", "value": "requests"},
                        {"label": " Latency", "value": "latency"},
                        {"label": " Errors", "value": "errors"},
                    ],
                    value="requests",
                    inline=True,
                    labelStyle={"marginRight": "18px"},
                ),
                dcc.Graph(id="chart", figure=figure("requests"), config={"displaylogo": False}),
            ),
        ],
    )


@app.callback(
    Output("result", "children"),
    Input("run", "n_clicks"),
    prevent_initial_call=True,
)
def run_job(n_clicks: int) -> str:
    # Read the identity again from THIS request (the callback POST), not from
    # the layout: it proves the POST went through the gateway.
    user = current_user()
    return f"Run {n_clicks or 0} by {user.username if user else 'anonymous'}"


@app.callback(
    Output("ops-status", "children"),
    Input("ops-page", "n_clicks"),
    prevent_initial_call=True,
)
def page_on_call(n_clicks: int) -> str:
    user = current_user()
    return f"Paged {n_clicks or 0} time(s) by {user.username if user else 'anonymous'}"


@app.callback(
    Output("chart", "figure"),
    Input("series", "value"),
    prevent_initial_call=True,
)
def update_chart(series: str) -> go.Figure:
    return figure(series)


# --------------------------------------------------------------------------
# Page "/admin": salaries (policy: role admin for the page, salaries:read for the table)
# --------------------------------------------------------------------------


def identity_check() -> str:
    """'verified' if the gateway's signed assertion checks out against its JWKS."""
    if not os.environ.get("DASHGATE_JWKS_URL"):
        return "not checked (DASHGATE_JWKS_URL is not set)"
    try:
        user = current_user(verify=True)  # JWKS URL from DASHGATE_JWKS_URL
    except DashgateConfigError as e:
        return f"not checked ({e})"
    return "verified" if user is not None else "NOT verified"


def admin_layout(**_query) -> html.Div:
    """Rendered inside the Dash Pages routing callback, i.e. inside a request."""
    if not has_role(ADMIN_ROLE):
        # The gateway refuses this page to non-admins before the app sees the
        # request; this is the app's own second line.
        return html.Div(id="admin-denied", style=CARD, children="This page is for administrators.")
    return html.Div(
        id="admin-page",
        children=[
            card(
                html.P("Admin", style={**LABEL, "color": "#dc2626"}),
                html.H2("Salaries", style={"margin": "0 0 6px"}),
                html.P(
                    [
                        "Signed assertion from the gateway: ",
                        html.Strong(identity_check(), id="identity-verified"),
                    ],
                    style={"margin": "0 0 14px", "color": "#4b5563"},
                ),
                dcc.RadioItems(
                    id="department-filter",
                    options=[{"label": " All", "value": "all"}]
                    + [{"label": f" {d}", "value": d} for d in DEPARTMENTS],
                    value="all",
                    inline=True,
                    labelStyle={"marginRight": "18px"},
                ),
                # Filled by the server callback below when the page loads.
                html.Table(
                    id="salary-table",
                    style={"width": "100%", "borderCollapse": "collapse", "marginTop": "12px"},
                ),
            ),
        ],
    )


CELL = {"textAlign": "left", "padding": "8px 10px", "borderBottom": "1px solid #eef0f4"}


@app.callback(
    Output("salary-table", "children"),
    Input("department-filter", "value"),
)
@requires(permission=SALARY_PERMISSION)  # below @app.callback: Dash registers the guarded function
def salary_rows(department: str) -> list:
    rows = [r for r in SALARIES if department in (None, "all") or r[1] == department]
    head = html.Thead(
        html.Tr([html.Th(h, style=CELL) for h in ("Name", "Department", "Title", "Salary (EUR)")])
    )
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(name, style=CELL),
                    html.Td(dept, style=CELL),
                    html.Td(title, style=CELL),
                    html.Td(f"{salary:,}", style={**CELL, "textAlign": "right"}),
                ]
            )
            for name, dept, title, salary in rows
        ]
    )
    return [head, body]


dash.register_page("home", path="/", name="Dashboard", title="dashgate demo", layout=home_layout)
dash.register_page("admin", path="/admin", name="Admin", title="dashgate demo - admin", layout=admin_layout)


if __name__ == "__main__":
    port = int(os.environ.get("DASH_PORT", "8050"))
    app.run(host="127.0.0.1", port=port, debug=False)
