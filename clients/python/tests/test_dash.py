"""requires() and logout_link(), on their own and inside a real Dash app."""

from __future__ import annotations

import asyncio
import inspect
import json

import flask
import pytest
from dash import Dash, Input, Output, State, html
from dash.exceptions import PreventUpdate

from dashgate_client import logout_link, requires

app = flask.Flask(__name__)


def as_user(name: str | None = None, roles: str = "", permissions: str = ""):
    headers = {"X-Forwarded-Roles": roles, "X-Forwarded-Permissions": permissions}
    if name is not None:
        headers["X-Forwarded-User"] = name
    return app.test_request_context("/_dash-update-component", method="POST", headers=headers)


# --------------------------------------------------------------------------- requires


def test_requires_permission():
    @requires(permission="salaries:read")
    def cb(x):
        return x * 2

    with as_user("alice", permissions="reports:read,salaries:read"):
        assert cb(21) == 42
    with as_user("bob", roles="admin", permissions="reports:read"):
        with pytest.raises(PreventUpdate):
            cb(21)
    with as_user(None, permissions="salaries:read"):  # no user header: no user
        with pytest.raises(PreventUpdate):
            cb(21)
    with pytest.raises(PreventUpdate):  # outside any request
        cb(21)


def test_requires_all_permissions_and_any_role():
    @requires(permission=["a", "b"], role=("admin", "owner"))
    def cb():
        return "ok"

    with as_user("u", roles="owner", permissions="a,b"):
        assert cb() == "ok"
    with as_user("u", roles="owner", permissions="a"):
        with pytest.raises(PreventUpdate):
            cb()
    with as_user("u", roles="viewer", permissions="a,b"):
        with pytest.raises(PreventUpdate):
            cb()


def test_requires_role_only_and_no_arguments():
    @requires(role="admin")
    def admin_only():
        return 1

    @requires()
    def signed_in():
        return 2

    with as_user("a", roles="admin"):
        assert admin_only() == 1 and signed_in() == 2
    with as_user("v", roles="viewer"):
        with pytest.raises(PreventUpdate):
            admin_only()
        assert signed_in() == 2
    with as_user(None):
        with pytest.raises(PreventUpdate):
            signed_in()


def test_requires_keeps_name_doc_and_signature():
    def salaries(department: str, n_clicks: int = 0, *, flag: bool = False) -> list:
        """Salary rows."""
        return []

    guarded = requires(permission="salaries:read")(salaries)
    assert guarded.__name__ == "salaries"
    assert guarded.__doc__ == "Salary rows."
    assert guarded.__wrapped__ is salaries
    assert inspect.signature(guarded) == inspect.signature(salaries)


def test_requires_keeps_async_callbacks_async():
    @requires(role="admin")
    async def cb(x):
        return x + 1

    assert inspect.iscoroutinefunction(cb)
    with as_user("a", roles="admin"):
        assert asyncio.run(cb(1)) == 2
    with as_user("v", roles="viewer"):
        with pytest.raises(PreventUpdate):
            asyncio.run(cb(1))


@pytest.mark.parametrize("bad", [{"permission": ""}, {"role": [""]}, {"role": [1]}])
def test_requires_rejects_empty_names(bad):
    with pytest.raises(TypeError):
        requires(**bad)


# --------------------------------------------------------------------------- inside Dash


def make_dash_app() -> Dash:
    dash_app = Dash(__name__, suppress_callback_exceptions=True)
    dash_app.layout = html.Div([html.Button(id="go"), html.Div(id="salary-table"), html.Div(id="note")])

    @dash_app.callback(Output("salary-table", "children"), Input("go", "n_clicks"), State("note", "children"))
    @requires(permission="salaries:read")
    def salaries(n_clicks, note):
        return f"rows for {flask.request.headers['X-Forwarded-User']} ({n_clicks})"

    return dash_app


def post_callback(client, **headers):
    body = {
        "output": "salary-table.children",
        "outputs": {"id": "salary-table", "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 3}],
        "state": [{"id": "note", "property": "children", "value": None}],
        "changedPropIds": ["go.n_clicks"],
    }
    return client.post(
        "/_dash-update-component",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **headers},
    )


def test_requires_inside_a_dash_app():
    client = make_dash_app().server.test_client()
    ok = post_callback(client, **{"X-Forwarded-User": "alice", "X-Forwarded-Permissions": "salaries:read"})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert ok.get_json()["response"]["salary-table"]["children"] == "rows for alice (3)"

    denied = post_callback(client, **{"X-Forwarded-User": "bob", "X-Forwarded-Permissions": "reports:read"})
    assert denied.status_code == 204  # PreventUpdate: no update, no data
    assert denied.get_data() == b""

    anonymous = post_callback(client)
    assert anonymous.status_code == 204


# --------------------------------------------------------------------------- logout_link


def test_logout_link_defaults():
    link = logout_link()
    assert isinstance(link, html.A)
    assert link.href == "/auth/logout"
    assert link.children == "Sign out"


def test_logout_link_prefix_and_props():
    link = logout_link("Log out", prefix="/gw/auth/", id="logout", className="btn", style={"color": "red"})
    assert link.href == "/gw/auth/logout"
    assert link.children == "Log out"
    assert link.id == "logout" and link.className == "btn" and link.style == {"color": "red"}
    assert logout_link(prefix="sso").href == "/sso/logout"


def test_logout_link_refuses_an_explicit_href():
    with pytest.raises(TypeError):
        logout_link(href="https://evil.example/")
