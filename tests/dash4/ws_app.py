"""A Dash 4 app on the FastAPI backend whose callbacks all travel over Dash's WebSocket
(`websocket_callbacks=True`), served by uvicorn on 127.0.0.1:$PORT. tests/dash4 runs it
behind the gateway with tests/dash4/policy.toml:

- `go` fires two callbacks: one writes `public-out` (allowed to everyone), the other writes
  `salary-out` (a `dash_outputs` rule: admins only);
- `public-out`'s callback also returns a child `secret-inline` and calls `set_props` on
  `secret-panel` and on `public-note`: `secret-*` is a `dash_components` rule (admins only), so
  for anyone else the gateway must take `secret-inline` out of the socket's callback_response
  and drop the set_props for `secret-panel`, while the one for `public-note` goes through;
- `/_oracle/ws` (asked of the app directly, never through the gateway) lists every WebSocket
  handshake and message the app received, so a test can tell what reached it.
"""

from __future__ import annotations

import os
import threading

import uvicorn
from dash import Dash, Input, Output, hooks, html, set_props

SALARY = "Salary of the CEO: 987,654 EUR"
SECRET_INLINE = "Inline secret: vault code 4711"
SECRET_PANEL = "Panel secret: launch code 0815"

_seen_lock = threading.Lock()
_handshakes: list[dict] = []
_messages: list[dict] = []


@hooks.websocket_connect()
def _record_handshake(websocket):
    h = websocket.headers
    with _seen_lock:
        _handshakes.append(
            {
                "user": h.get("x-forwarded-user"),
                "host": h.get("host"),
                "origin": h.get("origin"),
                "cookie_names": sorted(websocket.cookies),
            }
        )
    return True


@hooks.websocket_message()
def _record_message(websocket, message):
    payload = message.get("payload") if isinstance(message, dict) else None
    with _seen_lock:
        _messages.append(
            {
                "user": websocket.headers.get("x-forwarded-user"),
                "type": message.get("type") if isinstance(message, dict) else None,
                "output": payload.get("output") if isinstance(payload, dict) else None,
            }
        )
    return True


app = Dash(
    __name__,
    backend="fastapi",
    websocket_callbacks=True,
    suppress_callback_exceptions=True,  # viewers' layouts lack the secret-* components
    title="dash4 websocket app",
)
app.layout = html.Div(
    [
        html.H1("Dash 4 WebSocket callbacks"),
        html.Button("Go", id="go"),
        html.Div("public: not yet", id="public-out"),
        html.Div("note: not yet", id="public-note"),
        html.Div("salary: not yet", id="salary-out"),
        html.Div("secret panel: not yet", id="secret-panel"),
    ]
)


@app.callback(Output("public-out", "children"), Input("go", "n_clicks"), prevent_initial_call=True)
def public(n):
    set_props("public-note", {"children": f"note {n}"})
    set_props("secret-panel", {"children": f"{SECRET_PANEL} ({n})"})
    return html.Div([html.Span(f"public click {n}", id="public-text"), html.Span(SECRET_INLINE, id="secret-inline")])


@app.callback(Output("salary-out", "children"), Input("go", "n_clicks"), prevent_initial_call=True)
def salary(n):
    return f"{SALARY} (click {n})"


@app.server.get("/_oracle/ws")
def oracle():
    with _seen_lock:
        return {"handshakes": list(_handshakes), "messages": list(_messages)}


@app.server.get("/_oracle/version")
def version():
    import dash

    return {"dash": dash.__version__}


if __name__ == "__main__":
    uvicorn.run(app.server, host="127.0.0.1", port=int(os.environ["PORT"]), ws="websockets-sansio", log_level="info")
