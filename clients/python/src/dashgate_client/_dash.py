"""Dash-specific helpers: a callback guard and the gateway's logout link."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable, Optional, TypeVar, Union

from dash import html
from dash.exceptions import PreventUpdate

from ._identity import User, current_user

F = TypeVar("F", bound=Callable[..., Any])
Names = Union[str, Iterable[str], None]


def _names(value: Names, what: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        items: Iterable[str] = (value,)
    else:
        items = tuple(value)
    out = frozenset(items)
    if not all(isinstance(v, str) and v for v in out):
        raise TypeError(f"requires(): {what} must be non-empty strings, got {value!r}")
    return out


def requires(
    permission: Names = None,
    role: Names = None,
    *,
    verify: bool = False,
    jwks_url: Optional[str] = None,
) -> Callable[[F], F]:
    """Guard a Dash callback: without the permission/role it raises PreventUpdate.

    - `permission`: a name or several; the user needs ALL of them.
    - `role`: a name or several; the user needs ANY of them.
    - both given: both conditions; neither: any signed-in user.
    - `verify`/`jwks_url`: passed to `current_user()` (signed-assertion check).

    Put it BELOW `@app.callback(...)` (or `@callback`), so Dash registers the
    guarded function::

        @app.callback(Output("salary-table", "children"), Input("dept", "value"))
        @requires(permission="salaries:read")
        def salaries(dept): ...

    The wrapper keeps the function's name, docstring and signature
    (functools.wraps), and async callbacks stay async. PreventUpdate makes Dash
    answer 204: the outputs keep their current value.
    """
    permissions = _names(permission, "permission")
    roles = _names(role, "role")

    def allowed() -> bool:
        user: Optional[User] = current_user(verify=verify, jwks_url=jwks_url)
        if user is None:
            return False
        if permissions and not permissions <= user.permissions:
            return False
        if roles and not roles & user.roles:
            return False
        return True

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_guarded(*args: Any, **kwargs: Any) -> Any:
                if not allowed():
                    raise PreventUpdate
                return await func(*args, **kwargs)

            return async_guarded  # type: ignore[return-value]

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not allowed():
                raise PreventUpdate
            return func(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def logout_link(children: Any = "Sign out", prefix: str = "/auth", **kwargs: Any) -> html.A:
    """A link to the gateway's logout confirmation page (`<prefix>/logout`).

    `prefix` is the gateway's `auth_prefix` (default `/auth`); other keyword
    arguments (`id`, `style`, `className`, ...) go to `html.A`.
    """
    if "href" in kwargs:
        raise TypeError("logout_link(): href is derived from prefix; pass prefix=... instead")
    href = "/" + prefix.strip("/") + "/logout" if prefix.strip("/") else "/logout"
    return html.A(children=children, href=href, **kwargs)
