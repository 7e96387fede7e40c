"""Forward pass of M stacked small Sequential networks (CNNs, MLPs), fast on CPU: the engine's for
plain convolutional models, and ``StackedModels``' (a user's own loop) for any Sequential it supports.

``stacked_forward(params, x, spec)`` returns, for every model ``m``, what
``functional_call(module, {k: v[m] for k, v in params.items()}, (x[m],))`` returns, for an
``nn.Sequential`` built only from Conv1d/Conv2d (kernel 3, padding 1, stride 1, dilation 1,
groups 1, zero padding), ReLU, MaxPool1d/MaxPool2d(2) (stride 2, no padding, floor mode),
Flatten, Linear and Unflatten; ``params`` are the stacked ``state_dict`` names ("0.weight", ...),
``x`` is ``[M, B, *example]`` (each model its own batch). Gradients flow through ordinary
autograd (one backward through the sum of the M losses gives every model its own gradient).

Two methods (``method="auto"`` picks one, see :func:`choose_method`):

* ``"groups"``: all models folded into the channel axis, ``[B, M*C, H, W]`` in channels-last
  memory (``[B, H, W, M, C]``), convs as oneDNN ``groups=M`` convolutions, 1-D layers lifted to
  ``H = 1``. Best when all M models' activations fit in cache (1-D signals, small images).
* ``"loop"``: one model at a time inside one autograd graph, oneDNN convs on channels-last
  tensors. Best when one model's activations are already megabytes (28x28 and larger images):
  each model's conv -> pool chain then runs on data still in cache.

An im2col + ``baddbmm`` formulation (all models, or only the C_in = 1 first conv) was slower than
both everywhere measured (e.g. 1.5 vs 1.0 s an epoch for 16 CNNs on 28x28) and was removed.

What makes the difference on CPU (measured on 2 cores, M = 16, B = 64):

* channels-last everywhere: PyTorch's NCHW max-pool kernel is ~8x slower than its channels-last
  one (2.8 vs 0.35 ms for [64, 16, 28, 28]); vmap and NCHW grouped convs pool NCHW or strided.
  For C_in = 1 oneDNN returns NCHW unless the weight has unambiguous channels-last strides, so the
  weights are copied into explicitly channels-last strided tensors (:func:`_cl_weight`).
* ReLU is moved after MaxPool (exactly equal values and gradients, on a 4x smaller tensor).
* Unbinding the stacked parameters once (one backward node) instead of indexing ``p[m]``.
* Linear layers as ``(W X^T)^T``: the weight's gradient comes out in the weight's own layout, so
  autograd does not copy it into place each step (``X W^T`` made a 16-MLP own loop 15% slower).

Only the order of summation inside the convolutions differs from the module's own, so results are
allclose, not bit-identical (float64 results agree to 1e-10). In float32 a max-pool window whose
two largest values are within rounding may pick the other argmax than the module does; then
that gradient differs, and both are equally close to the float64 answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Layer", "choose_method", "make_spec", "stacked_forward", "supports"]


@dataclass(frozen=True)
class Layer:
    kind: str  # "conv", "relu", "pool", "flatten", "linear", "unflatten"
    name: str = ""  # parameter prefix in the Sequential's state_dict ("0" for "0.weight")
    dim: int = 0  # spatial dims of conv / pool (1 or 2)
    bias: bool = True
    flat_start: int = 1  # Flatten(start_dim, end_dim) / Unflatten(dim, sizes) in per-model terms
    flat_end: int = -1
    sizes: tuple[int, ...] = ()


def _layer(name: str, mod: nn.Module) -> Layer:
    if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
        d = 1 if isinstance(mod, nn.Conv1d) else 2
        ok = (
            mod.kernel_size == (3,) * d and mod.stride == (1,) * d and mod.dilation == (1,) * d
            and mod.padding == (1,) * d and mod.groups == 1 and mod.padding_mode == "zeros"
        )
        if not ok:
            raise ValueError(f"layer {name}: only kernel 3, padding 1, stride 1 convs are supported: {mod}")
        return Layer("conv", name, d, mod.bias is not None)
    if isinstance(mod, nn.ReLU):
        return Layer("relu")
    if isinstance(mod, (nn.MaxPool1d, nn.MaxPool2d)):
        d = 1 if isinstance(mod, nn.MaxPool1d) else 2

        def norm(v: Any) -> tuple[int, ...]:
            return tuple(v) if isinstance(v, (tuple, list)) else (v,) * d

        ok = (
            norm(mod.kernel_size) == (2,) * d and norm(mod.stride or mod.kernel_size) == (2,) * d
            and norm(mod.padding) == (0,) * d and norm(mod.dilation) == (1,) * d
            and not mod.ceil_mode and not mod.return_indices
        )
        if not ok:
            raise ValueError(f"layer {name}: only MaxPool(2) is supported: {mod}")
        return Layer("pool", dim=d)
    if isinstance(mod, nn.Flatten):
        return Layer("flatten", flat_start=mod.start_dim, flat_end=mod.end_dim)
    if isinstance(mod, nn.Unflatten):
        if not isinstance(mod.dim, int):
            raise ValueError(f"layer {name}: named Unflatten is not supported")
        return Layer("unflatten", flat_start=mod.dim, sizes=tuple(mod.unflattened_size))
    if isinstance(mod, nn.Linear):
        return Layer("linear", name, bias=mod.bias is not None)
    raise ValueError(f"layer {name}: unsupported module {type(mod).__name__}")


def make_spec(module: nn.Sequential) -> tuple[Layer, ...]:
    """The layer list ``stacked_forward`` runs; raises ``ValueError`` for unsupported modules."""
    if not isinstance(module, nn.Sequential):
        raise ValueError(f"expected an nn.Sequential, got {type(module).__name__}")
    return tuple(_layer(name, mod) for name, mod in module.named_children())


def supports(module: nn.Module) -> bool:
    try:
        make_spec(module)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _swap_relu_pool(layers: tuple[Layer, ...]) -> tuple[Layer, ...]:
    """ReLU then MaxPool == MaxPool then ReLU, values and gradients alike (max commutes with a
    monotone map; where a window's max is <= 0 both orders pass a zero gradient, otherwise both
    route it to the window's first maximum), and the ReLU then runs on a 4x smaller tensor."""
    out = list(layers)
    for i in range(len(out) - 1):
        if out[i].kind == "relu" and out[i + 1].kind == "pool":
            out[i], out[i + 1] = out[i + 1], out[i]
    return tuple(out)


def _cl_weight(w: Tensor) -> Tensor:
    """Stacked conv weight ``[M, C_out, C_in, *k]`` -> ``[M, C_out, C_in, kh, kw]`` (1-D kernels
    lifted to ``(1, 3)``) whose per-model slices have channels-last strides, one copy for all.

    The strides are set explicitly: for C_in = 1, ``.contiguous(memory_format=channels_last)``
    leaves a tensor whose strides read as NCHW, and oneDNN would then return an NCHW output.
    """
    if w.dim() == 4:  # Conv1d [M, O, I, 3]
        w = w.unsqueeze(3)
    m, o, i, kh, kw = w.shape
    out = torch.empty_strided((m, o, i, kh, kw), (o * kh * kw * i, kh * kw * i, 1, kw * i, i), dtype=w.dtype, device=w.device)
    return out.copy_(w)


def _forward_one(p: dict[str, Tensor], x: Tensor, layers: tuple[Layer, ...]) -> Tensor:
    """One model (``p[k]`` unstacked, conv weights from :func:`_cl_weight`, ``x [B, ...]``) with
    oneDNN convs on channels-last tensors.

    Conv1d runs as a ``(1, 3)`` Conv2d on ``[B, C, 1, L]`` so that it too stays channels-last,
    and pooling hits the vectorised channels-last max-pool kernel (the NCHW one is ~3x slower).
    """
    h = x
    lifted = False  # h is a 1-D activation [B, C, L] held as [B, C, 1, L]
    for layer in layers:
        if layer.kind == "conv":
            w = p[f"{layer.name}.weight"]
            b = p.get(f"{layer.name}.bias") if layer.bias else None
            if layer.dim == 1 and not lifted:
                h = h.unsqueeze(2)
                lifted = True
            if not h.is_contiguous(memory_format=torch.channels_last) or h.shape[1] == 1:
                h = h.contiguous(memory_format=torch.channels_last)
            h = F.conv2d(h, w, b, padding=(0, 1) if layer.dim == 1 else (1, 1))
            if not h.is_contiguous(memory_format=torch.channels_last):  # not expected; NCHW
                h = h.contiguous(memory_format=torch.channels_last)  # pooling is ~8x slower
        elif layer.kind == "relu":
            h = torch.relu(h)
        elif layer.kind == "pool":
            if layer.dim == 1 and not lifted:
                h = h.unsqueeze(2)
                lifted = True
            h = F.max_pool2d(h, (1, 2) if layer.dim == 1 else 2)
        else:
            if lifted:
                h = h.squeeze(2)
                lifted = False
            if layer.kind == "flatten":
                h = h.flatten(layer.flat_start, layer.flat_end)
            elif layer.kind == "unflatten":
                h = h.unflatten(layer.flat_start, layer.sizes)
            elif layer.kind == "linear":
                h = F.linear(h, p[f"{layer.name}.weight"], p.get(f"{layer.name}.bias") if layer.bias else None)
    return h.squeeze(2) if lifted else h


def _forward_loop(params: dict[str, Tensor], x: Tensor, layers: tuple[Layer, ...]) -> Tensor:
    conv_weights = {f"{l.name}.weight" for l in layers if l.kind == "conv"}
    # unbind: one backward node stacks the M gradients (indexing params[k][m] would give M
    # SelectBackward nodes, each zero-filling a full [M, ...] gradient)
    per_model = {k: (_cl_weight(v) if k in conv_weights else v).unbind(0) for k, v in params.items()}
    return torch.stack(
        [_forward_one({k: v[m] for k, v in per_model.items()}, x[m], layers) for m in range(x.shape[0])]
    )


def _forward_groups(params: dict[str, Tensor], x: Tensor, layers: tuple[Layer, ...]) -> Tensor:
    """All models folded into the channel axis: ``[B, M*C, H, W]`` channels-last (memory
    ``[B, H, W, M, C]``; 1-D as ``H = 1``), convs with ``groups=M`` (oneDNN), pooling channels-last."""
    m = x.shape[0]
    h = x  # "std": [M, B, *per-example]
    grouped = False
    lifted = False

    def leave(g: Tensor) -> Tensor:  # [B, M*C, H, W] -> [M, B, C, (H,) W] (a view)
        nonlocal grouped, lifted
        c = g.shape[1] // m
        out = g.permute(0, 2, 3, 1).unflatten(3, (m, c)).permute(3, 0, 4, 1, 2)
        if lifted:
            out = out.squeeze(3)
        grouped = lifted = False
        return out

    for layer in layers:
        if layer.kind in ("conv", "pool"):
            if not grouped:
                if h.dim() != 3 + layer.dim:
                    raise ValueError(f"layer expects [C, *S] examples, got {tuple(h.shape[2:])}")
                if layer.dim == 1:
                    h = h.unsqueeze(3)
                    lifted = True
                # [M, B, C, H, W] -> memory [B, H, W, M, C] -> logical [B, M*C, H, W]
                h = h.permute(1, 3, 4, 0, 2).contiguous().flatten(3).permute(0, 3, 1, 2)
                grouped = True
            if layer.kind == "conv":
                w = _cl_weight(params[f"{layer.name}.weight"]).flatten(0, 1)  # [M*O, I, kh, kw]
                b = params.get(f"{layer.name}.bias") if layer.bias else None
                h = F.conv2d(h, w, None if b is None else b.flatten(), padding=(0, 1) if lifted else 1, groups=m)
                if not h.is_contiguous(memory_format=torch.channels_last):  # not expected
                    h = h.contiguous(memory_format=torch.channels_last)
            else:
                h = F.max_pool2d(h, (1, 2) if lifted else 2)
        elif layer.kind == "relu":
            h = torch.relu(h)
        else:
            if grouped:
                h = leave(h)
            if layer.kind == "flatten":
                h = h.flatten(layer.flat_start + 1, layer.flat_end % (h.dim() - 1) + 1)
            elif layer.kind == "unflatten":
                h = h.unflatten(layer.flat_start % (h.dim() - 1) + 1, layer.sizes)
            elif layer.kind == "linear":
                w = params[f"{layer.name}.weight"]
                b = params.get(f"{layer.name}.bias") if layer.bias else None
                lead = h.shape[:-1]
                hf = h.reshape(m, -1, h.shape[-1])
                # (W X^T)^T rather than X W^T: the weight's gradient then comes out [M, out, in],
                # W's own layout, and autograd need not copy it into place every step.
                out = torch.bmm(w, hf.transpose(1, 2)).transpose(1, 2)
                if b is not None:
                    out = out + b.unsqueeze(1)
                h = out.reshape(*lead, w.shape[1])
    return leave(h) if grouped else h


GROUP_BYTES = 16 << 20  # activation bytes of one grouped conv's output, all models of a chunk
LOOP_BYTES = 3 << 19  # from 1.5 MiB per model, one model at a time beats grouping


def choose_method(layers: tuple[Layer, ...], params: dict[str, Tensor], x: Tensor) -> tuple[str, int | None]:
    """Pick (method, chunk) from the bytes of the largest conv output of one model's batch:
    all M models grouped when together they stay under GROUP_BYTES; one model at a time from
    LOOP_BYTES per model; in between, groups of ``GROUP_BYTES // per_model`` models.
    Calibrated on 2 AMD EPYC (Zen 4) cores with 32 MiB L3, M = 16, B = 64 (bench.py)."""
    m = x.shape[0]
    shape = list(x.shape[1:])  # one model's tensor [B, ...]
    largest = 0
    for layer in layers:
        if layer.kind == "unflatten":
            d = layer.flat_start % len(shape)
            shape = shape[:d] + list(layer.sizes) + shape[d + 1 :]
        elif layer.kind == "conv":
            shape = [shape[0], params[f"{layer.name}.weight"].shape[1], *shape[2:]]
            largest = max(largest, math.prod(shape))
        elif layer.kind == "pool":
            shape = [*shape[:2], *(s // 2 for s in shape[2:])]
        elif layer.kind in ("flatten", "linear"):
            break
    per_model = largest * x.element_size()
    if per_model * m <= GROUP_BYTES:
        return "groups", None
    if per_model >= LOOP_BYTES:
        return "loop", None
    return "groups", max(1, GROUP_BYTES // max(per_model, 1))


def stacked_forward(
    params: dict[str, Tensor], x: Tensor, spec: nn.Sequential | tuple[Layer, ...], method: str = "auto",
    chunk: int | None = None,
) -> Tensor:
    """Logits of M stacked models: ``params[k]`` is ``[M, *shape of k]``, ``x`` is ``[M, B, ...]``
    (each model its own batch); returns what every model's ``forward`` returns, stacked ``[M, B, ...]``.

    ``method="auto"`` (default): :func:`choose_method`.
    ``method="loop"``: one model at a time inside one autograd graph, oneDNN convs channels-last.
    ``method="groups"``: all models at once folded into channels, oneDNN ``groups=M`` convs.
    """
    layers = make_spec(spec) if isinstance(spec, nn.Module) else spec
    layers = _swap_relu_pool(layers)
    if method == "auto":
        method, chunk = choose_method(layers, params, x)
    if method == "loop":
        return _forward_loop(params, x, layers)
    if method == "groups":
        m = x.shape[0]
        if chunk is None or chunk >= m:
            return _forward_groups(params, x, layers)
        return torch.cat([
            _forward_groups({k: v[s : s + chunk] for k, v in params.items()}, x[s : s + chunk], layers)
            for s in range(0, m, chunk)
        ])
    raise ValueError(f"unknown method {method!r}; choose auto, loop or groups.")
