"""Settings: one frozen value built from the environment and `fitiq-rt serve` flags.

Every limit, interval and deadline lives here with the contract's default (CONTRACT.md §2), so a
bad value stops the start with one line that names the variable instead of failing later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs


class SettingsError(ValueError):
    """A configuration value is unusable; the message names the variable."""


def _positive(name: str) -> Callable[[Any, Any, float], None]:
    def check(_inst: Any, _attr: Any, value: float) -> None:
        if not value > 0 or math.isinf(value):
            raise SettingsError(f"{name} must be a positive finite number, got {value!r}")

    return check


def _non_negative(name: str) -> Callable[[Any, Any, float], None]:
    def check(_inst: Any, _attr: Any, value: float) -> None:
        if value < 0 or math.isinf(value):
            raise SettingsError(f"{name} must be zero or a positive number, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the server reads from its environment; see CONTRACT.md §2 for the names."""

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=_non_negative("FITIQ_PORT"))
    data_dir: Path = Path("./fitiq-data")
    database_url: str | None = None
    redis_url: str | None = None
    jwt_secret: str | None = attrs.field(default=None, repr=False)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: float = attrs.field(default=0.0, validator=_non_negative("FITIQ_JWT_LEEWAY"))
    ping_interval: float = attrs.field(default=30.0, validator=_positive("FITIQ_PING_INTERVAL"))
    idle_timeout: float = attrs.field(default=90.0, validator=_positive("FITIQ_IDLE_TIMEOUT"))
    send_queue: int = attrs.field(default=256, validator=_positive("FITIQ_SEND_QUEUE"))
    max_message_bytes: int = attrs.field(
        default=65536, validator=_positive("FITIQ_MAX_MESSAGE_BYTES")
    )
    max_connections_per_user: int = attrs.field(
        default=10, validator=_positive("FITIQ_MAX_CONNECTIONS_PER_USER")
    )
    history_limit: int = attrs.field(default=1000, validator=_positive("FITIQ_HISTORY_LIMIT"))
    max_connections: int = attrs.field(default=20000, validator=_positive("FITIQ_MAX_CONNECTIONS"))
    max_connections_per_ip: int = attrs.field(
        default=0, validator=_non_negative("FITIQ_MAX_CONNECTIONS_PER_IP")
    )
    max_messages_per_second: float = attrs.field(
        default=20.0, validator=_positive("FITIQ_MAX_MESSAGES_PER_SECOND")
    )
    workers: int = attrs.field(default=4, validator=_positive("FITIQ_WORKERS"))
    processing_timeout: float = attrs.field(
        default=30.0, validator=_positive("FITIQ_PROCESSING_TIMEOUT")
    )
    dispatch_queue: int = attrs.field(default=1024, validator=_positive("FITIQ_DISPATCH_QUEUE"))
    finish_retry_timeout: float = attrs.field(
        default=30.0, validator=_non_negative("FITIQ_FINISH_RETRY_TIMEOUT")
    )
    position_check_interval: float = attrs.field(
        default=10.0, validator=_positive("FITIQ_POSITION_CHECK_INTERVAL")
    )
    shutdown_timeout: float = attrs.field(
        default=10.0, validator=_positive("FITIQ_SHUTDOWN_TIMEOUT")
    )
    handshake_timeout: float = attrs.field(
        default=10.0, validator=_positive("FITIQ_HANDSHAKE_TIMEOUT")
    )
    max_header_bytes: int = attrs.field(
        default=16384, validator=_positive("FITIQ_MAX_HEADER_BYTES")
    )
    close_timeout: float = attrs.field(default=5.0, validator=_positive("FITIQ_CLOSE_TIMEOUT"))
    write_timeout: float = attrs.field(default=5.0, validator=_positive("FITIQ_WRITE_TIMEOUT"))
    token_warning: float = attrs.field(default=60.0, validator=_non_negative("FITIQ_TOKEN_WARNING"))
    processor: str = "builtin"  # or "package.module:factory" for another MealLogAI
    log_format: str = attrs.field(default="json")
    log_level: str = attrs.field(default="info")

    @log_format.validator
    def _check_log_format(self, _attr: Any, value: str) -> None:
        if value not in ("json", "console"):
            raise SettingsError(f"FITIQ_LOG_FORMAT must be json or console, got {value!r}")

    @log_level.validator
    def _check_log_level(self, _attr: Any, value: str) -> None:
        if value.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise SettingsError(
                f"FITIQ_LOG_LEVEL must be debug, info, warning, error or critical, got {value!r}"
            )

    def __attrs_post_init__(self) -> None:
        if self.idle_timeout <= self.ping_interval:
            raise SettingsError(
                f"FITIQ_IDLE_TIMEOUT ({self.idle_timeout}) must be larger than "
                f"FITIQ_PING_INTERVAL ({self.ping_interval})"
            )
        if self.port > 65535:
            raise SettingsError(f"FITIQ_PORT must be 0..65535, got {self.port}")
        url = self.resolved_database_url
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError(
                "FITIQ_DATABASE_URL must start with sqlite:/// or postgresql://, "
                f"got {_scheme(url)!r}"
            )
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://")):
            raise SettingsError(
                f"FITIQ_REDIS_URL must start with redis:// or rediss://, "
                f"got {_scheme(self.redis_url)!r}"
            )
        if self.processor != "builtin" and ":" not in self.processor:
            raise SettingsError(
                f"FITIQ_PROCESSOR must be builtin or module:factory, got {self.processor!r}"
            )
        if self.jwt_secret is not None and len(self.jwt_secret.encode()) < 32:
            raise SettingsError("FITIQ_JWT_SECRET must be at least 32 bytes long")

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fitiq.sqlite3').resolve()}"


