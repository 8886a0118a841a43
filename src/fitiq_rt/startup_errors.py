"""Why `fitiq-rt serve` could not start, as one line a person can act on.

Start-up failures arrive as whatever raised them (an OSError from bind inside trio's exception
group, an import error from FITIQ_PROCESSOR, a database driver's error); this module names the
setting behind each, without a password from a URL, and says which exit status it deserves:
2 for a bad setting value, 1 for an environment problem.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import attrs

from .config import Settings
from .extras import install_hint
from .meals.processor import ProcessorLoadError
from .push.errors import PushKeyError

BAD_SETTING = 2
ENVIRONMENT = 1


@attrs.frozen
class StartupFailure:
    message: str
    exit_status: int


def innermost(error: BaseException) -> BaseException:
    """The one exception a chain of single-member exception groups wraps."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def explain(error: BaseException, settings: Settings) -> StartupFailure | None:
    """The one-line explanation of a start-up failure, or None when it is not a known kind."""
    error = innermost(error)
    where = f"{settings.host}:{settings.port}"
    hint = install_hint(error)
    if hint is not None:
        return StartupFailure(hint, ENVIRONMENT)
    if isinstance(error, PushKeyError):
        return StartupFailure(str(error), error.exit_status)
    if isinstance(error, ProcessorLoadError):
        return StartupFailure(f"FITIQ_PROCESSOR: {error}", BAD_SETTING)
    if isinstance(error, socket.gaierror):
        return StartupFailure(
            f"cannot listen on {where}: the host {settings.host!r} does not resolve (FITIQ_HOST)",
            ENVIRONMENT,
        )
    if isinstance(error, OSError) and error.errno in _LISTEN_ERRORS and _is_bind(error):
        return StartupFailure(
            f"cannot listen on {where}: {_LISTEN_ERRORS[error.errno]}", ENVIRONMENT
        )
    if isinstance(error, OSError) and _under(error, settings.data_dir):
        return StartupFailure(
            f"cannot use the data directory {settings.data_dir.resolve()} (FITIQ_DATA_DIR): "
            f"{error.strerror or error}",
            ENVIRONMENT,
        )
    if _is_database_error(error):
        return StartupFailure(
            f"cannot open the database {_redacted(settings.resolved_database_url)} "
            f"(FITIQ_DATABASE_URL): {_first_line(error)}",
            ENVIRONMENT,
        )
    return None


_LISTEN_ERRORS = {
    errno.EADDRINUSE: "the address is already in use (another server? FITIQ_PORT / --port)",
    errno.EADDRNOTAVAIL: "not an address of this machine (FITIQ_HOST / --host)",
    errno.EACCES: "permission denied (ports below 1024 need privileges; FITIQ_PORT / --port)",
}


def _is_bind(error: OSError) -> bool:
    """An OSError raised while binding the listener (trio says so in its message)."""
    text = str(error)
    return "bind" in text or "address" in text or error.errno == errno.EADDRINUSE


def _under(error: OSError, data_dir: Path) -> bool:
    names = [name for name in (error.filename, error.filename2) if name]
    root = data_dir.resolve()
    return any(
        Path(name).resolve() == root or root in Path(name).resolve().parents for name in names
    )


def _is_database_error(error: BaseException) -> bool:
    from .meals.store import StoreUnavailable

    if isinstance(error, StoreUnavailable):
        return True
    module = type(error).__module__
    return module.startswith(("psycopg", "psycopg_pool", "sqlite3"))


def _redacted(url: str) -> str:
    """The URL without its password (user:secret@ → user:***@)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://{user}@{host}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
