import torch
from torch import nn

from semibench.train.ema import ModelEMA


def test_ema_update_by_hand():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ModelEMA(model, momentum=0.9, warmup=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model, step=0)
    assert abs(ema.model.weight.item() - (0.9 * 1.0 + 0.1 * 3.0)) < 1e-6


def test_ema_warmup_momentum_schedule():
    ema = ModelEMA(nn.Linear(1, 1), momentum=0.999, warmup=True)
    assert ema.momentum_at(0) == 0.1
    assert ema.momentum_at(10) == 11 / 20
    assert ema.momentum_at(100_000) == 0.999
    assert ModelEMA(nn.Linear(1, 1), 0.999, warmup=False).momentum_at(0) == 0.999


def test_ema_copies_buffers():
    model = nn.BatchNorm1d(2)
    ema = ModelEMA(model, momentum=0.99)
    model(torch.randn(8, 2))
    ema.update(model, step=5)
    assert torch.equal(ema.model.running_mean, model.running_mean)
