"""csrc/ is layered, and includes go one way only (docs/architecture.rst):
util <- matrix <- engine <- py. matrix/ and util/ use neither curl nor
Python; engine/ does not use Python."""

from __future__ import annotations

import re
from pathlib import Path

CSRC = Path(__file__).parent.parent / "csrc"
LAYERS = ("util", "matrix", "engine", "py")
# System headers a layer may not use: (header, lowest layer allowed).
GUARDED = {"curl/curl.h": "engine", "Python.h": "py", "structmember.h": "py"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def code(path: Path) -> str:
    """The file without its comments (which may well speak of Python)."""
    return COMMENT.sub(" ", path.read_text())


def sources() -> list[Path]:
    return sorted(p for p in CSRC.rglob("*") if p.suffix in (".c", ".h"))


def test_every_source_is_in_a_layer() -> None:
    stray = [
        p for p in sources() if p.parent.parent != CSRC or p.parent.name not in LAYERS
    ]
    assert not stray, f"outside csrc/{{{','.join(LAYERS)}}}/: {stray}"


def test_includes_never_go_up_a_layer() -> None:
    wrong = []
    for path in sources():
        rank = LAYERS.index(path.parent.name)
        for kind, name in INCLUDE.findall(code(path)):
            if kind == '"':
                layer = name.split("/")[0]
                if layer not in LAYERS:
                    wrong.append(f"{path.relative_to(CSRC)}: {name} names no layer")
                elif LAYERS.index(layer) > rank:
                    wrong.append(f"{path.relative_to(CSRC)} includes {name}")
            elif name in GUARDED and rank < LAYERS.index(GUARDED[name]):
                wrong.append(f"{path.relative_to(CSRC)} includes <{name}>")
    assert not wrong, "\n".join(wrong)


def test_python_free_layers_call_no_python_and_no_curl() -> None:
    # Beyond includes: no Py* or curl_* call sneaks in through another header.
    calls = re.compile(r"\b(Py[A-Z_]\w*|_Py\w+|curl_\w+|CURL\w*)\b")
    wrong = []
    for path in sources():
        layer = path.parent.name
        if layer in ("util", "matrix"):
            found = set(calls.findall(code(path)))
        elif layer == "engine":
            found = {c for c in calls.findall(code(path)) if "Py" in c[:3]}
        else:
            continue
        if found:
            wrong.append(f"{path.relative_to(CSRC)}: {sorted(found)}")
    assert not wrong, "\n".join(wrong)


def test_the_engine_loop_knows_no_request_kind() -> None:
    # Each kind brings its operations (engine/request.h); the loop calls them.
    loop = code(CSRC / "engine" / "engine.c")
    for name in ("mx_kind_", "paging", "mx_decode", "mx_rooms_apply", "media"):
        assert name not in loop, f"engine.c mentions {name}"
