"""The house's rules, checked on the source: imports flow one way between the rooms, and no module
imports a private name from another (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_privacy

ROOT = Path(pytest_privacy.__file__).parent

# What each part of the package may import (besides itself). Shared modules sit beside the rooms.
SHARED = {"strict", "results", "augmentations", "querying", "data", "code_identity"}
ALLOWED = {
    "strict": set(), "results": set(), "augmentations": set(), "querying": {"augmentations"}, "code_identity": set(),
    "data": {"augmentations", "querying"}, "datasets": set(),
    "engine": SHARED,
    "audit": SHARED | {"engine", "pytest_privacy"},  # (the package: its __version__ keys caches)
    "metrics": {"results"},
    "adaptive": {"data"},
    "pooled_gate": {"metrics", "results"},
    "one_run": {"metrics"},
    "one_run_gdp": {"one_run", "metrics"},
    "attacks": SHARED | {"metrics"},
    "config": {"attacks", "strict"},
    "report": {"results", "metrics", "config", "pytest_privacy"},
    "assertions": SHARED | {"attacks", "metrics", "report", "one_run", "one_run_gdp", "adaptive", "pooled_gate"},
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


@pytest.mark.parametrize("module", ["pytest_privacy", "pytest_privacy.audit", "pytest_privacy.attacks"])
def test_the_core_imports_neither_torch_nor_pytest(module):
    import subprocess
    import sys

    code = f"import sys, {module}; assert 'torch' not in sys.modules and 'pytest' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
