"""Label-only membership inference (Choquette-Choo et al., "Label-Only Membership Inference
Attacks", 2021): the model answers every query with a label and nothing else.

Members are not only classified correctly more often than non-members (the *gap* baseline), they
also stay correct further away: under translations and rotations, under Gaussian noise, and up to
a larger distance to the decision boundary. Each attack here turns one of those into a score per
audit point, higher = more likely a member.

The model is a labels oracle ``predict(x [B, *example_shape] float32) -> labels [B] int``. Attacks
accept a raw callable or a :class:`QueryCounter` (they wrap a raw one), so callers can read how many
examples were sent. Inputs follow the repo's layout: ``[N, L]`` 1-D signals, ``[N, H, W]`` grayscale
images, ``[N, C, H, W]`` channels-first images. Numpy in, numpy out; torch is imported only by the
white-box boundary attack, when it runs.

One module per concept, each registering its own attack at its end:

- :mod:`.oracle`: the per-point query ``Budget`` and the shared argument checks (the counted labels
  oracle ``QueryCounter`` is :mod:`pytest_privacy.attacks.queries`, a leaf the registry imports too);
- :mod:`.gap`: ``label_only_gap``;
- :mod:`.augmentation`: ``label_only_augmentation`` (translated and rotated copies);
- :mod:`.augmentation_trained`: ``label_only_augmentation_trained`` (a logistic model on the bits);
- :mod:`.noise`: ``label_only_noise`` (Gaussian-noised copies);
- :mod:`.boundary_whitebox` (gradients) and :mod:`.hopskipjump` (labels only), dispatched by
  :mod:`.boundary`: ``label_only_boundary``.
"""

from __future__ import annotations

# Imported in this order, they register their attacks in this order (the privacy_attack fixture's).
from ..queries import QueryCounter  # isort: skip
from .oracle import Budget  # isort: skip
from .gap import gap_scores  # isort: skip
from .augmentation import augmentation_bits, augmentation_scores, augmented_views, n_augmentations  # isort: skip
from .augmentation_trained import BitAttack, fit_bit_attack  # isort: skip
from .noise import noise_scores  # isort: skip
from .boundary_whitebox import boundary_scores_whitebox  # isort: skip
from .hopskipjump import boundary_scores_blackbox  # isort: skip
from . import boundary  # noqa: F401  isort: skip  (registers label_only_boundary)

__all__ = [
    "BitAttack",
    "Budget",
    "QueryCounter",
    "augmentation_bits",
    "augmentation_scores",
    "augmented_views",
    "boundary_scores_blackbox",
    "boundary_scores_whitebox",
    "fit_bit_attack",
    "gap_scores",
    "n_augmentations",
    "noise_scores",
]
