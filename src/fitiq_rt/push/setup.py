"""Build the push service from Settings (only called when FITIQ_APNS_KEY_FILE is set).

The key is read and checked here, at start: a missing or malformed .p8 file stops the server
with one line (startup_errors.py), not at the first push minutes later.
"""

from __future__ import annotations

from ..config import Settings
from ..meals.store import Store
from ..observability.metrics import Metrics
from .apns import ApnsClient
from .provider_token import ProviderToken, load_signing_key
from .service import PushService


def push_service_from_settings(settings: Settings, store: Store, metrics: Metrics) -> PushService:
    assert settings.apns_key_file is not None
    assert settings.apns_key_id and settings.apns_team_id and settings.apns_topic
    tokens = ProviderToken(
        load_signing_key(settings.apns_key_file),
        key_id=settings.apns_key_id,
        team_id=settings.apns_team_id,
        refresh=settings.apns_token_refresh,
    )
    client = ApnsClient(
        production_url=settings.apns_url,
        sandbox_url=settings.apns_sandbox_url,
        topic=settings.apns_topic,
        timeout=settings.push_timeout,
        expiration=settings.push_expiration,
    )
    return PushService(
        store,
        client,
        tokens,
        metrics,
        queue_size=settings.push_queue,
        concurrency=settings.push_concurrency,
        request_timeout=settings.push_timeout,
        retry_timeout=settings.push_retry_timeout,
    )
