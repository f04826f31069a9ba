"""The views never make the host wait for the device that holds the data.

On CUDA a view that reads a device value on the host (``.item()``, ``bool(t.any())``,
``.nonzero()``, boolean-mask indexing, ``.tolist()``, ``.cpu()``) or copies host data over
without ``non_blocking`` stalls the training thread until the GPU has caught up. CUDA's sync
debug mode cannot run on a CPU-only machine, so these tests check the mechanism instead: the
input goes to the ``meta`` device (shapes without data, so any attempt to read a value fails
there), the generator stays on the CPU as in training, and :class:`SyncGuard`, a
``TorchDispatchMode``, names every aten op that would read device values on the host, copy
between host and device in a blocking way, or mix host tensors into device ops (an implicit
blocking copy). Host-side work on CPU tensors (the draws, the per-sample decisions) is allowed.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from semibench.augment import build_views
from semibench.tasks import create_task

aten = torch.ops.aten
DEVICE = torch.device("meta")

#: ops that return device values to the host (or need them to size their output)
READS_VALUES = {
    aten._local_scalar_dense, aten.item, aten.is_nonzero, aten.nonzero, aten.masked_select,
    aten.equal, aten.allclose, aten._unique, aten._unique2, aten.unique_dim,
    aten.unique_consecutive, aten.bincount, aten.histc, aten.repeat_interleave,
}
INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}
COPIES = {aten._to_copy, aten.copy_, aten.copy}


class SyncGuard(TorchDispatchMode):
    """Raises on the first aten op that would sync the host with ``device`` (see module doc)."""

    def __init__(self, device: torch.device = DEVICE) -> None:
        super().__init__()
        self.device = device

    def _on_device(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and t.device == self.device

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        packet = func.overloadpacket
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        on_device = [t for t in tensors if t.device == self.device]
        host = [t for t in tensors if t.device.type == "cpu" and t.dim() > 0]
        problem = None
        if packet in COPIES:
            problem = self._copy_problem(packet, args, kwargs)
        elif on_device and packet in READS_VALUES:
            problem = "reads device values on the host"
        elif on_device and packet in INDEXING and any(
            i is not None and i.dtype in (torch.bool, torch.uint8) for i in args[1]
        ):
            problem = "indexes with a boolean mask (a nonzero, i.e. a sync)"
        elif on_device and host:
            problem = f"mixes host tensors {[tuple(t.shape) for t in host]} into a device op"
        if problem:
            raise AssertionError(f"{func}: {problem}")
        return func(*args, **kwargs)

    def _copy_problem(self, packet: Any, args: tuple, kwargs: dict) -> str | None:
        if packet is aten._to_copy:
            src, target = args[0], kwargs.get("device", args[0].device)
            blocking = not kwargs.get("non_blocking", False)
        else:
            target, src = args[0].device, args[1]
            blocking = not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False))
        if src.device == self.device and torch.device(target).type == "cpu":
            return "copies device data to the host"
        if src.device.type == "cpu" and torch.device(target) == self.device and blocking:
            return "blocking host-to-device copy (use non_blocking from pinned memory)"
        return None


def _cpu_gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b: int, c: int, side: int) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, side, side), dtype=torch.uint8, generator=_cpu_gen(1))


def _tokens(b: int, length: int, k: int = 0) -> torch.Tensor:
    body = torch.randint(1000, 5000, (b * max(k, 1), length - 2), generator=_cpu_gen(2))
    ids = torch.cat([torch.full((len(body), 1), 101), body, torch.full((len(body), 1), 102)], 1)
    ids[:, length // 2 :] = 0  # padding
    return ids.view(b, k, length) if k else ids


def _clips(b: int, samples: int) -> torch.Tensor:
    t = torch.arange(samples) / 16000
    wav = 0.5 * torch.sin(2 * math.pi * 440 * t).expand(b, samples).clone()
    wav[1:, samples // 2 :] = 0  # variable lengths (trailing zeros)
    return wav


#: name -> (domain, spec, stored batch)
CASES: dict[str, tuple[str, dict[str, Any], torch.Tensor]] = {
    "image cifar": ("image", dict(create_task("cifar10").augment), _images(16, 3, 32)),
    "image tissue as_rgb": ("image", dict(create_task("tissuemnist").augment),
                            _images(8, 1, 28)),
    "image semi_aves rrc": ("image", {**create_task("semi_aves").augment, "resize": 64,
                                      "crop_size": 56}, _images(4, 3, 64)),
    "image gray": ("image", {"mean": (0.5,), "std": (0.5,), "randaugment_ops": 6},
                   _images(12, 1, 20)),
    "text edits": ("text", {}, _tokens(8, 24)),
    "text back-translations": ("text", {}, _tokens(8, 24, k=3)),
    "audio keywords logmel": ("audio", dict(create_task("keywords").augment), _clips(6, 16000)),
    "audio usb waveform": ("audio", {"features": "waveform", "strong_effects": "usb",
                                     "crop_seconds": 0.25, "reverb_rt60": 0.05},
                           _clips(8, 6000)),
    "audio usb logmel": ("audio", {"strong_effects": "usb", "crop_seconds": 0.25,
                                   "reverb_rt60": 0.05, "n_mels": 16}, _clips(8, 6000)),
}


@pytest.mark.parametrize("view", ["eval", "weak", "strong"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_views_never_wait_for_the_device(case: str, view: str) -> None:
    domain, spec, x = CASES[case]
    views = build_views(domain, spec)
    stored = x.to(DEVICE)
    for seed in range(3):  # different draws reach different branches (ops, effects)
        with SyncGuard():
            out = views[view](stored, _cpu_gen(seed))
        assert out.device == DEVICE
        # the same shapes as on the CPU
        assert out.shape == views[view](x, _cpu_gen(seed)).shape


@pytest.mark.parametrize(
    ("what", "fn"),
    [
        ("item", lambda t: t.sum().item()),
        ("bool of any", lambda t: bool((t > 0).any())),
        ("if on a tensor", lambda t: 1 if t.sum() > 0 else 0),
        ("nonzero", lambda t: (t > 0).nonzero()),
        ("boolean mask", lambda t: t[t > 0]),
        ("boolean mask assignment", lambda t: t.__setitem__(t > 0, 1.0)),
        ("tolist", lambda t: t.tolist()),
        ("to host", lambda t: t.cpu()),
        ("blocking copy", lambda t: t + torch.ones(3).to(t.device)),
        ("host index", lambda t: t[torch.tensor([0, 2])]),
        ("host operand", lambda t: t * torch.ones(3)),
    ],
)
def test_the_guard_catches_each_kind_of_sync(what: str, fn: Any) -> None:
    t = torch.ones(3, device=DEVICE)
    with pytest.raises(AssertionError, match="aten"), SyncGuard():
        fn(t)


def test_the_guard_allows_host_work_and_non_blocking_copies() -> None:
    t = torch.ones(3, device=DEVICE)
    with SyncGuard():
        draws = torch.rand(3, generator=_cpu_gen())
        chosen = (draws > 0.5).nonzero().flatten().tolist()  # host-side decisions
        index = torch.tensor([0, 2]).to(DEVICE, non_blocking=True)
        out = t.index_select(0, index) * 2 + len(chosen)
    assert out.shape == (2,)


@pytest.mark.parametrize("case", ["image cifar", "audio usb waveform", "text edits"])
def test_views_are_thread_safe(case: str) -> None:
    """A prefetch thread and the training thread call the same views at once: each call
    gives what it gives alone."""
    domain, spec, x = CASES[case]
    views = build_views(domain, spec)
    expected = {s: views["strong"](x, _cpu_gen(s)) for s in range(8)}
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def work(seeds: range) -> None:
        try:
            for s in seeds:
                results[s] = views["strong"](x, _cpu_gen(s))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(range(i, 8, 2),)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert all(torch.equal(results[s], expected[s]) for s in range(8))
