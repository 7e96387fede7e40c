"""The audit room: who trains on what (:class:`Split`), how models are built and keyed
(:class:`RecipeSource`, :class:`FunctionSource`), the typed job executors run (:class:`TrainJob`),
and the one orchestration path (:class:`PrivacyTrainer`) that joins store, locks, executor and
progress into an :class:`AuditSetup`."""

from .dataset import PrivacyDataWarning, as_dataset
from .job import TrainJob
from .setup import AuditSetup
from .sources import (
    FunctionSource,
    ModelSource,
    RecipeSource,
    model_source,
    training_function,
)
from .split import Split
from .trainer import PrivacyTrainer

__all__ = [
    "AuditSetup", "FunctionSource", "ModelSource", "PrivacyDataWarning", "PrivacyTrainer", "RecipeSource", "Split",
    "TrainJob", "as_dataset", "model_source", "training_function",
]
