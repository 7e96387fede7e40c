"""A settings model that refuses what it does not know: unknown fields (with a did-you-mean) and
values that only look right (``epochs=True``)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["StrictSettings", "unknown_name_error"]


def unknown_name_error(kind: str, name: str, known: list[str], *, synonyms: Mapping[str, str] | None = None) -> str:
    """``unknown <kind> 'x'. Did you mean 'y'? Known: ...`` for a name not in ``known``.

    ``synonyms`` maps names people write elsewhere to the known one they mean (``learning_rate`` ->
    ``lr``): no spelling distance finds those, so they are listed, and win over spelling matches."""
    close = [synonyms[name]] if synonyms and name in synonyms else difflib.get_close_matches(str(name), known, n=2)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}."


class StrictSettings(BaseModel):
    """Frozen settings whose unknown fields are errors, not silently dropped defaults: a typo such
    as ``TrainingRecipe(epoch=5)`` must not train with the default number of epochs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # A subclass's names for its fields in other libraries' vocabularies, for the did-you-mean.
    field_synonyms: ClassVar[Mapping[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = list(cls.model_fields)
            problems = [
                unknown_name_error("field", k, known, synonyms=cls.field_synonyms)
                for k in data if k not in cls.model_fields
            ]
            if problems:
                raise ValueError(f"{cls.__name__}: " + " ".join(problems))
        return data
