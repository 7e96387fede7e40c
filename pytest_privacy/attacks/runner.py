"""The one way an attack is run against a model: query it as the attack needs (logits on the
references' augmentations, or a counted labels oracle), check what came back, and score."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..data import MembershipData, as_membership_data
from ..data.querying import label_oracle, query_logits
from ..data.text_membership import TextMembershipData
from .queries import LabelQuery
from .registry import ATTACKS, get_attack

__all__ = ["AttackScores", "attack_scores", "recipe_scores"]


class AttackScores(NamedTuple):
    """What :func:`attack_scores` measured."""

    scores: np.ndarray
    variant: str
    queries: int | None


def attack_scores(
    model: Any, data: MembershipData, attack: str = "lira", *, attack_options: Mapping[str, Any] | None = None
) -> AttackScores:
    """Membership scores ``[N]`` (higher = member) of ``attack`` against ``model``, the variant that
    ran, and the number of examples a label-only attack sent to the model (None for score attacks).

    Score attacks query the model on the same augmentations as the references, as LiRA requires.
    Label-only attacks see only the model's predicted labels (``attack_options`` tunes them, e.g.
    ``{"k": 200}`` noisy copies, ``{"max_queries": 2000}`` for the black-box boundary search).
    """
    data = as_membership_data(data)
    spec = get_attack(attack)
    if spec.text or isinstance(data, TextMembershipData):
        return _text_scores(model, data, attack, attack_options)
    refs = data.references
    if spec.needs_references and refs is None:
        raise ValueError(
            f"attack {attack!r} needs reference models: build MembershipData(..., references=...) "
            "or use the membership_data fixture; attack='loss' needs none."
        )
    if spec.score_labels is not None:
        from .queries import QueryCounter

        oracle = QueryCounter(label_oracle(model))
        query = LabelQuery(oracle, model, data.x, data.y, refs, refs.seed or 0 if refs else 0, dict(attack_options or {}))
        scores, variant = spec.score_labels(query)
        return AttackScores(scores, variant, oracle.queries)
    if attack_options:
        raise ValueError(
            f"attack {attack!r} takes no attack_options (got {sorted(attack_options)}); drop them (options "
            "tune the label-only attacks)."
        )
    assert spec.score is not None
    population = refs.population if refs is not None else None
    if spec.needs_population and population is None:
        raise ValueError(
            f"attack {attack!r} needs population points no model trained on: run pytest with "
            "--privacy-population=0.2 (a share of privacy_dataset held out for the tests that run "
            "such an attack through privacy_attack) and mark a test that names the attack itself "
            "@pytest.mark.privacy(population=0.2), or give References(population=Population(x, y, "
            "reference_logits))."
        )
    x = data.x if not spec.needs_population else np.concatenate([data.x, population.x])
    logits = query_logits(model, x, refs.augmentations if refs is not None else ())
    pop_logits = None
    if spec.needs_population:
        logits, pop_logits = logits[: len(data)], logits[len(data) :]
    if refs is not None and logits.shape[1:] != refs.logits.shape[2:]:
        raise ValueError(
            f"the model returns {logits.shape[1]} queries x {logits.shape[2]} classes per point but the "
            f"references have {refs.logits.shape[2]} x {refs.logits.shape[3]}: train them on the same task."
        )
    if int(data.y.max()) >= logits.shape[-1]:
        raise ValueError(f"label {int(data.y.max())} is out of range for a model with {logits.shape[-1]} classes.")
    extra = {"inputs": data.x} if spec.needs_inputs else {}
    scores, variant = spec.score(logits, data.y, refs, pop_logits, **extra)
    return AttackScores(scores, variant, None)


def _text_scores(model: Any, data: MembershipData, attack: str, attack_options: Mapping[str, Any] | None) -> AttackScores:
    """A language-model attack on a language model's texts; either on the other kind of data is an error."""
    from .lm.query import TextQuery

    spec = get_attack(attack)
    if not isinstance(data, TextMembershipData):
        raise ValueError(
            f"attack {attack!r} audits a language model: its data must be texts (a TextDataset as privacy_dataset, "
            "or TextMembershipData); this audit's are classifier inputs."
        )
    if not spec.text:
        lm = ", ".join(name for name, a in ATTACKS.items() if a.text)
        raise ValueError(f"attack {attack!r} audits classifiers; on a language model's texts use one of: {lm}.")
    if attack_options:
        raise ValueError(f"attack {attack!r} takes no attack_options (got {sorted(attack_options)}).")
    if spec.needs_references and data.references is None:
        raise ValueError(
            f"attack {attack!r} needs reference fine-tunes: use the membership_data fixture (n_references >= 1), "
            "or a reference-free attack (min_k_plus_plus, zlib, lm_loss)."
        )
    assert spec.score_text is not None
    scores, variant = spec.score_text(TextQuery(model, data))
    return AttackScores(np.asarray(scores, dtype=np.float64), variant, None)


def recipe_scores(data: MembershipData, attack: str = "lira") -> tuple[np.ndarray, np.ndarray, str]:
    """A recipe audit's trials (``data.recipe``): ``attack``'s scores ``[K, N]`` with every model in
    turn the target and the others its references, the membership ``[K, N]``, and the variant.
    Only attacks that score what the audit kept pool (:attr:`~.registry.Attack.pools`); label-only
    attacks query a model (use ``attack_scores``)."""
    data = as_membership_data(data)
    trials, refs = data.recipe, data.references
    if trials is None or refs is None:
        raise ValueError("recipe_scores needs a recipe audit: MembershipData.with_recipe_trials(model).")
    spec = get_attack(attack)
    if not spec.pools:
        raise ValueError(f"attack {attack!r} queries the target model itself; a recipe audit pools score attacks only.")
    if isinstance(data, TextMembershipData) != spec.text:
        return _text_scores(None, data, attack, None)  # (the error naming the attacks of this kind)
    rows, variant = [], ""
    base: dict[str, Any] = {}  # the base model's statistics, read once for every trial (ref_base)
    for k in range(trials.n_models):
        if spec.text:
            from .lm.query import TextQuery

            trial = TextMembershipData(data.text, trials.keep[k], trials.references_without(k, refs), base=data.base)
            assert spec.score_text is not None
            scores, variant = spec.score_text(TextQuery.recorded(trial, trials.lp[k], base=base))
        else:
            pop = None if trials.population_logits is None else trials.population_logits[k]
            if spec.needs_population and pop is None:
                raise ValueError(f"attack {attack!r} needs population points: see attack_scores.")
            extra = {"inputs": data.x} if spec.needs_inputs else {}
            scores, variant = spec.score(trials.logits[k], data.y, trials.references_without(k, refs), pop, **extra)
        rows.append(np.asarray(scores, dtype=np.float64))
    return np.stack(rows), trials.keep.copy(), variant
