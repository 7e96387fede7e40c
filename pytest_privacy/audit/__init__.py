"""The audit room: who trains on what (:class:`Split`), how models are built and keyed
(:class:`RecipeSource`, :class:`FunctionSource`), the typed job executors run (:class:`TrainJob`),
and the one orchestration path (:class:`PrivacyTrainer`) that joins store, locks, executor and
progress into an :class:`AuditSetup`."""

from .dataset import PrivacyDataWarning, as_dataset
from .job import ModelSource, TrainJob
from .setup import AuditSetup
from .sources import FunctionSource, RecipeSource, model_source
from .split import Split
from .trainer import PrivacyTrainer
from .training_functions import training_function

__all__ = [
    "AuditSetup", "FunctionSource", "ModelSource", "PrivacyDataWarning", "PrivacyTrainer", "RecipeSource", "Split",
    "TrainJob", "as_dataset", "model_source", "training_function",
]
