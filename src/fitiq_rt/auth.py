"""Tokens: mint and verify HS256 JWTs, and keep the generated secret (CONTRACT.md §1).

Only HS256 with a string `sub` (1-128 chars) and a numeric `exp` is accepted; everything else is
refused with a reason that goes into `ws.rejected` (never the token itself).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import attrs
import jwt

from .config import Settings

SECRET_FILE = "jwt-secret"
MAX_SUB_LENGTH = 128
VERIFIED_CACHE_SIZE = 10_000


class AuthError(Exception):
    """A refused token; `reason` is one of the contract's ws.rejected reasons."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@attrs.frozen
class Identity:
    user_id: str
    expires_at: float
    is_admin: bool


def load_or_create_secret(data_dir: Path) -> str:
    """Read the server secret from the data directory, creating it (mode 0600) on first use.

    `fitiq-rt token` and `fitiq-rt serve` both call this, so tokens minted by one are accepted by
    the other without anyone copying a secret around.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its secret
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def resolve_secret(settings: Settings) -> str:
    """The server's secret: FITIQ_JWT_SECRET, else the data directory's file (made on first use)."""
    return settings.jwt_secret or load_or_create_secret(settings.data_dir)


class SecretMissing(Exception):
    """There is no secret to mint with; the message says where it looked and what to do."""


def existing_secret(settings: Settings) -> str:
    """The secret the server uses, for minting: never a new one, which no server would know."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = (settings.data_dir / SECRET_FILE).resolve()
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        raise SecretMissing(
            f"no token secret: FITIQ_JWT_SECRET is unset and {path} does not exist "
            "(start the server first, or point at its data directory with --data-dir DIR)"
        ) from None


def mint_token(
    secret: str,
    user_id: str,
    *,
    ttl: float = 24 * 3600,
    admin: bool = False,
    now: float | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    if not 1 <= len(user_id) <= MAX_SUB_LENGTH:
        raise ValueError(f"user id must be 1-{MAX_SUB_LENGTH} characters")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": user_id, "iat": issued, "exp": issued + int(ttl)}
    if admin:
        claims["role"] = "admin"
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


@attrs.frozen
class TokenVerifier:
    """Verifies tokens with the server's secret and the optional audience/issuer checks."""

    secret: str = attrs.field(repr=False)
    audience: str | None = None
    issuer: str | None = None
    leeway: float = 0.0
    # Phones reconnect with the same token many times; a verified token's identity is kept
    # (its exp is still checked on every use) so the signature is not recomputed each time.
    _verified: dict[str, Identity] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    def verify(self, token: str | None) -> Identity:
        if not token:
            raise AuthError("missing_token", "a bearer token is required")
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at + self.leeway <= time.time():
                del self._verified[token]
                raise AuthError("expired_token", "the token has expired")
            return known
        identity = self._verify_signed(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = identity
        return identity

    def _verify_signed(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("invalid_token", "the token is malformed") from None
        if header.get("alg") != "HS256":
            raise AuthError("invalid_token", "only HS256 tokens are accepted")
        options: Any = {"require": ["sub", "exp"]}  # PyJWT's Options TypedDict
        if self.audience is None:
            options["verify_aud"] = False
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options=options,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired_token", "the token has expired") from None
        except jwt.PyJWTError:
            raise AuthError("invalid_token", "the token is invalid") from None
        sub = claims.get("sub")
        exp = claims.get("exp")
        if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_SUB_LENGTH:
            raise AuthError("invalid_token", "the token's sub must be 1-128 characters")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise AuthError("invalid_token", "the token's exp must be a number")
        return Identity(user_id=sub, expires_at=float(exp), is_admin=claims.get("role") == "admin")


def bearer_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an `Authorization: Bearer` header in raw ASGI headers, if any."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return ""
    return None


def select_token(query_token: str | None, header_token: str | None) -> str | None:
    """One token from query and header; two that disagree are refused, not guessed between."""
    if query_token and header_token and query_token != header_token:
        raise AuthError("invalid_token", "the query token and the Authorization header disagree")
    return query_token or header_token
