"""White-box canary scores from a team's own training loop: a training function that declares an
``on_step`` keyword (``train_fn(x, y, *, seed, device, on_step)``) and calls ``on_step(model)`` after
each optimizer step lets a one-run DP audit read what every step did to each canary, not only the
model it ended with.

Each canary ``c`` scores ``sum_t <u_c(theta_t), theta_t - theta_{t+1}>``: how far each step moved the
weights along the canary's own loss gradient direction ``u_c = grad loss(c; theta) / ||grad loss(c;
theta)||`` at the weights before that step (the first step, before any call, is not read). A step
that trained on ``c`` lowers its loss along ``u_c`` by its clipped gradient (DP-SGD: at most the
clipping norm, then the noise); a step that did not moves along ``u_c`` only by the other points'
gradients and the noise. Any score is valid for the one-run bound (the canaries' inclusion is
random), so this only changes the audit's power. Cached with the model (the key says so).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.executors import Trained
from ..engine.store import digest
from .sources import FunctionSource

if TYPE_CHECKING:
    from ..engine.progress import Progress
    from .job import TrainJob

__all__ = ["StepScores", "StepScoredSource", "takes_on_step"]

SCORES = "extra.step_scores"  # the entry's name for the canaries' white-box scores
_CHUNK = 256  # canaries whose per-example gradients are held at once


def takes_on_step(train_fn: Callable[..., Any]) -> bool:
    """Whether ``train_fn`` declares an ``on_step`` parameter (the white-box hook)."""
    try:
        return "on_step" in inspect.signature(train_fn).parameters
    except (TypeError, ValueError):
        return False


class StepScores:
    """The ``on_step`` callback: after each optimizer step, adds each canary's projection of the
    step onto its gradient direction at the weights before it."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: str) -> None:
        self.x, self.y, self.device = x, y, device
        self.scores = np.zeros(len(x), dtype=np.float64)
        self.steps = 0
        self._before: dict[str, Any] | None = None  # the weights after the previous call

    def __call__(self, model: Any) -> None:
        import torch

        module = getattr(model, "_module", model)  # (opacus's GradSampleModule wraps the team's model)
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"on_step(model) takes the model being trained (an nn.Module), got {type(model).__name__}.")
        now = {k: p.detach().clone() for k, p in module.named_parameters() if p.requires_grad}
        if self._before is not None:
            if now.keys() != self._before.keys():
                raise ValueError("on_step was called with another model than before: pass the model being trained.")
            self.scores += self._projections(self._shadow, dict(module.named_buffers()), self._before, now)
            self.steps += 1
        else:
            self._shadow = _without_hooks(module)
        self._before = now

    def _projections(self, module: Any, buffers: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> np.ndarray:
        """``<u_c(before), before - after>`` for every canary, in chunks (per-example gradients by vmap)."""
        import torch
        from torch.func import functional_call, grad, vmap

        step = torch.cat([(before[k] - after[k]).reshape(-1) for k in before]).double()
        module.eval()  # (the copy: no dropout or batch statistics inside the per-example gradients)

        def loss(params: dict[str, Any], x: Any, y: Any) -> Any:
            out = functional_call(module, (params, buffers), (x[None],))
            return torch.nn.functional.cross_entropy(getattr(out, "logits", out), y[None])

        per_example = vmap(grad(loss), in_dims=(None, 0, 0))
        out = []
        for start in range(0, len(self.x), _CHUNK):
            xb = torch.from_numpy(self.x[start : start + _CHUNK]).to(self.device)
            yb = torch.from_numpy(self.y[start : start + _CHUNK]).to(self.device)
            g = per_example(before, xb, yb)
            flat = torch.cat([g[k].reshape(len(xb), -1) for k in before], dim=1).double()
            norms = flat.norm(dim=1).clamp_min(1e-30)
            out.append(((flat @ step.to(flat.device)) / norms).cpu().numpy())
        return np.concatenate(out)


def _without_hooks(module: Any) -> Any:
    """A copy of ``module`` with no hooks: the per-example gradients run through it with the trained
    weights (``functional_call``), untouched by what the loop registered (opacus's per-sample hooks
    cannot run under vmap) and without touching the module being trained."""
    import copy

    shadow = copy.deepcopy(module)
    for m in shadow.modules():
        for hooks in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks, m._backward_pre_hooks):
            hooks.clear()
    return shadow


@dataclass(frozen=True, eq=False)
class StepScoredSource(FunctionSource):
    """A one-run audit's model by the team's function, handed :class:`StepScores` as ``on_step`` for
    the canaries at rows ``rows`` of the run's training set; the scores are stored with its logits."""

    rows: np.ndarray = None  # type: ignore[assignment]
    labels: np.ndarray = None  # type: ignore[assignment]

    def key(self, data_id: str, keep_row: np.ndarray, seed: np.random.SeedSequence, device_type: str) -> str:
        return digest("pytest-privacy-step-scores/1", super().key(data_id, keep_row, seed, device_type), self.rows, self.labels)

    def covers(self) -> str:
        return super().covers() + ", scored white-box at every step (on_step)"

    def train(self, job: TrainJob, unit: list[int], *, progress: Progress) -> list[Trained]:
        from ..data.querying import query_answers
        from ..engine.ensemble import resolve_device

        device = str(resolve_device(job.device))
        out = []
        for i in unit:
            recorder = StepScores(job.x[self.rows], self.labels, device)
            model = self.train_fn(
                job.x[job.keep[i]], job.y[job.keep[i]], seed=self.seed_of(job.seeds[i]), device=device, on_step=recorder
            )
            if recorder.steps == 0:
                raise ValueError(
                    "the training function declares on_step but called it fewer than twice: call on_step(model) after "
                    "every optimizer step (the white-box canary scores read each step), or drop the parameter."
                )
            kind, answers = query_answers(model, job.x, self.augmentations)
            entry = {kind: answers.astype(np.float32 if kind == "logits" else np.int64), SCORES: recorder.scores}
            out.append(Trained(entry, model if job.keep_models else None))
        return out
