"""Query the model under test: an ``nn.Module`` or any callable returning logits or probabilities."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .augmentations import make_queries

__all__ = [
    "CachedTarget", "QueryFailed", "evaluating", "is_module", "label_oracle", "model_inputs", "query_answers",
    "query_logits", "scorer",
]

_BATCH = 4096


def is_module(model: Any) -> bool:
    """Whether ``model`` is a torch ``nn.Module`` (without importing torch if it never was)."""
    torch = sys.modules.get("torch")  # a Module can only exist if torch was imported
    return torch is not None and isinstance(model, torch.nn.Module)


@contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """``model`` in eval mode for the block, then every submodule back in its own mode (a user's
    frozen batch-norm inside a training model stays frozen; ``model.train(was)`` would unfreeze it)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


class QueryFailed(RuntimeError):
    """The model raised while answering queries (after it trained): the message names the model,
    the inputs' shape and dtype, and what it raised."""


def ask(model: Any, xb: Any, **kwargs: Any) -> Any:
    """``model(xb, **kwargs)``, a failure in the model's own code reported as a query failure (what it
    was asked), not as a training failure or a traceback from inside it (an index out of an embedding's
    range, a shape the model does not take)."""
    try:
        return model(xb, **kwargs)
    except QueryFailed:
        raise
    except Exception as exc:
        dtype = str(getattr(xb, "dtype", type(xb).__name__)).removeprefix("torch.")
        raise QueryFailed(
            f"querying the model ({type(model).__name__}) failed on inputs of shape {list(xb.shape)} and dtype "
            f"{dtype}: {type(exc).__name__}: {exc}"
        ) from exc


def model_inputs(x: Any) -> np.ndarray:
    """Inputs as a model is asked them, everywhere: integers (token ids, codes) as int64, exactly;
    anything else as float32."""
    arr = np.asarray(x)
    return arr.astype(np.int64, copy=False) if arr.dtype.kind in "iu" else arr.astype(np.float32, copy=False)


def _check_output(out: Any) -> Any:
    """The ``[B, C]`` scores a model returned: the output itself, or its ``.logits`` (a Hugging Face
    ``ModelOutput`` such as ``SequenceClassifierOutput``); anything else is an error naming it."""
    if hasattr(out, "shape") or isinstance(out, (list, np.ndarray)):
        return out
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, dict):
        logits = out.get("logits")
    if logits is not None and hasattr(logits, "shape"):
        return logits
    if isinstance(out, dict):
        got = f"a {type(out).__name__} with keys {sorted(map(str, out))[:5]}"
    elif isinstance(out, tuple):
        got = f"a tuple of {len(out)} ({', '.join(type(o).__name__ for o in out[:3])})"
    else:
        got = type(out).__name__
    raise TypeError(
        f"the model returned {got}; return a [B, C] tensor or array of logits (or probabilities) for a batch "
        "of B inputs, or an object with .logits (e.g. a Hugging Face SequenceClassifierOutput)."
    )


def _predict_module(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    out = []
    with evaluating(model), torch.no_grad():
        for start in range(0, len(x), _BATCH):
            xb = torch.from_numpy(x[start : start + _BATCH]).to(device)
            out.append(_check_output(ask(model, xb)).detach().float().cpu().numpy())
    return np.concatenate(out)


def _predict_callable(model: Any, x: np.ndarray) -> np.ndarray:
    out = []
    for start in range(0, len(x), _BATCH):
        res = _check_output(ask(model, x[start : start + _BATCH]))
        if hasattr(res, "detach"):
            res = res.detach().cpu().numpy()
        out.append(np.asarray(res))
    return np.concatenate(out)


def scorer(model: Any) -> Any:
    """The callable that returns ``model``'s scores: the model itself (an ``nn.Module`` or any
    callable), or a fitted scikit-learn-style estimator's ``predict_proba`` (else its
    ``decision_function``, a binary one's ``[B]`` margins read as logits ``[-d/2, d/2]``)."""
    if callable(model):
        return model
    if hasattr(model, "predict_proba"):
        return model.predict_proba
    if hasattr(model, "decision_function"):
        def margins(xb: np.ndarray) -> np.ndarray:
            d = np.asarray(model.decision_function(xb), dtype=np.float64)
            return np.stack([-d / 2, d / 2], axis=1) if d.ndim == 1 else d

        return margins
    raise TypeError(
        f"model must be an nn.Module, a callable returning logits or probabilities, or an estimator with "
        f"predict_proba/decision_function; got {type(model).__name__}."
    )


def _answers(model: Any, x: np.ndarray, augmentations: tuple[str, ...]) -> tuple[np.ndarray, int, int]:
    """``model``'s raw outputs on ``x`` and its augmentations, flattened ``[N * A, ...]``, with N, A."""
    model = scorer(model)
    q = make_queries(model_inputs(x), augmentations)
    n, a = q.shape[:2]
    flat = q.reshape(n * a, *q.shape[2:])
    out = _predict_module(model, flat) if is_module(model) else _predict_callable(model, flat)
    if out.shape[:1] != (n * a,) or out.ndim > 2:
        raise ValueError(f"the model must return [B, C] for a batch of B inputs; got {out.shape} for B={n * a}.")
    return out, n, a


def _labels_in(out: np.ndarray) -> np.ndarray | None:
    """The labels a model's outputs hold when it answers labels (one value per input, or one-hot
    rows for every input), else None."""
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        flat = out.reshape(-1)
        return flat.astype(np.int64) if np.all(np.isfinite(flat)) and np.all(flat == np.round(flat)) else None
    if np.isin(out, (0.0, 1.0)).all() and (out.sum(axis=1) == 1).all():
        return out.argmax(axis=1).astype(np.int64)
    return None


def _as_logits(out: np.ndarray, n: int, a: int) -> np.ndarray:
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        raise ValueError(
            f"the model returned shape {out.shape}, one value per input: score attacks need logits or "
            "probabilities [B, C]; for a model that returns labels only use a label_only attack."
        )
    out = out.astype(np.float64)
    if not np.isfinite(out).all():
        raise ValueError("the model returned NaN/inf outputs on the audit points; check its weights and inputs.")
    if np.isin(out, (0.0, 1.0)).all() and (out.sum(axis=1) == 1).all():
        # Read as probabilities, one-hot rows would make every attack see labels as certainty.
        raise ValueError(
            f"the model returned one-hot rows [B, C] for all {len(out)} inputs: it returns labels, not "
            "scores. Score attacks need logits or probabilities; for a model that exposes only labels, "
            "use a label_only attack (e.g. attack='label_only_boundary')."
        )
    if (out >= 0).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-4):
        out = np.log(np.clip(out, 1e-300, None))
    return out.reshape(n, a, -1)


