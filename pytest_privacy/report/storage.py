"""Stored runs (``--privacy-autosave``, ``--privacy-save``): every session's report kept under
``--privacy-storage`` (a path or any fsspec URL, e.g. a bucket CI runners share), numbered in order,
with the commit and machine it ran on and whether the session passed; ``--privacy-compare`` reads
one back.

**Shared storage.** Several CI jobs may save at once: each run's number is claimed by creating
``numbers/NNNN`` exclusively (create-if-absent: ``O_EXCL`` on a local path, a conditional write on
object stores that support one), so two runs never share a number, and each run is written under a
temporary name unique to its writer, then moved into place, so no writer overwrites or deletes
another's file and a reader never sees half a run.

**Signatures.** With ``PYTEST_PRIVACY_STORE_KEY`` set, every run and the snapshot are signed
(:mod:`.signing`) and a file that fails its signature is refused, naming it.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..results import NOT_STORED, SessionReport
from .signing import SignatureError, sign, signing_key, verify

__all__ = [
    "RunStorage", "StoredRun", "StoredRunError", "check_run_name", "current_commit", "vulnerable_sets",
]

_SNAPSHOT = "vulnerable-snapshot.json"
_NUMBERS = "numbers"  # the claimed run numbers, one empty file each

_NAME = re.compile(r"^(\d{4,})_(.+)\.json$")


class StoredRunError(ValueError):
    """A stored run that cannot be used: unreadable, not a run, ambiguous or failing its signature.
    The message names the file (or the runs) and what is wrong."""


def current_commit() -> str | None:
    """The git commit of the working directory, or None outside a repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def check_run_name(name: str) -> str:
    """A stored run's name (letters, digits, '.', '_' and '-', not digits alone and not ``latest``,
    which name run numbers and the newest run), or a ValueError."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(
            f"a stored run's name may use letters, digits, '.', '_' and '-' only (and may not be empty), got {name!r}."
        )
    if name.isdigit() or name == "latest":
        raise ValueError(
            f"a stored run may not be named {name!r}: --privacy-compare reads digits as a run number and "
            f"'latest' as the newest run; choose a name with a letter, e.g. 'v{name}'."
        )
    return name


@dataclass(frozen=True)
class StoredRun:
    """One stored session: its number, name, and where it is."""

    number: int
    name: str
    path: str

    @property
    def label(self) -> str:
        """``number:name``, as the terminal names a run."""
        return f"{self.number}:{self.name}"


class RunStorage:
    """The stored runs under ``url``: ``0001_<name>.json``, ``0002_<name>.json``, ...

    ``key`` (default: ``PYTEST_PRIVACY_STORE_KEY``'s secret) signs what is saved and is required of
    what is read."""

    def __init__(self, url: str, *, key: bytes | None = None) -> None:
        import fsspec

        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.root = self.root.rstrip("/") or "/"
        self._key = key if key is not None else signing_key()

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}" if self.root != "/" else f"/{name}"

    def runs(self) -> list[StoredRun]:
        """Every stored run, oldest first."""
        if not self.fs.exists(self.root):
            return []
        found = []
        for path in self.fs.ls(self.root, detail=False):
            match = _NAME.match(str(path).rstrip("/").rsplit("/", 1)[-1])
            if match:
                found.append(StoredRun(int(match.group(1)), match.group(2), str(path)))
        return sorted(found, key=lambda r: (r.number, r.name))

    def check_writable(self) -> None:
        """Raise an ``OSError``/``ValueError`` naming the storage when runs cannot be saved there: a
        file where the folder should be, or a folder this process cannot write."""
        if self.fs.exists(self.root) and not self.fs.isdir(self.root):
            raise ValueError(f"{self.url} is a file, not a folder: give a folder (or URL) for stored runs.")
        try:
            self.fs.makedirs(self._path(_NUMBERS), exist_ok=True)
            probe = self._path(f".probe-{uuid.uuid4().hex}.tmp")
            self.fs.pipe(probe, b"")
            self.fs.rm(probe)
        except OSError as exc:
            raise OSError(f"{self.url} cannot be written ({exc.strerror or exc}); choose a writable folder.") from None

    def save(self, report: SessionReport, name: str | None = None) -> StoredRun:
        """Store ``report`` as the next run (``name``: default its creation time), under a number no
        concurrent writer can also take; written whole (to a temporary name unique to this writer,
        then moved), so a reader never sees half a file."""
        if name is not None:
            check_run_name(name)
        label = name or re.sub(r"[^0-9A-Za-z]", "", report.created)[:15]
        number = self._claim_number()
        path = self._path(f"{number:04d}_{label}.json")
        payload = json.loads(report.model_dump_json(exclude=NOT_STORED))  # no records' images
        text = json.dumps(sign(payload, self._key), indent=2, allow_nan=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe(tmp, text.encode())
        self.fs.mv(tmp, path)
        return StoredRun(number, label, path)

    def _claim_number(self) -> int:
        """The next run number, claimed by creating ``numbers/NNNN`` exclusively: a writer that
        loses the race for a number tries the next."""
        folder = self._path(_NUMBERS)
        self.fs.makedirs(folder, exist_ok=True)
        claimed = [int(p.rstrip("/").rsplit("/", 1)[-1]) for p in self.fs.ls(folder, detail=False)
                   if p.rstrip("/").rsplit("/", 1)[-1].isdigit()]
        number = max([0, *claimed, *(r.number for r in self.runs())]) + 1
        for _ in range(1000):
            claim = f"{folder}/{number:04d}"
            try:
                with self.fs.open(claim, "xb"):
                    pass
                return number
            except FileExistsError:
                number += 1
            except (ValueError, NotImplementedError):
                # A file system without exclusive creation: check, then create (two writers racing
                # within that gap can still share a number; resolve() then names the ambiguity).
                if self.fs.exists(claim):
                    number += 1
                    continue
                self.fs.pipe(claim, b"")
                return number
        raise OSError(f"could not claim a run number under {self.url} after 1000 tries.")

    def resolve(self, which: str) -> StoredRun:
        """The run ``which`` names: ``latest`` (the newest), a number (digits), or a name. A
        :class:`KeyError` naming the stored runs when none matches; a :class:`StoredRunError` when
        more than one could be meant."""
        runs = self.runs()
        if which == "latest":
            chosen = [r for r in runs if runs and r.number == runs[-1].number]
        elif which.isdigit():
            chosen = [r for r in runs if r.number == int(which)]
            named = [r for r in runs if r.name == which and r not in chosen]
            if chosen and named:  # a run stored before names of digits were refused
                raise StoredRunError(
                    f"{which!r} is ambiguous under {self.url}: run number {which} ({chosen[0].label}) and a run "
                    f"named {which!r} ({named[0].label}); rename the file of one of them."
                )
            chosen = chosen or named
        else:
            chosen = [r for r in runs if r.name == which]
        if not chosen:
            known = ", ".join(r.label for r in runs) or "none"
            raise KeyError(f"no stored run {which!r} under {self.url} (stored: {known}).")
        if len(chosen) > 1:
            raise StoredRunError(
                f"{which!r} is ambiguous under {self.url}: it matches {', '.join(r.label for r in chosen)}; "
                "name one of them by its name."
            )
        return chosen[0]

    def read(self, run: StoredRun) -> SessionReport:
        """The report stored in ``run``; a :class:`StoredRunError` naming its file and what is wrong
        (unreadable, not JSON, not a stored run, failing its signature)."""
        try:
            payload = json.loads(self.fs.cat(run.path))
        except (OSError, ValueError) as exc:
            raise StoredRunError(f"stored run {run.path} cannot be read: {_first_line(exc)} (truncated or not JSON?)") from None
        if not isinstance(payload, dict):
            raise StoredRunError(f"stored run {run.path} is not a stored run (a JSON {type(payload).__name__}).")
        try:
            body = verify(payload, self._key, f"stored run {run.path}")
        except SignatureError as exc:
            raise StoredRunError(str(exc)) from None
        try:
            return SessionReport.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '-'}: {e['msg']}" for e in exc.errors()[:3])
            raise StoredRunError(f"stored run {run.path} is not a valid stored run: {problems}") from None

    def load(self, which: str) -> SessionReport:
        """The report of the run ``which`` names (see :meth:`resolve`)."""
        return self.read(self.resolve(which))

    def baseline(self, which: str) -> tuple[StoredRun, SessionReport, str]:
        """The run a comparison is made against, its report, and why it was chosen. ``latest`` is the
        newest run whose session passed (a failing run is stored but never becomes the default
        baseline, so a CI retry cannot compare a regression with itself); a number or a name is that
        run, whatever its outcome. A run that cannot be read or trusted is an error, never skipped."""
        if which != "latest":
            run = self.resolve(which)
            return run, self.read(run), f"named by {which!r}"
        skipped = []
        for run in reversed(self.runs()):
            report = self.read(run)
            if report.outcome != "failed":
                why = "the latest stored run" if not skipped else (
                    f"the latest that passed; newer failing run(s) {', '.join(skipped)} are not a baseline"
                )
                return run, report, why
            skipped.append(run.label)
        raise KeyError(
            f"no stored run under {self.url} passed (failing runs {', '.join(skipped) or 'none'} are never a "
            "baseline): name one with --privacy-compare=NAME to compare with it anyway."
        )

    def accepted_vulnerable(self) -> dict[str, list[str]]:
        """The accepted most-vulnerable records per gate (``--privacy-snapshot-update``), or {}."""
        path = self._path(_SNAPSHOT)
        if not self.fs.exists(path):
            return {}
        try:
            payload = json.loads(self.fs.cat(path))
        except (OSError, ValueError) as exc:
            raise StoredRunError(f"the snapshot {path} cannot be read: {_first_line(exc)}") from None
        try:
            body = verify(payload, self._key, f"the snapshot {path}") if isinstance(payload, dict) else payload
        except SignatureError as exc:
            raise StoredRunError(str(exc)) from None
        gates = body.get("gates", body) if isinstance(body, dict) else None
        if not isinstance(gates, dict) or not all(isinstance(v, list) for v in gates.values()):
            raise StoredRunError(f"the snapshot {path} is not a snapshot of accepted records.")
        return gates

    def accept_vulnerable(self, report: SessionReport) -> int:
        """Accept ``report``'s most vulnerable records as the snapshot; how many gates it holds."""
        sets = vulnerable_sets(report)
        self.fs.makedirs(self.root, exist_ok=True)
        path = self._path(_SNAPSHOT)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe(tmp, json.dumps(sign({"gates": sets}, self._key), indent=2, sort_keys=True).encode())
        self.fs.mv(tmp, path)
        return len(sets)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def vulnerable_sets(report: SessionReport) -> dict[str, list[str]]:
    """Each gate's most vulnerable records (content hashes), keyed by the gate's identity
    (:func:`~.compare.gate_key`). A gate whose identity several results share is left out: which
    records belong to which is not known."""
    from collections import Counter

    from .compare import gate_key

    keys = Counter(gate_key(r) for r in report.results)
    out: dict[str, Any] = {}
    for r in report.results:
        if getattr(r, "most_vulnerable", None) and keys[gate_key(r)] == 1:
            out[gate_key(r)] = sorted(v.key for v in r.most_vulnerable if v.key)
    return out
