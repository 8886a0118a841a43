"""Settings: one frozen value built from the environment and `fitiq-rt serve` flags.

Every limit, interval and deadline lives here with the contract's default (CONTRACT.md §2), so a
bad value stops the start with one line that names the variable instead of failing later. Each
is declared once, with `setting()`: variable, default, meaning and check; the parser, `serve
--help` and the README's table (`python -m fitiq_rt.config`) are made from those declarations.
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


# A check returns what is wrong with a value ("must be …"), or None when it is fine.
Check = Callable[[Any], str | None]
_INFO = "fitiq_setting"


def positive(value: float) -> str | None:
    if not value > 0 or math.isinf(value):
        return "must be a positive finite number"
    return None


def non_negative(value: float) -> str | None:
    if value < 0 or math.isinf(value):
        return "must be zero or a positive number"
    return None


def provider_token_age(value: float) -> str | None:
    # Apple refuses a provider token older than 60 minutes, and one renewed more often than
    # every 20 minutes (TooManyProviderTokenUpdates).
    if not 1200 <= value < 3600:
        return "must be 1200 or more and below 3600"
    return None


def one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        if value.lower() in choices:
            return None
        return "must be " + ", ".join(choices[:-1]) + " or " + choices[-1]

    return check


@attrs.frozen
class SettingInfo:
    """What a person needs to set one setting: its variable, how to read it, what it means."""

    variable: str
    field: str
    parse: Callable[[str], Any]
    shown_default: str  # as the README and `serve --help` show it
    meaning: str


def setting(
    variable: str,
    default: Any,
    meaning: str,
    *,
    check: Check | None = None,
    shown: str | None = None,
    secret: bool = False,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """Declare a setting once: the field's default and validation, and its documentation.

    The parser is `parse`, else the default's type (int, float, Path; str otherwise); a failed
    check stops
    the start with one line naming the variable.
    """

    def validate(_inst: Any, _attr: Any, value: Any) -> None:
        problem = check(value) if check is not None and value is not None else None
        if problem:
            raise SettingsError(f"{variable} {problem}, got {value!r}")

    if parse is None:
        parse = type(default) if isinstance(default, int | float | Path) else str
    metadata = {_INFO: (variable, parse, shown or _show(default), meaning)}
    return attrs.field(default=default, validator=validate, repr=not secret, metadata=metadata)


def _show(default: Any) -> str:
    if default is None:
        return "unset"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the server reads from its environment; see CONTRACT.md §2 for the names."""

    host: str = setting("FITIQ_HOST", "127.0.0.1", "bind address")
    port: int = setting(
        "FITIQ_PORT",
        8080,
        "bind port; 0 picks a free one (logged in `server.started`)",
        check=non_negative,
    )
    data_dir: Path = setting(
        "FITIQ_DATA_DIR",
        Path("./fitiq-data"),
        "SQLite file and generated secret",
        shown="./fitiq-data",
    )
    database_url: str | None = setting(
        "FITIQ_DATABASE_URL",
        None,
        "`sqlite:///path` or `postgresql://…`",
        shown="sqlite in the data dir",
    )
    redis_url: str | None = setting(
        "FITIQ_REDIS_URL", None, "`redis://…` turns on fan-out across nodes"
    )
    jwt_secret: str | None = setting(
        "FITIQ_JWT_SECRET",
        None,
        "HS256 secret, at least 32 bytes",
        shown="generated (0600 file)",
        secret=True,
    )
    jwt_audience: str | None = setting("FITIQ_JWT_AUDIENCE", None, "required `aud` claim, when set")
    jwt_issuer: str | None = setting("FITIQ_JWT_ISSUER", None, "required `iss` claim, when set")
    jwt_leeway: float = setting(
        "FITIQ_JWT_LEEWAY", 0.0, "seconds of clock skew allowed on `exp`", check=non_negative
    )
    ping_interval: float = setting(
        "FITIQ_PING_INTERVAL", 30.0, "seconds between server `ping` frames", check=positive
    )
    idle_timeout: float = setting(
        "FITIQ_IDLE_TIMEOUT",
        90.0,
        "seconds of client silence before close 4008 (must exceed the ping interval)",
        check=positive,
    )
    send_queue: int = setting(
        "FITIQ_SEND_QUEUE",
        256,
        "per-socket outbound buffer; full means slow consumer (4029)",
        check=positive,
    )
    max_message_bytes: int = setting(
        "FITIQ_MAX_MESSAGE_BYTES", 65536, "largest inbound message (1009 above)", check=positive
    )
    max_connections_per_user: int = setting(
        "FITIQ_MAX_CONNECTIONS_PER_USER",
        10,
        "sockets per user; the next gets HTTP 429",
        check=positive,
    )
    history_limit: int = setting(
        "FITIQ_HISTORY_LIMIT", 1000, "notifications kept per user for resume", check=positive
    )
    max_connections: int = setting(
        "FITIQ_MAX_CONNECTIONS",
        20000,
        "sockets per process; the next gets HTTP 503",
        check=positive,
    )
    max_connections_per_ip: int = setting(
        "FITIQ_MAX_CONNECTIONS_PER_IP",
        0,
        "sockets per client address; the next gets HTTP 429",
        check=non_negative,
        shown="0 (off)",
    )
    max_messages_per_second: float = setting(
        "FITIQ_MAX_MESSAGES_PER_SECOND",
        20.0,
        "inbound frames per socket (burst 2×); above it close 1008",
        check=positive,
    )
    workers: int = setting("FITIQ_WORKERS", 4, "meal-log processing workers", check=positive)
    processing_timeout: float = setting(
        "FITIQ_PROCESSING_TIMEOUT",
        30.0,
        "seconds before a meal log is marked failed",
        check=positive,
    )
    dispatch_queue: int = setting(
        "FITIQ_DISPATCH_QUEUE",
        1024,
        "queued meal-log ids (overflow stays pending and is swept up)",
        check=positive,
    )
    recovery_interval: float = setting(
        "FITIQ_RECOVERY_INTERVAL",
        30.0,
        "seconds between sweeps for unfinished meal logs (another node's expired claims too)",
        check=positive,
    )
    finish_retry_timeout: float = setting(
        "FITIQ_FINISH_RETRY_TIMEOUT",
        30.0,
        "seconds a worker retries saving a result while the database is down (then swept up)",
        check=non_negative,
    )
    claim_delay: float = setting(
        "FITIQ_CLAIM_DELAY",
        0.05,
        "SQLite: seconds a meal log's processing runs before it is marked `processing` (a "
        "faster one goes from pending to its result in one write); 0 marks every one at once",
        check=non_negative,
    )
    position_check_interval: float = setting(
        "FITIQ_POSITION_CHECK_INTERVAL",
        10.0,
        "seconds between checks that every open socket has every stored notification",
        check=positive,
    )
    db_pool_size: int = setting(
        "FITIQ_DB_POOL_SIZE",
        10,
        "PostgreSQL connections per node (one worker thread each)",
        check=positive,
    )
    db_lease: float = setting(
        "FITIQ_DB_LEASE",
        60.0,
        "seconds a node's claim on a meal log holds before another node may take it over",
        check=positive,
    )
    db_timeout: float = setting(
        "FITIQ_DB_TIMEOUT",
        3.0,
        "seconds to wait for a PostgreSQL connection (connect, or a free pooled one)",
        check=positive,
    )
    publish_timeout: float = setting(
        "FITIQ_PUBLISH_TIMEOUT",
        5.0,
        "seconds one fan-out may take before it is given up (the notification is stored)",
        check=positive,
    )
    redis_timeout: float = setting(
        "FITIQ_REDIS_TIMEOUT",
        2.0,
        "seconds a Redis connect or command may take before the broker reconnects",
        check=positive,
    )
    redis_retry_max: float = setting(
        "FITIQ_REDIS_RETRY_MAX",
        5.0,
        "cap on the jittered backoff between Redis reconnects (from 0.1 s, doubling)",
        check=positive,
    )
    listen_backlog: int = setting(
        "FITIQ_LISTEN_BACKLOG",
        2048,
        "pending TCP connections the kernel queues for the listener (a reconnect storm)",
        check=positive,
    )
    stalled_peer_timeout: float = setting(
        "FITIQ_STALLED_PEER_TIMEOUT",
        30.0,
        "seconds the kernel lets sent data go unacknowledged before it drops the connection",
        check=positive,
    )
    shutdown_timeout: float = setting(
        "FITIQ_SHUTDOWN_TIMEOUT", 10.0, "bound on a graceful stop", check=positive
    )
    handshake_timeout: float = setting(
        "FITIQ_HANDSHAKE_TIMEOUT",
        10.0,
        "seconds a client may take to send its request headers",
        check=positive,
    )
    max_header_bytes: int = setting(
        "FITIQ_MAX_HEADER_BYTES",
        16384,
        "request headers larger than this are refused (431)",
        check=positive,
    )
    close_timeout: float = setting(
        "FITIQ_CLOSE_TIMEOUT",
        5.0,
        "seconds the server waits for the client's close frame after its own",
        check=positive,
    )
    write_timeout: float = setting(
        "FITIQ_WRITE_TIMEOUT",
        5.0,
        "seconds one WebSocket send may make no progress before close 4029",
        check=positive,
    )
    token_warning: float = setting(
        "FITIQ_TOKEN_WARNING",
        60.0,
        "seconds before a socket's token expiry that `token_expiring` is sent",
        check=non_negative,
    )
    processor: str = setting(
        "FITIQ_PROCESSOR",
        "builtin",
        "the MealLogAI: `builtin` (offline parser) or `module:factory`",
    )
    # Push (CONTRACT.md §6): off unless FITIQ_APNS_KEY_FILE is set.
    apns_key_file: Path | None = setting(
        "FITIQ_APNS_KEY_FILE",
        None,
        "the team's APNs .p8 key; set, it turns push on",
        shown="unset (push off)",
        parse=Path,
    )
    apns_key_id: str | None = setting(
        "FITIQ_APNS_KEY_ID", None, "the key's id (the provider token's `kid`); needed for push"
    )
    apns_team_id: str | None = setting(
        "FITIQ_APNS_TEAM_ID", None, "the Apple team id (the provider token's `iss`); needed"
    )
    apns_topic: str | None = setting(
        "FITIQ_APNS_TOPIC", None, "the app's bundle id (the APNs topic); needed for push"
    )
    apns_url: str = setting(
        "FITIQ_APNS_URL", "https://api.push.apple.com", "APNs gateway for production devices"
    )
    apns_sandbox_url: str = setting(
        "FITIQ_APNS_SANDBOX_URL",
        "https://api.sandbox.push.apple.com",
        "APNs gateway for devices registered as sandbox",
    )
    apns_token_refresh: float = setting(
        "FITIQ_APNS_TOKEN_REFRESH",
        2400.0,
        "seconds a provider token is reused (Apple: 1200 to 3600)",
        check=provider_token_age,
    )
    push_queue: int = setting(
        "FITIQ_PUSH_QUEUE",
        1024,
        "queued pushes; when full a push is dropped (never the notification)",
        check=positive,
    )
    push_concurrency: int = setting(
        "FITIQ_PUSH_CONCURRENCY", 16, "pushes in flight at once (HTTP/2 streams)", check=positive
    )
    push_timeout: float = setting(
        "FITIQ_PUSH_TIMEOUT",
        10.0,
        "seconds one APNs request may take (then retried)",
        check=positive,
    )
    push_retry_timeout: float = setting(
        "FITIQ_PUSH_RETRY_TIMEOUT",
        60.0,
        "seconds a push is retried after 429, 5xx or a timeout (jittered backoff), then given up",
        check=non_negative,
    )
    push_expiration: float = setting(
        "FITIQ_PUSH_EXPIRATION",
        3600.0,
        "seconds APNs keeps trying to reach an offline phone (0: one attempt)",
        check=non_negative,
    )
    log_format: str = setting(
        "FITIQ_LOG_FORMAT",
        "json",
        "`json` or `console`",
        check=one_of("json", "console"),
        shown="json (console on a TTY)",
    )
    log_level: str = setting(
        "FITIQ_LOG_LEVEL",
        "info",
        "debug, info, warning, error or critical",
        check=one_of("debug", "info", "warning", "error", "critical"),
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
        self._check_push()

    def _check_push(self) -> None:
        for name, url in (
            ("FITIQ_APNS_URL", self.apns_url),
            ("FITIQ_APNS_SANDBOX_URL", self.apns_sandbox_url),
        ):
            if not url.startswith("https://"):
                raise SettingsError(f"{name} must start with https://, got {_scheme(url)!r}")
        if self.apns_key_file is None:
            return
        missing = [
            name
            for name, value in (
                ("FITIQ_APNS_KEY_ID", self.apns_key_id),
                ("FITIQ_APNS_TEAM_ID", self.apns_team_id),
                ("FITIQ_APNS_TOPIC", self.apns_topic),
            )
            if not value
        ]
        if missing:
            raise SettingsError(f"FITIQ_APNS_KEY_FILE is set, so {', '.join(missing)} must be too")

    @property
    def push_enabled(self) -> bool:
        return self.apns_key_file is not None

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fitiq.sqlite3').resolve()}"


def _scheme(url: str) -> str:
    """Only the scheme of a URL goes into an error line: the rest may hold a password."""
    return url.split("://", 1)[0] + "://" if "://" in url else url[:16]


def _declared() -> dict[str, SettingInfo]:
    found = {}
    for field in attrs.fields(Settings):
        variable, parse, shown, meaning = field.metadata[_INFO]
        found[variable] = SettingInfo(variable, field.name, parse, shown, meaning)
    return found


#: Every setting by its variable, in declaration order: the parser, `serve --help` and the
#: README's table (`python -m fitiq_rt.config`) all read this.
SETTINGS: dict[str, SettingInfo] = _declared()


def settings_markdown() -> str:
    """The README's configuration table (`python -m fitiq_rt.config` prints it)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| {i.variable} | {i.shown_default} | {i.meaning} |" for i in SETTINGS.values()]
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
    raw: dict[str, str] = {k: v for k, v in environ.items() if k in SETTINGS and v != ""}
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    raw.update(flags)
    values: dict[str, Any] = {}
    for variable, text in raw.items():
        info = SETTINGS[variable]
        try:
            value = info.parse(text)
        except ValueError:
            kind = "an integer" if info.parse is int else "a number"
            named = f"{variable} ({flag_name(variable)})" if variable in flags else variable
            raise SettingsError(f"{named} must be {kind}, got {text!r}") from None
        if isinstance(value, float) and math.isnan(value):
            raise SettingsError(f"{variable} must be a number, got {text!r}")
        values[info.field] = value
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
