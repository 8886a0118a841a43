"""The stable strings of a report's anomalies: their kinds and severities.

They appear in the JSON output, the HTML and tests, so they are an interface: only ever added,
never renamed. Kept apart from the analyzer because the success metrics and every renderer
read them too.
"""

from __future__ import annotations

SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"
SEVERITY_NOTE = "note"
SEVERITY_ORDER = {SEVERITY_ERROR: 0, SEVERITY_WARNING: 1, SEVERITY_NOTE: 2}

# Anomaly kinds (stable strings: they appear in JSON output and tests).
UNCLOSED_CONNECTION = "unclosed_connection"
QUEUED_WHILE_CONNECTED = "queued_while_connected"
DISCONNECT_WITHOUT_CONNECT = "disconnect_without_connect"
DUPLICATE_DISCONNECT = "duplicate_disconnect"
UNFINISHED_MEAL_LOG = "unfinished_meal_log"
WS_UPGRADE_FAILED = "ws_upgrade_failed"
