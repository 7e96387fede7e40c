"""Your own PyTorch training loop, written once, driving M models at once.

Issue 15, item 2. A :class:`~pytest_privacy.TrainingRecipe` trains M reference models as
one vectorised program. A loop the recipe cannot express (its own loss, optimizer,
schedule, clipping) used to fall back to a ``privacy_train_fn`` called once per model.
This module lets that loop keep the speed-up: it runs on :class:`StackedModels` (M
models whose parameters are stacked ``[M, ...]``) fed by :class:`PerModelBatches` (each
model its own minibatch of its own members), and the result equals M separate runs of
the same loop, model by model, up to floating-point rounding::

    seeds = model_seeds(seed, range(M))        # one SeedSequence per model
    models = StackedModels(make_net, seeds)    # model m: make_net() under seeds[m]
    batches = PerModelBatches(x, y, keep, seeds, batch_size=64)
    opt = torch.optim.SGD(models.parameters(), lr=0.1, momentum=0.9)  # one for all M
    sched = CosineAnnealingLR(opt, T_max=epochs * len(batches))
    for _ in range(epochs):
        for xb, yb in batches:                 # xb [M, B, ...], yb [M, B]
            opt.zero_grad()
            loss = per_model_loss(F.cross_entropy, models(xb), yb)  # [M]
            loss.sum().backward()              # parameters are disjoint: see below
            models.clip_grad_norm_(1.0)        # each model by its own norm
            opt.step()
            sched.step()
    logits = models.model(3)(x_test)           # model 3 as a plain nn.Module

The contract: what must be per model, what may be shared
--------------------------------------------------------

*Per model, through this module* (a shared call would mix the models):

- **Losses.** Reduce over each model's own batch: ``per_model_loss(loss_fn, out, yb)``
  is ``loss_fn`` (written for one model: ``(logits [B, C], y [B]) -> scalar``) applied
  to each model, ``[M]``. Then backpropagate ``loss.sum()``: model ``m``'s parameters
  reach only ``loss[m]``, so the gradient of the sum with respect to them is exactly the
  gradient of ``loss[m]``. Use the sum, not the mean: a mean would scale every gradient
  by ``1 / M`` (a different SGD step).
- **Gradient clipping.** ``models.clip_grad_norm_(max_norm)`` clips each model by its
  own norm (as ``torch.nn.utils.clip_grad_norm_`` on that model alone).
  ``torch.nn.utils.clip_grad_norm_(models.parameters(), ...)`` would clip all M
  models by their *joint* norm: do not call it here.
- **Initialisation.** Model ``m`` is ``factory()`` run under
  :func:`~.keep.seeded_init` ``(seeds[m])``: torch's generators seeded with
  ``init_seed(seeds[m])`` (stream 0 of its seed, as the recipe engine builds its
  models), the caller's restored afterwards; :func:`seeded_model` builds that same
  model alone.
- **Minibatches.** :class:`PerModelBatches` draws model ``m``'s order from its own
  generator (stream 1 of its seed, as the engine does), so its batches never depend on
  the other models.
- **BatchNorm running statistics** are supported, per model: they are stacked buffers
  ``[M, C]`` and vmap hands each model its slice, which BatchNorm updates in place; in
  training mode each model normalises by its own minibatch's statistics.
  ``momentum=None`` (a cumulative average) is refused: BatchNorm then reads its batch
  counter as a Python number, which vmap cannot do per model.

*Shared, and still exactly per model:* one ``torch.optim`` optimizer over
``models.parameters()`` and one learning-rate scheduler. SGD (with momentum, Nesterov,
weight decay), Adam and AdamW act elementwise on each parameter tensor, and their only
scalars (learning rate, step count) are the same for every model, because every model
takes every step (:class:`PerModelBatches` gives all M models the same number of
minibatches per epoch). Updating the stacked ``[M, ...]`` tensor is therefore updating
each slice ``[m]`` on its own. On the CPU pass ``fused=True`` (or ``foreach=True``):
torch's CPU default updates tensor by tensor, op by op, and costs as much as the
forward pass here (``benchmarks/bench_own_loop.py``); the fused kernels are elementwise
too. Not so for optimizers that look at a whole tensor or the whole parameter set
(LBFGS, LARS/LAMB trust ratios, Shampoo, SAM's joint norm): those mix models.

*Refused, with the layer named:* ``Dropout`` layers (any kind, ``p > 0``), when the
models are built. Their masks would come from torch's global generator, so model ``m``
could not get the masks it gets trained alone. Other randomness in a forward pass
(``RReLU``, ``F.dropout`` in a custom ``forward``) fails at the first forward: vmap's
``randomness="error"`` is kept, so it is an error, not a silent difference. (A recipe's
``dropout=`` has per-model masks.)

*The limits:* the model must run under ``torch.func.vmap`` (plain layers, convolutions,
norms, attention do; ops without a batching rule raise torch's error at the first
forward), and every model steps at every step. On a CPU a network with 2-D
convolutions runs each model in turn, channels-last, as the recipe engine trains its
ResNets (vmap's grouped convolutions are several times slower there); the first call in
each mode (training, eval) also runs it under vmap on two examples, which is what
refuses randomness. A plain ``nn.Sequential`` of linear, 3x3 convolution, ReLU,
max-pool and flatten layers runs the engine's stacked forward instead of vmap (batched
matmuls: a 16-MLP loop 20% faster), on any device. A loop that cannot be written this way
(scikit-learn, early stopping per model, data-dependent control flow per model, a
model-level library such as Opacus) stays a ``privacy_train_fn``, trained one model at a
time.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .seeds import child_seed, init_seed, seeded_init
from .training_data import gather_rows

__all__ = [
    "PerModelBatches",
    "StackedAdapters",
    "StackedModels",
    "clip_per_model_",
    "per_model_lm_loss",
    "init_seed",
    "per_model_loss",
    "seeded_model",
]


def seeded_model(
    factory: Callable[[], nn.Module], seed: np.random.SeedSequence
) -> nn.Module:
    """``factory()`` built under ``seed`` alone: the model :class:`StackedModels`
    stacks at that seed's slot (the caller's global generator is left as it was)."""
    with seeded_init(seed):
        module = factory()
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"the model factory returned {type(module).__name__}, not an nn.Module: "
            "pass a zero-argument function that builds and returns a fresh model, "
            "e.g. lambda: MyNet()."
        )
    return module


def per_model_lm_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each language model's loss ``[M]`` on its own minibatch: logits ``[M, B, T, V]`` on ids and mask
    ``[M, B, T]`` (as :class:`PerModelBatches` gives them for token ids), the mean negative log-likelihood
    of every real token after a text's first (Hugging Face's ``labels`` loss, per model). Backpropagate
    its sum, as for :func:`per_model_loss`."""
    from .lm_loss import lm_loss

    return lm_loss(logits, ids, mask.bool())


