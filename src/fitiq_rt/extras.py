"""Which optional install a missing module comes from, so the error can say what to install.

A one-node server on the embedded defaults needs none of these: PostgreSQL and Redis drivers
serve several nodes, matplotlib draws the HTML report's charts, httpx (HTTP/2) and
cryptography (ES256) send APNs pushes.
"""

from __future__ import annotations

EXTRA_FOR_MODULE = {
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "psycopg_binary": "postgres",
    "coredis": "redis",
    "matplotlib": "report",
    "httpx": "push",
    "httpcore": "push",
    "cryptography": "push",
}

WHAT_NEEDS_IT = {
    "postgres": "a postgresql:// FITIQ_DATABASE_URL",
    "redis": "FITIQ_REDIS_URL",
    "report": "the HTML report's charts",
    "push": "FITIQ_APNS_KEY_FILE (push)",
}


def install_hint(error: BaseException) -> str | None:
    """ "X needs the Y extra: pip install 'fitiq_rt[Y]'" for a module an extra provides."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    extra = EXTRA_FOR_MODULE.get(error.name.split(".")[0])
    if extra is None:
        return None
    return f"{WHAT_NEEDS_IT[extra]} needs the {extra} extra: pip install 'fitiq_rt[{extra}]'"
