"""Every option in matridge/config.py has its help text (NAME__DOC) and is
documented in docs/configuration.rst: a row in the options table with its
environment variable and default, and a section of its own."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from matridge import config

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.rst"


def options(module: Any) -> dict[str, Any]:
    return {
        name: getattr(module, name)
        for name in dir(module)
        if name.isupper() and "__" not in name and not name.startswith("_")
    }


def table_rows(rst: str) -> dict[str, list[str]]:
    """The options table: ``--option`` -> its other cells."""
    rows: dict[str, list[str]] = {}
    for block in re.split(r"\n\s*\* - ", rst)[1:]:
        cells = [c.strip() for c in re.split(r"\n\s*- ", block)]
        m = re.fullmatch(r"``(--[a-z0-9-]+)``", cells[0])
        if m:
            rows[m.group(1)] = cells[1:]
    return rows


def sections(rst: str) -> set[str]:
    """The NAMEs with a section: a ``NAME`` title underlined with ^."""
    found = re.findall(r"^``([A-Z0-9_]+)``\n\^+$", rst, flags=re.MULTILINE)
    return set(found)


def documented_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value == "":
        return "empty"
    return f"``{value}``"


def problems(module: Any, rst: str) -> list[str]:
    """What is missing or stale, in words; empty when all is documented."""
    found: list[str] = []
    opts = options(module)
    rows = table_rows(rst)
    titled = sections(rst)
    for name, value in opts.items():
        doc = getattr(module, name + "__DOC", None)
        if not isinstance(doc, str) or not doc.strip():
            found.append(f"{name} has no {name}__DOC")
        flag = "--" + name.lower().replace("_", "-")
        row = rows.get(flag)
        if row is None:
            found.append(f"{name} has no row in the options table")
        else:
            if row[0] != f"``SLIDGE__MATRIDGE_{name}``":
                found.append(f"{name}'s row names the variable {row[0]}")
            if len(row) < 3 or row[1] != documented_default(value):
                found.append(f"{name}'s row gives the default {row[1:2]}")
        if name not in titled:
            found.append(f"{name} has no section")
    for flag in rows.keys() - {"--" + n.lower().replace("_", "-") for n in opts}:
        found.append(f"the table lists {flag}, which is no option")
    for name in titled - opts.keys():
        found.append(f"a section documents {name}, which is no option")
    return found


def test_every_option_is_documented() -> None:
    assert options(config), "no options found: the test reads the wrong module"
    assert problems(config, DOCS.read_text()) == []


def test_the_check_catches_an_undocumented_option() -> None:
    rst = DOCS.read_text()
    extra = SimpleNamespace(**{**vars(config), "NEW_KNOB": 3})
    assert problems(extra, rst) == [
        "NEW_KNOB has no NEW_KNOB__DOC",
        "NEW_KNOB has no row in the options table",
        "NEW_KNOB has no section",
    ]


def test_the_check_catches_a_wrong_default_and_a_stale_section() -> None:
    rst = DOCS.read_text()
    some = next(iter(options(config)))
    changed = SimpleNamespace(**{**vars(config), some: 123456789})
    [problem] = problems(changed, rst)
    assert problem.startswith(f"{some}'s row gives the default")
    without = {k: v for k, v in vars(config).items() if k != some}
    found = problems(SimpleNamespace(**without), rst)
    assert f"a section documents {some}, which is no option" in found
