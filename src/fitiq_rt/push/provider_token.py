"""The APNs provider token: an ES256 JWT signed with the team's .p8 key, reused, renewed.

Apple wants the same token reused (renewing more often than every 20 minutes is refused with
TooManyProviderTokenUpdates) and refuses one older than an hour (ExpiredProviderToken), so one
token is cached and renewed after FITIQ_APNS_TOKEN_REFRESH seconds (40 minutes by default), or
at once when Apple says it expired. The token is a credential: it never reaches a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import jwt
import trio
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .errors import PushKeyError


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The team's P-256 key from its .p8 file (PEM, PKCS#8), or a PushKeyError that says why."""
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise PushKeyError(f"FITIQ_APNS_KEY_FILE: cannot read {path}: {reason}", 1) from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise PushKeyError(
            f"FITIQ_APNS_KEY_FILE: {path} is not an APNs auth key "
            "(a P-256 private key in PEM, as the .p8 file Apple hands out)",
            2,
        )
    return key


class ProviderToken:
    """One cached provider token; `current()` renews it once it is `refresh` seconds old."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        key_id: str,
        team_id: str,
        refresh: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._refresh = refresh
        self._wall_clock = wall_clock
        self._token: str | None = None
        self._minted_at = 0.0  # trio time: the age is measured on the run's clock
        self.minted = 0  # tokens signed so far (a test and a debug aid)

    def current(self) -> str:
        now = trio.current_time()
        if self._token is None or now - self._minted_at >= self._refresh:
            self._mint(now)
        assert self._token is not None
        return self._token

    def renew(self, rejected: str) -> str:
        """A fresh token after Apple called `rejected` expired; a request that saw the same
        rejection a moment later gets the one already renewed (one renewal, not a burst)."""
        if self._token == rejected:
            self._mint(trio.current_time())
        return self.current()

    def _mint(self, now: float) -> None:
        self._token = jwt.encode(
            {"iss": self._team_id, "iat": int(self._wall_clock())},
            self._key,
            algorithm="ES256",
            headers={"kid": self._key_id},
        )
        self._minted_at = now
        self.minted += 1
