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


def test_ema_equals_timm_model_ema_without_buffers():
    """USB's EMA (lerp the parameters, copy the buffers) is timm's ModelEmaV3 with
    ``exclude_buffers``: after training steps with the warm-up schedule, bitwise the same."""
    from timm.utils import ModelEmaV3

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 2))
    ours = ModelEMA(model, momentum=0.99, warmup=True)
    ref = ModelEmaV3(model, decay=0.99, exclude_buffers=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(12):
        loss = model(torch.randn(5, 3, 8, 8)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ours.update(model, step)
        with torch.no_grad():
            ref.apply_update_no_buffers_(model, ours.momentum_at(step))
    got, want = ours.model.state_dict(), ref.module.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    live = model.state_dict()
    assert torch.equal(got["1.running_var"], live["1.running_var"])  # copied, not averaged
    assert not torch.equal(got["0.weight"], live["0.weight"])  # averaged