def query_logits(model: Any, x: np.ndarray, augmentations: tuple[str, ...] = ()) -> np.ndarray:
    """Logits ``[N, A, C]`` (float64) of ``model`` on ``x`` and its augmentations.

    A callable that returns probabilities (non-negative rows summing to 1) is converted to
    log-probabilities, which every attack treats like logits. Outputs are validated: a model that
    returns labels, the wrong number of rows, or NaN/inf gets a clear error here rather than a
    confusing one inside an attack.
    """
    return _as_logits(*_answers(model, x, augmentations))


def query_answers(model: Any, x: np.ndarray, augmentations: tuple[str, ...] = ()) -> tuple[str, np.ndarray]:
    """What ``model`` answers on ``x``: ``("logits", [N, A, C])``, or ``("labels", [N, A])`` for a
    model that exposes only labels (one value per input, or one-hot rows), which only the
    label-only attacks can audit."""
    out, n, a = _answers(model, x, augmentations)
    labels = _labels_in(out)
    return ("labels", labels.reshape(n, a)) if labels is not None else ("logits", _as_logits(out, n, a))


def label_oracle(model: Any) -> Any:
    """A numpy ``x -> labels`` callable for ``model``: an ``nn.Module``'s argmax, an estimator's
    ``predict``, or the callable itself (whose ``[B, C]`` scores, if it returns them, the label-only
    attacks reduce to argmax)."""
    if not callable(model) and hasattr(model, "predict"):
        return model.predict
    if not callable(model):
        raise TypeError(
            f"model must be an nn.Module, a callable, or an estimator with predict; got {type(model).__name__}."
        )
    if is_module(model):
        return lambda x: _predict_module(model, model_inputs(x)).argmax(-1)
    return model


class RetrainedOnDemand:
    """A cached target's live model: the one trained in this session, or, when its answers came from the
    cache, the same function, seed and split trained again on first use (once, and counted by the
    ``train`` callback's trainer)."""

    def __init__(self, train: Callable[[], Any], model: Any = None) -> None:
        self._train = train
        self._model: Any = model

    @property
    def model(self) -> Any:
        """The trained target (trained on first use)."""
        if self._model is None:
            import torch

            # Asked from inside an attack's no_grad block (a white-box search, generation): training
            # needs gradients.
            with torch.enable_grad():
                self._model = self._train()
        return self._model


class CachedTarget(RetrainedOnDemand):
    """The target of a ``privacy_train_fn`` audit (the ``target_model`` fixture), the same on a cold
    and a warm cache.

    Called on the audit points (and their augmented copies, when the function declared them) it
    answers from the cached logits (or labels, for a model that exposes only labels), so score
    attacks need no model; on any other input (label-only attacks perturb the points) it answers
    from the live model.
    ``.model`` is that model: the one trained in this session, or, when the logits came from the
    cache, the target trained again with the same function, seed and split, once (and counted).
    White-box attacks (the boundary search) use ``.model`` when it is an ``nn.Module``.
    """

    def __init__(self, x: np.ndarray, answers: np.ndarray, train: Callable[[], Any], *, model: Any = None) -> None:
        # x [R, ...] the query rows, answers [R, C] logits or [R] labels
        x = model_inputs(x)
        self._dtype = x.dtype
        self._rows = {row.tobytes(): i for i, row in enumerate(x.reshape(len(x), -1))}
        self._answers = answers
        super().__init__(train, model)

    def __call__(self, xb: Any) -> Any:
        xb = model_inputs(xb)
        same = xb.dtype == self._dtype
        idx = [self._rows.get(row.tobytes()) if same else None for row in xb.reshape(len(xb), -1)]
        if all(i is not None for i in idx):
            return self._answers[idx]
        _, answers = query_answers(self.model, xb)
        return answers[:, 0]
