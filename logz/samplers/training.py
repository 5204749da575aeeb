"""The shared training machinery now lives in ``logz.training`` (used by the samplers and the
fine-tuners alike); this module re-exports it for the samplers' imports."""

from logz.training import (CHECKPOINT_FORMAT, SCHEDULES, History, Step, Trainer, TrainingError,
                           cosine_schedule, make_schedule, read_checkpoint)

__all__ = ["CHECKPOINT_FORMAT", "History", "SCHEDULES", "Step", "Trainer", "TrainingError",
           "cosine_schedule", "make_schedule", "read_checkpoint"]
