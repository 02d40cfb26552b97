"""Who is making the current request, according to the dashgate gateway."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import flask

from ._assertion import DashgateConfigError, jwks_cache, verify_assertion

USER_HEADER = "X-Forwarded-User"
ROLES_HEADER = "X-Forwarded-Roles"
PERMISSIONS_HEADER = "X-Forwarded-Permissions"
USER_DATA_HEADER = "Plotly-User-Data"
ASSERTION_HEADER = "X-Dashgate-Assertion"
JWKS_URL_ENV = "DASHGATE_JWKS_URL"


@dataclass(frozen=True)
class User:
    """The signed-in user of the current request.

    `verified` is True only when the identity was taken from an assertion whose
    signature was checked against the gateway's JWKS (`current_user(verify=True)`).
    """

    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    verified: bool = False

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions


def _split_list(value: Optional[str]) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def resolve_jwks_url(jwks_url: Optional[str] = None) -> str:
    """The JWKS URL from the argument or `DASHGATE_JWKS_URL`; DashgateConfigError if neither."""
    url = (jwks_url or os.environ.get(JWKS_URL_ENV, "")).strip()
    if not url:
        raise DashgateConfigError(
            f"current_user(verify=True) needs the gateway's JWKS URL: pass jwks_url=... "
            f"or set {JWKS_URL_ENV} (e.g. https://dashboards.example.com/auth/jwks.json)"
        )
    return url


def current_user(verify: bool = False, jwks_url: Optional[str] = None) -> Optional[User]:
    """The user of the current Flask/Dash request, or None.

    Without `verify`, the identity comes from the headers the gateway sets
    (`X-Forwarded-User`, `X-Forwarded-Roles`, `X-Forwarded-Permissions`); the
    gateway removes client-sent copies, so this is safe as long as the app can
    only be reached through the gateway.

    With `verify=True`, the identity comes from the claims of the signed
    `X-Dashgate-Assertion`, checked against the gateway's JWKS (`jwks_url` or
    env `DASHGATE_JWKS_URL`; cached). A missing or invalid assertion gives None,
    as does a `X-Forwarded-User` header that names someone else. Only a missing
    JWKS URL raises (DashgateConfigError): that is a deployment mistake.

    Returns None outside a request context (e.g. while Dash builds a layout at
    start-up), so nothing role-dependent can end up in content built then.
    """
    if verify:
        url = resolve_jwks_url(jwks_url)
        jwks_cache(url)  # validates the URL eagerly (misconfiguration raises)
    if not flask.has_request_context():
        return None
    headers = flask.request.headers
    header_user = (headers.get(USER_HEADER) or "").strip()
    if not verify:
        if not header_user:
            return None
        return User(
            username=header_user,
            roles=_split_list(headers.get(ROLES_HEADER)),
            permissions=_split_list(headers.get(PERMISSIONS_HEADER)),
            verified=False,
        )
    claims = verify_assertion(headers.get(ASSERTION_HEADER), url)
    if claims is None:
        return None
    if header_user and header_user != claims["sub"]:
        return None
    return User(
        username=claims["sub"],
        roles=frozenset(claims.get("roles") or ()),
        permissions=frozenset(claims.get("permissions") or ()),
        verified=True,
    )


def has_role(role: str, *, verify: bool = False, jwks_url: Optional[str] = None) -> bool:
    """True if the current user has `role` (False without a user)."""
    user = current_user(verify=verify, jwks_url=jwks_url)
    return user is not None and role in user.roles


def has_permission(permission: str, *, verify: bool = False, jwks_url: Optional[str] = None) -> bool:
    """True if the current user has `permission` (False without a user)."""
    user = current_user(verify=verify, jwks_url=jwks_url)
    return user is not None and permission in user.permissions
