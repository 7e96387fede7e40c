"""What every benchmark does with its result: print it as JSON, and write it to ``--out`` if given."""

from __future__ import annotations

import json
from typing import Any


def emit(result: Any, out: str | None, *, show: bool = True) -> None:
    """Print ``result`` as indented JSON (unless ``show`` is False) and write it to ``out``."""
    text = json.dumps(result, indent=2)
    if show:
        print(text)
    if out:
        with open(out, "w") as fh:
            fh.write(text + "\n")
