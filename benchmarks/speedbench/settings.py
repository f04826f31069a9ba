"""The USB settings timed, their reduced sizes (``--quick``, ``--tiny``) and the paths."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SEMILEARN_DIR = ROOT / "benchmarks" / ".semilearn"
OUT_DIR = ROOT / "benchmarks" / "out"
#: the command line script (packing starts its workers through it)
SPEED_SCRIPT = ROOT / "benchmarks" / "speed.py"


@dataclass
class Setting:
    """One USB setting: the USB task whose protocol it takes, and the sizes."""

    name: str
    task: str  # the USB task whose views and trainer settings are used
    backbone: str
    batch_size: int = 8
    uratio: int = 1
    backbone_args: dict[str, Any] = field(default_factory=dict)
    sl_net: str = ""  # semilearn's net name ("" = no semilearn side)
    sl_kind: str = "image"  # image (full step with loader) or tensors (model step)
    stored_side: int = 32  # stored image side
    seconds: float = 4.0  # audio clip length
    text_len: int = 512
    tiny: dict[str, Any] = field(default_factory=dict)  # backbone_args of --tiny


SETTINGS: dict[str, Setting] = {s.name: s for s in [
    Setting("vit_s2_32", "cifar100", "vit_small_patch2_32", sl_net="vit_small_patch2_32",
            tiny={"depth": 1, "embed_dim": 48, "num_heads": 2}),
    Setting("vit_b16_96", "stl10", "vit_base_patch16_96", sl_net="vit_base_patch16_96",
            stored_side=96, tiny={"depth": 1, "embed_dim": 48, "num_heads": 2}),
    Setting("vit_s16_224", "semi_aves", "vit_small_patch16_224",
            sl_net="vit_small_patch16_224", stored_side=256,
            tiny={"depth": 1, "embed_dim": 48, "num_heads": 2}),
    Setting("bert_base", "imdb", "bert_base_uncased", sl_net="bert_base_uncased",
            sl_kind="tensors",
            tiny={"config_overrides": {"num_hidden_layers": 1, "intermediate_size": 256}}),
    Setting("hubert_4s", "urbansound8k", "hubert_base", sl_net="hubert_base",
            sl_kind="tensors", seconds=4.0,
            tiny={"config_overrides": {"num_hidden_layers": 1, "intermediate_size": 256,
                                       "conv_dim": [32] * 7, "layerdrop": 0.0}}),
    Setting("wrn_28_2", "cifar10", "wrn_28_2", batch_size=64, uratio=7, sl_net="wrn_28_2"),
]}


def quick_setting(s: Setting, wrn_full: bool) -> Setting:
    """Reduced sizes for the CPU: WRN-28-2 at 16 + 112 (unless ``wrn_full``), BERT at 128
    tokens, HuBERT at 1 s."""
    if s.name == "wrn_28_2" and not wrn_full:
        return dataclasses.replace(s, batch_size=16)
    if s.name == "bert_base":
        return dataclasses.replace(s, text_len=128, backbone_args={"max_length": 128})
    if s.name == "hubert_4s":
        return dataclasses.replace(s, seconds=1.0)
    return s


def tiny_setting(s: Setting) -> Setting:
    """Toy sizes for a dry run of the machinery (``--tiny``)."""
    return dataclasses.replace(s, batch_size=2, uratio=1, text_len=32, seconds=0.5,
                               backbone_args={**s.backbone_args, **s.tiny,
                                              **({"max_length": 32}
                                                 if s.backbone.startswith("bert") else {})})


def label(s: Setting) -> str:
    n = f"{s.batch_size}+{s.batch_size * s.uratio}"
    extra = {"bert_base": f", {s.text_len} tok", "hubert_4s": f", {s.seconds:g} s"}.get(s.name, "")
    return f"{s.name} ({n}{extra})"
