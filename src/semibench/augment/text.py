"""Text views on BERT-style token ids: identity weak view; back-translation or a token-edit
stand-in as the strong view.

With back-translations (token ids ``[B, K, L]``: column 0 the original text, columns 1..K-1 its
back-translations) ``strong`` is one back-translation drawn per sample, as in USB. Without them
(``[B, L]``) the strong view is a STAND-IN, not USB's augmentation: random deletion, neighbour
swaps and ``[MASK]`` replacement of real tokens (``[CLS]``, ``[SEP]`` and padding never move).
The random numbers are drawn on the host and moved in one non-blocking copy.

Details: docs/concepts/views.md (the site's Views page).
"""

from __future__ import annotations

import torch

from semibench.augment.base import ViewFn, host_rand, to_device


class TextViews:
    """Holds the token ids and probabilities; ``eval``/``weak``/``strong`` are ``ViewFn``s."""

    def __init__(
        self,
        *,
        pad_id: int = 0,
        cls_id: int = 101,
        sep_id: int = 102,
        mask_id: int = 103,
        delete_prob: float = 0.1,
        swap_prob: float = 0.1,
        mask_prob: float = 0.15,
    ) -> None:
        for name, p in (
            ("delete_prob", delete_prob),
            ("swap_prob", swap_prob),
            ("mask_prob", mask_prob),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = pad_id, cls_id, sep_id, mask_id
        self.delete_prob, self.swap_prob, self.mask_prob = delete_prob, swap_prob, mask_prob

    @staticmethod
    def _check(x: torch.Tensor) -> None:
        if x.dtype not in (torch.int32, torch.int64) or x.dim() not in (2, 3):
            raise ValueError("expected integer token ids [B, L] or [B, K, L], got "
                             f"{x.dtype} {tuple(x.shape)}")

    @staticmethod
    def original(x: torch.Tensor) -> torch.Tensor:
        """The original text's ids ``[B, L]``: column 0 of ``[B, K, L]``."""
        return x[:, 0] if x.dim() == 3 else x

    def real_mask(self, x: torch.Tensor) -> torch.Tensor:
        """True where a token may be edited (not cls, sep or pad)."""
        return (x != self.pad_id) & (x != self.cls_id) & (x != self.sep_id)

    def eval(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        self._check(x)
        return self.original(x).clone()

    def weak(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """USB's weak text view is the original sentence."""
        self._check(x)
        return self.original(x).clone()

    def _delete(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Drop real tokens with ``delete_prob`` (one survives per row) and re-pack left."""
        real = self.real_mask(x)
        drop = real & (u < self.delete_prob)
        # rows that would lose every real token keep the one with the largest draw (a mask
        # over all rows: selecting the emptied rows would read device values on the host)
        emptied = real.any(1) & ~(real & ~drop).any(1)
        keep = torch.where(real, u, torch.full_like(u, -1.0)).argmax(1)
        positions = torch.arange(x.shape[1], device=x.device)
        drop &= ~(emptied.unsqueeze(1) & (positions == keep.unsqueeze(1)))
        kept = ~drop
        # stable compaction: kept token j goes to position (number kept before j)
        target = kept.long().cumsum(1) - 1
        target = torch.where(kept, target, torch.full_like(target, x.shape[1]))
        out = torch.full((x.shape[0], x.shape[1] + 1), self.pad_id, dtype=x.dtype, device=x.device)
        out.scatter_(1, target, x)  # dropped tokens all land in the extra last column
        return out[:, :-1]

    def _swap(self, x: torch.Tensor, u: torch.Tensor, parity: int) -> torch.Tensor:
        """Swap adjacent real pairs (i, i+1) with ``i % 2 == parity``, each with ``swap_prob``."""
        length = x.shape[1]
        if length < 2:
            return x
        real = self.real_mask(x)
        start = real[:, :-1] & real[:, 1:] & (u[:, :-1] < self.swap_prob)
        start &= (torch.arange(length - 1, device=x.device) % 2 == parity).unsqueeze(0)
        perm = torch.arange(length, device=x.device).expand_as(x).clone()
        perm[:, :-1] += start.long()
        perm[:, 1:] -= start.long()
        return x.gather(1, perm)

    def strong(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A random back-translation per sample (``[B, K, L]``, K > 1), else the token-edit
        stand-in: delete, swap neighbours, mask."""
        self._check(x)
        if x.dim() == 3 and x.shape[1] > 1:
            pick = torch.randint(1, x.shape[1], (x.shape[0],), generator=gen, device=gen.device)
            rows = torch.arange(x.shape[0], device=x.device)
            return x[rows, to_device(pick.cpu(), x.device)].clone()
        x = self.original(x)
        if x.numel() == 0:
            return x.clone()
        u = to_device(host_rand((4, *x.shape), gen), x.device)
        x = self._delete(x, u[0])
        x = self._swap(x, u[1], parity=0)
        x = self._swap(x, u[2], parity=1)
        masked = self.real_mask(x) & (u[3] < self.mask_prob)
        return torch.where(masked, torch.full_like(x, self.mask_id), x)


def build_text_views(**spec: object) -> dict[str, ViewFn]:
    """Build the text views from a task's ``augment`` spec (see ``TextViews`` for keys)."""
    views = TextViews(**spec)  # type: ignore[arg-type]
    return {"eval": views.eval, "weak": views.weak, "strong": views.strong}
