"""Requests as dash-renderer sends them, for the Python test suites (tests/browser, tests/dash)."""

from __future__ import annotations

import json

PAGES_OUTPUT = ".._pages_content.children..._pages_store.data.."


def pages_body(pathname: str, search: str = "", labels: tuple[str, str] = ("pathname", "search")) -> dict:
    """The Dash Pages routing callback as dash-renderer posts it on navigation. `labels` are the
    property names the inputs claim (Dash takes inputs by position, whatever they claim)."""
    return {
        "output": PAGES_OUTPUT,
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [
            {"id": "_pages_location", "property": labels[0], "value": pathname},
            {"id": "_pages_location", "property": labels[1], "value": search},
        ],
        "state": [],
        "changedPropIds": ["_pages_location.pathname"],
    }


def callback_body(spec: dict, value=1) -> dict:
    """The body for a one-output callback listed as `spec` in `_dash-dependencies`, triggered by
    its first input taking `value`."""
    key = spec["output"]
    id_text, prop = key.rsplit(".", 1)
    component = json.loads(id_text) if id_text.startswith("{") else id_text
    trigger = spec["inputs"][0]
    return {
        "output": key,
        "outputs": {"id": component, "property": prop},
        "inputs": [dict(trigger, value=value)],
        "state": [],
        "changedPropIds": [f"{trigger['id']}.{trigger['property']}"],
    }
