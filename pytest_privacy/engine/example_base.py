"""A tiny pretrained base for language-model examples and tests: a GPT-2 built from a config
(transformers), pretrained on public texts once and cached by the model store, saved with
``save_pretrained`` to a folder that fine-tunes load with ``from_pretrained`` (no model hub needed).

Cached as any model is: its weights and config as tensors under a key that holds the public texts,
every setting and the library versions (safetensors, checked and signed like every entry; nothing
unpickled). A damaged entry is pretrained again.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["example_base"]


def example_base(
    public: Any, *, folder: str | os.PathLike[str], store: Any = None, width: int = 32, layers: int = 2, heads: int = 2,
    epochs: int = 4, lr: float = 3e-3, batch_size: int = 16, seed: int = 0,
) -> Path:
    """Pretrain a tiny GPT-2 (``width`` wide, ``layers`` layers, ``heads`` heads, no dropout) on
    ``public`` (a :class:`~pytest_privacy.data.text.TextDataset`: texts the fine-tunes' private data
    does not hold) with AdamW for ``epochs``, seeded; or read it from ``store`` (a
    :class:`~pytest_privacy.engine.store.ModelStore`) when it was pretrained before. Saves it to
    ``folder`` with ``save_pretrained`` and returns the folder, for ``LMRecipe(base=folder)`` or
    ``AutoModelForCausalLM.from_pretrained(folder)``. Needs the ``lm`` extra (transformers)."""
    from ..data.text import TextDataset
    from .store import digest

    if not isinstance(public, TextDataset):
        raise TypeError(f"public must be a pytest_privacy.TextDataset (the texts to pretrain on), got {type(public).__name__}.")
    for name, value in (("width", width), ("layers", layers), ("heads", heads), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    if width % heads:
        raise ValueError(f"width={width} must be a multiple of heads={heads} (each head gets width / heads).")
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
        raise ValueError(f"lr must be a number > 0, got {lr!r}.")
    try:
        import transformers
    except ImportError:
        raise ImportError("example_base builds a GPT-2 with transformers: pip install 'pytest-privacy[lm]'.") from None
    import torch

    config = transformers.GPT2Config(
        vocab_size=_vocabulary(public), n_positions=public.ids.shape[1], n_embd=width, n_layer=layers, n_head=heads,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    key = digest(
        "example_base", config.to_json_string(use_diff=False), json.dumps(settings, sort_keys=True), public.ids, public.mask,
        transformers.__version__, torch.__version__,
    )
    entry = store.get_valid(key) if store is not None else None
    if entry is None:  # pretrain under the store's lock: a second job at the same time waits, then reads it
        with store.lock(key) if store is not None else contextlib.nullcontext():
            entry = store.get(key) if store is not None else None  # (a damaged entry: warned, removed)
            if entry is None:
                model = _pretrain(config, public, **settings)
                entry = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
                if store is not None:
                    store.put(key, entry)
    model = transformers.GPT2LMHeadModel(config)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in entry.items()})
    folder = Path(folder)
    model.eval().save_pretrained(folder)
    return folder


def _vocabulary(public: Any) -> int:
    """The tokenizer's vocabulary (every id it can give), at least the largest id in the texts + 1."""
    tokenizer = public.tokenizer
    size = tokenizer.get_vocab_size() if hasattr(tokenizer, "get_vocab_size") else len(tokenizer) if hasattr(tokenizer, "__len__") else 0
    return max(int(size), int(public.ids.max()) + 1)


def _pretrain(config: Any, public: Any, *, epochs: int, lr: float, batch_size: int, seed: int) -> Any:
    """The pretraining itself: AdamW on the masked next-token loss, minibatches drawn by ``seed``."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    ids, mask = torch.from_numpy(np.asarray(public.ids)), torch.from_numpy(np.asarray(public.mask))
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for b in torch.randperm(len(ids), generator=order).split(batch_size):
            loss = model(input_ids=ids[b], attention_mask=mask[b].long(), labels=ids[b].masked_fill(~mask[b], -100)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model
