"""Recording the ops that make the host wait for the device (a training step should have none
in its steady state)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: ops that make the host wait for the device when their input lives there
SYNCING_OPS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
               torch.ops.aten.is_nonzero.default}


class SyncRecorder(TorchDispatchMode):
    """Records every op that would read a value back from the device."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNCING_OPS:
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))
