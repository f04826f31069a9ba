"""Imbalance methods (ABC, DebiasPL, DARP, Adsh, ...), one file each, composed with any base
algorithm by configuration (``fixmatch_abc``) through :mod:`semibench.compose`; see
:mod:`semibench.imbalance.base`."""

from semibench.imbalance.base import (
    IMBALANCE,
    Composed,
    ComposedParams,
    ImbalanceMethod,
)
from semibench.registry import import_submodules

import_submodules(__name__)

__all__ = [
    "IMBALANCE",
    "Composed",
    "ComposedParams",
    "ImbalanceMethod",
]
