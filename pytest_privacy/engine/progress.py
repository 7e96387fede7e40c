"""Progress while models train (the engine's epochs, an executor's models): a bar on a terminal,
plain lines in a CI log, nothing when asked for quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

__all__ = ["LineProgress", "Lines", "Progress", "progress_bar"]

LINE_SECONDS = 10.0


@dataclass(frozen=True)
class Lines:
    """Progress as a line every ``LINE_SECONDS`` and at the end (a CI log, where a bar prints
    nothing useful), handed to ``write`` (default: stderr)."""

    write: Callable[[str], None] | None = None


# "bar": a transient tqdm bar (a terminal); Lines(): plain lines; "off": nothing.
# True/False mean "bar"/"off" (the public train_ensemble(progress=...) flag).
Progress = Union[Literal["bar", "off"], Lines]


def progress_bar(total: int, mode: Progress | bool, what: str, *, unit: str = "model") -> Any:
    """A progress display over ``total`` ``unit``s, used as a context manager with ``update(n)``
    (the plugin picks the mode: a bar on a terminal, lines off one, nothing under -qq)."""
    if isinstance(mode, bool):
        mode = "bar" if mode else "off"
    if isinstance(mode, Lines):
        return LineProgress(total, what, unit=unit, write=mode.write)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"pytest-privacy: {what}", unit=unit, leave=False, disable=mode != "bar")


class LineProgress:
    """Writes ``pytest-privacy: <what>: 12/60 epochs (20%), 1.5 epochs/s, ETA 32s`` (to ``write``,
    else stderr) at most every ``every`` seconds, and a last line when done."""

    def __init__(
        self, total: int, what: str, *, unit: str = "model", every: float = LINE_SECONDS,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.total, self.what, self.unit, self.every = total, what, unit, every
        self.write = write
        self.done = 0
        self.start = self.last = time.perf_counter()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None and self.done:
            elapsed = time.perf_counter() - self.start
            self._write(f"pytest-privacy: {self.what}: {self.done}/{self.total} {self.unit}s done in {elapsed:.1f}s")

    def update(self, n: int = 1) -> None:
        """Count ``n`` more finished units; write a line when the last one is old enough."""
        self.done += n
        now = time.perf_counter()
        if now - self.last < self.every or self.done >= self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate
        self._write(
            f"pytest-privacy: {self.what}: {self.done}/{self.total} {self.unit}s ({self.done / self.total:.0%}), "
            f"{rate:.2g} {self.unit}s/s, ETA {eta:.0f}s"
        )

    def _write(self, line: str) -> None:
        if self.write is not None:
            self.write(line)
            return
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
