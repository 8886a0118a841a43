"""Tokens: only HS256 with a string sub and a numeric exp. Settings: bad values stop the start."""

from __future__ import annotations

import base64
import time

import jwt
import orjson
import pytest

from fitiq_rt.auth import AuthError, TokenVerifier, load_or_create_secret, mint_token, select_token
from fitiq_rt.config import SettingsError, load_settings

SECRET = "s" * 40
VERIFIER = TokenVerifier(secret=SECRET)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def _unsigned(claims: dict) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


NOW = int(time.time())
BAD_TOKENS = {
    "alg none": _unsigned({"sub": "u", "exp": NOW + 86400}),
    "HS512": jwt.encode({"sub": "u", "exp": NOW + 86400}, SECRET, algorithm="HS512"),
    "missing exp": jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"),
    "string exp": jwt.encode({"sub": "u", "exp": "tomorrow"}, SECRET, algorithm="HS256"),
    "missing sub": jwt.encode({"exp": NOW + 86400}, SECRET, algorithm="HS256"),
    "numeric sub": jwt.encode({"sub": 42, "exp": NOW + 86400}, SECRET, algorithm="HS256"),
    "empty sub": jwt.encode({"sub": "", "exp": NOW + 86400}, SECRET, algorithm="HS256"),
    "129-char sub": jwt.encode({"sub": "x" * 129, "exp": NOW + 86400}, SECRET, algorithm="HS256"),
    "bad signature": jwt.encode({"sub": "u", "exp": NOW + 86400}, "t" * 40, algorithm="HS256"),
    "garbage": "a.b.c",
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_bad_tokens_are_refused_as_invalid(name: str) -> None:
    with pytest.raises(AuthError) as refused:
        VERIFIER.verify(BAD_TOKENS[name])
    assert refused.value.reason == "invalid_token"


def test_expired_and_missing_tokens_have_their_own_reasons() -> None:
    with pytest.raises(AuthError) as expired:
        VERIFIER.verify(mint_token(SECRET, "u", ttl=-1))
    assert expired.value.reason == "expired_token"
    with pytest.raises(AuthError) as missing:
        VERIFIER.verify(None)
    assert missing.value.reason == "missing_token"


def test_a_good_token_and_leeway() -> None:
    identity = VERIFIER.verify(mint_token(SECRET, "ana", admin=True))
    assert (identity.user_id, identity.is_admin) == ("ana", True)
    lenient = TokenVerifier(secret=SECRET, leeway=30)
    assert lenient.verify(mint_token(SECRET, "ana", ttl=-10)).user_id == "ana"


def test_audience_and_issuer_checks() -> None:
    strict = TokenVerifier(secret=SECRET, audience="fitiq", issuer="auth.fitiq")
    good = mint_token(SECRET, "u", extra={"aud": "fitiq", "iss": "auth.fitiq"})
    assert strict.verify(good).user_id == "u"
    for extra in ({"aud": "other", "iss": "auth.fitiq"}, {"iss": "auth.fitiq"}, {"aud": "fitiq"}):
        with pytest.raises(AuthError):
            strict.verify(mint_token(SECRET, "u", extra=extra))


def test_query_and_header_tokens_that_disagree_are_refused() -> None:
    assert select_token("a", None) == "a"
    assert select_token(None, "b") == "b"
    assert select_token("a", "a") == "a"
    with pytest.raises(AuthError):
        select_token("a", "b")


def test_generated_secret_is_private_and_reused(tmp_path) -> None:
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600
    assert len(first) >= 32


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"FITIQ_PORT": "eighty"}, "FITIQ_PORT"),
        ({"FITIQ_PING_INTERVAL": "-1"}, "FITIQ_PING_INTERVAL"),
        ({"FITIQ_IDLE_TIMEOUT": "nan"}, "FITIQ_IDLE_TIMEOUT"),
        ({"FITIQ_IDLE_TIMEOUT": "20", "FITIQ_PING_INTERVAL": "30"}, "FITIQ_IDLE_TIMEOUT"),
        ({"FITIQ_DATABASE_URL": "mysql://x"}, "FITIQ_DATABASE_URL"),
        ({"FITIQ_REDIS_URL": "http://x"}, "FITIQ_REDIS_URL"),
        ({"FITIQ_JWT_SECRET": "short"}, "FITIQ_JWT_SECRET"),
        ({"FITIQ_SEND_QUEUE": "0"}, "FITIQ_SEND_QUEUE"),
        ({"FITIQ_LOG_FORMAT": "xml"}, "FITIQ_LOG_FORMAT"),
        ({"FITIQ_MAX_CONNECTIONS_PER_IP": "-3"}, "FITIQ_MAX_CONNECTIONS_PER_IP"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert variable in str(error.value)
    assert "\n" not in str(error.value)


def test_defaults_match_the_contract() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert (settings.ping_interval, settings.idle_timeout) == (30.0, 90.0)
    assert (settings.send_queue, settings.max_message_bytes) == (256, 65536)
    assert (settings.max_connections_per_user, settings.history_limit) == (10, 1000)
    assert (settings.max_connections, settings.max_connections_per_ip) == (20000, 0)
    assert settings.max_messages_per_second == 20
    assert settings.redis_url is None
    assert settings.resolved_database_url.startswith("sqlite:///")


def test_a_cached_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = mint_token(SECRET, "ana", ttl=60)
    assert verifier.verify(token).user_id == "ana"
    assert verifier.verify(token).user_id == "ana"  # served from the verified-token cache
    monkeypatch.setattr("fitiq_rt.auth.time.time", lambda: NOW + 3600)
    with pytest.raises(AuthError) as expired:
        verifier.verify(token)
    assert expired.value.reason == "expired_token"
