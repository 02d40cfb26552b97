"""Fixtures: a JWKS served over real HTTP on loopback, fresh caches per test."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from jwks_support import JwksServer, SigningKey, new_key

import dashgate_client


@pytest.fixture
def jwks_server():
    """A tiny HTTP server on 127.0.0.1 (free port) serving `state.document` at /auth/jwks.json."""
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            if self.path != "/auth/jwks.json":
                self.send_error(404)
                return
            state.hits += 1
            body = state.raw_body if state.raw_body is not None else json.dumps(state.document).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    state.base = f"http://{host}:{port}"
    state.url = state.base + "/auth/jwks.json"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="jwks-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def signing_key() -> SigningKey:
    return new_key("k-2026-1")


@pytest.fixture
def published(jwks_server: JwksServer, signing_key: SigningKey) -> JwksServer:
    jwks_server.publish(signing_key)
    return jwks_server


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch):
    monkeypatch.delenv("DASHGATE_JWKS_URL", raising=False)
    dashgate_client.clear_jwks_caches()
    yield
    dashgate_client.clear_jwks_caches()
