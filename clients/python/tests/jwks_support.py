"""Helpers for the tests: Ed25519 keys generated here, JWKS documents, token minting."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

TYP = "dashgate-assertion+jwt"
DROP = object()  # claims(roles=DROP) leaves the claim out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class SigningKey:
    kid: str
    private: Ed25519PrivateKey

    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def jwk(self, **extra: Any) -> dict:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "kid": self.kid,
            "x": b64url(self.public_raw()),
            "alg": "EdDSA",
            "use": "sig",
            **extra,
        }


def new_key(kid: str) -> SigningKey:
    return SigningKey(kid=kid, private=Ed25519PrivateKey.generate())


@dataclass
class JwksServer:
    """State of the loopback JWKS server (see the `jwks_server` fixture)."""

    url: str = ""
    base: str = ""
    document: Any = field(default_factory=lambda: {"keys": []})
    status: int = 200
    raw_body: Optional[bytes] = None  # served instead of `document` when set
    hits: int = 0

    def publish(self, *keys: SigningKey) -> None:
        self.document = {"keys": [k.jwk() for k in keys]}


def claims(**overrides: Any) -> dict:
    """Claims as the gateway issues them (sub alice, role analyst, 2 minutes), with overrides."""
    now = int(time.time())
    base = {
        "iss": "dashgate",
        "aud": "dashgate-app",
        "sub": "alice",
        "roles": ["analyst"],
        "permissions": ["reports:read"],
        "sid": "sess-1",
        "iat": now,
        "nbf": now,
        "exp": now + 120,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def mint(key: SigningKey, payload: Optional[dict] = None, **header: Any) -> str:
    """A compact JWS signed with `key` (EdDSA); header typ/kid as the gateway sets them unless overridden."""
    headers = {"typ": TYP, "kid": key.kid, **header}
    return jwt.encode(payload if payload is not None else claims(), key.private, algorithm="EdDSA", headers=headers)


def raw_token(header: dict, payload: dict, signature: bytes = b"") -> str:
    """A compact JWS assembled by hand (for alg=none and other forgeries)."""
    return ".".join(
        [
            b64url(json.dumps(header, separators=(",", ":")).encode()),
            b64url(json.dumps(payload, separators=(",", ":")).encode()),
            b64url(signature),
        ]
    )
