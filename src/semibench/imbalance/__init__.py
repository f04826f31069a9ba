"""Imbalance methods (ABC, DebiasPL, DARP, Adsh, ...), one file each, composed with any base
algorithm by configuration (``fixmatch_abc``); see :mod:`semibench.imbalance.base`."""

from semibench.imbalance.base import (
    IMBALANCE,
    Composed,
    ImbalanceMethod,
    check_composition,
    create_composed,
    is_algorithm,
    make_composed_params,
    make_method_params,
    split_name,
)
from semibench.registry import import_submodules

import_submodules(__name__)

__all__ = [
    "IMBALANCE",
    "Composed",
    "ImbalanceMethod",
    "check_composition",
    "create_composed",
    "is_algorithm",
    "make_composed_params",
    "make_method_params",
    "split_name",
]
