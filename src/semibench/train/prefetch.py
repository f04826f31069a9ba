"""Prepare the next step's batch while the current step runs.

The batch of step t depends only on (seed, t) (samplers and views draw from generators seeded
by the step), so building it on another thread changes nothing in what the model sees: CPU
results stay bit-identical with prefetching on or off. On CUDA the worker builds the batch on
its own stream and the training stream waits for it with an event, so the copy and the views
overlap the previous step's kernels instead of delaying them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch


class Prefetcher:
    """``get(step, next_step)`` returns ``make(step)`` and starts ``make(next_step)``."""

    def __init__(self, make: Callable[[int], Any], enabled: bool,
                 device: torch.device | None = None) -> None:
        self.make = make
        self.device = device if device is not None else torch.device("cpu")
        self.cuda = self.device.type == "cuda"
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if enabled else None
        self.pending: tuple[int, Future] | None = None
        self.stream = torch.cuda.Stream(self.device) if (enabled and self.cuda) else None

    def _build(self, step: int) -> tuple[Any, Any]:
        if self.stream is None:
            return self.make(step), None
        with torch.cuda.stream(self.stream):
            batch = self.make(step)
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return batch, ready

    def get(self, step: int, next_step: int | None) -> Any:
        if self.pool is None:
            return self.make(step)
        if self.pending is not None and self.pending[0] == step:
            batch, ready = self.pending[1].result()
        else:
            if self.pending is not None:
                self.pending[1].result()  # a stale prefetch (e.g. after resume): let it finish
            batch, ready = self._build(step)
        self.pending = None
        if ready is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_event(ready)
            _record_stream(batch, current)
        if next_step is not None:
            self.pending = (next_step, self.pool.submit(self._build, next_step))
        return batch

    def close(self) -> None:
        if self.pool is not None:
            if self.pending is not None:
                self.pending[1].cancel()
                self.pending = None
            self.pool.shutdown(wait=True)


def _record_stream(obj: Any, stream: torch.cuda.Stream) -> None:
    """Tell the caching allocator that tensors made on the worker's stream are used on
    ``stream`` (otherwise their memory could be reused while the step still reads it)."""
    if isinstance(obj, torch.Tensor):
        if obj.is_cuda:
            obj.record_stream(stream)
    elif isinstance(obj, dict):
        for value in obj.values():
            _record_stream(value, stream)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _record_stream(value, stream)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            _record_stream(getattr(obj, name), stream)
