"""Helpers for Plotly Dash apps running behind the dashgate gateway.

    from dashgate_client import current_user, has_role, has_permission, requires, logout_link

    user = current_user()                 # from X-Forwarded-User / -Roles / -Permissions
    user = current_user(verify=True)      # from the signed X-Dashgate-Assertion (JWKS)
"""

from ._assertion import (
    ASSERTION_AUDIENCE,
    ASSERTION_ISSUER,
    ASSERTION_TYP,
    DashgateConfigError,
    JWKSCache,
    clear_jwks_caches,
    verify_assertion,
)
from ._dash import logout_link, requires
from ._identity import (
    ASSERTION_HEADER,
    JWKS_URL_ENV,
    PERMISSIONS_HEADER,
    ROLES_HEADER,
    USER_DATA_HEADER,
    USER_HEADER,
    User,
    current_user,
    has_permission,
    has_role,
)

__version__ = "0.1.0"

__all__ = [
    "ASSERTION_AUDIENCE",
    "ASSERTION_HEADER",
    "ASSERTION_ISSUER",
    "ASSERTION_TYP",
    "DashgateConfigError",
    "JWKSCache",
    "JWKS_URL_ENV",
    "PERMISSIONS_HEADER",
    "ROLES_HEADER",
    "USER_DATA_HEADER",
    "USER_HEADER",
    "User",
    "clear_jwks_caches",
    "current_user",
    "has_permission",
    "has_role",
    "logout_link",
    "requires",
    "verify_assertion",
]
