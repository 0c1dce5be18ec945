"""Training orchestration: tasks, models, the trainer with checkpoints/resume, reports.

>>> from odernn_bridge.train import TrainConfig, Trainer, get_task
>>> get_task("digits").seq_len
64
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .models import MODELS, SequenceModel
from .sweep import train_sweep
from .tasks import Task, get_task, list_tasks
from .trainer import OPTIMIZERS, SCHEDULERS, TrainConfig, Trainer, TrainResult, history_dataset

__all__ = [
    "Task",
    "get_task",
    "list_tasks",
    "SequenceModel",
    "MODELS",
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "history_dataset",
    "OPTIMIZERS",
    "SCHEDULERS",
    "save_checkpoint",
    "load_checkpoint",
    "train_sweep",
]
