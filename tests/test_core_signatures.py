"""The Python-facing API of _core reads like CPython's: every function and
method has a signature help() shows (__text_signature__), it matches
matridge/_core.pyi exactly (names, kinds, which have defaults), and
methods take keywords where a caller would name them."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from matridge import _core, matrix
from tests.harness.fake_homeserver import Answer, fake_homeserver

STUB = Path(_core.__file__ or "").parent / "_core.pyi"
KINDS = {
    "posonly": inspect.Parameter.POSITIONAL_ONLY,
    "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "kwonly": inspect.Parameter.KEYWORD_ONLY,
}


def stub_params(f: ast.FunctionDef) -> list[tuple[str, inspect._ParameterKind, bool]]:
    a = f.args
    positional = [*a.posonlyargs, *a.args]
    first_default = len(positional) - len(a.defaults)
    out: list[tuple[str, inspect._ParameterKind, bool]] = []
    for i, p in enumerate(positional):
        kind = KINDS["posonly"] if i < len(a.posonlyargs) else KINDS["args"]
        out.append((p.arg, kind, i >= first_default))
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        out.append((p.arg, KINDS["kwonly"], d is not None))
    return out


def stubbed() -> list[tuple[str, Any, ast.FunctionDef]]:
    """(qualified name, runtime object, stub) of every stubbed callable."""
    tree = ast.parse(STUB.read_text())
    found: list[tuple[str, Any, ast.FunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.append((node.name, getattr(_core, node.name), node))
        elif isinstance(node, ast.ClassDef) and hasattr(_core, node.name):
            cls = getattr(_core, node.name)
            for f in node.body:
                if not isinstance(f, ast.FunctionDef) or any(
                    isinstance(d, ast.Name) and d.id == "property"
                    for d in f.decorator_list
                ):
                    continue
                if f.name.startswith("__") and f.name != "__init__":
                    continue
                target = cls if f.name == "__init__" else getattr(cls, f.name)
                found.append((f"{node.name}.{f.name}", target, f))
    return found


@pytest.mark.parametrize(
    "name,obj,stub", stubbed(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_signature_is_shown_and_matches_the_stub(
    name: str, obj: Any, stub: ast.FunctionDef
) -> None:
    sig = inspect.signature(obj)  # ValueError without a text signature
    params = list(sig.parameters.values())
    expected = stub_params(stub)
    if stub.name == "__init__" or name.split(".")[0] != name:
        expected = expected[1:]  # self (not in the signature of a class)
        if params and params[0].name == "self":
            params = params[1:]
    got = [(p.name, p.kind, p.default is not inspect.Parameter.empty) for p in params]
    assert got == expected, f"{name}: runtime {got} != stub {expected}"


@pytest.mark.asyncio(loop_scope="session")
async def test_api_calls_take_keywords_and_positions_alike() -> None:
    with fake_homeserver() as fake:
        fake.route(
            "/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t1",
            Answer(200, {"event_id": "$1"}),
        )
        fake.route(
            "/_matrix/client/v3/rooms/%21r%3Ax/send/m.room.message/t2",
            Answer(200, {"event_id": "$2"}),
        )
        client = _core.Client(fake.base_url, "token")
        loop = asyncio.get_running_loop()
        # The loop resolves completions as matrix.py sets it up (once per
        # loop; removing the reader here would starve later tests).
        matrix._attach(loop)
        by_name = loop.create_future()
        client.send_event(
            by_name,
            room_id="!r:x",
            event_type="m.room.message",
            txn_id="t1",
            content={"body": "hi"},
        )
        by_position = loop.create_future()
        client.send_event(by_position, "!r:x", "m.room.message", "t2", {"body": "ho"})
        assert (await asyncio.wait_for(by_name, 10))["event_id"] == "$1"
        assert (await asyncio.wait_for(by_position, 10))["event_id"] == "$2"
    with pytest.raises(TypeError):
        client.send_event(future=None, room_id="!r:x")  # type: ignore[call-arg]


def test_room_cache_takes_keywords() -> None:
    cache = _core.RoomCache("@me:x")
    member = {
        "type": "m.room.member",
        "state_key": "@a:x",
        "sender": "@a:x",
        "content": {"membership": "join", "displayname": "Ann"},
    }
    cache.apply_state(room_id="!r:x", data=json.dumps([member]).encode(), asked_at=None)
    assert cache.member_display_name(room_id="!r:x", user_id="@a:x") == "Ann"
    assert cache.member_display_name("!r:x", "@a:x") == "Ann"
