"""schemas/asyncapi.json is a coherent AsyncAPI 3.0 document and says what the code does.

Structure: every ``$ref`` resolves, every schema is valid JSON Schema (draft 7), every
operation's messages belong to its channel (an AsyncAPI 3 rule), every message is used
and its examples match its payload. Drift: the ops, channels, error codes, close codes
and control reply types found in the gateway's code, the tables of docs/protocol.md §9
and the protobuf schema must all be what the document says.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from asyncapi_validator import DOC_PATH, ROOT, document, errors, server_types, validator
from jsonschema import Draft7Validator

from gateway import protocol
from gateway.ops import OpsEndpoints, asyncapi_document

GATEWAY = ROOT / "gateway"


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = document()
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_is_asyncapi_3() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert {s["protocol"] for s in doc["servers"].values()} == {"ws", "wss"}
    assert all(s["pathname"] == "/ws" for s in doc["servers"].values())


def test_every_ref_resolves() -> None:
    for ref in set(refs(document())):
        resolve(ref)


@pytest.mark.parametrize("name", sorted(document()["components"]["schemas"]))
def test_every_schema_is_valid_json_schema(name: str) -> None:
    Draft7Validator.check_schema(document()["components"]["schemas"][name])


def test_operations_use_their_channels_messages_and_every_message_is_used() -> None:
    doc = document()
    used: set[str] = set()
    for name, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), name
        channel = resolve(op["channel"]["$ref"])
        allowed = {m["$ref"] for m in channel["messages"].values()}
        for m in op["messages"] + op.get("reply", {}).get("messages", []):
            target = resolve(m["$ref"])  # a channel's message entry
            assert target["$ref"] in allowed, (name, m)
            used.add(target["$ref"])
    assert used == {f"#/components/messages/{k}" for k in doc["components"]["messages"]}


@pytest.mark.parametrize("key", sorted(document()["components"]["messages"]))
def test_message_examples_match_their_payload(key: str) -> None:
    message = document()["components"]["messages"][key]
    if message["contentType"] != "application/json":
        return
    pointer = message["payload"]["$ref"].removeprefix("#")
    assert message.get("examples"), key
    for example in message["examples"]:
        found = [e.message for e in validator(pointer).iter_errors(example["payload"])]
        assert not found, (key, found)


def test_a_wrong_message_is_refused() -> None:
    good = document()["components"]["messages"]["trade"]["examples"][0]["payload"]
    assert errors(good) == []
    assert errors({**good, "price": "1"})  # a string price
    assert errors({**good, "extra": 1})  # a field the document does not know
    assert errors({"type": "no_such_message"})
    assert errors({k: v for k, v in good.items() if k != "sequence"})


# ---- drift between the document and the code ----------------------------------------------


def schema(name: str) -> dict[str, Any]:
    result: dict[str, Any] = document()["components"]["schemas"][name]
    return result


def consts(name: str) -> set[str]:
    return {alt["const"] for alt in schema(name)["oneOf"]}


def calls(func: str) -> Iterator[ast.Call]:
    """Calls of ``func`` (a name or an attribute) anywhere in gateway/*.py."""
    for path in GATEWAY.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                if name == func:
                    yield node


def literal(node: ast.AST | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def test_ops_and_channels_are_the_gateways() -> None:
    ops = {
        schema(n)["properties"]["op"]["const"]
        for n in ("Subscribe", "Unsubscribe", "Resync", "Ping", "Auth", "Replay", "CancelReplay")
    }
    assert ops == set(protocol.OPS)
    assert set(protocol.CHANNELS) <= set(schema("Channel")["enum"])
    assert set(protocol.SPEEDS) == set(schema("Speed")["enum"])
    from core.types import VALID_DEPTHS

    assert set(VALID_DEPTHS) == set(schema("Depth")["enum"])


def error_codes_in_code() -> set[str]:
    codes = {literal(c.args[0]) for c in calls("ProtocolError") if c.args}
    for c in calls("send_control"):
        if literal(c.args[0]) == "error":
            codes |= {literal(k.value) for k in c.keywords if k.arg == "code"}
    return {c for c in codes if isinstance(c, str)}


def test_error_codes_are_the_gateways() -> None:
    found = error_codes_in_code()
    assert len(found) >= 8, found
    assert consts("ErrorCode") == found


def protocol_table(section: str) -> set[str]:
    """First-column values of the table under a '### <section>' heading of docs/protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    body = text.split(f"### {section}", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `?([a-z_0-9]+)`? \|", body, re.MULTILINE)) - {"code"}


def test_error_codes_are_the_documented_ones() -> None:
    assert consts("ErrorCode") == protocol_table("9.2 Error codes")


def close_codes() -> set[int]:
    return {c["code"] for c in document()["channels"]["marketData"]["x-close-codes"]}


def test_close_codes_cover_the_gateways_and_the_documented_ones() -> None:
    in_code = set()
    for func in ("close_later", "close"):
        for c in calls(func):
            in_code |= {
                a.value for a in c.args if isinstance(a, ast.Constant) and type(a.value) is int
            }
    in_code = {c for c in in_code if 1000 <= c < 5000}
    assert in_code and in_code <= close_codes()
    assert close_codes() == {int(c) for c in protocol_table("9.3 Close codes")}


def test_every_control_reply_of_the_gateway_is_documented() -> None:
    kinds = {literal(c.args[0]) for c in calls("send_control") if c.args}
    kinds = {k for k in kinds if isinstance(k, str)}
    assert {"subscribed", "error", "pong", "status"} <= kinds
    assert kinds <= set(server_types()), kinds - set(server_types())


def test_protobuf_message_embeds_the_schema() -> None:
    pb = document()["components"]["messages"]["protobufData"]["payload"]
    assert pb["schema"] == (ROOT / "schemas" / "market_data.proto").read_text(), (
        "run scripts/gen-proto: it embeds schemas/market_data.proto in the document"
    )


def test_the_gateway_serves_this_document() -> None:
    assert asyncapi_document() == DOC_PATH.read_bytes()
    ops = OpsEndpoints(5, lambda: {"status": "healthy"}, lambda: (b"", "text/plain"))
    r = ops.respond("/asyncapi.json", "198.51.100.7", 1.0)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert orjson.loads(r.body) == document()
