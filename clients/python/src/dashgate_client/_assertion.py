"""Verification of the gateway's `X-Dashgate-Assertion` against its JWKS.

The assertion is a compact JWS the gateway signs for every proxied request:

    header  {"alg": "EdDSA", "typ": "dashgate-assertion+jwt", "kid": ...}
    claims  {"iss": "dashgate", "aud": "dashgate-app", "sub": username,
             "roles": [...], "permissions": [...], "sid": ..., "iat", "nbf", "exp"}

Everything here fails closed: a token that is malformed, signed by an unknown
key, expired, meant for someone else or unverifiable because the JWKS cannot be
fetched yields ``None`` - never an exception and never an unverified identity.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping, Optional
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

log = logging.getLogger("dashgate_client")

ASSERTION_TYP = "dashgate-assertion+jwt"
ASSERTION_ALG = "EdDSA"
ASSERTION_ISSUER = "dashgate"
ASSERTION_AUDIENCE = "dashgate-app"
# The gateway issues assertions that live at most 5 minutes.
MAX_LIFETIME_SECONDS = 300
# Clock skew tolerated on exp/nbf/iat (the gateway's own default leeway).
DEFAULT_LEEWAY_SECONDS = 30

JWKS_TTL_SECONDS = 300.0
# An unknown `kid` triggers one refetch of the JWKS, at most this often: a
# stream of tokens with made-up kids must not turn into a stream of fetches.
JWKS_MIN_REFETCH_INTERVAL_SECONDS = 10.0
JWKS_TIMEOUT_SECONDS = 5.0
JWKS_MAX_BYTES = 256 * 1024
MAX_TOKEN_BYTES = 16 * 1024

# The only JOSE header parameters an assertion carries. Anything else
# (`jku`, `jwk`, `x5u`, `x5c`, `crit`, `b64`, ...) rejects the token, so no key,
# URL or processing rule is ever taken from the token itself.
_ALLOWED_HEADER_KEYS = frozenset({"alg", "typ", "kid"})


class DashgateConfigError(RuntimeError):
    """The helper is misconfigured (e.g. verification requested without a JWKS URL)."""


class JWKSError(Exception):
    """The JWKS could not be fetched or parsed."""


def _b64url_decode(data: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise ValueError("empty base64url value")
    if any(c in data for c in "=+/ \t\r\n"):
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as e:
        raise ValueError("bad base64url") from e


def parse_jwks(document: Any) -> dict[str, Ed25519PublicKey]:
    """Return {kid: key} for the usable Ed25519 signing keys of a JWKS document.

    Keys of other types, curves or uses are skipped; a document that is not a
    JWKS at all raises JWKSError.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JWKSError("not a JWKS document (no 'keys' list)")
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        if not isinstance(kid, str) or not kid:
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", ASSERTION_ALG) != ASSERTION_ALG:
            continue
        if "d" in jwk:  # a private key published by mistake: refuse to use it
            log.warning("dashgate JWKS key %r contains private material; ignored", kid)
            continue
        try:
            raw = _b64url_decode(jwk.get("x", ""))
            if len(raw) != 32:
                continue
            keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            continue
    return keys


