"""current_user() / has_role() / has_permission() from the gateway's headers."""

from __future__ import annotations

import flask
import pytest

from dashgate_client import DashgateConfigError, User, current_user, has_permission, has_role

app = flask.Flask(__name__)


def ctx(**headers: str):
    return app.test_request_context("/", headers={k.replace("_", "-"): v for k, v in headers.items()})


def test_outside_a_request_there_is_no_user():
    assert not flask.has_request_context()
    assert current_user() is None
    assert has_role("admin") is False
    assert has_permission("salaries:read") is False


def test_without_user_header_there_is_no_user():
    with ctx(X_Forwarded_Roles="admin", X_Forwarded_Permissions="salaries:read"):
        assert current_user() is None
        assert has_role("admin") is False
        assert has_permission("salaries:read") is False


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_user_header_is_no_user(value):
    with ctx(X_Forwarded_User=value, X_Forwarded_Roles="admin"):
        assert current_user() is None


def test_user_roles_and_permissions_from_headers():
    with ctx(
        X_Forwarded_User="alice",
        X_Forwarded_Roles="admin, viewer,,",
        X_Forwarded_Permissions="salaries:read,reports:read",
    ):
        user = current_user()
        assert user == User(
            username="alice",
            roles=frozenset({"admin", "viewer"}),
            permissions=frozenset({"salaries:read", "reports:read"}),
            verified=False,
        )
        assert isinstance(user.roles, frozenset) and isinstance(user.permissions, frozenset)
        assert user.has_role("admin") and not user.has_role("root")
        assert user.has_permission("reports:read") and not user.has_permission("x")
        assert has_role("admin") and has_role("viewer") and not has_role("Admin")
        assert has_permission("salaries:read") and not has_permission("salaries:write")


def test_user_without_roles_or_permissions_headers():
    with ctx(X_Forwarded_User="bob"):
        user = current_user()
        assert user is not None
        assert user.username == "bob"
        assert user.roles == frozenset() and user.permissions == frozenset()
        assert user.verified is False
        assert not has_role("viewer")


def test_header_names_are_case_insensitive():
    with app.test_request_context("/", headers={"x-forwarded-user": "carol", "x-forwarded-roles": "viewer"}):
        user = current_user()
        assert user is not None and user.username == "carol" and user.roles == {"viewer"}


def test_user_is_immutable():
    user = User(username="alice")
    with pytest.raises(AttributeError):
        user.username = "mallory"  # type: ignore[misc]


def test_verify_without_jwks_url_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("DASHGATE_JWKS_URL", raising=False)
    with ctx(X_Forwarded_User="alice"):
        with pytest.raises(DashgateConfigError, match="DASHGATE_JWKS_URL"):
            current_user(verify=True)
    # also outside a request: the misconfiguration is reported, not hidden
    with pytest.raises(DashgateConfigError):
        current_user(verify=True)


@pytest.mark.parametrize("url", ["ftp://gw/auth/jwks.json", "/auth/jwks.json", "http://"])
def test_verify_with_a_non_http_jwks_url_is_a_configuration_error(url):
    with ctx(X_Forwarded_User="alice"):
        with pytest.raises(DashgateConfigError):
            current_user(verify=True, jwks_url=url)
