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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..queries import make_queries
from .keep import child_seed, model_seeds, torch_seed
from .progress import Progress, progress_bar
from .recipe import TrainingRecipe, build_model

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Ensemble", "bytes_per_model", "resolve_device", "train_ensemble", "train_models"]

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

    def __len__(self) -> int:
        return int(self.keep.shape[0])

    @property
    def base(self) -> nn.Module:
        """The architecture (weights not meaningful), used with ``functional_call``."""
        if self._base is None:
            import torch

            with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
                self._base = build_model(self.recipe, self.example_shape, self.n_classes)
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

    def logits(
        self, x: np.ndarray, *, queries: bool = True, device: str = "auto", models: Sequence[int] | None = None
    ) -> np.ndarray:
        """Logits ``[M, N, A, C]`` (float32) of every model on ``x`` and, with ``queries``, on the
        recipe's augmentations of it (``A = 1`` without)."""
        import torch

        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.example_shape:
            raise ValueError(f"x has examples of shape {x.shape[1:]}, the models expect {self.example_shape}.")
        q = make_queries(x, self.recipe.augmentations if queries else ())
        n, a = q.shape[:2]
        dev = resolve_device(device)
        idx = list(range(len(self))) if models is None else list(models)
        # The first k models (all of them, or the references before the target) are a view;
        # only another selection copies the stacked weights.
        take = slice(0, len(idx)) if idx == list(range(len(idx))) else idx
        params = {k: v[take].to(dev) for k, v in self.params.items()}
        flat = torch.from_numpy(q.reshape(n * a, *self.example_shape))
        if self._activations is None:  # a dry run of the model: once, not per query batch
            self._activations = activations_per_example(self.base, self.example_shape)
        per_row = 4 * len(idx) * self._activations
        rows = max(16, _EVAL_BYTES // max(per_row, 1))
        out = []
        with torch.no_grad():
            for start in range(0, n * a, rows):
                xb = flat[start : start + rows].to(dev)
                out.append(_forward_all(self.base, params, xb).float().cpu())
        logits = torch.cat(out, dim=1).numpy()
        return logits.reshape(len(idx), n, a, -1)


def _forward_all(base: nn.Module, params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
    """Every stacked model on the same inputs: ``[M, B, C]``."""
    from torch.func import functional_call, vmap

    return vmap(lambda p: functional_call(base, p, (xb,)))(params)


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
    ``validation`` (indices) is the MMD validation pool a ``defense="mmd_mixup"`` recipe needs.
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
    import torch

    activations = 0

    def count(_: nn.Module, __: Any, out: Any) -> None:
        nonlocal activations
        if isinstance(out, torch.Tensor):
            activations += out.numel()

    hooks = [m.register_forward_hook(count) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            module(torch.zeros((1, *example_shape)))
    finally:
        for h in hooks:
            h.remove()
    return activations


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
) -> Ensemble:
    """Train one model per row of ``keep`` with the matching per-model seed (the engine's core).

    Models train in chunks that fit ``max_memory`` bytes (default: :func:`default_memory_budget`);
    chunking never changes a model, since each draws only from its own seed.
    """
    import torch

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0] or keep.shape[1] != x.shape[0] or len(seeds) != keep.shape[0]:
        raise ValueError(
            f"x ({x.shape[0]}), y ({y.shape[0]}), keep columns ({keep.shape[1]}) and seeds/keep rows "
            f"({len(seeds)}/{keep.shape[0]}) must agree."
        )
    if (keep.sum(axis=1) == 0).any():
        raise ValueError("every model needs at least one training point (a keep row is all False).")
    if recipe.defense == "mmd_mixup":
        if validation is None or len(validation) == 0:
            raise ValueError("defense='mmd_mixup' needs a validation pool: pass validation=indices of held-out points.")
        validation = np.asarray(validation, dtype=np.int64)
        if keep[:, validation].any():
            raise ValueError("validation points must not be training points of any model (keep[:, validation] is True).")
    dev = resolve_device(device)
    example_shape = tuple(x.shape[1:])
    n_classes = int(y.max()) + 1
    modules = []
    for s in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed(child_seed(s, 0)))
            modules.append(build_model(recipe, example_shape, n_classes))
    if list(modules[0].buffers()):
        raise ValueError(
            "the model has buffers (e.g. BatchNorm running statistics), which the vectorised trainer "
            "cannot batch; use GroupNorm/LayerNorm, or pass your own training function."
        )
    budget = default_memory_budget(dev) if max_memory is None else int(max_memory)
    per_model = bytes_per_model(modules[0], example_shape, recipe.batch_size)
    if recipe.defense == "dp_sgd":  # per-example gradients: batch_size copies of the parameters
        per_model += 4 * recipe.batch_size * sum(p.numel() for p in modules[0].parameters())
    chunk = max(1, min(len(modules), budget // max(per_model, 1)))
    queries = torch.from_numpy(make_queries(x, recipe.augmentations)).to(dev)  # [N, A, ...]
    labels = torch.from_numpy(y.astype(np.int64)).to(dev)
    stacks = []
    total = recipe.epochs * math.ceil(len(modules) / chunk)
    with progress_bar(total, progress, f"training {len(modules)} models", unit="epoch") as bar:
        for start in range(0, len(modules), chunk):
            part = slice(start, start + chunk)
            stacks.append(
                _train_stack(recipe, modules[part], keep[part], list(seeds)[part], queries, labels, dev, bar.update, validation)
            )
    params = {k: torch.cat([p[k] for p in stacks]) for k in stacks[0]}
    base = modules[0].to("meta").to_empty(device="cpu")  # architecture only; weights live in params
    return Ensemble(recipe, params, keep.copy(), list(seeds), example_shape, n_classes, _base=base)


def _train_stack(
    recipe: TrainingRecipe,
    modules: list[nn.Module],
    keep: np.ndarray,
    seeds: list[np.random.SeedSequence],
    queries: torch.Tensor,
    labels: torch.Tensor,
    dev: torch.device,
    tick: Callable[[int], Any],
    validation: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Train ``len(modules)`` models as one stacked program; returns their parameters on the CPU."""
    import contextlib

    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, stack_module_state, vmap

    n_models = len(modules)
    base = modules[0]
    params, _ = stack_module_state(modules)
    params = {k: v.detach().to(dev).requires_grad_() for k, v in params.items()}
    leaves = list(params.values())
    n_aug = queries.shape[1]
    forward = vmap(lambda p, xb: functional_call(base, p, (xb,)))
    if any(isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)) for m in base.modules()):
        from .stacked_conv import make_spec, stacked_forward, supports

        if supports(base):
            # vmap lowers convolutions to grouped convs and pools a strided layout: slower than
            # the one-model loop on CPU. The channels-last stacked forward is 2x (images) to 4x
            # (1-D signals) faster than that loop for 16 models, with the same math.
            spec = make_spec(base)
            forward = lambda p, xb: stacked_forward(p, xb, spec)  # noqa: E731

    def cross_entropy(out: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        per_example = F.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none").view_as(wb)
        return (per_example * wb).sum(1) / wb.sum(1).clamp_min(1.0)  # [M]: each model's mean

    private = recipe.defense == "dp_sgd"
    if private:
        from torch.func import grad

        from .defenses import dp_noise_multiplier

        # Each model's own multiplier, from its own sampling rate: chunk-mates never change a model.
        rates = [min(1.0, recipe.batch_size / int(n)) for n in keep.sum(axis=1)]
        sigma = {r: dp_noise_multiplier(recipe.dp_epsilon, recipe.dp_delta, r, recipe.epochs) for r in set(rates)}
        noise_scale = torch.tensor([sigma[r] * recipe.dp_clip for r in rates], dtype=torch.float32, device=dev)
        noise_gens = [torch.Generator().manual_seed(torch_seed(child_seed(s, 3))) for s in seeds]

        def sample_loss(p: dict[str, torch.Tensor], x1: torch.Tensor, y1: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(functional_call(base, p, (x1.unsqueeze(0),)), y1.unsqueeze(0))

        per_sample = vmap(vmap(grad(sample_loss), in_dims=(None, 0, 0)))

        def private_gradients(
            xb: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor, active: list[bool]
        ) -> dict[str, torch.Tensor]:
            # DP-SGD: clip every example's gradient to dp_clip, sum, add N(0, (sigma * clip)^2) drawn
            # from each model's own generator (only when it steps, so chunking never changes a model),
            # divide by the batch size.
            g = per_sample({k: v.detach() for k, v in params.items()}, xb, yb)  # [M, B, ...]
            norms = torch.sqrt(sum(v.flatten(2).pow(2).sum(-1) for v in g.values()))  # [M, B]
            factor = (recipe.dp_clip / (norms + 1e-6)).clamp(max=1.0) * wb
            out = {}
            for k, v in g.items():
                summed = torch.einsum("mb,mb...->m...", factor, v)
                noise = torch.stack([
                    torch.randn(v.shape[2:], generator=gen) if on else torch.zeros(v.shape[2:])
                    for gen, on in zip(noise_gens, active)
                ]).to(v.device)
                scale = noise_scale.view(-1, *[1] * (noise.dim() - 1)).to(noise.dtype)
                out[k] = (summed + scale * noise) / recipe.batch_size
            return out

    def gradients(loss: torch.Tensor) -> dict[str, torch.Tensor]:
        # A vmapped forward and one ordinary backward through the sum of the M models' losses
        # (each model's parameters only reach its own loss): ~1.5x faster than vmap(grad(...)).
        return dict(zip(params, torch.autograd.grad(loss.sum(), leaves)))

    # bf16 autocast on CUDA: matmuls in bf16, master weights and optimizer state in float32.
    amp = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if dev.type == "cuda"
        else contextlib.nullcontext
    )
    optimizer = _StackedOptimizer(recipe, params, n_models)
    # A plain MLP on the CPU: hand-written backward over the stack (see _mlp_gradients).
    mlp = _mlp_layers(base) if dev.type == "cpu" else None
    members = [np.flatnonzero(row) for row in keep]
    rngs = [np.random.default_rng(child_seed(s, 1)) for s in seeds]
    bsz = recipe.batch_size
    steps = [math.ceil(len(idx) / bsz) for idx in members]
    width = max(steps)
    defended = recipe.defense == "mmd_mixup"
    if defended:
        from .defenses import mixup_partners

        defense_rngs = [np.random.default_rng(child_seed(s, 2)) for s in seeds]
        labels_np = labels.cpu().numpy()
        pool = np.asarray(validation)
    for _ in range(recipe.epochs):
        # Per model: a fresh permutation of its own points and a query (augmentation) per point.
        order = np.zeros((n_models, width * bsz), dtype=np.int64)
        aug = np.zeros_like(order)
        weight = np.zeros(order.shape, dtype=np.float32)
        for m, (idx, rng) in enumerate(zip(members, rngs)):
            perm = rng.permutation(idx)
            order[m, : perm.size] = perm
            weight[m, : perm.size] = 1.0
            if n_aug > 1:
                aug[m, : perm.size] = rng.integers(0, n_aug, size=perm.size)
        order_t = torch.from_numpy(order).to(dev)
        aug_t = torch.from_numpy(aug).to(dev)
        weight_t = torch.from_numpy(weight).to(dev)
        # One gather per epoch; each step then takes views (per-step fancy indexing costs ~10%).
        epoch_x, epoch_y = queries[order_t, aug_t], labels[order_t]
        for step in range(width):
            cols = slice(step * bsz, (step + 1) * bsz)
            wb = weight_t[:, cols]
            active = [step < s for s in steps]
            with amp():
                xb, yb = epoch_x[:, cols], epoch_y[:, cols]
                if private:
                    optimizer.step(private_gradients(xb, yb, wb, active), active)
                    continue
                if not defended and mlp is not None:
                    optimizer.step(_mlp_gradients(params, mlp, xb, yb, wb), active)
                    continue
                if not defended:
                    loss = cross_entropy(forward(params, xb).float(), yb, wb)
                else:  # the mixup pass: each model mixes its own minibatch with a permutation of it
                    # Draws only for models that step: a waiting model's generator stays where
                    # it would be if it trained alone (its inert slot mixes nothing).
                    lam, partner = zip(*(
                        mixup_partners(r, int(w.sum()), bsz, recipe.mixup_alpha) if on else (1.0, np.arange(bsz))
                        for r, w, on in zip(defense_rngs, weight[:, cols], active)
                    ))
                    lam_t = torch.tensor(lam, dtype=xb.dtype, device=dev)
                    other = torch.from_numpy(np.stack(partner)).to(dev)
                    view = (-1,) + (1,) * (xb.ndim - 1)
                    x_mix = lam_t.view(view) * xb + (1 - lam_t.view(view)) * torch.gather(
                        xb, 1, other.view(*other.shape, *([1] * (xb.ndim - 2))).expand_as(xb)
                    )
                    out = forward(params, x_mix).float()
                    loss = lam_t * cross_entropy(out, yb, wb) + (1 - lam_t) * cross_entropy(
                        out, torch.gather(yb, 1, other), wb
                    )
                g = gradients(loss)
            optimizer.step(g, active)
        if defended:
            _mmd_pass(
                recipe, forward, lambda xb: _forward_all(base, params, xb), params, gradients, optimizer, queries,
                labels_np, keep, pool, order, order_t, weight_t, steps, defense_rngs, amp,
            )
        tick(1)
    return {k: v.detach().cpu() for k, v in params.items()}


def _mlp_layers(base: nn.Module) -> list[tuple[str, str]] | None:
    """``(weight, bias)`` parameter names of ``Sequential([Flatten,] Linear, ReLU, ..., Linear)``
    (the recipe's MLP), or None for any other architecture."""
    from torch import nn

    if type(base) is not nn.Sequential:
        return None
    children = list(base.named_children())
    if children and type(children[0][1]) is nn.Flatten and (children[0][1].start_dim, children[0][1].end_dim) == (1, -1):
        children = children[1:]
    if len(children) % 2 == 0:
        return None
    layers = []
    for i, (name, module) in enumerate(children):
        if i % 2 == 0 and type(module) is nn.Linear and module.bias is not None:
            layers.append((f"{name}.weight", f"{name}.bias"))
        elif i % 2 == 1 and type(module) is nn.ReLU:
            continue
        else:
            return None
    return layers


def _mlp_gradients(
    params: dict[str, torch.Tensor], layers: list[tuple[str, str]], xb: torch.Tensor, yb: torch.Tensor, wb: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Each model's gradient of its weighted mean cross-entropy, for stacked MLPs, by hand.

    The same math as autograd through the vmapped forward, in a dozen batched matmuls: for small
    models autograd's per-op bookkeeping costs more than the arithmetic (profiled: 1.1-1.3 ms of a
    16-model step's backward), and bmm here returns weight gradients in the parameters' own
    layout, so the fused optimizer needs no copies.
    """
    import torch

    with torch.no_grad():
        h = xb.flatten(2)
        inputs = []
        for j, (w, b) in enumerate(layers):
            inputs.append(h)
            h = torch.baddbmm(params[b].unsqueeze(1), h, params[w].transpose(1, 2))
            if j < len(layers) - 1:
                h = h.relu_()
        # d(loss)/d(logits) = (softmax - onehot) * w / sum(w), per model
        d = torch.softmax(h, dim=-1)
        d.scatter_add_(-1, yb.unsqueeze(-1), torch.full(yb.shape + (1,), -1.0, dtype=d.dtype, device=d.device))
        d.mul_((wb / wb.sum(1, keepdim=True).clamp_min(1.0)).unsqueeze(-1))
        grads = {}
        for j in reversed(range(len(layers))):
            w, b = layers[j]
            grads[w] = torch.bmm(d.transpose(1, 2), inputs[j])
            grads[b] = d.sum(1)
            if j > 0:  # through the layer, then through the ReLU whose output was inputs[j]
                # (ReLU's own backward kernel: one pass, no boolean mask to build and cast)
                d = torch.ops.aten.threshold_backward(torch.bmm(d, params[w]), inputs[j], 0)
        return grads


def _mmd_pass(
    recipe: TrainingRecipe, forward: Any, predict_all: Any, params: dict[str, torch.Tensor], gradients: Any, optimizer: Any,
    queries: torch.Tensor, labels_np: np.ndarray, keep: np.ndarray, pool: np.ndarray, order: np.ndarray,
    order_t: torch.Tensor, weight_t: torch.Tensor, steps: list[int], rngs: list[np.random.Generator], amp: Any,
) -> None:
    """The defense's second pass, for models whose train accuracy leads validation by the trigger.

    ``order``/``order_t`` and ``weight_t`` are the epoch's minibatch layout (numpy for drawing the
    class-matched pool points, on the device for indexing), as the first pass used them.
    """
    import torch

    from .defenses import class_matched, mmd2

    with torch.no_grad():
        predicted = torch.cat([predict_all(xb).argmax(-1) for xb in queries[:, 0].split(1024)], dim=1)
    correct = (predicted.cpu().numpy() == labels_np[None, :])
    train_acc = np.array([correct[m, keep[m]].mean() for m in range(len(keep))])
    val_acc = correct[:, pool].mean(axis=1)
    triggered = train_acc - val_acc >= recipe.mmd_trigger
    if not triggered.any():
        return
    bsz = recipe.batch_size
    pool_labels = labels_np[pool]
    for step in range(max(steps)):
        cols = slice(step * bsz, (step + 1) * bsz)
        active = [bool(t) and step < s for t, s in zip(triggered, steps)]
        if not any(active):
            continue
        ib = order[:, cols]
        matched = np.stack([  # draws only for models that step (see the mixup pass)
            class_matched(r, labels_np[row], pool, pool_labels) if on else np.full(row.shape, pool[0])
            for r, row, on in zip(rngs, ib, active)
        ])
        ib_t, wb = order_t[:, cols], weight_t[:, cols]
        jb_t = torch.from_numpy(matched).to(order_t.device)
        with amp():
            p_train = torch.softmax(forward(params, queries[ib_t, 0]).float(), -1)
            p_val = torch.softmax(forward(params, queries[jb_t, 0]).float(), -1).detach()
            mask = torch.tensor(active, dtype=p_train.dtype, device=p_train.device)
            loss = recipe.mmd_weight * mmd2(p_train, p_val, recipe.mmd_bandwidths, wb, wb) * mask
            g = gradients(loss)
        optimizer.step(g, active)


class _StackedOptimizer:
    """Adam or SGD (torch's semantics and fused kernels, L2 weight decay) over stacked tensors.

    The fused kernels take lists of tensors, so each model's slice ``p[m]`` is updated in one
    cache-friendly pass (an elementwise update over the whole ``[M, ...]`` stack is ~10x slower on
    CPU: it streams every model through memory once per arithmetic op). ``active[m]`` False leaves
    model ``m`` untouched, step counter included: a model whose epoch has fewer minibatches waits,
    so it stays identical to the same model trained alone.
    """

    def __init__(self, recipe: TrainingRecipe, params: dict[str, torch.Tensor], n_models: int) -> None:
        import torch

        self.recipe = recipe
        self.keys = list(params)
        dev = params[self.keys[0]].device
        # Stacked state with per-model views: both update paths below share the same storage.
        self.m1 = {k: torch.zeros_like(v) for k, v in params.items()}
        self.m2 = {k: torch.zeros_like(v) for k, v in params.items()}
        self.slices = [[params[k][m] for k in self.keys] for m in range(n_models)]
        self.buf1 = [[self.m1[k][m] for k in self.keys] for m in range(n_models)]
        self.buf2 = [[self.m2[k][m] for k in self.keys] for m in range(n_models)]
        self.stacked = ([params[k] for k in self.keys], [self.m1[k] for k in self.keys], [self.m2[k] for k in self.keys])
        self.counts = [0] * n_models  # each model's step count; the tensors below mirror it for Adam
        self.steps = [torch.zeros((), dtype=torch.float32, device=dev) for _ in range(n_models)]
        self.shared = torch.zeros((), dtype=torch.float32, device=dev)

    def step(self, grads: dict[str, torch.Tensor], active: list[bool]) -> None:
        import torch

        r = self.recipe
        models = [m for m, a in enumerate(active) if a]
        # The fused kernels walk raw memory: a gradient whose strides differ from its parameter's
        # (bmm's backward returns transposed ones) would be paired element for element wrongly.
        gathered = [grads[k].contiguous() for k in self.keys]
        first = self.counts[models[0]] == 0
        for m in models:
            self.counts[m] += 1
        together = len(models) == len(active) and len(set(self.counts)) == 1
        with torch.no_grad():
            if together:
                # Every model steps and all share one step count: one fused call over the stacked
                # tensors. The update is elementwise, so this is the per-model update without the
                # per-model list building that dominates small models' steps.
                params, grad_list = self.stacked[0], gathered
                bufs1, bufs2 = self.stacked[1], self.stacked[2]
                self.shared.fill_(self.counts[0])
                step_list = [self.shared] * len(self.keys)
            else:
                params = [t for m in models for t in self.slices[m]]
                grad_list = [g[m] for m in models for g in gathered]
                bufs1 = [b for m in models for b in self.buf1[m]]
                bufs2 = [b for m in models for b in self.buf2[m]]
                for m in models:
                    self.steps[m].fill_(self.counts[m])
                step_list = [self.steps[m] for m in models for _ in self.keys]
            if r.optimizer == "sgd":
                torch._fused_sgd_(
                    params, grad_list, bufs1 if r.momentum else [],
                    weight_decay=r.weight_decay, momentum=r.momentum, lr=r.lr, dampening=0.0,
                    nesterov=False, maximize=False, is_first_step=first,
                )
                return
            torch._fused_adam_(
                params, grad_list, bufs1, bufs2, [], step_list,
                lr=r.lr, beta1=0.9, beta2=0.999, weight_decay=r.weight_decay, eps=1e-8,
                amsgrad=False, maximize=False,
            )
