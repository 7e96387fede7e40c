"""Stored runs (``--privacy-autosave``, ``--privacy-save``): every session's report kept under
``--privacy-storage`` (a path or any fsspec URL, e.g. a bucket CI runners share), numbered in order,
with the commit and machine it ran on; ``--privacy-compare`` reads one back."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

from ..results import NOT_STORED, SessionReport

__all__ = ["RunStorage", "StoredRun", "check_run_name", "current_commit", "vulnerable_sets"]

_SNAPSHOT = "vulnerable-snapshot.json"

_NAME = re.compile(r"^(\d{4})_(.+)\.json$")


def current_commit() -> str | None:
    """The git commit of the working directory, or None outside a repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def check_run_name(name: str) -> str:
    """A stored run's name (letters, digits, '.', '_' and '-'), or a ValueError."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"a stored run's name may use letters, digits, '.', '_' and '-' only, got {name!r}.")
    return name


@dataclass(frozen=True)
class StoredRun:
    """One stored session: its number, name, and where it is."""

    number: int
    name: str
    path: str


class RunStorage:
    """The stored runs under ``url``: ``0001_<name>.json``, ``0002_<name>.json``, ..."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)

    def runs(self) -> list[StoredRun]:
        """Every stored run, oldest first."""
        if not self.fs.exists(self.root):
            return []
        found = []
        for path in self.fs.ls(self.root, detail=False):
            match = _NAME.match(str(path).rstrip("/").rsplit("/", 1)[-1])
            if match:
                found.append(StoredRun(int(match.group(1)), match.group(2), str(path)))
        return sorted(found, key=lambda r: r.number)

    def save(self, report: SessionReport, name: str | None = None) -> StoredRun:
        """Store ``report`` as the next run (``name``: default its creation time); written whole
        (to a temporary name, then moved), so a reader never sees half a file."""
        if name is not None:
            check_run_name(name)
        runs = self.runs()
        number = runs[-1].number + 1 if runs else 1
        label = name or re.sub(r"[^0-9A-Za-z]", "", report.created)[:15]
        path = f"{self.root.rstrip('/')}/{number:04d}_{label}.json"
        self.fs.makedirs(self.root, exist_ok=True)
        tmp = path + ".tmp"
        self.fs.pipe(tmp, report.model_dump_json(indent=2, exclude=NOT_STORED).encode())  # no records' images
        self.fs.mv(tmp, path)
        return StoredRun(number, label, path)

    def load(self, which: str) -> SessionReport:
        """The run named ``which`` (its name, its number, or ``latest``); a KeyError naming the stored ones."""
        runs = self.runs()
        chosen = runs[-1:] if which == "latest" else [r for r in runs if r.name == which or str(r.number) == which]
        if not chosen:
            known = ", ".join(f"{r.number}:{r.name}" for r in runs) or "none"
            raise KeyError(f"no stored run {which!r} under {self.url} (stored: {known}).")
        return SessionReport.model_validate_json(self.fs.cat(chosen[-1].path))

    def accepted_vulnerable(self) -> dict[str, list[str]]:
        """The accepted most-vulnerable records per gate (``--privacy-snapshot-update``), or {}."""
        path = f"{self.root.rstrip('/')}/{_SNAPSHOT}"
        return json.loads(self.fs.cat(path)) if self.fs.exists(path) else {}

    def accept_vulnerable(self, report: SessionReport) -> int:
        """Accept ``report``'s most vulnerable records as the snapshot; how many gates it holds."""
        sets = vulnerable_sets(report)
        self.fs.makedirs(self.root, exist_ok=True)
        path = f"{self.root.rstrip('/')}/{_SNAPSHOT}"
        self.fs.pipe(path + ".tmp", json.dumps(sets, indent=2, sort_keys=True).encode())
        self.fs.mv(path + ".tmp", path)
        return len(sets)


def vulnerable_sets(report: SessionReport) -> dict[str, list[str]]:
    """Each gate's most vulnerable records (content hashes), keyed ``test id | attack | gate``."""
    from .compare import gate_key

    return {
        " | ".join(gate_key(r)): sorted(v.key for v in getattr(r, "most_vulnerable", []) if v.key)
        for r in report.results if getattr(r, "most_vulnerable", None)
    }
