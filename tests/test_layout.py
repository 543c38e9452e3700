"""The package's shape: imports go one way. Type-only imports count too: a
cycle through them is still two modules that each need the other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "matridge"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports, at run time or for types."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            else:
                target = node.module or ""
            for alias in node.names:
                # `from . import config` imports the module matridge.config.
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths} | {"matridge._core"}
    return {module_name(p): imports_of(p, known) for p in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_check_sees_a_type_only_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_only_matrix_py_imports_the_c_core() -> None:
    importers = {m for m, deps in graph().items() if "matridge._core" in deps}
    assert importers == {"matridge.matrix"}


def third_party_importers(package: str) -> set[str]:
    """The modules of matridge that import ``package`` (or a submodule)."""
    found: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == package or n.startswith(package + ".") for n in names):
                found.add(module_name(path))
    return found


def test_only_crypto_primitives_imports_the_crypto_libraries() -> None:
    for library in ("vodozemac", "cryptography"):
        assert third_party_importers(library) == {"matridge.crypto.primitives"}, library


def test_nothing_imports_libolm_bindings_or_other_matrix_crypto() -> None:
    for library in ("olm", "nio", "mautrix"):
        assert third_party_importers(library) == set(), library


def test_every_subpackage_is_in_the_distribution() -> None:
    # setuptools installs only the packages pyproject.toml lists; a folder
    # missing there works in the editable checkout and breaks `pip install .`.
    import tomllib

    listed = set(
        tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"][
            "setuptools"
        ]["packages"]
    )
    present = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert listed == present
