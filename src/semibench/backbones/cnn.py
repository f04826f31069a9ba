"""A small convolutional net trained from scratch: the CPU-sized backbone of the offline
image (MNIST) and audio (log-mel keywords) tasks. About 60k parameters at width 16; a batch of
224 MNIST images takes ~0.1 s forward+backward on one CPU thread."""

from __future__ import annotations

import torch
from torch import nn

from semibench.backbones.base import BACKBONES, Backbone, planner_family


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout, momentum=0.01),
        nn.LeakyReLU(0.1, inplace=True),
    )


class SmallCNN(Backbone):
    channels_last = True  # oneDNN: 1.29x per step at MNIST's batch on one core
    """conv(w)-pool, conv(2w)-pool, conv(4w)-conv(4w), global average pooling, dropout and a
    linear head. BN momentum 0.01 as in WRN-style SSL nets, whose batches mix labelled and
    unlabelled samples; ``stem_stride=2`` halves the cost on larger inputs (spectrograms)."""

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 1,
        width: int = 16,
        stem_stride: int = 1,
        drop: float = 0.1,
    ):
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_bn(in_chans, w, stem_stride), nn.MaxPool2d(2))
        self.blocks = nn.Sequential(
            nn.Sequential(conv_bn(w, 2 * w), nn.MaxPool2d(2)),
            nn.Sequential(conv_bn(2 * w, 4 * w), conv_bn(4 * w, 4 * w)),
        )
        self.num_features = 4 * w
        self.drop = nn.Dropout(drop)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.drop(x.mean(dim=(2, 3)))

    def group_matcher(self) -> dict:
        return {"stem": r"^stem", "blocks": [(r"^blocks\.(\d+)", None)]}


@BACKBONES.register("cnn_small")
@planner_family("cnn")
def cnn_small(num_classes: int, **kwargs) -> SmallCNN:
    return SmallCNN(num_classes, **kwargs)
