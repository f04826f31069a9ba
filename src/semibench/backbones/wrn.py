"""Wide ResNets of the classic (TorchSSL/FixMatch-style) CV benchmark, trained from scratch.

The wiring is USB's ``nets/wrn`` (WRN-28-2, WRN-28-8) and ``nets/wrn_var`` (the "WRN-var-37-2"
of STL-10 at 96 px), so the published classic-CV numbers apply to it:

* a 3x3 stem convolution, the only convolution with a bias (left at PyTorch's default init);
* pre-activation basic blocks: BN -> LeakyReLU(0.1) -> conv3x3 -> BN -> LeakyReLU -> conv3x3,
  every block convolution and 1x1 shortcut without bias;
* a block that keeps its width adds its raw input to the residual branch, which starts from
  the activated input; a block that changes width or stride (a stage's first block) has a 1x1
  convolution as shortcut, and both branches start from the *activated* input in the first
  stage (USB's ``activate_before_residual=True``) but from the *raw* input in later stages.
  There, USB computes the block's first BN and throws its output away: we keep that BN (for
  the same parameters and state-dict entries) but skip the dead computation;
* BatchNorm momentum 0.001 (the running statistics move by 0.1 % per step, TensorFlow's decay
  0.999, because SSL batches mix labelled and unlabelled data); eps 1e-5 (PyTorch's default)
  in the blocks, 1e-3 in the final BN;
* a final BN + LeakyReLU, global average pooling and a linear head;
* Kaiming-normal (fan-out) convolution weights, BN weight 1 / bias 0, Xavier-normal linear
  weight with zero bias.

``wrn_28_2`` / ``wrn_28_8``: three stages of 4 blocks with widths 16k, 32k, 64k (k = 2 or 8)
and strides 1, 2, 2; ``num_features`` = 64k; WRN-28-2 with 10 classes has 1,467,626
parameters, as USB's. ``wrn_37_2``: USB builds it as depth 28, k = 2, with a fourth stage
(width 128k = 256) and a first stride of 2: widths 32, 64, 128, 256, strides 2, 2, 2, 2, so a
96 px image ends as a 6x6 map; ``num_features`` = 256.

Parameter names are timm-like (``stem``, ``blocks.<i>`` over all blocks in order, ``norm``,
``head``), so the layer groups are the stem, one per block (the final BN with the last block),
then the head. USB's WRN checkpoints therefore do not load by name; these nets are trained from
scratch (USB's classic CV protocol), so none is needed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from semibench.backbones.base import BACKBONES, Backbone, planner_family

BN_MOMENTUM = 0.001
BLOCK_BN_EPS = 1e-5
FINAL_BN_EPS = 1e-3
LEAKY_SLOPE = 0.1


def _bn(channels: int, eps: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM, eps=eps)


class BasicBlock(nn.Module):
    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        stride: int,
        drop_rate: float = 0.0,
        activate_before_residual: bool = False,
    ):
        super().__init__()
        self.bn1 = _bn(in_planes, BLOCK_BN_EPS)
        self.act1 = nn.LeakyReLU(LEAKY_SLOPE)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _bn(out_planes, BLOCK_BN_EPS)
        self.act2 = nn.LeakyReLU(LEAKY_SLOPE)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if in_planes != out_planes or stride != 1:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
        self.activate_before_residual = activate_before_residual

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.drop(self.act2(self.bn2(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:  # identity shortcut: the raw input skips the block
            return x + self._branch(self.act1(self.bn1(x)))
        if self.activate_before_residual:  # USB: only the first stage's first block
            x = self.act1(self.bn1(x))
        return self.shortcut(x) + self._branch(x)


class WideResNet(Backbone):
    channels_last = True  # oneDNN on the CPU, tensor cores on CUDA: train.memory_format

    def __init__(
        self,
        num_classes: int,
        depth: int = 28,
        widen_factor: int = 2,
        stages: int = 3,
        first_stride: int = 1,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth={depth}: WRN depth must be 6n + 4")
        per_stage = (depth - 4) // 6
        widths = [16 * widen_factor * 2**i for i in range(stages)]
        self.stem = nn.Conv2d(in_chans, 16, 3, stride=1, padding=1, bias=True)
        blocks: list[nn.Module] = []
        cin = 16
        for stage, width in enumerate(widths):
            for i in range(per_stage):
                stride = (first_stride if stage == 0 else 2) if i == 0 else 1
                blocks.append(BasicBlock(cin, width, stride, drop_rate, stage == 0))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.norm = _bn(cin, FINAL_BN_EPS)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)
        self.num_features = cin
        self.reset_classifier(num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # the stem's bias keeps PyTorch's default, as in USB
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.xavier_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm(self.blocks(self.stem(x))))
        return x.mean(dim=(2, 3))

    def group_matcher(self) -> dict[str, Any]:
        last = len(self.blocks) - 1
        return {"stem": r"^stem", "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (last,))]}


@BACKBONES.register("wrn_28_2")
@planner_family("wrn")
def wrn_28_2(num_classes: int, **kwargs: Any) -> WideResNet:
    return WideResNet(num_classes, **{"depth": 28, "widen_factor": 2, **kwargs})


@BACKBONES.register("wrn_28_8")
@planner_family("wrn")
def wrn_28_8(num_classes: int, **kwargs: Any) -> WideResNet:
    return WideResNet(num_classes, **{"depth": 28, "widen_factor": 8, **kwargs})


@BACKBONES.register("wrn_37_2")
@planner_family("wrn")
def wrn_37_2(num_classes: int, **kwargs: Any) -> WideResNet:
    """USB's ``wrn_var_37_2`` for STL-10 (96 px)."""
    args = {"depth": 28, "widen_factor": 2, "stages": 4, "first_stride": 2}
    return WideResNet(num_classes, **{**args, **kwargs})