def per_model_loss(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    outputs: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """``loss_fn`` written for one model (``(outputs [B, ...], targets [B, ...]) ->
    scalar``, e.g. ``F.cross_entropy``) applied to each model's slice: ``[M]``.
    Backpropagate its ``.sum()``: each model's parameters reach only their own term."""
    from torch.func import vmap

    if outputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"outputs ({tuple(outputs.shape)}) and targets ({tuple(targets.shape)}) "
            "must both lead with the model axis M."
        )
    return vmap(loss_fn)(outputs, targets)


def check_layers(module: nn.Module) -> None:
    """Refuse, naming the layer, what cannot train per model under vmap (see the
    module docstring)."""
    for name, layer in module.named_modules():
        label = (
            f"layer {name!r} ({type(layer).__name__})"
            if name
            else f"the model ({type(layer).__name__})"
        )
        if isinstance(layer, nn.modules.dropout._DropoutNd) and layer.p > 0:
            raise ValueError(
                f"{label} draws random masks from torch's global generator, so a "
                "stacked model could not get the masks it gets trained alone: remove "
                "it (or set p=0), use a TrainingRecipe with dropout= (per-model "
                "masks), or train one model at a time with privacy_train_fn."
            )
        if (
            isinstance(layer, nn.modules.batchnorm._NormBase)
            and layer.track_running_stats
            and layer.momentum is None
        ):
            raise ValueError(
                f"{label} has momentum=None (a cumulative average): it reads its "
                "batch counter as a Python number, which vmap cannot do per model; "
                "give it a numeric momentum (default 0.1)."
            )