def _scheme(url: str) -> str:
    """Only the scheme of a URL goes into an error line: the rest may hold a password."""
    return url.split("://", 1)[0] + "://" if "://" in url else url[:16]


# variable name -> (Settings field, parser)
_INT = int
_FLOAT = float
ENV_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "FITIQ_HOST": ("host", str),
    "FITIQ_PORT": ("port", _INT),
    "FITIQ_DATA_DIR": ("data_dir", Path),
    "FITIQ_DATABASE_URL": ("database_url", str),
    "FITIQ_REDIS_URL": ("redis_url", str),
    "FITIQ_JWT_SECRET": ("jwt_secret", str),
    "FITIQ_JWT_AUDIENCE": ("jwt_audience", str),
    "FITIQ_JWT_ISSUER": ("jwt_issuer", str),
    "FITIQ_JWT_LEEWAY": ("jwt_leeway", _FLOAT),
    "FITIQ_PING_INTERVAL": ("ping_interval", _FLOAT),
    "FITIQ_IDLE_TIMEOUT": ("idle_timeout", _FLOAT),
    "FITIQ_SEND_QUEUE": ("send_queue", _INT),
    "FITIQ_MAX_MESSAGE_BYTES": ("max_message_bytes", _INT),
    "FITIQ_MAX_CONNECTIONS_PER_USER": ("max_connections_per_user", _INT),
    "FITIQ_HISTORY_LIMIT": ("history_limit", _INT),
    "FITIQ_MAX_CONNECTIONS": ("max_connections", _INT),
    "FITIQ_MAX_CONNECTIONS_PER_IP": ("max_connections_per_ip", _INT),
    "FITIQ_MAX_MESSAGES_PER_SECOND": ("max_messages_per_second", _FLOAT),
    "FITIQ_WORKERS": ("workers", _INT),
    "FITIQ_PROCESSING_TIMEOUT": ("processing_timeout", _FLOAT),
    "FITIQ_DISPATCH_QUEUE": ("dispatch_queue", _INT),
    "FITIQ_FINISH_RETRY_TIMEOUT": ("finish_retry_timeout", _FLOAT),
    "FITIQ_POSITION_CHECK_INTERVAL": ("position_check_interval", _FLOAT),
    "FITIQ_SHUTDOWN_TIMEOUT": ("shutdown_timeout", _FLOAT),
    "FITIQ_HANDSHAKE_TIMEOUT": ("handshake_timeout", _FLOAT),
    "FITIQ_MAX_HEADER_BYTES": ("max_header_bytes", _INT),
    "FITIQ_CLOSE_TIMEOUT": ("close_timeout", _FLOAT),
    "FITIQ_WRITE_TIMEOUT": ("write_timeout", _FLOAT),
    "FITIQ_TOKEN_WARNING": ("token_warning", _FLOAT),
    "FITIQ_PROCESSOR": ("processor", str),
    "FITIQ_LOG_FORMAT": ("log_format", str),
    "FITIQ_LOG_LEVEL": ("log_level", str),
}


