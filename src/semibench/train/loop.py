"""``semibench.train.loop``: the names callers know, from where they now live.

The trainer (:mod:`semibench.train.trainer`), the job shell around it
(:mod:`semibench.train.run`), device choice (:mod:`semibench.train.device`), provenance
(:mod:`semibench.train.provenance`) and a run's history (:mod:`semibench.train.history`).
"""

from semibench.train.device import (
    DeviceUnavailableError,
    has_batch_norm,
    memory_format,
    pick_device,
    precision_dtype,
)
from semibench.train.history import HISTORY, note
from semibench.train.logs import NonFiniteLossError
from semibench.train.provenance import code_digest, inputs_differ, package_versions, run_inputs
from semibench.train.run import train_run
from semibench.train.trainer import (
    CHECK_EVERY,
    CURVE_COLUMNS,
    StopRequest,
    Trainer,
    TrainingStopped,
    create_backbone,
    write_curve,
)

__all__ = [
    "CHECK_EVERY",
    "CURVE_COLUMNS",
    "HISTORY",
    "DeviceUnavailableError",
    "NonFiniteLossError",
    "StopRequest",
    "Trainer",
    "TrainingStopped",
    "code_digest",
    "create_backbone",
    "has_batch_norm",
    "inputs_differ",
    "memory_format",
    "note",
    "package_versions",
    "pick_device",
    "precision_dtype",
    "run_inputs",
    "train_run",
    "write_curve",
]
