"""M fine-tunes of one pretrained language model held as one module: the engine trains and scores them
as one program (:mod:`pytest_privacy.engine.lm_finetune`).

- :class:`StackedLoRA`: ONE frozen copy of the base, each adapted layer carrying M adapters ``A [M, r, in]``,
  ``B [M, out, r]``. A step runs the base over the stacked minibatch ``[M*B, T]`` (its matmuls once, on
  M times the rows) and adds each model's low-rank update to its own rows by batched matmuls. The base's
  weights are held once, not M times.
- :class:`StackedFull`: every parameter stacked ``[M, ...]`` (each fine-tune starts from the base's
  weights), the base's forward run under ``torch.func.vmap`` (batched matmuls over the model axis);
  tied input and output embeddings stay tied per model.

Both take ids ``[M, B, T]`` (model ``m``'s minibatch in row ``m``) and return logits ``[M, B, T, V]``;
``alone(m)`` is fine-tune ``m`` as an ordinary module of the base's class (LoRA merged into its weights).
Texts are right-padded, so no attention mask is passed: under a causal mask, padding after a text's
tokens cannot change their logits. A stack of one model (``M = 1``) runs the base as it is, without vmap:
the engine's path, one fine-tune at a time, for a base that does not run under vmap.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .lm_recipe import LMRecipe

__all__ = ["StackedFull", "StackedLoRA", "adaptable_layers", "linear_shape", "make_stack", "output_logits", "unstackable_layer"]


def _is_conv1d(layer: Any) -> bool:
    # transformers' Conv1D (GPT-2): a linear layer whose weight is stored [in, out].
    return type(layer).__name__ == "Conv1D" and hasattr(layer, "nf") and getattr(layer, "weight", None) is not None


def linear_shape(layer: Any) -> tuple[int, int] | None:
    """``(in, out)`` of an ``nn.Linear`` or transformers ``Conv1D``, else None."""
    from torch import nn

    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if _is_conv1d(layer):
        return int(layer.weight.shape[0]), int(layer.weight.shape[1])
    return None


def _head(base: nn.Module) -> nn.Module | None:
    get = getattr(base, "get_output_embeddings", None)
    return get() if callable(get) else None


def adaptable_layers(base: nn.Module, targets: Sequence[str] | None) -> list[str]:
    """The names of the layers LoRA adapts: those ``targets`` names (exactly, or as a dotted suffix), each
    an ``nn.Linear`` or ``Conv1D``; by default every such layer but the output head (a layer named
    ``lm_head``/``head`` or the model's ``get_output_embeddings()``). A named layer of another kind, or a
    name that matches nothing, is an error listing what there is."""
    named = dict(base.named_modules())
    linear = [n for n, m in named.items() if n and linear_shape(m) is not None]
    if targets is None:
        head = _head(base)
        chosen = [n for n in linear if named[n] is not head and n.rsplit(".", 1)[-1] not in ("lm_head", "head")]
    else:
        chosen = []
        for target in targets:
            hits = [n for n in named if n and (n == target or n.endswith("." + target))]
            if not hits:
                raise ValueError(
                    f"LMRecipe(target_modules=...): no layer of {type(base).__name__} is named {target!r}; its linear "
                    f"layers: {', '.join(sorted({n.rsplit('.', 1)[-1] for n in linear})) or 'none'}."
                )
            for n in hits:
                if linear_shape(named[n]) is None:
                    raise ValueError(
                        f"LMRecipe(target_modules=...): layer {n!r} is a {type(named[n]).__name__}; LoRA adapts "
                        "nn.Linear and transformers Conv1D layers."
                    )
            chosen.extend(h for h in hits if h not in chosen)
        order = {n: i for i, n in enumerate(named)}
        chosen.sort(key=order.__getitem__)  # the model's own order (as peft lists its adapters)
    if not chosen:
        raise ValueError(f"{type(base).__name__} has no linear layer for LoRA to adapt (besides its output head).")
    return chosen


class _Adapted:
    """A base layer with M LoRA adapters: ``y = layer(x) + scale * (x A_m^T) B_m^T`` on model ``m``'s rows."""

    def __init__(self, layer: nn.Module, a: torch.Tensor, b: torch.Tensor, scale: float, name: str) -> None:
        self.layer, self.a, self.b, self.scale, self.name = layer, a, b, scale, name
        self.rows: int | None = None  # the stacked batch the next call must lead with (set per forward)

    def __call__(self, module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        import torch

        (x,) = args
        m = self.a.shape[0]
        if m > 1 and self.rows is not None and x.shape[0] != self.rows:
            # e.g. a recurrent network feeding [T, B, d]: reshaping by the model axis would mix models
            raise _NotStackable(
                self.name, f"its input leads with {x.shape[0]} rows, not the {self.rows} of the stacked batch"
            )
        xs = x.reshape(m, -1, x.shape[-1]).to(self.a.dtype)
        delta = torch.bmm(torch.bmm(xs, self.a.transpose(1, 2)), self.b.transpose(1, 2)) * self.scale
        return out + delta.reshape(out.shape).to(out.dtype)


class _NotStackable(RuntimeError):
    def __init__(self, layer: str, why: str) -> None:
        super().__init__(f"layer {layer!r}: {why}")
        self.layer = layer


def output_logits(out: Any) -> torch.Tensor:
    """A model's logits: its output, or the output's ``.logits`` (a Hugging Face model)."""
    return getattr(out, "logits", out)


class StackedLoRA:
    """M LoRA fine-tunes over one frozen copy of ``base`` (see the module docstring)."""

    def __init__(self, base: nn.Module, recipe: LMRecipe, seeds: Sequence[np.random.SeedSequence]) -> None:
        import torch

        from .seeds import seeded_init

        self.base = copy.deepcopy(base).eval()
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.n_models, self.scale = len(seeds), recipe.lora_scale
        self.names = adaptable_layers(self.base, recipe.target_modules)
        modules = dict(self.base.named_modules())
        dtype, device = next(self.base.parameters()).dtype, next(self.base.parameters()).device
        shapes = [linear_shape(modules[n]) for n in self.names]
        r = int(recipe.lora_rank)  # type: ignore[arg-type]
        a_rows: list[list[torch.Tensor]] = [[] for _ in self.names]
        for seed in seeds:  # model m's A as peft draws it (nn.Linear's kaiming-uniform), under its own seed
            with seeded_init(seed):
                for i, (fan_in, _) in enumerate(shapes):  # type: ignore[misc]
                    w = torch.empty(r, fan_in)
                    torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                    a_rows[i].append(w)
        self.a = [torch.nn.Parameter(torch.stack(rows).to(device, dtype)) for rows in a_rows]
        self.b = [torch.nn.Parameter(torch.zeros(self.n_models, out, r, device=device, dtype=dtype))
                  for (_, out) in shapes]  # type: ignore[misc]
        self.adapters = [_Adapted(modules[n], a, b, self.scale, n) for n, a, b in zip(self.names, self.a, self.b, strict=True)]
        self._hooks = [modules[a.name].register_forward_hook(a) for a in self.adapters]

    def trainable(self) -> list[torch.Tensor]:
        """The stacked adapters ``[M, ...]`` (A and B of every adapted layer)."""
        return [*self.a, *self.b]

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Each model on its own ids: ``[M, B, T] -> [M, B, T, V]`` (the base once over ``[M*B, T]``)."""
        m, b, t = ids.shape
        for adapter in self.adapters:
            adapter.rows = m * b
        out = output_logits(self.base(ids.reshape(m * b, t)))
        return out.reshape(m, b, t, -1)

    def alone(self, m: int) -> nn.Module:
        """Fine-tune ``m`` as a plain copy of the base with its adapter merged into the weights."""
        import torch

        for hook in self._hooks:  # the copy is the base alone, its adapter merged below
            hook.remove()
        try:
            module = copy.deepcopy(self.base)
        finally:
            modules = dict(self.base.named_modules())
            self._hooks = [modules[a.name].register_forward_hook(a) for a in self.adapters]
        named = dict(module.named_modules())
        with torch.no_grad():
            for name, a, b in zip(self.names, self.a, self.b, strict=True):
                delta = self.scale * (b[m] @ a[m])  # [out, in]
                layer = named[name]
                layer.weight += (delta.T if _is_conv1d(layer) else delta).to(layer.weight.dtype)
        for p in module.parameters():
            p.requires_grad_(True)
        return module.eval()


class StackedFull:
    """M full fine-tunes of ``base``: every parameter stacked ``[M, ...]``, all starting from the base's
    weights (see the module docstring)."""

    def __init__(self, base: nn.Module, recipe: LMRecipe, seeds: Sequence[np.random.SeedSequence]) -> None:
        self.base = copy.deepcopy(base).eval()
        self.n_models = len(seeds)
        # named_parameters() lists a tied weight once; functional_call keeps it tied per model.
        self.params = {
            k: v.detach().unsqueeze(0).repeat(self.n_models, *[1] * v.dim()).requires_grad_()
            for k, v in self.base.named_parameters()
        }
        self.buffers = dict(self.base.named_buffers())

    def trainable(self) -> list[torch.Tensor]:
        """The stacked parameters ``[M, ...]``."""
        return list(self.params.values())

    def _one(self, p: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call

        return output_logits(functional_call(self.base, {**p, **self.buffers}, (ids,)))

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Each model on its own ids: ``[M, B, T] -> [M, B, T, V]`` (vmap over the model axis; a stack of
        one runs the base as it is)."""
        from torch.func import vmap

        if self.n_models == 1:
            return self._one({k: v[0] for k, v in self.params.items()}, ids[0])[None]
        with warnings.catch_warnings():
            # CPU attention has no batching rule: vmap runs it model by model (correct, said once here)
            warnings.filterwarnings("ignore", message=".*performance drop because we have not yet implemented the batching rule")
            return vmap(self._one)(self.params, ids)

    def alone(self, m: int) -> nn.Module:
        """Fine-tune ``m`` as a plain copy of the base."""
        import torch

        module = copy.deepcopy(self.base)
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(self.params[name][m])
        return module.eval()


def make_stack(base: nn.Module, recipe: LMRecipe, seeds: Sequence[np.random.SeedSequence]) -> StackedLoRA | StackedFull:
    """The stack the recipe asks for: LoRA adapters over one frozen base, or full fine-tunes."""
    return (StackedLoRA if recipe.lora else StackedFull)(base, recipe, seeds)


def unstackable_layer(base: nn.Module, recipe: LMRecipe, *, vocab_ids: int = 2) -> str | None:
    """None when two fine-tunes of ``base`` run as one program and each gives what it gives alone
    (checked on a short text), else the reason, naming the layer where one is to blame: the engine
    then trains the fine-tunes one at a time."""
    import torch

    seeds = [np.random.SeedSequence(0, spawn_key=(i,)) for i in range(2)]
    # 2 models x 1 text of 3 tokens: no axis of another layout has the stacked batch's 2 rows
    ids = torch.randint(0, vocab_ids, (2, 1, 3), generator=torch.Generator().manual_seed(0))
    try:
        stack = make_stack(base, recipe, seeds)
        if recipe.lora:  # adapters of model 1 nonzero, so that mixing models would show
            with torch.no_grad():
                for b in stack.b:  # type: ignore[union-attr]
                    b[1].normal_(generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            together = stack.logits(ids)
            alone = torch.stack([output_logits(stack.alone(m)(ids[m])) for m in range(2)])
    except _NotStackable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure to run stacked means: one at a time
        recurrent = [n for n, mod in base.named_modules() if isinstance(mod, torch.nn.RNNBase)]
        where = f"layer {recurrent[0]!r} ({type(dict(base.named_modules())[recurrent[0]]).__name__}): " if recurrent else ""
        return f"{where}the model does not run under torch.func.vmap ({type(exc).__name__}: {str(exc)[:200]})"
    if not torch.allclose(together.float(), alone.float(), rtol=1e-3, atol=1e-4):
        recurrent = [n for n, mod in base.named_modules() if isinstance(mod, torch.nn.RNNBase)]
        where = f"layer {recurrent[0]!r}: " if recurrent else ""
        return f"{where}the models' outputs mix when stacked (a layer that does not keep the batch axis first)"
    return None
