"""Backbones: small from-scratch nets and pretrained encoders, one registry."""

from semibench.backbones.base import BACKBONES, Backbone, create_backbone
from semibench.registry import import_submodules

import_submodules(__name__)

__all__ = ["BACKBONES", "Backbone", "create_backbone"]
