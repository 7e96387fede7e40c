"""Train M models as one vectorised program and query them together (ARCHITECTURE.md: the engine).

Parameters of the M models are stacked ``[M, ...]``; one ``torch.func.vmap(grad(...))`` computes all
M gradients per step, each model on its own minibatch drawn from its own keep subset, and one
functional optimizer updates the stacked tensors. Adam and SGD are elementwise, so this is exactly M
separate optimizers. Every random choice of model ``m`` (initialisation, batch order, augmentation)
comes from its own ``SeedSequence``, never from a global generator, so model ``m`` is the same
whether it is trained alone or with others.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data import as_float32
from ..data.augmentations import make_queries
from .models import build_model, dry_run
from .progress import Progress, progress_bar
from .recipe import TrainingRecipe
from .seeds import model_seeds, seeded_init
from .stack import forward_all, train_stack
from .training_data import TrainingData, data_std

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Ensemble", "bytes_per_model", "check_stackable", "resolve_device", "train_ensemble", "train_models"]

_EVAL_BYTES = 256 << 20  # activation memory one querying forward may use, all models together


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; an unavailable explicit device is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but CUDA is not available; use device='auto' or 'cpu'."
        )
    return dev


@dataclass
class Ensemble:
    """M trained models of one recipe, stored as stacked parameters on the CPU.

    ``keep[m, n]`` says whether model ``m`` trained on point ``n`` of the data it was trained on.
    """

    recipe: TrainingRecipe
    params: dict[str, torch.Tensor]
    keep: np.ndarray
    seeds: list[np.random.SeedSequence]
    example_shape: tuple[int, ...]
    n_classes: int
    _base: nn.Module | None = field(default=None, repr=False)
    seed: int | None = None
    _activations: int | None = field(default=None, repr=False)  # per example, for eval batch sizes
    extras: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # what the defense measured, [M, ...]

    def __len__(self) -> int:
        return int(self.keep.shape[0])

    @property
    def base(self) -> nn.Module:
        """The architecture (weights not meaningful), used with ``functional_call``."""
        if self._base is None:
            import torch

            with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
                self._base = build_model(self.recipe, self.example_shape, self.n_classes).eval()
        return self._base

    def model(self, m: int) -> nn.Module:
        """Model ``m`` as a plain ``nn.Module`` in eval mode, on the CPU."""
        import copy

        if not -len(self) <= m < len(self):
            raise IndexError(f"model index {m} out of range for an ensemble of {len(self)}.")
        module = copy.deepcopy(self.base)
        module.load_state_dict({k: v[m].clone() for k, v in self.params.items()}, strict=True)
        return module.eval()

    def predictor(self, models: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
        """``x -> logits [len(models), B, C]`` of ``models`` on a batch, without augmentations: how
        attacks query references on new inputs (``References.predict``)."""
        return lambda xb: self.logits(xb, queries=False, models=models)[:, :, 0]

    def _folded_eval(self, params: dict[str, torch.Tensor], n_models: int, device: torch.device) -> Any:
        """The folded network's eval forward for these models (residual networks), else None."""
        return _folded_eval_of(self.recipe, self.example_shape, self.n_classes, params, n_models, device)

    def logits(
        self, x: np.ndarray, *, queries: bool = True, device: str = "auto", models: Sequence[int] | None = None
    ) -> np.ndarray:
        """Logits ``[M, N, A, C]`` (float32) of every model on ``x`` and, with ``queries``, on the
        recipe's augmentations of it (``A = 1`` without)."""
        import torch

        if not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
            x = as_float32(np.asarray(x))  # a memory map stays one: its rows are read chunk by chunk
        if x.shape[1:] != self.example_shape:
            raise ValueError(f"x has examples of shape {x.shape[1:]}, the models expect {self.example_shape}.")
        augmentations = self.recipe.augmentations if queries else ()
        n, a = len(x), make_queries(np.asarray(x[:1], dtype=np.float32), augmentations).shape[1]
        dev = resolve_device(device)
        idx = list(range(len(self))) if models is None else list(models)
        # The first k models (all of them, or the references before the target) are a view;
        # only another selection copies the stacked weights.
        take = slice(0, len(idx)) if idx == list(range(len(idx))) else idx
        params = {k: v[take].to(dev) for k, v in self.params.items()}
        if self._activations is None:  # a dry run of the model: once, not per query batch
            self._activations = activations_per_example(self.base, self.example_shape)
        per_row = 4 * len(idx) * self._activations
        rows = max(16, _EVAL_BYTES // max(per_row, 1))
        forward = self._folded_eval(params, len(idx), dev) or (lambda xb: forward_all(self.base, params, xb))
        points = max(1, rows // a)  # the queries of this many points at a time: never all N x A at once
        out = []
        with torch.no_grad():
            for start in range(0, n, points):
                q = make_queries(np.asarray(x[start : start + points], dtype=np.float32), augmentations)
                xb = torch.from_numpy(q.reshape(-1, *self.example_shape)).to(dev)
                out.append(forward(xb).float().cpu())
        logits = torch.cat(out, dim=1).numpy()
        return logits.reshape(len(idx), n, a, -1)


def _folded_eval_of(
    recipe: TrainingRecipe, example_shape: tuple[int, ...], n_classes: int, params: dict[str, torch.Tensor],
    n_models: int, device: torch.device,
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``xb [B, ...] -> [M, B, C]`` through the recipe's folded network in eval mode (running
    statistics per model), or None where models are not folded (see ``train_stack``)."""
    from torch.func import functional_call

    from .models import folded_model
    from .resnets import folded_shapes, folded_state

    folded = folded_model(recipe, example_shape, n_classes, n_models)
    if folded is None:
        return None
    folded = folded.to(device).eval()
    state = folded_state(folded_shapes(folded), params)
    return lambda xb: functional_call(folded, state, (xb.unsqueeze(0).expand(n_models, *xb.shape),))


def train_ensemble(
    recipe: TrainingRecipe,
    x: np.ndarray,
    y: np.ndarray,
    keep: np.ndarray,
    *,
    seed: int,
    device: str = "auto",
    max_memory: int | None = None,
    progress: Progress | bool = False,
    validation: np.ndarray | None = None,
) -> Ensemble:
    """Train ``M = keep.shape[0]`` models of ``recipe``, model ``m`` on the points where ``keep[m]``.

    Model ``m`` uses ``model_seeds(seed, [m])``; it equals (allclose) the same model trained alone.
    ``max_memory`` (bytes) bounds how many models train at once; see :func:`train_models`.
    ``validation`` (indices) is the held-out pool a defense with a ``validation_share`` (MMD) needs.
    """
    keep = np.asarray(keep)
    if keep.ndim != 2 or keep.dtype != np.bool_:
        raise ValueError(f"keep must be a 2-D bool array [M, N], got {keep.dtype} {keep.shape}.")
    seeds = model_seeds(seed, range(keep.shape[0]))
    ensemble = train_models(
        recipe, x, y, keep, seeds, device=device, max_memory=max_memory, progress=progress, validation=validation
    )
    ensemble.seed = seed
    return ensemble


def default_memory_budget(device: torch.device) -> int:
    """Bytes the trainer may use: 80% of free GPU memory on CUDA, a quarter of RAM on CPU."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 4 << 30


def bytes_per_model(module: nn.Module, example_shape: tuple[int, ...], batch_size: int) -> int:
    """Training memory of one model: parameters with gradient and two optimizer buffers, plus
    every layer's activations (kept for backward, and their gradients) for one minibatch."""
    n_params = sum(p.numel() for p in module.parameters())
    return 4 * (4 * n_params + 2 * activations_per_example(module, example_shape) * batch_size)


def activations_per_example(module: nn.Module, example_shape: tuple[int, ...]) -> int:
    """Number of values all leaf layers output for one example (a dry run on zeros)."""
    return sum(run.outputs for run in dry_run(module, example_shape).values())


def check_stackable(
    module: nn.Module, recipe: TrainingRecipe | None = None, n_points: int | None = None,
    example_shape: tuple[int, ...] | None = None,
) -> None:
    """Refuse what the vectorised trainer cannot train as M independent models, with a clear error
    here rather than a traceback from inside torch: parameters that are not float32 (the trainer's
    arithmetic is float32, or bf16 autocast by ``precision``), tensors on the meta device (no data),
    random numbers drawn in the forward pass outside ``nn.Dropout`` (``F.dropout``, ``torch.rand``:
    each model needs its own, which only dropout layers get; probed on ``example_shape``), and
    running statistics (BatchNorm, per model) with a defense or without full minibatches."""
    _check_tensors(module)
    if example_shape is not None:
        _check_forward_randomness(module, example_shape)
    buffers = [name for name, _ in module.named_buffers()]
    if not buffers or recipe is None:
        return
    if recipe.defense is not None:
        raise ValueError(
            f"defense {recipe.defense.kind!r} cannot train a model with running statistics "
            f"({buffers[0]}, ...: BatchNorm); use GroupNorm/LayerNorm with it."
        )
    if n_points is not None and n_points < recipe.batch_size:
        raise ValueError(
            f"a model with BatchNorm trains on full minibatches, but a model has only {n_points} training "
            f"points for batch_size={recipe.batch_size}: lower batch_size or audit more points."
        )


def _check_tensors(module: nn.Module) -> None:
    import torch

    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t.device.type == "meta":
            raise ValueError(
                f"the model's {name} is on the meta device (a shape without data): build the model with real "
                "tensors (drop device='meta', or call .to_empty(device='cpu') and initialise it) in the factory."
            )
        if t.is_floating_point() and t.dtype != torch.float32:
            raise ValueError(
                f"the model's {name} is {str(t.dtype).removeprefix('torch.')}: the trainer keeps weights in float32 "
                "(and runs bf16 autocast with precision='bf16'); use a float32 model: drop .double()/.half()/.to(dtype) from the factory."
            )


def _check_forward_randomness(module: nn.Module, example_shape: tuple[int, ...]) -> None:
    """Run the forward pass in training mode under ``vmap(randomness="error")`` on two stacked
    copies (dropout layers swapped for the masked ones the trainer uses), so a random op elsewhere
    is named now, not as vmap's message after training started."""
    import copy

    import torch
    from torch import nn
    from torch.func import functional_call, stack_module_state, vmap

    from .dropout import MaskedDropout

    probe = copy.deepcopy(module).train()
    for name, layer in list(probe.named_modules()):
        if isinstance(layer, nn.modules.dropout._DropoutNd):
            parent, _, child = name.rpartition(".")
            setattr(probe.get_submodule(parent) if parent else probe, child, MaskedDropout(layer.p))
    params, buffers = stack_module_state([probe, probe])
    buffers = {k: v for k, v in buffers.items() if v is not None}
    x = torch.zeros((2, 2, *example_shape))
    try:
        with torch.no_grad():
            vmap(lambda p, b, xb: functional_call(probe, (p, b), (xb,)))(params, buffers, x)
    except RuntimeError as exc:
        unbatched = re.search(r"Batching rule not implemented for aten::(\w+)", str(exc))
        if unbatched:
            op = unbatched.group(1)
            layers = [f"{name} ({type(m).__name__})" for name, m in module.named_modules()
                      if type(m).__name__.lower() == op.lower() or type(m).__name__.lower().startswith(op.lower())]
            where = f"the layer {layers[0]}" if layers else f"torch's aten::{op}"
            raise ValueError(
                f"the model cannot be trained as one vectorised program: {where} has no batching rule in torch "
                f"(aten::{op}). Train it with privacy_train_fn (your own loop, one model at a time), or replace the "
                "layer with one built from linear layers and elementwise functions."
            ) from None
        if "random operation" not in str(exc):
            return  # not this check's business: training reports it with the model's seed
        raise ValueError(
            "the model's forward pass draws random numbers outside an nn.Dropout layer (F.dropout, torch.rand, "
            "RReLU, ...): the vectorised trainer gives each model its own randomness only through dropout layers. "
            "Use nn.Dropout modules (each model then gets its own masks), or train with privacy_train_fn."
        ) from None


def train_models(
    recipe: TrainingRecipe,
    x: np.ndarray,
    y: np.ndarray,
    keep: np.ndarray,
    seeds: Sequence[np.random.SeedSequence],
    *,
    device: str = "auto",
    max_memory: int | None = None,
    progress: Progress | bool = False,
    validation: np.ndarray | None = None,
    stream: bool | None = None,
) -> Ensemble:
    """Train one model per row of ``keep`` with the matching per-model seed (the engine's core).

    Models train in chunks that fit ``max_memory`` bytes (default: :func:`default_memory_budget`);
    chunking never changes a model, since each draws only from its own seed. ``x`` may be any float
    array or a memory map (``np.load(path, mmap_mode="r")``): data larger than a quarter of the
    budget stay on the host and stream to the device in per-model minibatches
    (:class:`~pytest_privacy.engine.training_data.TrainingData`; ``stream`` forces either way), which
    never changes a model either. The models train in the recipe's ``precision``
    (:func:`~pytest_privacy.engine.precision.training_precision`).
    """
    import torch

    from .precision import training_precision

    if not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
        x = as_float32(np.asarray(x))  # float arrays and memory maps stay as they are: rows convert when read
    y = np.asarray(y)
    if x.shape[0] != y.shape[0] or keep.shape[1] != x.shape[0] or len(seeds) != keep.shape[0]:
        raise ValueError(
            f"x ({x.shape[0]}), y ({y.shape[0]}), keep columns ({keep.shape[1]}) and seeds/keep rows "
            f"({len(seeds)}/{keep.shape[0]}) must agree."
        )
    if (keep.sum(axis=1) == 0).any():
        raise ValueError("every model needs at least one training point (a keep row is all False).")
    if recipe.defense is not None and recipe.defense.validation_share > 0:
        if validation is None or len(validation) == 0:
            raise ValueError(
                f"defense {recipe.defense.kind!r} needs a validation pool: pass validation=indices of held-out points."
            )
        validation = np.asarray(validation, dtype=np.int64)
        if keep[:, validation].any():
            raise ValueError("validation points must not be training points of any model (keep[:, validation] is True).")
    dev = resolve_device(device)
    precision = training_precision(recipe, dev.type)
    example_shape = tuple(x.shape[1:])
    n_classes = int(y.max()) + 1
    modules = []
    for s in seeds:
        with seeded_init(s):
            modules.append(build_model(recipe, example_shape, n_classes))
    check_stackable(modules[0], recipe, int(keep.sum(axis=1).min()))
    budget = default_memory_budget(dev) if max_memory is None else int(max_memory)
    per_model = bytes_per_model(modules[0], example_shape, recipe.batch_size)
    if recipe.defense is not None:
        n_params = sum(p.numel() for p in modules[0].parameters())
        per_model += recipe.defense.extra_bytes_per_model(n_params, recipe.batch_size)
    chunk = max(1, min(len(modules), budget // max(per_model, 1)))
    make_queries(np.asarray(x[:1], dtype=np.float32), recipe.augmentations)  # a clear error if they do not fit
    data = TrainingData.plan(x, y, dev, budget=budget, n_models=chunk, stream=stream)
    scale = data_std(x) if "noise" in recipe.augmentations else 1.0  # the noise augmentation's scale
    stacks = []
    total = recipe.epochs * math.ceil(len(modules) / chunk)
    with progress_bar(total, progress, f"training {len(modules)} models", unit="epoch") as bar:
        for start in range(0, len(modules), chunk):
            part = slice(start, start + chunk)
            stacks.append(
                train_stack(
                    recipe, modules[part], keep[part], list(seeds)[part], data, n_classes, dev, bar.update,
                    validation, data_std=scale, precision=precision,
                )
            )
    joined = {k: torch.cat([p[k] for p in stacks]) for k in stacks[0]}
    params = {k: v for k, v in joined.items() if not k.startswith("extra.")}
    extras = {k.removeprefix("extra."): v.numpy() for k, v in joined.items() if k.startswith("extra.")}
    base = modules[0].to("meta").to_empty(device="cpu").eval()  # architecture only; weights live in params
    return Ensemble(recipe, params, keep.copy(), list(seeds), example_shape, n_classes, _base=base, extras=extras)
