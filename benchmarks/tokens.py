"""Tokens for the load: minted from the server secret, or read from a file for a deployment.

A token file holds one token per line; a line `admin: TOKEN` gives the admin token the leak check
needs (the debug endpoint). User ids come from each token's `sub` (read, not verified).
"""

from __future__ import annotations

import base64
import secrets
import time
from pathlib import Path

import jwt
import orjson


def generate_secret() -> str:
    """A fresh HS256 secret for a server the harness starts (≥ 32 bytes, as the server wants)."""
    return secrets.token_urlsafe(48)


def _sub_of(token: str) -> str:
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])
    except (IndexError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"not a JWT with a sub claim: {token[:16]}…") from error


class TokenSource:
    """User `i` → (user id, token); distinct users for every index when minting."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        tokens: list[str] | None = None,
        admin_token: str | None = None,
        run_tag: str | None = None,
        ttl: float = 6 * 3600,
    ) -> None:
        if not secret and not tokens:
            raise ValueError("a token secret or a token file is needed")
        self._secret = secret
        self._tokens = [(_sub_of(t), t) for t in tokens or []]
        self._admin = admin_token
        self._tag = run_tag or secrets.token_hex(3)
        self._ttl = ttl
        self._cache: dict[int, tuple[str, str]] = {}

    @classmethod
    def from_file(cls, path: Path) -> TokenSource:
        tokens, admin = [], None
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.lower().startswith("admin:"):
                admin = line.split(":", 1)[1].strip()
            else:
                tokens.append(line)
        return cls(tokens=tokens, admin_token=admin)

    @property
    def distinct_users(self) -> int | None:
        """How many distinct users the source can give (None: unlimited)."""
        return None if self._secret else len({user for user, _ in self._tokens})

    def user(self, index: int) -> tuple[str, str]:
        if not self._secret:
            return self._tokens[index % len(self._tokens)]
        cached = self._cache.get(index)
        if cached is None:
            user_id = f"bench-{self._tag}-{index}"
            now = int(time.time())
            claims = {"sub": user_id, "iat": now, "exp": now + int(self._ttl)}
            cached = (user_id, jwt.encode(claims, self._secret, algorithm="HS256"))
            self._cache[index] = cached
        return cached

    def admin_token(self) -> str | None:
        if self._admin or not self._secret:
            return self._admin
        now = int(time.time())
        claims = {"sub": "bench-admin", "iat": now, "exp": now + int(self._ttl), "role": "admin"}
        self._admin = jwt.encode(claims, self._secret, algorithm="HS256")
        return self._admin