def _tie(module: nn.Module, tied: list[tuple[str, str]]) -> None:
    """Point each tied name at its source parameter (``tied``: ``(name, source)`` pairs)."""
    for name, source in tied:
        parent, _, leaf = name.rpartition(".")
        setattr(module.get_submodule(parent), leaf, module.get_parameter(source))


def _to_meta_keeping_ties(module: nn.Module) -> tuple[nn.Module, list[tuple[str, str]]]:
    """``module.to("meta")`` with its tied parameters still tied (a language model's output head and input
    embeddings): moving to meta makes a new parameter per attribute, which would leave the head out of
    the stacked parameters (only the first of tied names is stacked) and on the meta device."""
    first: dict[int, str] = {}
    tied: list[tuple[str, str]] = []
    for name, p in module.named_parameters(remove_duplicate=False):
        if id(p) in first:
            tied.append((name, first[id(p)]))
        else:
            first[id(p)] = name
    module = module.to("meta")
    _tie(module, tied)
    return module, tied


class StackedModels(nn.Module):
    """M models of one architecture as one module, parameters stacked ``[M, ...]``.

    ``factory`` builds one model (a fresh ``nn.Module`` per call); model ``m`` is built
    under ``seeds[m]`` exactly as :func:`seeded_model` builds it alone. ``parameters()``
    yields the stacked tensors, so one ``torch.optim`` optimizer trains all M (see the
    module docstring for which optimizers stay exactly per model). ``.to()``,
    ``.double()``, ``.train()`` and ``.eval()`` act on all M models.
    """

    def __init__(
        self, factory: Callable[[], nn.Module], seeds: Sequence[np.random.SeedSequence]
    ) -> None:
        from torch.func import stack_module_state

        super().__init__()
        if not callable(factory) or isinstance(factory, nn.Module):
            raise TypeError(
                "factory must be a zero-argument function returning a fresh "
                f"nn.Module, got {type(factory).__name__}: pass e.g. lambda: MyNet(), "
                "not a model instance."
            )
        seeds = list(seeds)
        if not seeds or not all(isinstance(s, np.random.SeedSequence) for s in seeds):
            raise TypeError(
                "seeds must be a non-empty sequence of numpy SeedSequence, one per "
                "model: use pytest_privacy.engine.seeds.model_seeds(seed, "
                "range(n_models))."
            )
        modules = [seeded_model(factory, s) for s in seeds]
        if len({id(m) for m in modules}) != len(modules):
            raise TypeError(
                "the model factory returned the same module twice: it must build a "
                "fresh one per call."
            )
        check_layers(modules[0])
        shapes = [
            [(n, tuple(p.shape)) for n, p in m.named_parameters()] for m in modules
        ]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(
                "the model factory built models of different architectures: every "
                "call must build the same one."
            )
        if not shapes[0]:
            raise ValueError(
                f"the model factory built {type(modules[0]).__name__} without "
                "parameters: nothing to train."
            )
        params, buffers = stack_module_state(modules)
        self.n_models = len(modules)
        self._param_names = list(params)
        self._buffer_names = list(buffers)
        # nn.Module forbids "." in a registered name: the stacked tensors are registered
        # by position and mapped back to the architecture's names when called.
        self.stacked = nn.ParameterList(
            [nn.Parameter(params[k].detach().clone()) for k in self._param_names]
        )
        for i, k in enumerate(self._buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[k].detach().clone())
        # The architecture, on the meta device: functional_call replaces every tensor it
        # holds, so it needs no memory of its own. Kept out of the module tree so that
        # parameters() yields only the stacked tensors (see train() for its mode).
        base, self._tied = _to_meta_keeping_ties(modules[0])
        object.__setattr__(self, "_base", base)
        from . import stacked_conv
        from .model_by_model import ModelByModel

        # How calls run (see _call), fixed by the architecture: the engine's stacked forward, or
        # model by model for a 2-D convolutional network on a CPU, else vmap.
        self._spec = stacked_conv.make_spec(base) if not buffers and stacked_conv.supports(base) else None
        conv2d = any(isinstance(m, nn.Conv2d) for m in base.modules())
        self._per_model = ModelByModel(base, self.n_models, self.stacked_buffers) if conv2d else None
        base.train(self.training)

    def params(self) -> dict[str, torch.Tensor]:
        """The stacked parameters ``[M, ...]`` by the architecture's names (the live
        tensors)."""
        return dict(zip(self._param_names, self.stacked, strict=True))

    def stacked_buffers(self) -> dict[str, torch.Tensor]:
        """The stacked buffers ``[M, ...]`` (BatchNorm running statistics) by the
        architecture's names."""
        return {
            k: getattr(self, f"buffer_{i}") for i, k in enumerate(self._buffer_names)
        }

    def train(self, mode: bool = True) -> StackedModels:
        """Training or eval mode for all M models (the architecture's BatchNorm
        layers follow it)."""
        super().train(mode)
        self._base.train(mode)
        return self

    def _call(self, x: torch.Tensor, in_dim: int | None) -> torch.Tensor:
        from torch.func import functional_call, vmap

        from . import stacked_conv
        from .stack import conv_layout

        if self._spec is not None:
            # A Sequential of linear, convolution (3x3), ReLU, max-pool and flatten layers: the
            # recipe engine's stacked forward (batched matmuls and channels-last convolutions,
            # no vmap), the same math.
            xs = x if in_dim == 0 else x.expand(self.n_models, *x.shape)
            return stacked_conv.stacked_forward(self.params(), xs, self._spec)
        if self._per_model is not None and conv_layout(self.stacked[0].device) == "per_model":
            # A 2-D convolutional network on a CPU: each model in turn, channels-last, as the
            # recipe engine trains its ResNets (under vmap's grouped convolutions a ResNet-8
            # trained several times slower, slower than a plain loop).
            xs = x if in_dim == 0 else x.expand(self.n_models, *x.shape)
            return self._per_model(self.params(), xs)
        base = self._base

        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            out = functional_call(base, (p, b), (xb,))
            # a language model's output object (Hugging Face): its logits (vmap returns tensors only)
            return getattr(out, "logits", out)

        with warnings.catch_warnings():
            # CPU attention has no batching rule: vmap runs it model by model (correct; see stacked_lm)
            warnings.filterwarnings("ignore", message=".*performance drop because we have not yet implemented the batching rule")
            return vmap(one, in_dims=(0, 0, in_dim))(self.params(), self.stacked_buffers(), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each model on its own inputs: ``x [M, B, ...] -> [M, B, ...]`` (logits
        ``[M, B, C]``; a language model's ``[M, B, T, V]``, read from its output's ``.logits``)."""
        if x.dim() < 1 or x.shape[0] != self.n_models:
            raise ValueError(
                f"x must lead with the model axis ({self.n_models} models), got shape "
                f"{tuple(x.shape)}; for the same inputs to every model use "
                "forward_shared(x)."
            )
        return self._call(x, 0)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The same as calling the module (what the engine's scoring of stacked language models reads, as
        for :class:`StackedAdapters`)."""
        return self(x)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Every model on the same inputs: ``x [B, ...] -> [M, B, ...]`` (e.g. to
        evaluate)."""
        return self._call(x, None)

    def model(self, m: int) -> nn.Module:
        """Model ``m`` as an ordinary ``nn.Module`` (a copy, in this module's mode,
        dtype and device)."""
        if not -self.n_models <= m < self.n_models:
            raise IndexError(
                f"model index {m} out of range for {self.n_models} stacked models."
            )
        module = copy.deepcopy(self._base)
        with torch.no_grad():
            for name, value in self.params().items():
                parent, _, leaf = name.rpartition(".")
                setattr(
                    module.get_submodule(parent),
                    leaf,
                    nn.Parameter(value[m].clone(), value.requires_grad),
                )
            for name, value in self.stacked_buffers().items():
                parent, _, leaf = name.rpartition(".")
                module.get_submodule(parent)._buffers[leaf] = value[m].clone()
        _tie(module, self._tied)
        return module.train(self.training)

    def clip_grad_norm_(
        self, max_norm: float, *, norm_type: float = 2.0
    ) -> torch.Tensor:
        """Clip each model's gradient by its own norm over all of its parameters, as
        ``torch.nn.utils.clip_grad_norm_`` does for one model; returns the M norms
        before clipping."""
        return clip_per_model_(list(self.stacked), max_norm, norm_type=norm_type)


def clip_per_model_(
    stacked: Sequence[torch.Tensor], max_norm: float, *, norm_type: float = 2.0
) -> torch.Tensor:
    """Clip the gradients of stacked tensors ``[M, ...]`` in place, each model by its own norm over
    all of its slices (``torch.nn.utils.clip_grad_norm_`` on that model alone); returns the M norms
    before clipping."""
    grads = [p.grad for p in stacked if p.grad is not None]
    if not grads:
        return stacked[0].new_zeros(stacked[0].shape[0])
    with torch.no_grad():
        # torch's order of operations: each tensor's norm, then their norm.
        per_tensor = torch.stack(
            [torch.linalg.vector_norm(g.flatten(1), norm_type, dim=1) for g in grads]
        )
        norms = torch.linalg.vector_norm(per_tensor, norm_type, dim=0)
        factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(factor.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))
    return norms


class StackedAdapters(nn.Module):
    """M LoRA fine-tunes of one pretrained language model, for your own loop: ONE frozen copy of
    ``factory()`` (built once: it must load the same weights every call), each adapted layer carrying M
    adapters of rank ``rank`` (``alpha / rank * B A``, peft's LoRA without dropout; A drawn under each
    model's seed, B zero). ``models(ids [M, B, T])`` runs the base once over the stacked ``[M*B, T]``
    and adds each model's update to its own rows; ``parameters()`` yields the adapters ``[M, ...]`` (and
    the frozen base's weights, which take no gradient), so one optimizer trains all M; ``model(m)`` is
    fine-tune ``m`` as a plain copy of the base with its adapter merged."""

    def __init__(
        self, factory: Callable[[], nn.Module], seeds: Sequence[np.random.SeedSequence], *, rank: int,
        alpha: float | None = None, target_modules: Sequence[str] | None = None,
    ) -> None:
        from .lm_recipe import LMRecipe
        from .stacked_lm import StackedLoRA

        super().__init__()
        base = factory()
        if not isinstance(base, nn.Module):
            raise TypeError(f"the model factory returned {type(base).__name__}, not an nn.Module.")
        recipe = LMRecipe(base=factory, lora_rank=rank, lora_alpha=alpha,
                          target_modules=None if target_modules is None else tuple(target_modules))
        stack = StackedLoRA(base, recipe, list(seeds))
        object.__setattr__(self, "_stack", stack)
        self.n_models = stack.n_models
        self.base = stack.base  # frozen; registered so that .to() moves it with the adapters
        self.adapters = nn.ParameterList(stack.trainable())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Each model on its own ids: ``[M, B, T] -> [M, B, T, V]``."""
        if ids.dim() != 3 or ids.shape[0] != self.n_models:
            raise ValueError(f"ids must be [M, B, T] with M = {self.n_models} models, got {tuple(ids.shape)}.")
        return self._stack.logits(ids)

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """The same as calling the module (what the engine's scoring reads)."""
        return self(ids)

    def model(self, m: int) -> nn.Module:
        """Fine-tune ``m`` as a plain copy of the base, its adapter merged into the weights."""
        return self._stack.alone(m)

    def clip_grad_norm_(self, max_norm: float, *, norm_type: float = 2.0) -> torch.Tensor:
        """Clip each model's adapters' gradient by its own norm (see :meth:`StackedModels.clip_grad_norm_`)."""
        return clip_per_model_(list(self.adapters), max_norm, norm_type=norm_type)


class PerModelBatches:
    """Each model's own shuffled minibatches of its own members: iterate for one epoch
    of ``(xb [M, B, ...], yb [M, B])``; every iteration draws fresh per-model orders.

    ``keep [M, N]`` (bool) says which points model ``m`` trains on. ``seeds`` are the
    models' ``SeedSequence`` (their stream 1 orders the batches, as in the recipe
    engine) or ready ``np.random.Generator`` objects, one per model.

    Unequal member counts: a stacked step takes one full minibatch from every model, so
    every epoch has ``steps_per_epoch`` minibatches per model (default: the fewest full
    minibatches any model has, ``min(keep.sum(1)) // batch_size``). Model ``m`` trains
    on the first ``steps_per_epoch * batch_size`` points of its own permutation and
    drops the rest for that epoch (as ``DataLoader(drop_last=True)``; the next
    permutation drops others). With ``steps_per_epoch`` set alike, model ``m``'s batches
    depend only on its keep row and seed, so ``PerModelBatches(x, y, keep[[m]],
    [seeds[m]], ..., steps_per_epoch=len(batches))`` gives model ``m`` alone the same
    minibatches.
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        keep: np.ndarray,
        seeds: Sequence[np.random.SeedSequence | np.random.Generator],
        *,
        batch_size: int,
        steps_per_epoch: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        x_t = (
            x
            if isinstance(x, torch.Tensor)
            else torch.from_numpy(np.ascontiguousarray(x))
        )
        y_t = (
            y
            if isinstance(y, torch.Tensor)
            else torch.from_numpy(np.ascontiguousarray(y))
        )
        if x_t.dim() < 1 or y_t.dim() < 1 or x_t.shape[0] != y_t.shape[0]:
            raise ValueError(
                "x and y must have one row per point: x has shape "
                f"{tuple(x_t.shape)}, y {tuple(y_t.shape)}."
            )
        keep = np.asarray(keep.cpu() if isinstance(keep, torch.Tensor) else keep)
        if keep.ndim != 2 or keep.dtype != np.bool_ or keep.shape[1] != x_t.shape[0]:
            raise ValueError(
                f"keep must be a bool array [M, N] with N = len(x) = {x_t.shape[0]} "
                f"(row m: the points model m trains on), got {keep.dtype} "
                f"{keep.shape}; e.g. pytest_privacy.balanced_keep(M, len(x), seed)."
            )
        seeds = list(seeds)
        if len(seeds) != keep.shape[0]:
            raise ValueError(
                f"keep has {keep.shape[0]} rows (models) but {len(seeds)} seeds were "
                "given: one per model."
            )
        if (
            not isinstance(batch_size, (int, np.integer))
            or isinstance(batch_size, bool)
            or batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer, got {batch_size!r}."
            )
        counts = keep.sum(axis=1)
        fewest = int(counts.min()) // int(batch_size)
        if fewest < 1:
            raise ValueError(
                f"model {int(counts.argmin())} has {int(counts.min())} training "
                f"points, fewer than one minibatch of batch_size={batch_size}: lower "
                "batch_size or give every model more points."
            )
        if steps_per_epoch is None:
            steps_per_epoch = fewest
        elif (
            not isinstance(steps_per_epoch, (int, np.integer))
            or not 1 <= steps_per_epoch <= fewest
        ):
            raise ValueError(
                f"steps_per_epoch must be an integer in [1, {fewest}] (full "
                "minibatches of the model with the fewest points), got "
                f"{steps_per_epoch!r}."
            )
        self.rngs = [self._generator(s) for s in seeds]
        self.members = [np.flatnonzero(row) for row in keep]
        self.batch_size = int(batch_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.x = x_t.to(device) if device is not None else x_t
        self.y = y_t.to(self.x.device)

    @staticmethod
    def _generator(seed: Any) -> np.random.Generator:
        if isinstance(seed, np.random.Generator):
            return seed
        if isinstance(seed, np.random.SeedSequence):
            return np.random.default_rng(child_seed(seed, 1))
        raise TypeError(
            "seeds must hold numpy SeedSequence (e.g. from model_seeds) or "
            f"np.random.Generator objects, got {type(seed).__name__}."
        )

    def __len__(self) -> int:
        """Minibatches per epoch (every model has the same number)."""
        return self.steps_per_epoch

    def iter_indices(self) -> Iterator[np.ndarray]:
        """One epoch of point indices ``[M, B]`` per step (draws the epoch's orders,
        as ``__iter__`` does)."""
        used = self.steps_per_epoch * self.batch_size
        order = np.stack(
            [
                rng.permutation(idx)[:used]
                for idx, rng in zip(self.members, self.rngs, strict=True)
            ]
        )
        for s in range(self.steps_per_epoch):
            yield order[:, s * self.batch_size : (s + 1) * self.batch_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(xb [M, B, ...], yb [M, B])``, gathered on ``x``'s device
        step by step (an epoch-wide gather would hold M copies of the data)."""
        for idx in self.iter_indices():
            index = torch.from_numpy(idx).to(self.x.device)
            yield gather_rows(self.x, index), gather_rows(self.y, index)
