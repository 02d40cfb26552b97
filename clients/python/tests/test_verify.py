"""current_user(verify=True): the signed assertion, checked against a JWKS served over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time

import flask
import pytest
from jwks_support import DROP, TYP, b64url, claims, mint, new_key, raw_token

from dashgate_client import JWKSCache, current_user, has_permission, has_role, requires, verify_assertion

app = flask.Flask(__name__)


def request_with(token: str | None, **headers: str):
    h = {k.replace("_", "-"): v for k, v in headers.items()}
    if token is not None:
        h["X-Dashgate-Assertion"] = token
    return app.test_request_context("/", headers=h)


def verified_user(token: str | None, url: str, **headers: str):
    with request_with(token, **headers):
        return current_user(verify=True, jwks_url=url)


# --------------------------------------------------------------------------- good


def test_good_token_gives_the_identity_of_the_claims(published, signing_key):
    token = mint(signing_key, claims(sub="alice", roles=["admin", "viewer"], permissions=["salaries:read"]))
    # The headers claim something else: with verify=True only the signed claims count.
    user = verified_user(
        token,
        published.url,
        X_Forwarded_User="alice",
        X_Forwarded_Roles="root",
        X_Forwarded_Permissions="everything",
    )
    assert user is not None
    assert user.username == "alice"
    assert user.roles == frozenset({"admin", "viewer"})
    assert user.permissions == frozenset({"salaries:read"})
    assert user.verified is True


def test_good_token_without_the_user_header_still_verifies(published, signing_key):
    user = verified_user(mint(signing_key), published.url)
    assert user is not None and user.username == "alice" and user.verified


def test_jwks_url_from_the_environment(published, signing_key, monkeypatch):
    monkeypatch.setenv("DASHGATE_JWKS_URL", published.url)
    with request_with(mint(signing_key, claims(roles=["admin"], permissions=["salaries:read"]))):
        user = current_user(verify=True)
        assert user is not None and user.verified
        assert has_role("admin", verify=True)
        assert has_permission("salaries:read", verify=True)
        assert not has_permission("salaries:write", verify=True)


def test_jwks_is_cached(published, signing_key):
    for _ in range(5):
        assert verified_user(mint(signing_key), published.url) is not None
    assert published.hits == 1


def test_small_leeway_for_clock_skew(published, signing_key):
    now = int(time.time())
    # expired 10 s ago, nbf 10 s ahead: both within the 30 s leeway
    assert verified_user(mint(signing_key, claims(iat=now - 130, nbf=now - 130, exp=now - 10)), published.url)
    assert verified_user(mint(signing_key, claims(iat=now + 10, nbf=now + 10, exp=now + 130)), published.url)


def test_audience_as_a_list_containing_the_app(published, signing_key):
    assert verified_user(mint(signing_key, claims(aud=["dashgate-app", "other"])), published.url)


def test_other_keys_in_the_jwks_are_ignored(jwks_server, signing_key):
    jwks_server.document = {
        "keys": [
            {"kty": "RSA", "kid": "rsa-1", "n": "AQAB", "e": "AQAB"},
            {"kty": "OKP", "crv": "X25519", "kid": "x-1", "x": b64url(b"\x01" * 32)},
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": b64url(b"\x01" * 16)},
            "not-a-key",
            signing_key.jwk(),
        ]
    }
    assert verified_user(mint(signing_key), jwks_server.url) is not None


# --------------------------------------------------------------------------- rejected


def test_missing_assertion_is_no_user(published):
    assert verified_user(None, published.url, X_Forwarded_User="alice", X_Forwarded_Roles="admin") is None
    assert verified_user("", published.url, X_Forwarded_User="alice") is None


def test_expired_token_is_rejected(published, signing_key):
    now = int(time.time())
    token = mint(signing_key, claims(iat=now - 200, nbf=now - 200, exp=now - 60))
    assert verified_user(token, published.url) is None


def test_token_not_yet_valid_is_rejected(published, signing_key):
    now = int(time.time())
    token = mint(signing_key, claims(iat=now, nbf=now + 120, exp=now + 240))
    assert verified_user(token, published.url) is None


def test_token_issued_in_the_future_is_rejected(published, signing_key):
    now = int(time.time())
    token = mint(signing_key, claims(iat=now + 120, nbf=now, exp=now + 240))
    assert verified_user(token, published.url) is None


def test_lifetime_over_five_minutes_is_rejected(published, signing_key):
    now = int(time.time())
    assert verified_user(mint(signing_key, claims(iat=now, nbf=now, exp=now + 301)), published.url) is None
    assert verified_user(mint(signing_key, claims(iat=now, nbf=now, exp=now + 300)), published.url) is not None


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "dashgate-assertion+JWT ", None])
def test_wrong_or_missing_typ_is_rejected(published, signing_key, typ):
    # typ=None makes PyJWT leave typ out of the header
    assert verified_user(mint(signing_key, typ=typ), published.url) is None


@pytest.mark.parametrize("aud", ["dashgate", "other-app", ["other-app"], ""])
def test_wrong_audience_is_rejected(published, signing_key, aud):
    assert verified_user(mint(signing_key, claims(aud=aud)), published.url) is None


@pytest.mark.parametrize("iss", ["dashgat", "dashgate ", "https://dashgate", "xdashgatex"])
def test_wrong_issuer_is_rejected(published, signing_key, iss):
    assert verified_user(mint(signing_key, claims(iss=iss)), published.url) is None


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "exp", "nbf", "iat", "roles"])
def test_missing_claim_is_rejected(published, signing_key, claim):
    assert verified_user(mint(signing_key, claims(**{claim: DROP})), published.url) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"sub": ""},
        {"sub": 42},
        {"roles": "admin"},
        {"roles": ["admin", 1]},
        {"permissions": "salaries:read"},
        {"exp": "9999999999"},
        {"exp": True},
    ],
)
def test_claims_of_the_wrong_type_are_rejected(published, signing_key, bad):
    assert verified_user(mint(signing_key, claims(**bad)), published.url) is None


def test_unknown_kid_is_rejected_after_one_refetch(published, signing_key):
    stranger = new_key("k-unknown")
    token = mint(stranger)
    assert verified_user(token, published.url) is None
    assert published.hits == 2  # the first fetch, then exactly one refetch for the unknown kid
    # Right after that, more unknown kids do not hammer the JWKS endpoint.
    for _ in range(3):
        assert verified_user(mint(new_key("k-other")), published.url) is None
    assert published.hits == 2
    # ...and known keys keep working from the cache.
    assert verified_user(mint(signing_key), published.url) is not None
    assert published.hits == 2


def test_key_rotation_is_picked_up_by_one_refetch(published, signing_key):
    assert verified_user(mint(signing_key), published.url) is not None
    assert published.hits == 1
    rotated = new_key("k-2026-2")
    published.publish(signing_key, rotated)
    user = verified_user(mint(rotated, claims(sub="bob")), published.url)
    assert user is not None and user.username == "bob"
    assert published.hits == 2


def test_known_kid_but_other_key_is_rejected(published, signing_key):
    impostor = new_key(signing_key.kid)  # same kid, different key
    assert verified_user(mint(impostor), published.url) is None


def test_alg_none_is_rejected(published, signing_key):
    header = {"alg": "none", "typ": TYP, "kid": signing_key.kid}
    assert verified_user(raw_token(header, claims()), published.url) is None
    assert verified_user(raw_token(header, claims()) + "AAAA", published.url) is None
    header["alg"] = "None"
    assert verified_user(raw_token(header, claims(), b"x"), published.url) is None


def test_hmac_with_the_public_key_as_secret_is_rejected(published, signing_key):
    # Classic algorithm confusion: HS256 keyed with the public key's bytes.
    for secret in (signing_key.public_raw(), signing_key.jwk()["x"].encode()):
        header = {"alg": "HS256", "typ": TYP, "kid": signing_key.kid}
        signing_input = raw_token(header, claims()).rsplit(".", 1)[0]
        sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert verified_user(signing_input + "." + b64url(sig), published.url) is None


def test_tampered_claims_are_rejected(published, signing_key):
    token = mint(signing_key, claims(roles=["viewer"], permissions=[]))
    header, _payload, signature = token.split(".")
    forged = b64url(json.dumps(claims(roles=["admin"], permissions=["salaries:read"])).encode())
    assert verified_user(f"{header}.{forged}.{signature}", published.url) is None
    # A flipped bit in the signature as well.
    sig = bytearray(base64.urlsafe_b64decode(signature + "=="))
    sig[0] ^= 1
    assert verified_user(f"{header}.{token.split('.')[1]}.{b64url(bytes(sig))}", published.url) is None


def test_tampered_header_is_rejected(published, signing_key):
    token = mint(signing_key)
    _header, payload, signature = token.split(".")
    for header in (
        {"alg": "EdDSA", "typ": TYP, "kid": signing_key.kid, "jku": published.base + "/evil.json"},
        {"alg": "EdDSA", "typ": TYP, "kid": signing_key.kid, "jwk": signing_key.jwk()},
        {"alg": "EdDSA", "typ": TYP, "kid": signing_key.kid, "crit": ["b64"], "b64": False},
        {"alg": "EdDSA", "typ": TYP, "kid": 7},
        {"alg": "EdDSA", "typ": TYP},
    ):
        h = b64url(json.dumps(header).encode())
        assert verified_user(f"{h}.{payload}.{signature}", published.url) is None


def test_extra_header_parameters_signed_by_the_right_key_are_rejected(published, signing_key):
    assert verified_user(mint(signing_key, jku=published.base + "/x.json"), published.url) is None


@pytest.mark.parametrize(
    "garbage",
    ["x", "a.b", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9.e30.", "é.é.é", "A" * 20000, "Bearer " + "a.b.c"],
)
def test_garbage_is_rejected(published, garbage):
    assert verified_user(garbage, published.url) is None


def test_user_header_naming_someone_else_is_rejected(published, signing_key):
    token = mint(signing_key, claims(sub="alice"))
    assert verified_user(token, published.url, X_Forwarded_User="mallory") is None
    assert verified_user(token, published.url, X_Forwarded_User="alice") is not None


# --------------------------------------------------------------------------- JWKS trouble fails closed


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return


def test_unreachable_jwks_fails_closed(signing_key):
    url = f"http://127.0.0.1:{_closed_port()}/auth/jwks.json"
    assert verified_user(mint(signing_key), url) is None


@pytest.mark.parametrize(
    "status,body",
    [
        (500, b'{"keys": []}'),
        (200, b"<html>not json</html>"),
        (200, b'{"no_keys": true}'),
        (200, b"[]"),
        (200, b"{" * 100000),
    ],
)
def test_bad_jwks_responses_fail_closed(jwks_server, signing_key, status, body):
    jwks_server.status = status
    jwks_server.raw_body = body
    assert verified_user(mint(signing_key), jwks_server.url) is None


def test_oversized_jwks_is_refused(jwks_server, signing_key):
    jwks_server.raw_body = json.dumps({"keys": [signing_key.jwk()]}).encode() + b" " * (300 * 1024)
    assert verified_user(mint(signing_key), jwks_server.url) is None
    jwks_server.raw_body = None
    jwks_server.publish(signing_key)
    assert verified_user(mint(signing_key), jwks_server.url) is not None


def test_jwks_keys_are_dropped_when_a_refetch_fails(published, signing_key):
    clock = [1000.0]
    cache = JWKSCache(published.url, ttl=60, clock=lambda: clock[0])
    assert verify_assertion(mint(signing_key), cache) is not None
    published.status = 503
    clock[0] += 61  # cache expired: the refetch fails, and the old keys are not trusted any longer
    assert verify_assertion(mint(signing_key), cache) is None
    published.status = 200
    assert verify_assertion(mint(signing_key), cache) is not None
    assert published.hits == 3


def test_jwks_ttl_expiry_refetches_and_removed_keys_stop_working(published, signing_key):
    clock = [1000.0]
    cache = JWKSCache(published.url, ttl=60, clock=lambda: clock[0])
    assert verify_assertion(mint(signing_key), cache) is not None
    published.publish(new_key("k-new"))  # the old key was withdrawn
    clock[0] += 30
    assert verify_assertion(mint(signing_key), cache) is not None  # still cached
    assert published.hits == 1
    clock[0] += 31
    assert verify_assertion(mint(signing_key), cache) is None  # TTL over: refetched, key gone
    assert published.hits >= 2


def test_private_key_material_in_the_jwks_is_not_used(jwks_server, signing_key):
    jwks_server.document = {"keys": [signing_key.jwk(d=b64url(b"\x00" * 32))]}
    assert verified_user(mint(signing_key), jwks_server.url) is None


def test_requires_with_verification(published, signing_key):
    calls = []

    @requires(permission="salaries:read", verify=True, jwks_url=published.url)
    def salaries():
        calls.append(1)
        return "ok"

    from dash.exceptions import PreventUpdate

    with request_with(mint(signing_key, claims(permissions=["salaries:read"]))):
        assert salaries() == "ok"
    # Headers alone are not enough when verification is on.
    with request_with(None, X_Forwarded_User="alice", X_Forwarded_Permissions="salaries:read"):
        with pytest.raises(PreventUpdate):
            salaries()
    assert calls == [1]
