"""Plain-Python reference maths for the algorithm tests: each loss is recomputed by hand from
these (lists and loops, no torch), so a test compares the implementation with the formula."""

from __future__ import annotations

import math


def log_softmax(z: list[float]) -> list[float]:
    lse = math.log(sum(math.exp(v) for v in z))
    return [v - lse for v in z]


def softmax(z: list[float], T: float = 1.0) -> list[float]:
    """softmax(z / T)."""
    return [math.exp(v) for v in log_softmax([x / T for x in z])]


def ce(z: list[float], target: int | list[float]) -> float:
    """Cross-entropy of logits ``z`` against a class index or a probability list."""
    ls = log_softmax(z)
    if isinstance(target, int):
        return -ls[target]
    return -sum(t * v for t, v in zip(target, ls, strict=True))


def argmax(row: list[float]) -> int:
    return max(range(len(row)), key=lambda k: row[k])


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def unit(v: list[float]) -> list[float]:
    n = math.sqrt(dot(v, v))
    return [x / n for x in v]


def cosine(a: list[float], b: list[float]) -> float:
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def deg(a: float, r: float = 1.0) -> list[float]:
    """The 2-d vector of length ``r`` at angle ``a`` degrees (embeddings with known angles)."""
    return [r * math.cos(math.radians(a)), r * math.sin(math.radians(a))]
