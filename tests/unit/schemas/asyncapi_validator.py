"""Validates WebSocket messages against schemas/asyncapi.json with ``jsonschema``.

The AsyncAPI document's schemas are JSON Schema draft 7 with ``$ref``s into the
document itself (``#/components/schemas/...``), so the whole document is registered as
one resource and each message payload is checked through a ``$ref`` to it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parents[3]
DOC_PATH = ROOT / "schemas" / "asyncapi.json"
URI = "urn:mdgw:asyncapi"


@cache
def document() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(DOC_PATH.read_bytes())
    return doc


@cache
def _registry() -> Registry:
    return Registry().with_resource(URI, Resource.from_contents(document(), DRAFT7))


def validator(pointer: str) -> Draft7Validator:
    """A validator of the schema at ``pointer`` (e.g. ``/components/schemas/Trade``)."""
    return Draft7Validator({"$ref": f"{URI}#{pointer}"}, registry=_registry())


def json_messages() -> dict[str, dict[str, Any]]:
    """The JSON messages of the document by component key."""
    msgs = document()["components"]["messages"]
    return {k: m for k, m in msgs.items() if m.get("contentType") == "application/json"}


def schema_name(message: dict[str, Any]) -> str:
    return str(message["payload"]["$ref"]).rsplit("/", 1)[-1]


def _by_const(field: str) -> dict[str, str]:
    """Value of ``field`` (``type`` or ``op``) -> schema name, over the JSON messages."""
    schemas = document()["components"]["schemas"]
    out: dict[str, str] = {}
    for msg in json_messages().values():
        name = schema_name(msg)
        const = schemas[name].get("properties", {}).get(field, {}).get("const")
        if const is not None:
            out[const] = name
    return out


def server_types() -> dict[str, str]:
    """``type`` of a server message -> its schema name."""
    return _by_const("type")


def client_ops() -> dict[str, str]:
    """``op`` of a client request -> its schema name."""
    return _by_const("op")


def errors(message: Any, *, from_server: bool = True) -> list[str]:
    """Why ``message`` (a parsed JSON frame) does not match the document; [] when it does."""
    if isinstance(message, list):
        pointer = "/components/schemas/DataBatch"
    else:
        key, table = ("type", server_types()) if from_server else ("op", client_ops())
        kind = message.get(key) if isinstance(message, dict) else None
        if kind not in table:
            return [f"no message in the document has {key} {kind!r}"]
        pointer = f"/components/schemas/{table[kind]}"
    found = validator(pointer).iter_errors(message)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]
