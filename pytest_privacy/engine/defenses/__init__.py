"""Training defenses, one file each behind the protocol in :mod:`.base`; each registers itself.

``TrainingRecipe(defense=...)`` takes a registered kind (``"mmd_mixup"``, ``"dp_sgd"``: their
default settings) or a settings object (``MMDMixup(weight=1.0)``, ``DPSGD(epsilon=2.0)``).
"""

from .base import (
    DEFENSES,
    Defense,
    DefenseSettings,
    NoDefense,
    defense_settings,
    register_defense,
)
from .dp_sgd import DPSGD
from .mmd_mixup import MMDMixup

__all__ = ["DEFENSES", "DPSGD", "Defense", "DefenseSettings", "MMDMixup", "NoDefense", "defense_settings", "register_defense"]
