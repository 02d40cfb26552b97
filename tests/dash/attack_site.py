"""What the Dash attack tests talk to: one Dash version's app behind the gateway (the
`site` fixture of conftest.py makes it). Its own module, so that test modules import it by a
name no other suite uses."""

from __future__ import annotations

from dataclasses import dataclass, field

import requests

PREFIX = "/app/"


@dataclass
class Site:
    """One Dash version behind the gateway."""

    version: str  # the Dash version the app reports
    url: str  # the gateway
    app_url: str  # the app itself, for the oracle only
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, user: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}", "Accept": "application/json", **extra}

    def get(self, user: str, path: str, **extra: str) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers(user, **extra), timeout=30)

    def post(self, user: str, path: str, body: dict, params: dict | None = None) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=self.headers(user), params=params, timeout=30)
