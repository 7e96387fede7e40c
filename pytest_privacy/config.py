"""PrivacyConfig: budgets and switches, resolved with precedence marker > CLI > ini > profile."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .attacks import Selection
from .strict import StrictSettings

__all__ = ["PROFILES", "PrivacyConfig", "default_profile", "resolve_config"]

Inconclusive = Literal["fail", "warn", "skip", "xfail"]

# Budgets per profile. LiRA's gain flattens past ~64 references (Carlini et al. 2022, Fig. 9);
# 16 certify the memorising digits example's leak where 4 do not (measured: TPR lower bound at 1% FPR
# 0.027 with 16, no proof with 4), so `ci` is the default everywhere: a laptop run and a CI run
# reach the same verdict. `smoke` checks that a suite runs, not that a model is private.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"n_references": 4},
    "ci": {"n_references": 16},
    "full": {"n_references": 64},
    # As many as each verdict needs: 4, then 8, 16, 32, 64 only while INCONCLUSIVE (pytest_privacy.stats.looks).
    "adaptive": {"n_references": "auto"},
}


class PrivacyConfig(StrictSettings):
    """Settings for one test's privacy audit (see ``pytest --help``, group "privacy")."""

    profile: Literal["smoke", "ci", "full", "adaptive"] = "ci"
    n_references: int | Literal["auto"] = 16  # "auto": as many as the verdict needs
    audit: Literal["model", "recipe"] = "model"  # "recipe": every model of the audit a target in turn, pooled
    attacks: tuple[str, ...] | None = None  # None: every suite
    device: str = "auto"  # auto, cpu, cuda or cuda:N (checked by _device)
    seed: int = Field(0, ge=0)
    inconclusive: Inconclusive = "fail"
    confidence: float = Field(0.95, gt=0, lt=1)
    report: str | None = None
    plots: str | None = None
    html: str | None = None  # a self-contained HTML report
    markdown: str | None = None  # a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)
    storage: str = ".privacy"  # where stored runs live: a path or fsspec URL
    autosave: bool = False  # store every session's report
    snapshot_update: bool = False  # accept this session's most vulnerable records
    save: str | None = None  # store this session's report under this name
    compare: str | None = None  # compare with this stored run (a name, a number, or latest)
    compare_data_changed: bool = False  # compare gates audited on other data all the same
    compare_fail: str | None = None  # criteria that fail the session: tpr:+0.01,auc:+0.02,eps:+0.5,new-vulnerable:5
    population: float = Field(0.0, ge=0, lt=0.5)  # share of the data held out as RMIA's population
    canaries: int | None = Field(None, ge=2)  # canaries of a one-run DP audit; None: half the data, <= 1000
    canary_kind: Literal["input", "mislabelled"] = "input"  # input-space canaries, or mislabelled data points
    cache_dir: str | None = None  # None: under pytest's cache directory
    no_cache: bool = False
    max_memory: int | None = None  # bytes; None: 80% of free GPU memory, or a quarter of RAM
    executor: Literal["local", "ray"] = "local"
    ray_gpus_per_task: float = Field(0.0, ge=0)  # fractional packs several tasks per GPU
    ray_cpus_per_task: float = Field(1.0, gt=0)
    ray_max_retries: int = Field(3, ge=0)

    @field_validator("no_cache", "autosave", "snapshot_update", "compare_data_changed", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if isinstance(value, str):  # from an ini file: a word that is neither yes nor no is an error
            word = value.strip().lower()
            if word in ("1", "true", "yes", "on"):
                return True
            if word in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true/false (or yes/no, on/off, 1/0), got {value!r}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", value):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N (N a GPU index), got {value!r}")
        return value

    @field_validator("max_memory", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("n_references")
    @classmethod
    def _even(cls, value: int | str) -> int | str:
        if value == "auto":
            return value
        if value < 2:
            raise ValueError(f"n_references must be at least 2 (or auto), got {value}")
        if value % 2:
            raise ValueError(f"n_references must be even (half IN, half OUT per point), got {value}")
        return value

    @field_validator("attacks", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        names = value.split(",") if isinstance(value, str) else list(value)
        # Suites stay as given (markers select by suite); each name must be known.
        Selection.parse(names)
        return tuple(n.strip() for n in names if n.strip())

    @model_validator(mode="after")
    def _recipe_audit_references(self) -> PrivacyConfig:
        # A recipe audit scores each model against the others: with 2 references, one model's
        # others can all be IN (or all OUT) for a point, which no online attack can score.
        if self.audit == "recipe" and self.n_references != "auto" and self.n_references < 4:
            raise ValueError(
                f"audit='recipe' needs at least 4 references (each model is scored against the others, which "
                f"must include a model trained IN and one OUT for every point), got n_references={self.n_references}; "
                "use --privacy-references=4 or more (or n_references in @pytest.mark.privacy)"
            )
        return self

    def selection(self) -> Selection | None:
        """What ``attacks`` selects (suites and attack names), or None for everything."""
        return None if self.attacks is None else Selection.parse(self.attacks)


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    """``"512MB"``, ``"4GiB"`` or ``"1000000"`` as bytes."""
    import re

    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read {text!r} as a size; write e.g. 512MB or 4GiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def default_profile() -> str:
    """The profile used when none is chosen: ``ci``, locally and on CI alike."""
    return "ci"


def resolve_config(*layers: Mapping[str, Any]) -> PrivacyConfig:
    """Merge setting layers, lowest precedence first (e.g. ini, CLI, marker), over the profile.

    ``None`` values in a layer mean "not set there". The profile itself follows the same
    precedence, then supplies the defaults the layers did not set.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    profile = merged.get("profile") or default_profile()
    if profile not in PROFILES:
        raise ValueError(f"unknown privacy profile {profile!r}; choose from {', '.join(PROFILES)}.")
    values = {**PROFILES[profile], **merged, "profile": profile}
    try:
        return PrivacyConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ValueError(f"invalid privacy settings: {problems}") from None
