"""The Dash plugin of dashgate-client: tells the gateway which callback each of the app's ways
in beside ``_dash-update-component`` runs, so that the gateway's ``dash_outputs`` and
``dash_components`` rules hold on them too.

Dash 3 and later load it by itself when this package is installed (``dash_hooks`` entry point,
Dash >= 3.0.3), so the app's code does not change. It serves one JSON document at
``<routes_pathname_prefix>_dashgate/callbacks``::

    {"version": 1,
     "api_endpoints": {"/api/x": {"output": "<callback key>"}, ...},
     "mcp_tools": {"tool_name": {"output": "<callback key>"}, ...}}

The callback key is the ``output`` string of ``_dash-dependencies`` (``out.children``,
``..a.children...b.children..``). An API endpoint whose function serves several callbacks
lists ``"outputs": [key, ...]`` instead. The gateway reads this document itself and never
lets a client reach it; it holds nothing ``_dash-dependencies`` does not already say.

The registry is built at request time, so it covers every callback registered by then. It
reads Dash's own registries (``dash._callback.GLOBAL_API_PATHS``, ``app.callback_api_paths``,
``app.callback_map``) and names MCP tools the way ``dash.mcp`` does.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Dict, List

ROUTE = "_dashgate/callbacks"
VERSION = 1


def _api_url(app: Any, path: str) -> str:
    """Where Dash serves an API endpoint: the server root since 4.2, the routes prefix before."""
    backend = getattr(app, "backend", None)
    if backend is not None and hasattr(backend, "register_callback_api_routes"):
        return path if path.startswith("/") else "/" + path
    return app.config.routes_pathname_prefix + path.lstrip("/")


def _callback_map(app: Any) -> Dict[str, dict]:
    from dash import _callback

    merged: Dict[str, dict] = dict(getattr(_callback, "GLOBAL_CALLBACK_MAP", {}) or {})
    merged.update(getattr(app, "callback_map", {}) or {})
    return merged


def _function(entry: dict) -> Any:
    func = entry.get("callback")
    return getattr(func, "__wrapped__", func)


def api_endpoints(app: Any) -> Dict[str, dict]:
    """``{url: {"output": key}}`` for every API endpoint, served or declared."""
    from dash import _callback

    declared = dict(getattr(_callback, "GLOBAL_API_PATHS", {}) or {})
    declared.update(getattr(app, "callback_api_paths", {}) or {})
    by_function: Dict[int, List[str]] = {}
    for key, entry in _callback_map(app).items():
        func = _function(entry)
        if func is not None:
            by_function.setdefault(id(func), []).append(key)
    out: Dict[str, dict] = {}
    for path, func in declared.items():
        keys = by_function.get(id(func), [])
        url = _api_url(app, path)
        out[url] = {"output": keys[0]} if len(keys) == 1 else {"outputs": keys}
    return out


def _sanitize(name: str) -> str:
    # dash.mcp's CallbackAdapterCollection._sanitize_name.
    sanitized = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    sanitized = re.sub(r"_+", "_", sanitized).strip("_")
    if sanitized and sanitized[0].isdigit():
        sanitized = "cb_" + sanitized
    full = sanitized or "unnamed_callback"
    if len(full) <= 64:
        return full
    suffix = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{sanitized[:55].rstrip('_')}_{suffix}"


def mcp_tools(app: Any) -> Dict[str, dict]:
    """``{tool name: {"output": key}}`` for every callback Dash's MCP server offers as a tool."""
    try:
        from dash.mcp.primitives.tools.tools_callbacks import CallbackTools

        default_on = bool(getattr(CallbackTools, "callbacks_mcp_enabled_by_default", True))
    except ImportError:  # Dash before 4.3 has no MCP server.
        return {}
    included = []
    for key, entry in _callback_map(app).items():
        if "callback" not in entry:
            continue
        if default_on and entry.get("mcp_enabled") is False:
            continue
        if not default_on and not entry.get("mcp_enabled"):
            continue
        included.append((key, entry))
    counts: Dict[str, int] = {}
    for _, entry in included:
        name = getattr(_function(entry), "__name__", "") or ""
        counts[name] = counts.get(name, 0) + 1
    tools: Dict[str, dict] = {}
    for key, entry in included:
        name = getattr(_function(entry), "__name__", "") or ""
        tool = _sanitize(name if name and counts[name] == 1 else key)
        tools.setdefault(tool, {"outputs": []})["outputs"].append(key)
    return {
        name: ({"output": t["outputs"][0]} if len(t["outputs"]) == 1 else t)
        for name, t in tools.items()
    }


def registry(app: Any) -> Dict[str, Any]:
    return {"version": VERSION, "api_endpoints": api_endpoints(app), "mcp_tools": mcp_tools(app)}


def _register() -> None:
    try:
        from dash import hooks
    except ImportError:  # Dash 2 has no plugins; nothing to register.
        return

    @hooks.route(ROUTE, methods=("GET",))
    def dashgate_callbacks():  # a plain function: Dash's Flask and Quart wrappers are synchronous
        import dash

        return registry(dash.get_app())


_register()