# variable -> (default as a person reads it, meaning): the README's table and `serve --help`
# both come from here (tests/unit/test_readme.py keeps the README equal to settings_markdown()).
SETTING_DOCS: dict[str, tuple[str, str]] = {
    "FITIQ_HOST": ("127.0.0.1", "bind address"),
    "FITIQ_PORT": ("8080", "bind port; 0 picks a free one (logged in `server.started`)"),
    "FITIQ_DATA_DIR": ("./fitiq-data", "SQLite file and generated secret"),
    "FITIQ_DATABASE_URL": ("sqlite in the data dir", "`sqlite:///path` or `postgresql://…`"),
    "FITIQ_REDIS_URL": ("unset", "`redis://…` turns on fan-out across nodes"),
    "FITIQ_JWT_SECRET": ("generated (0600 file)", "HS256 secret, at least 32 bytes"),
    "FITIQ_JWT_AUDIENCE": ("unset", "required `aud` claim, when set"),
    "FITIQ_JWT_ISSUER": ("unset", "required `iss` claim, when set"),
    "FITIQ_JWT_LEEWAY": ("0", "seconds of clock skew allowed on `exp`"),
    "FITIQ_PING_INTERVAL": ("30", "seconds between server `ping` frames"),
    "FITIQ_IDLE_TIMEOUT": (
        "90",
        "seconds of client silence before close 4008 (must exceed the ping interval)",
    ),
    "FITIQ_SEND_QUEUE": ("256", "per-socket outbound buffer; full means slow consumer (4029)"),
    "FITIQ_MAX_MESSAGE_BYTES": ("65536", "largest inbound message (1009 above)"),
    "FITIQ_MAX_CONNECTIONS_PER_USER": ("10", "sockets per user; the next gets HTTP 429"),
    "FITIQ_HISTORY_LIMIT": ("1000", "notifications kept per user for resume"),
    "FITIQ_MAX_CONNECTIONS": ("20000", "sockets per process; the next gets HTTP 503"),
    "FITIQ_MAX_CONNECTIONS_PER_IP": (
        "0 (off)",
        "sockets per client address; the next gets HTTP 429",
    ),
    "FITIQ_MAX_MESSAGES_PER_SECOND": (
        "20",
        "inbound frames per socket (burst 2×); above it close 1008",
    ),
    "FITIQ_WORKERS": ("4", "meal-log processing workers"),
    "FITIQ_PROCESSING_TIMEOUT": ("30", "seconds before a meal log is marked failed"),
    "FITIQ_DISPATCH_QUEUE": (
        "1024",
        "queued meal-log ids (overflow stays pending and is swept up)",
    ),
    "FITIQ_FINISH_RETRY_TIMEOUT": (
        "30",
        "seconds a worker retries saving a result while the database is down (then swept up)",
    ),
    "FITIQ_POSITION_CHECK_INTERVAL": (
        "10",
        "seconds between checks that every open socket has every stored notification",
    ),
    "FITIQ_SHUTDOWN_TIMEOUT": ("10", "bound on a graceful stop"),
    "FITIQ_HANDSHAKE_TIMEOUT": ("10", "seconds a client may take to send its request headers"),
    "FITIQ_MAX_HEADER_BYTES": ("16384", "request headers larger than this are refused (431)"),
    "FITIQ_CLOSE_TIMEOUT": (
        "5",
        "seconds the server waits for the client's close frame after its own",
    ),
    "FITIQ_WRITE_TIMEOUT": (
        "5",
        "seconds one WebSocket send may make no progress before close 4029",
    ),
    "FITIQ_TOKEN_WARNING": (
        "60",
        "seconds before a socket's token expiry that `token_expiring` is sent",
    ),
    "FITIQ_PROCESSOR": (
        "builtin",
        "the MealLogAI: `builtin` (offline parser) or `module:factory`",
    ),
    "FITIQ_LOG_FORMAT": ("json (console on a TTY)", "`json` or `console`"),
    "FITIQ_LOG_LEVEL": ("info", "debug, info, warning, error or critical"),
}


def settings_markdown() -> str:
    """The README's configuration table (`python -m fitiq_rt.config` prints it)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [
        f"| {name} | {default} | {meaning} |" for name, (default, meaning) in SETTING_DOCS.items()
    ]
    return "\n".join(rows)


def flag_name(variable: str) -> str:
    """FITIQ_PING_INTERVAL -> --ping-interval: every variable is also a serve flag."""
    return "--" + variable.removeprefix("FITIQ_").lower().replace("_", "-")


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from environment variables, then flag values (flags win).

    Both arrive as strings keyed by variable name; each is parsed by its field's type so the
    error can name the variable a person actually set.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, str] = {k: v for k, v in environ.items() if k in ENV_FIELDS and v != ""}
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    raw.update(flags)
    values: dict[str, Any] = {}
    for variable, text in raw.items():
        field, parse = ENV_FIELDS[variable]
        try:
            value = parse(text)
        except ValueError:
            kind = "an integer" if parse is _INT else "a number"
            named = f"{variable} ({flag_name(variable)})" if variable in flags else variable
            raise SettingsError(f"{named} must be {kind}, got {text!r}") from None
        if isinstance(value, float) and math.isnan(value):
            raise SettingsError(f"{variable} must be a number, got {text!r}")
        values[field] = value
    if "log_format" not in values:
        values["log_format"] = "console" if _stderr_is_tty() else "json"
    try:
        return Settings(**values)
    except SettingsError:
        raise
    except (TypeError, ValueError) as exc:  # attrs validators of other kinds
        raise SettingsError(str(exc)) from None


def _stderr_is_tty() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False


if __name__ == "__main__":
    print(settings_markdown())
