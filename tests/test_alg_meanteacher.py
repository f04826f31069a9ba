"""Mean Teacher: its loss against values computed by hand, the EMA teacher (not USB HEAD's
identically-zero loss), the live-model fallback, batch-norm freezing and its trainer default."""

import copy

import pytest
import torch

from semibench.algorithms import ALGORITHMS, Batch, Outputs, create_algorithm
from semibench.config import check_config, run_config
from semibench.train.ema import ModelEMA
from tests.alg_helpers import ce, softmax
from tests.helpers.nets import BNNet

LB = [[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]]
Y = [0, 1]
TEACHER = [[4.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, -2.0, 5.0]]
STUDENT = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0]]


def make(num_iterations=10, **params):
    return create_algorithm("meanteacher", params, num_classes=3,
                            num_iterations=num_iterations, num_ulb=3)


def expected(lambda_u, ramp):
    sup = sum(ce(z, y) for z, y in zip(LB, Y, strict=True)) / len(LB)
    unsup = 0.0
    for zt, zs in zip(TEACHER, STUDENT, strict=True):
        pt, ps = softmax(zt), softmax(zs)
        unsup += sum((a - b) ** 2 for a, b in zip(ps, pt, strict=True)) / len(pt)
    unsup /= len(TEACHER)
    return sup + lambda_u * ramp * unsup, sup, unsup


def run(alg, iteration, teacher=None, student=None):
    out = Outputs(logits={"lb_weak": torch.tensor(LB),
                          "ulb_weak": torch.tensor(TEACHER) if teacher is None else teacher,
                          "ulb_weak2": torch.tensor(STUDENT) if student is None else student},
                  feats={})
    return alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor(Y)), iteration)


def test_loss_by_hand_with_defaults():
    # USB: lambda_u = 50, unsup_warm_up = 0.4 -> at iteration 1 of 10 the ramp is 1 / 4
    res = run(make(), iteration=1)
    total, sup, unsup = expected(50.0, 0.25)
    assert res.loss.item() == pytest.approx(total, rel=1e-6)
    assert res.log["sup_loss"] == pytest.approx(sup, rel=1e-6)
    assert res.log["unsup_loss"] == pytest.approx(unsup, rel=1e-6)
    assert res.log["unsup_loss"] > 0.01  # USB HEAD's bug would make this 0


def test_ramp_grows_linearly_to_one_at_warm_up_end():
    alg = make(num_iterations=20, lambda_u=3.0, unsup_warm_up=0.5)
    _, sup, unsup = expected(1.0, 1.0)
    for it in range(20):
        ramp = min(it / 10, 1.0)
        assert run(alg, it).loss.item() - sup == pytest.approx(3.0 * ramp * unsup, abs=1e-6)


def test_only_the_student_gets_gradient():
    teacher = torch.tensor(TEACHER, requires_grad=True)
    student = torch.tensor(STUDENT, requires_grad=True)
    run(make(), 5, teacher, student).loss.backward()
    assert teacher.grad is None or torch.count_nonzero(teacher.grad) == 0
    assert student.grad.abs().sum() > 0


def views(n_lb=5, n_ulb=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"lb_weak": torch.randn(n_lb, 4, generator=g),
            "ulb_weak": torch.randn(n_ulb, 4, generator=g) + 1.0,
            "ulb_weak2": torch.randn(n_ulb, 4, generator=g) - 1.0}


def test_teacher_is_the_ema_model_in_train_mode_with_frozen_bn():
    model = BNNet().train()
    ema = ModelEMA(model, 0.999)
    with torch.no_grad():  # make the EMA weights differ from the live ones
        for p in ema.model.parameters():
            p.add_(0.3)
    ema_state = copy.deepcopy(ema.model.state_dict())
    alg = make()
    alg.attach(model, ema.model, None)
    x = views()
    ref_model, ref_teacher = copy.deepcopy(model), copy.deepcopy(ema.model).train()

    out = alg.forward(model, x, cat=True)
    # teacher: EMA weights on the first weak view, normalised by its batch statistics, no graph
    assert torch.allclose(out.logits["ulb_weak"], ref_teacher(x["ulb_weak"]), atol=1e-6)
    assert not out.logits["ulb_weak"].requires_grad
    assert not ema.model.training  # back in eval mode for evaluation
    for k, v in ema.model.state_dict().items():  # EMA weights and BN statistics untouched
        assert torch.equal(v, ema_state[k]), k
    # student: live weights on the second weak view, with gradient, BN statistics frozen
    ref_model(x["lb_weak"])
    assert torch.equal(model.body[1].running_mean, ref_model.body[1].running_mean)
    assert torch.equal(model.body[1].running_var, ref_model.body[1].running_var)
    student_alone = copy.deepcopy(ref_model)(x["ulb_weak2"])
    assert torch.allclose(out.logits["ulb_weak2"], student_alone, atol=1e-6)
    assert out.logits["ulb_weak2"].requires_grad


def test_without_ema_the_live_model_is_the_teacher_without_gradient():
    model = BNNet().train()
    alg = make()
    alg.attach(model, None, None)
    x = views()
    ref = copy.deepcopy(model)
    out = alg.forward(model, x, cat=True)
    ref(x["lb_weak"])
    assert torch.allclose(out.logits["ulb_weak"], copy.deepcopy(ref)(x["ulb_weak"]), atol=1e-6)
    assert not out.logits["ulb_weak"].requires_grad


def test_loss_is_not_zero_and_follows_the_lagging_ema_teacher():
    """Identical views and no dropout: at step 0 the EMA teacher equals the student, so the
    consistency is 0; as training moves the student away from its slow average, it is not."""
    model = BNNet().train()
    ema = ModelEMA(model, 0.9, warmup=False)
    alg = make(num_iterations=10, unsup_warm_up=0.0)
    alg.attach(model, ema.model, None)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    unsup = []
    for step in range(6):
        x = views(seed=step)
        x["ulb_weak2"] = x["ulb_weak"].clone()
        out = alg.forward(model, x, cat=True)
        res = alg.compute_loss(out, Batch(x_lb={}, y_lb=torch.tensor([0, 1, 2, 0, 1])), step)
        unsup.append(res.log["unsup_loss"])
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        ema.update(model, step)
    assert unsup[0] == pytest.approx(0.0, abs=1e-12)
    assert all(u > 1e-6 for u in unsup[1:]), unsup


def test_trainer_default_ema_and_user_override():
    assert ALGORITHMS.get("meanteacher").train_defaults == {"all": {"ema_m": 0.999}}
    cfg = check_config({"algorithms": ["meanteacher"], "seeds": [0],
                        "tasks": {"mnist": {"num_labels": [40]}}})
    assert run_config(cfg, "mnist", 40, "meanteacher", 0)["train"]["ema_m"] == 0.999
    cfg = check_config({"algorithms": ["meanteacher"], "seeds": [0], "train": {"ema_m": 0.0},
                        "tasks": {"mnist": {"num_labels": [40]}}})
    assert run_config(cfg, "mnist", 40, "meanteacher", 0)["train"]["ema_m"] == 0.0
