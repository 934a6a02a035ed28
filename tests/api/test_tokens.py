"""Forged and stale tokens: every one is a 401 problem with `WWW-Authenticate: Bearer`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from bookstore.bootstrap import Container
from tests.api.conftest import Account, assert_problem, login, new_account
from tests.conftest import TEST_SECRET


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWT built by hand, so that any header (alg none, RS256...) can be sent."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = (
        hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key is not None else b""
    )
    return f"{signing_input}.{b64(signature)}"


def good_claims(account: Account, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": account.id,
        "typ": "access",
        "sv": 0,
        "iss": "bookstore",
        "aud": "bookstore-api",
        "iat": now,
        "exp": now + 600,
        "jti": "forged",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def me(client: TestClient, token: str) -> Any:
    return client.get("/users/me", headers={"Authorization": f"Bearer {token}"})


def assert_refused(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


def test_a_hand_forged_token_with_the_right_key_is_accepted(
    client: TestClient, container: Container
) -> None:
    """Control: the forging helper itself makes valid tokens, so refusals below mean it."""
    account = new_account(client, container)
    token = forge({"alg": "HS256", "typ": "JWT"}, good_claims(account), TEST_SECRET.encode())
    assert me(client, token).status_code == 200


FORGERIES = {
    "expired": lambda a: forge(
        {"alg": "HS256"},
        good_claims(a, iat=int(time.time()) - 3600, exp=int(time.time()) - 60),
        TEST_SECRET.encode(),
    ),
    "wrong key": lambda a: forge(
        {"alg": "HS256"}, good_claims(a), b"another-secret-key-0123456789"
    ),
    "alg none": lambda a: forge({"alg": "none", "typ": "JWT"}, good_claims(a), None),
    "alg None spelled oddly": lambda a: forge({"alg": "NoNe"}, good_claims(a), None),
    # HS/RS confusion: a server that trusted the header would verify this "RS256" token's
    # HMAC with whatever key it holds; the algorithm is pinned, so the header is refused.
    "RS256 header with an HMAC signature": lambda a: forge(
        {"alg": "RS256"}, good_claims(a), TEST_SECRET.encode()
    ),
    "HS512 with the right key": lambda a: jwt.encode(
        good_claims(a), TEST_SECRET, algorithm="HS512"
    ),
    "missing exp": lambda a: forge(
        {"alg": "HS256"}, good_claims(a, exp=None), TEST_SECRET.encode()
    ),
    "missing iss": lambda a: forge(
        {"alg": "HS256"}, good_claims(a, iss=None), TEST_SECRET.encode()
    ),
    "missing aud": lambda a: forge(
        {"alg": "HS256"}, good_claims(a, aud=None), TEST_SECRET.encode()
    ),
    "wrong iss": lambda a: forge(
        {"alg": "HS256"}, good_claims(a, iss="someone-else"), TEST_SECRET.encode()
    ),
    "wrong aud": lambda a: forge(
        {"alg": "HS256"}, good_claims(a, aud="another-api"), TEST_SECRET.encode()
    ),
    "missing session version": lambda a: forge(
        {"alg": "HS256"}, good_claims(a, sv=None), TEST_SECRET.encode()
    ),
    "unknown user": lambda a: forge(
        {"alg": "HS256"},
        good_claims(a, sub="00000000-0000-4000-8000-000000000000"),
        TEST_SECRET.encode(),
    ),
    "refresh token used as access token": lambda a: a.refresh_token,
    "tampered payload": lambda a: _tampered(a.access_token),
    "garbage": lambda a: "not-a-token",
}


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sv"] = claims["sv"] + 1
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_token_is_refused(client: TestClient, container: Container, forgery: str) -> None:
    account = new_account(client, container)
    response = me(client, FORGERIES[forgery](account))
    assert_refused(response)
    assert_problem(response, 401, "invalid-token")


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"]
)
def test_a_missing_or_malformed_authorization_header_is_refused(
    client: TestClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_refused(client.get("/users/me", headers=headers))


def test_a_password_change_ends_every_earlier_token(
    client: TestClient, container: Container
) -> None:
    account = new_account(client, container)
    second_session = login(client, account.email)
    response = client.put(
        "/users/me",
        json={"new_password": "a brand new password", "current_password": account.password},
        headers=account.headers,
    )
    assert response.status_code == 200
    assert_refused(me(client, account.access_token))
    assert_refused(me(client, second_session["access_token"]))
    refresh = client.post("/auth/refresh", json={"refresh_token": second_session["refresh_token"]})
    assert refresh.status_code == 401
    fresh = login(client, account.email, "a brand new password")
    assert me(client, fresh["access_token"]).status_code == 200