class JWKSCache:
    """The gateway's public keys, fetched over HTTP and cached for `ttl` seconds.

    `key_for(kid)` refetches once when `kid` is unknown (key rotation), but not
    more often than every `min_refetch_interval` seconds. Thread-safe.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = JWKS_TTL_SECONDS,
        min_refetch_interval: float = JWKS_MIN_REFETCH_INTERVAL_SECONDS,
        timeout: float = JWKS_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DashgateConfigError(f"JWKS URL must be an http(s) URL, got {url!r}")
        self.url = url
        self.ttl = ttl
        self.min_refetch_interval = min_refetch_interval
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: Optional[float] = None
        self._last_forced: Optional[float] = None
        self.fetches = 0  # number of HTTP fetches attempted (for tests and metrics)

    def _fetch(self) -> dict[str, Ed25519PublicKey]:
        self.fetches += 1
        req = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (http(s) checked)
                if resp.status != 200:
                    raise JWKSError(f"HTTP {resp.status}")
                body = resp.read(JWKS_MAX_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise JWKSError(f"cannot fetch {self.url}: {e}") from e
        if len(body) > JWKS_MAX_BYTES:
            raise JWKSError(f"{self.url}: JWKS larger than {JWKS_MAX_BYTES} bytes")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise JWKSError(f"{self.url}: invalid JSON") from e
        return parse_jwks(document)

    def _refresh_locked(self, now: float) -> None:
        try:
            self._keys = self._fetch()
        except JWKSError:
            # Fail closed: keys we can no longer confirm are not trusted.
            self._keys = {}
            self._fetched_at = None
            raise
        self._fetched_at = now

    def key_for(self, kid: str) -> Optional[Ed25519PublicKey]:
        """The key with this `kid`, or None. Raises JWKSError if the JWKS is unavailable."""
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= self.ttl:
                self._refresh_locked(now)
                if kid in self._keys:
                    return self._keys[kid]
            key = self._keys.get(kid)
            if key is not None:
                return key
            if self._last_forced is not None and now - self._last_forced < self.min_refetch_interval:
                return None
            self._last_forced = now
            self._refresh_locked(now)
            return self._keys.get(kid)

    def clear(self) -> None:
        with self._lock:
            self._keys = {}
            self._fetched_at = None
            self._last_forced = None


_caches: dict[str, JWKSCache] = {}
_caches_lock = threading.Lock()


def jwks_cache(url: str) -> JWKSCache:
    """The process-wide cache for `url` (created on first use)."""
    with _caches_lock:
        cache = _caches.get(url)
        if cache is None:
            cache = _caches[url] = JWKSCache(url)
        return cache


def clear_jwks_caches() -> None:
    """Forget every cached JWKS (e.g. in tests)."""
    with _caches_lock:
        _caches.clear()


def _parse_header(token: str) -> Optional[Mapping[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = json.loads(_b64url_decode(parts[0]))
    except (ValueError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _str_list(value: Any) -> Optional[list[str]]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def verify_assertion(
    token: Optional[str],
    jwks: "JWKSCache | str",
    *,
    leeway: float = DEFAULT_LEEWAY_SECONDS,
) -> Optional[dict[str, Any]]:
    """Verify a dashgate assertion; return its claims, or None if it is not valid.

    `jwks` is a JWKSCache or the JWKS URL (then the process-wide cache for that
    URL is used). Checks: compact JWS with exactly the header parameters
    alg/typ/kid, `alg` EdDSA, `typ` dashgate-assertion+jwt, a known Ed25519
    key, the signature, `iss` dashgate, `aud` dashgate-app, `exp`, `nbf`, `iat`
    (with `leeway`), a lifetime of at most 5 minutes, and claim types
    (`sub` a non-empty string, `roles`/`permissions` lists of strings).
    """
    cache = jwks if isinstance(jwks, JWKSCache) else jwks_cache(jwks)
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        return None
    token = token.strip()
    header = _parse_header(token)
    if header is None:
        log.info("dashgate assertion rejected: malformed")
        return None
    if set(header) - _ALLOWED_HEADER_KEYS:
        log.info("dashgate assertion rejected: unexpected header parameters %s", sorted(map(str, header)))
        return None
    if header.get("alg") != ASSERTION_ALG or header.get("typ") != ASSERTION_TYP:
        log.info("dashgate assertion rejected: alg/typ %r/%r", header.get("alg"), header.get("typ"))
        return None
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        log.info("dashgate assertion rejected: no kid")
        return None
    try:
        key = cache.key_for(kid)
    except JWKSError as e:
        log.warning("dashgate assertion not verifiable, JWKS unavailable: %s", e)
        return None
    if key is None:
        log.info("dashgate assertion rejected: unknown kid %r", kid)
        return None
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ASSERTION_ALG],
            audience=ASSERTION_AUDIENCE,
            issuer=ASSERTION_ISSUER,
            leeway=leeway,
            options={
                "require": ["iss", "aud", "sub", "iat", "nbf", "exp"],
                "verify_signature": True,
                "verify_exp": True,
                "verify_nbf": True,
                "verify_iat": True,
                "verify_aud": True,
                "verify_iss": True,
            },
        )
    except jwt.PyJWTError as e:
        log.info("dashgate assertion rejected: %s", e)
        return None
    except Exception as e:  # noqa: BLE001 - any library surprise must fail closed
        log.warning("dashgate assertion rejected by an unexpected error: %r", e)
        return None

    # Belt and braces over the library: exact values and types.
    sub = claims.get("sub")
    aud = claims.get("aud")
    times = [claims.get(k) for k in ("iat", "nbf", "exp")]
    if (
        claims.get("iss") != ASSERTION_ISSUER
        or not (aud == ASSERTION_AUDIENCE or (isinstance(aud, list) and ASSERTION_AUDIENCE in aud))
        or not isinstance(sub, str)
        or not sub
        or _str_list(claims.get("roles")) is None
        or _str_list(claims.get("permissions", [])) is None
        or not all(isinstance(t, int) and not isinstance(t, bool) for t in times)
    ):
        log.info("dashgate assertion rejected: claim values or types")
        return None
    iat, nbf, exp = times
    if exp - iat > MAX_LIFETIME_SECONDS or exp - nbf > MAX_LIFETIME_SECONDS or exp <= nbf:
        log.info("dashgate assertion rejected: lifetime over %ss", MAX_LIFETIME_SECONDS)
        return None
    if time.time() - leeway > exp:  # PyJWT already checked; keep the invariant local
        return None
    return claims
