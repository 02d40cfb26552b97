"""Example Plotly Dash app that runs, unmodified, behind the dashgate gateway.

The app implements NO authentication of its own. It trusts the identity
headers that dashgate sets on every proxied request (and strips from client
requests):

    X-Forwarded-User   the signed-in username
    X-Forwarded-Roles  comma-separated roles (may be empty or missing)

Never expose this app directly: it listens on 127.0.0.1 only, and anyone who
can reach it without the gateway in front could forge those headers.

Run:
    DASH_PORT=8050 python app.py            # development server, debug off
    gunicorn -b 127.0.0.1:8050 app:server   # production-style
"""

from __future__ import annotations

import math
import os

import flask
import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

USER_HEADER = "X-Forwarded-User"
ROLES_HEADER = "X-Forwarded-Roles"

# --------------------------------------------------------------------------
# Identity, read from the request the gateway forwarded
# --------------------------------------------------------------------------


def current_identity() -> tuple[str, list[str]]:
    """Return (username, roles) from the gateway's headers.

    Works in the layout function (it runs inside the `_dash-layout` request)
    and inside callbacks (they run inside `_dash-update-component`). Outside a
    request - Dash calls a layout function once at start-up to build its
    validation layout, which it then embeds in every index page - this
    returns an anonymous identity, so no role-restricted content can leak
    into that public copy.
    """
    if not flask.has_request_context():
        return "", []
    headers = flask.request.headers
    user = headers.get(USER_HEADER, "").strip()
    roles = [r.strip() for r in headers.get(ROLES_HEADER, "").split(",") if r.strip()]
    return user, roles


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


# --------------------------------------------------------------------------
# App
# --------------------------------------------------------------------------

app = Dash(__name__, title="dashgate demo", update_title=None)
app.index_string = app.index_string.replace(
    "{%css%}", "{%css%}\n        <style>body { margin: 0; }</style>", 1
)
server = app.server  # for gunicorn: `gunicorn app:server`


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


def layout() -> html.Div:
    """Built per request, inside the `_dash-layout` call the gateway forwards."""
    user, roles = current_identity()
    shown_user = user or "anonymous"
    role_pills: list = []
    for r in roles:  # spaces between the pills keep the element's text readable
        role_pills += [html.Span(r, style=PILL), " "]
    role_pills = role_pills or [html.Span("no roles", style={"color": "#6b7280"})]
    return html.Div(
        style=PAGE,
        children=[
            html.Header(
                style=HEADER,
                children=[
                    html.Div(
                        [
                            html.Span("dashgate", style={"fontWeight": "700", "fontSize": "18px"}),
                            html.Span(" demo dashboard", style={"opacity": ".8"}),
                        ]
                    ),
                    html.A("Sign out", id="logout", href="/auth/logout", style=LOGOUT),
                ],
            ),
            html.Main(
                style=MAIN,
                children=[
                    html.Div(
                        style=GRID,
                        children=[
                            html.Div(
                                style=CARD,
                                children=[
                                    html.P("Account", style=LABEL),
                                    html.P(
                                        id="whoami",
                                        children=f"Signed in as {shown_user}",
                                        style=BIG,
                                    ),
                                ],
                            ),
                            html.Div(
                                style=CARD,
                                children=[
                                    html.P("Roles", style=LABEL),
                                    html.Div(
                                        id="roles",
                                        children=role_pills,
                                    ),
                                ],
                            ),
                            html.Div(
                                style=CARD,
                                children=[
                                    html.P("Server callback", style=LABEL),
                                    html.Button("Run job", id="run", n_clicks=0, style=BUTTON),
                                    html.P(
                                        id="result",
                                        children="Not run yet",
                                        style={"margin": "10px 0 0", "color": "#374151"},
                                    ),
                                ],
                            ),
                        ],
                    ),
                    html.Div(
                        style=CARD,
                        children=[
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
                            dcc.Graph(
                                id="chart",
                                figure=figure("requests"),
                                config={"displaylogo": False},
                            ),
                        ],
                    ),
                    *([admin_panel()] if "admin" in roles else []),
                ],
            ),
        ],
    )


app.layout = layout  # a function: evaluated per request


@app.callback(
    Output("result", "children"),
    Input("run", "n_clicks"),
    prevent_initial_call=True,
)
def run_job(n_clicks: int) -> str:
    # Read the identity again from THIS request (the callback POST), not from
    # the layout: it proves the POST went through the gateway.
    user, _ = current_identity()
    return f"Run {n_clicks or 0} by {user or 'anonymous'}"


@app.callback(
    Output("chart", "figure"),
    Input("series", "value"),
    prevent_initial_call=True,
)
def update_chart(series: str) -> go.Figure:
    return figure(series)


if __name__ == "__main__":
    port = int(os.environ.get("DASH_PORT", "8050"))
    app.run(host="127.0.0.1", port=port, debug=False)
