"""SSL algorithms: one file per algorithm, registered in ``ALGORITHMS``."""

from semibench.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    Batch,
    LossOutput,
    Outputs,
    create_algorithm,
    make_params,
)
from semibench.registry import import_submodules

import_submodules(__name__)

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Batch",
    "LossOutput",
    "Outputs",
    "create_algorithm",
    "make_params",
]
