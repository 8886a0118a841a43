"""What docs/asyncapi.yaml documents, as tables and validators the tests share.

The WebSocket description is the contract for frames, close codes and handshake refusals; the
description test and the fuzzer both check live traffic against it, so it is loaded here once
rather than imported from one test module into another.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import yaml

from tests.servers import REPO_ROOT

ASYNCAPI = yaml.safe_load((REPO_ROOT / "docs" / "asyncapi.yaml").read_text())
WS_EXTRA = ASYNCAPI["channels"]["mealLogs"]


# ----------------------------------------------------------------------------- validation


def strict(schema: Any) -> Any:
    """A copy where every object schema refuses properties it does not name."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def validate(
    instance: Any,
    schema: dict[str, Any],
    doc: dict[str, Any],
    cls: type = jsonschema.Draft202012Validator,
) -> None:
    """Validate against `schema`, resolving `#/components/...` in `doc`, formats included."""
    root = {**strict(schema), "components": strict(doc["components"])}
    cls(root, format_checker=cls.FORMAT_CHECKER).validate(instance)


def validate_frame(frame: dict[str, Any]) -> str:
    """Validate a server frame against the AsyncAPI message of its `type`; return the type."""
    kind = frame.get("type")
    schema = SERVER_SCHEMAS.get(kind)
    assert schema is not None, f"undocumented server frame type {kind!r}: {frame}"
    validate(frame, schema, ASYNCAPI, jsonschema.Draft7Validator)
    return kind


def _message_schemas(direction: str) -> dict[str, dict[str, Any]]:
    """`type` value → payload schema of every message going `direction` ("out" or "in").

    Out: the messages of `send` operations and the replies of `receive` operations.
    """
    refs = []
    for operation in ASYNCAPI["operations"].values():
        if operation["action"] == ("send" if direction == "out" else "receive"):
            refs += operation["messages"]
        if direction == "out" and "reply" in operation:
            refs += operation["reply"]["messages"]
    out = {}
    for ref in refs:
        message = ASYNCAPI["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
        schema = ASYNCAPI["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
        out[schema["properties"]["type"]["const"]] = schema
    return out


SERVER_SCHEMAS = _message_schemas("out")
CLIENT_SCHEMAS = _message_schemas("in")
CLOSE_CODES = {entry["code"] for entry in WS_EXTRA["x-close-codes"]}
REFUSALS = {entry["status"]: entry["code"] for entry in WS_EXTRA["x-handshake-refusals"]}
