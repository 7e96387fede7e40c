"""The house's rules, checked on the source: imports flow one way between the rooms, and no module
imports a private name from another (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_privacy

ROOT = Path(pytest_privacy.__file__).parent

# What each part of the package may import (besides itself). Shared modules sit beside the rooms.
SHARED = {"strict", "results", "data"}
ALLOWED = {
    "strict": set(), "results": set(), "data": set(), "datasets": {"data"},
    "engine": SHARED,
    "audit": SHARED | {"engine", "pytest_privacy"},  # (the package: its __version__ keys caches)
    "stats": {"results", "data"},  # numpy and scipy; the audit plan's data only for its type
    "metrics": {"stats"},  # the public front of the statistics (DESIGN.md's names)
    "attacks": SHARED | {"stats"},
    "config": {"attacks", "strict"},
    "report": {"results", "stats", "config", "data", "querying", "pytest_privacy"},
    "assertions": SHARED | {"attacks", "stats", "report"},
    "plugin": None,  # wires everything
    "__main__": None,
    "pytest_privacy": None,  # the lazy re-exports
}


def _imports() -> list[tuple[str, str, str]]:
    """``(module, imported module, name)`` for every ``from pytest_privacy... import name``."""
    found = []
    for path in ROOT.rglob("*.py"):
        parts = list(path.with_suffix("").relative_to(ROOT.parent).parts)
        package = parts[:-1]
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "pytest_privacy":
                found += [(module, target, alias.name) for alias in node.names]
    return found


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_imports_flow_one_way_between_the_rooms():
    assert set(ALLOWED) >= {_part(m) for m, _, _ in _imports()}, "a new top-level module: give it a place in ALLOWED"
    wrong = sorted(
        f"{module} imports {target}"
        for module, target, _ in _imports()
        if ALLOWED[_part(module)] is not None and _part(target) not in ALLOWED[_part(module)] | {_part(module)}
    )
    assert not wrong, "imports against the flow in ARCHITECTURE.md:\n" + "\n".join(wrong)


def test_the_allowed_flow_has_no_cycles():
    graph = {k: v for k, v in ALLOWED.items() if v is not None}

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert not [k for k in graph if reaches(k, k)]


def test_no_module_imports_a_private_name_from_another():
    private = sorted(
        f"{module} imports {name} from {target}"
        for module, target, name in _imports()
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
    )
    assert not private, "\n".join(private)


# Modules a notebook imports without torch or pytest: the public front and the numpy-only core.
LIGHT = [
    "pytest_privacy", "pytest_privacy.audit", "pytest_privacy.audit.dataset", "pytest_privacy.attacks",
    "pytest_privacy.attacks.label_only", "pytest_privacy.attacks.lm", "pytest_privacy.data.text",
    "pytest_privacy.engine.code_identity", "pytest_privacy.metrics",
    "pytest_privacy.stats", *(f"pytest_privacy.stats.{m}" for m in (
        "checks", "roc", "intervals", "gates", "pooled", "looks", "epsilon", "comparisons", "one_run", "one_run_power", "one_run_fdp",
        "dp_claim", "exposure")), "pytest_privacy.data",
    "pytest_privacy.results", "pytest_privacy.report",
]


def test_the_core_imports_neither_torch_nor_pytest():
    """The one import-lightness check: each light module in a fresh interpreter of its own (so one
    cannot hide another's heavy import), and ``import pytest_privacy`` loads no engine module (the
    own loop, the trainer) until one of its names is used."""
    import subprocess
    import sys

    for module in LIGHT:
        code = (
            f"import sys, {module}; heavy = sorted({{'torch', 'pytest'}} & set(sys.modules)); "
            f"assert not heavy, heavy"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, pytest_privacy; assert 'pytest_privacy.engine.own_loop' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_import_circle_inside_any_room():
    """Within a room, imports form no circle, counting every import: at module level, inside a
    function, or under ``TYPE_CHECKING`` (a circle hidden behind those is still one). Contracts a
    room's modules share live in a leaf they all import (``attacks/queries.py``, ``audit/job.py``,
    ``engine/defenses/base.py``'s ``DefenseContext``)."""
    modules = {m for m, _, _ in _imports()} | {t for _, t, _ in _imports()}
    edges: dict[str, set[str]] = {}
    for module, target, name in _imports():
        for dest in (target, f"{target}.{name}"):
            if dest in modules and dest != module and _part(dest) == _part(module):
                edges.setdefault(module, set()).add(dest)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    circles = sorted(m for m in edges if reaches(m, m))
    assert not circles, "modules on an import circle inside their room:\n" + "\n".join(circles)


def test_the_package_root_holds_the_front_the_kernel_and_the_rooms_only():
    """At the root: the public front, the shared kernel every room may use, and the rooms; a new
    module goes into the room of its concept (ARCHITECTURE.md says which)."""
    front = {"__init__", "__main__", "assertions", "config", "datasets", "metrics"}
    kernel = {"data", "results", "strict"}
    rooms = {"attacks", "audit", "engine", "plugin", "report", "stats"}
    found = {p.stem for p in ROOT.glob("*.py")} | {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert found == front | kernel | rooms
