"""PrivacyConfig: budgets and switches, resolved with precedence marker > CLI > ini > profile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .attacks import Selection
from .strict import StrictSettings

__all__ = ["PROFILES", "CommandLineOption", "PrivacyConfig", "command_line_options", "default_profile", "resolve_config"]

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


@dataclass(frozen=True)
class CommandLineOption:
    """A setting's ``--privacy-<name>`` option and ini key (a flag for a bool setting), as the plugin
    registers it: generated from the setting's field, its description the help text."""

    name: str
    field: str
    help: str
    flag: bool
    env: str | None = None  # an environment variable that may give it (over the ini file, under the command line)


def _setting(default: Any, help: str, *, option: str | None = None, env: str | None = None, cli: bool = True, **limits: Any) -> Any:
    """A field of :class:`PrivacyConfig` with its help text and how the command line names it
    (``option``: the name after ``--privacy-`` when it is not the field's; ``cli=False``: no option)."""
    return Field(default, description=help, json_schema_extra={"option": option, "env": env, "cli": cli}, **limits)


class PrivacyConfig(StrictSettings):
    """Settings for one test's privacy audit (see ``pytest --help``, group "privacy"). Each field's
    description is its ``--privacy-*`` option's help (:func:`command_line_options`)."""

    profile: Literal["smoke", "ci", "full", "adaptive"] = _setting(
        "ci", "budget profile: smoke|ci|full (default: ci; smoke = 4 references, ci = 16, full = 64)")
    n_references: int | Literal["auto"] = _setting(
        16, "number of reference models, or auto: 4, then 8, 16, 32, 64 only while a verdict is inconclusive "
        "(default: from the profile)", option="references")
    audit: Literal["model", "recipe"] = _setting(
        "model", "what membership_data gates audit: model (the target) or recipe (every model of the audit the "
        "target in turn, their trials pooled with cluster-aware bounds: decides at small FPR) (default: model)")
    attacks: tuple[str, ...] | None = _setting(
        None, "comma-separated suites or attacks to run, e.g. lira,label_only (default: all)")
    device: str = _setting("auto", "device for training references: auto|cpu|cuda[:N] (default: auto)")
    seed: int = _setting(0, "seed from which every random choice flows (default: 0)", ge=0)
    inconclusive: Inconclusive = _setting(
        "fail", "what an INCONCLUSIVE gate does: fail|warn|skip|xfail (default: fail)")
    confidence: float = _setting(0.95, "confidence of every gate's bounds", cli=False, gt=0, lt=1)
    report: str | None = _setting(None, "write every privacy result as JSON to this path")
    plots: str | None = _setting(
        None, "write a log-log ROC plot per privacy assertion into this directory (needs matplotlib)")
    html: str | None = _setting(
        None, "write a self-contained HTML report (verdicts, ROC plots, vulnerable records) to this path")
    markdown: str | None = _setting(
        None, "write a Markdown table of the verdicts to this path (appended, e.g. $GITHUB_STEP_SUMMARY)")
    storage: str = _setting(".privacy", "where stored runs live: a path or fsspec URL (default: .privacy)")
    autosave: bool = _setting(False, "store every session's report under --privacy-storage")
    snapshot_update: bool = _setting(
        False, "accept this session's most vulnerable records (content hashes) as the snapshot new-vulnerable "
        "criteria compare with")
    save: str | None = _setting(None, "store this session's report under NAME (letters, digits, . _ -)")
    # --privacy-compare takes an optional value (bare: the latest run): the plugin declares it itself
    compare: str | None = _setting(None, "stored run to compare with", cli=False)
    compare_data_changed: bool = _setting(
        False, "the data changed on purpose since the stored run: compare gates audited on other data all the "
        "same (without it they are 'not comparable' and fail the comparison)")
    compare_fail: str | None = _setting(
        None, "fail the session when, against --privacy-compare's run, a gate regressed significantly: tpr:+0.01, "
        "auc:+0.02, eps:+0.5, new-vulnerable:5 (comma-separated); a worse verdict always fails")
    population: float = _setting(
        0.0, "share of privacy_dataset held out as the population of tests whose privacy_attack needs one (RMIA) "
        "or whose privacy marker sets population (default: 0)", ge=0, lt=0.5)
    canaries: int | None = _setting(
        None, "canaries in a one-run DP audit (dp_canary_run) (default: 300 input-space canaries, at most half "
        "of privacy_dataset; 1000 mislabelled ones)", ge=2)
    canary_kind: Literal["input", "mislabelled", "gradient"] = _setting(
        "input", "input (new points out of the data's distribution, random labels: what a loop without noise "
        "memorises), mislabelled (data points relabelled) or gradient (white-box Dirac gradient canaries inside the "
        "built-in DP-SGD, for a TrainingRecipe with defense=DPSGD) (default: input)")
    cache_dir: str | None = _setting(
        None, "where trained models are cached: a path or fsspec URL (default: under .pytest_cache)")
    no_cache: bool = _setting(False, "train every model afresh and store nothing")
    max_memory: int | None = _setting(
        None, "memory budget for training, e.g. 2GiB (default: 80%% of free GPU memory, or 1/4 of RAM)")
    executor: Literal["local", "ray"] = _setting(
        "local", "where models train: local (in this process) or ray (the cluster at RAY_ADDRESS, else a local "
        "Ray instance; needs pytest-privacy[ray]); env PYTEST_PRIVACY_EXECUTOR (default: local)",
        env="PYTEST_PRIVACY_EXECUTOR")
    ray_gpus_per_task: float = _setting(
        0.0, "GPUs per Ray task, fractional packs several (e.g. 0.25) (default: 0)", ge=0)
    ray_cpus_per_task: float = _setting(1.0, "CPUs per Ray task (default: 1)", gt=0)
    ray_max_retries: int = _setting(3, "retries of a failed Ray task before the session fails (default: 3)", ge=0)

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


def command_line_options() -> list[CommandLineOption]:
    """Every setting's ``--privacy-*`` option, in the fields' order: the name (the field's, dashed,
    unless it names another), the help (the field's description), a flag for bool settings."""
    out = []
    for field, info in PrivacyConfig.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if not extra.get("cli", True):
            continue
        name = str(extra.get("option") or field.replace("_", "-"))
        env = extra.get("env")
        out.append(CommandLineOption(name, field, info.description or "", info.annotation is bool, str(env) if env else None))
    return out


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
