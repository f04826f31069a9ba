"""Imbalance methods composed with base algorithms: hand-computed losses, state round trips
and config errors."""

from __future__ import annotations

import math

import pytest
import torch

from semibench.algorithms import Batch, Outputs
from semibench.algorithms.base import DataInfo
from semibench.compose import Composition, create_algorithm, parse_label
from semibench.config import ConfigError, check_config
from semibench.imbalance import Composed
from tests.alg_helpers import ce, softmax
from tests.helpers.nets import FeatModel


def compose(name, counts=(3, 3), iterations=10, **imbalance):
    alg = create_algorithm(parse_label(name), {}, imbalance, num_classes=2,
                           num_iterations=iterations, num_ulb=2)
    assert isinstance(alg, Composed)
    heads = alg.build_modules(2)
    for h in heads.values():  # identity heads: auxiliary logits = features
        with torch.no_grad():
            h.weight.copy_(torch.eye(2))
            h.bias.zero_()
    model = FeatModel(heads)
    alg.attach(model, None, DataInfo(domain="image", num_classes=2, num_lb=sum(counts),
                                     num_ulb=2, lb_class_counts=torch.tensor(counts)))
    return alg, model


LB, Y = [[2.0, 0.0], [0.0, 1.0]], [0, 1]
WEAK, STRONG = [[5.0, 0.0], [0.0, 0.1]], [[1.0, 2.0], [3.0, 0.0]]


def outputs(lb=LB, weak=WEAK, strong=STRONG):
    t = torch.tensor
    # the base head's logits and the features are the same numbers here
    return Outputs(logits={"lb_weak": t(lb), "ulb_weak": t(weak), "ulb_strong": t(strong)},
                   feats={"lb_weak": t(lb), "ulb_weak": t(weak), "ulb_strong": t(strong)})


def batch():
    return Batch(x_lb={}, y_lb=torch.tensor(Y), idx_ulb=torch.arange(2))


def fixmatch_by_hand(weak=WEAK, strong=STRONG, cutoff=0.95, margin=(0.0, 0.0)):
    sup = sum(ce(z, y) for z, y in zip(LB, Y, strict=True)) / 2
    unsup = 0.0
    for zw, zs in zip(weak, strong, strict=True):
        p = softmax(zw)
        if max(p) >= cutoff:
            unsup += ce([a + m for a, m in zip(zs, margin, strict=True)], p.index(max(p)))
    return sup + unsup / 2


def test_names_and_composition_errors():
    assert parse_label("fixmatch_abc") == Composition("fixmatch", "abc")
    assert parse_label("fixmatch") == Composition("fixmatch")
    assert parse_label("fixmatch_abc").label == "fixmatch_abc"
    with pytest.raises(ConfigError, match=r"^algorithms: supervised_abc: abc needs") as err:
        check_config({"algorithms": ["supervised_abc"], "tasks": {"mnist": {}}})
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown algorithm 'fixmatch_nope'"):
        check_config({"algorithms": ["fixmatch_nope"], "tasks": {"mnist": {}}})
    with pytest.raises(ConfigError, match=r"imbalance_params.abc.abc_p_cutoff=2: must be"):
        check_config({"algorithms": ["fixmatch_abc"], "tasks": {"mnist": {}},
                      "imbalance_params": {"abc": {"abc_p_cutoff": 2}}})


def test_abc_loss_by_hand_balanced_counts():
    # equal class counts: w = 1, keep = 1, every Bernoulli draw is 1
    alg, _ = compose("fixmatch_abc")
    result = alg.compute_loss(outputs(), batch(), 0)
    abc_lb = (ce(LB[0], 0) + ce(LB[1], 1)) / 2
    # auxiliary pseudo-labels: softmax([5, 0]) = 0.9933 >= 0.95 -> class 0; [0, 0.1] -> 0.525 no
    abc_ulb = ce(STRONG[0], 0) / 2
    assert float(result.log["abc_loss"]) == pytest.approx(abc_lb + abc_ulb, rel=1e-6)
    assert float(result.loss.detach()) == pytest.approx(fixmatch_by_hand() + abc_lb + abc_ulb,
                                                        rel=1e-6)


def test_abc_balanced_bernoulli_masks():
    # counts 4 : 1 -> w = [0.25, 1]: a class-0 labelled sample is kept a quarter of the time;
    # at the end of training (t = T) a class-0 pseudo-label is too, at the start always
    alg, _ = compose("fixmatch_abc", counts=(4, 1), abc_loss_ratio=1.0)
    assert alg.method.balanced_weights().tolist() == [0.25, 1.0]
    out = outputs(lb=[[0.0, 0.0], [0.0, 0.0]], weak=[[9.0, 0.0], [9.0, 0.0]],
                  strong=[[0.0, 0.0], [0.0, 0.0]])
    torch.manual_seed(0)
    n, ln2 = 4000, math.log(2)
    start = sum(float(alg.method.abc_loss(out, batch(), 0).detach()) for _ in range(n)) / n
    end = sum(float(alg.method.abc_loss(out, batch(), 10).detach()) for _ in range(n)) / n
    # lb: (0.25 * ln2 + 1 * ln2) / 2; ulb (both class 0): keep 1 at t = 0, 0.25 at t = T
    assert start == pytest.approx(0.625 * ln2 + ln2, rel=0.03)
    assert end == pytest.approx(0.625 * ln2 + 0.25 * ln2, rel=0.05)


def test_abc_predicts_with_the_balanced_head():
    alg, model = compose("fixmatch_abc")
    with torch.no_grad():
        model.ssl_heads["abc"].weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    x = torch.tensor([[3.0, 1.0]])
    assert alg.predictor(model)(x).tolist() == [[1.0, 3.0]]  # swapped by the aux head


def test_debiaspl_by_hand_and_state_round_trip():
    alg, _ = compose("fixmatch_debiaspl", tau=1.0, ema_p=0.5)
    alg.base.p.p_cutoff = 0.6
    weak = [[2.0, 0.0], [0.0, 0.0]]
    result = alg.compute_loss(outputs(weak=weak), batch(), 0)
    mean = [(softmax(weak[0])[k] + softmax(weak[1])[k]) / 2 for k in range(2)]
    p_hat = [0.5 * 0.5 + 0.5 * m for m in mean]  # [0.5952, 0.4048]
    assert alg.method.p_hat.tolist() == pytest.approx(p_hat, rel=1e-6)
    log_p = [math.log(v) for v in p_hat]
    debiased = [[z - lp for z, lp in zip(row, log_p, strict=True)] for row in weak]
    # row 1: softmax([-log .5952, -log .4048]) = [0.4048, 0.5952] < 0.6: masked out
    expected = fixmatch_by_hand(weak=debiased, cutoff=0.6, margin=log_p)
    assert float(result.loss.detach()) == pytest.approx(expected, rel=1e-6)

    saved = alg.state_dict()
    again, _ = compose("fixmatch_debiaspl", tau=1.0, ema_p=0.5)
    again.base.p.p_cutoff = 0.6
    again.load_state_dict(saved)
    nxt = [[0.0, 1.0], [3.0, 0.0]]
    a = alg.compute_loss(outputs(weak=nxt), batch(), 1)
    b = again.compute_loss(outputs(weak=nxt), batch(), 1)
    assert float(a.loss) == float(b.loss)
    assert torch.equal(alg.method.p_hat, again.method.p_hat)


def test_adsh_thresholds_by_hand_and_fixmatch_only():
    alg = create_algorithm(Composition("fixmatch", "adsh"), {}, {"update_every": 3},
                           num_classes=2, num_iterations=10, num_ulb=8)
    alg.attach(FeatModel({}), None, DataInfo(domain="image", num_classes=2, num_lb=6,
                                             num_ulb=8, lb_class_counts=torch.tensor([5, 1])))
    # weak-view confidences: head class 0: 0.99, 0.97 pass tau_1 = 0.95, 0.90, 0.80 do not
    # (rho = 2/4); class 1: 0.9, 0.7, 0.6, 0.55 -> int(0.5 * 4) = 2nd largest = 0.7
    conf = [0.99, 0.97, 0.90, 0.80, 0.9, 0.7, 0.6, 0.55]
    pred = [0, 0, 0, 0, 1, 1, 1, 1]
    probs = torch.tensor([[c, 1 - c] if p == 0 else [1 - c, c] for c, p in zip(conf, pred,
                                                                             strict=True)])
    mask, _ = alg.base.mask(probs, Batch(x_lb={}, y_lb=torch.tensor([0]),
                                         idx_ulb=torch.arange(8)))
    assert mask.tolist() == [1, 1, 0, 0, 0, 0, 0, 0]  # before any update: tau_1 for all
    alg.method.adjust_outputs(outputs(), batch(), 3)  # update step
    assert alg.method.thresholds.tolist() == pytest.approx([0.97, 0.7])
    mask, _ = alg.base.mask(probs, Batch(x_lb={}, y_lb=torch.tensor([0]),
                                         idx_ulb=torch.arange(8)))
    assert mask.tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    with pytest.raises(ConfigError, match="adsh composes only with fixmatch, not flexmatch"):
        check_config({"algorithms": ["flexmatch_adsh"], "tasks": {"mnist": {}}})


def test_darp_solver_and_normalisation_by_hand():
    from semibench.imbalance.darp import normalise_towards, solve_darp

    # two undecided samples, target totals 1.5 : 0.5 -> by symmetry each row is 0.75, 0.25
    x = solve_darp(torch.full((2, 2), 0.5), torch.tensor([1.5, 0.5]), 10)
    assert x.tolist() == [pytest.approx([0.75, 0.25], abs=1e-6)] * 2
    # any table: rows sum to one, columns to the target
    q = torch.softmax(torch.randn(50, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    target = torch.tensor([20.0, 15.0, 10.0, 5.0])
    x = solve_darp(q, target, 10)
    assert x.sum(dim=1).tolist() == pytest.approx([1.0] * 50, abs=1e-6)
    assert x.sum(dim=0).tolist() == pytest.approx(target.tolist(), abs=1e-3)
    # normalisation, alpha 1, target 2 : 1: class 0's top two rows (0.9, 0.6; mass 1.5) scaled
    # by 2 / 1.5, class 1's top row (0.8) by 1 / 0.8; each row keeps (nearly) only its class
    q = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], dtype=torch.float64)
    n = normalise_towards(q, torch.tensor([2.0, 1.0], dtype=torch.float64), 1.0)
    assert n.argmax(dim=1).tolist() == [0, 0, 1]
    assert float(n[0, 0]) == pytest.approx((0.9 * 2 / 1.5 + 1e-6) / (0.9 * 2 / 1.5 + 2e-6))


def test_darp_keeps_confidence_moves_class_and_round_trips():
    alg = create_algorithm(Composition("fixmatch", "darp"), {}, {"warmup": 0.0},
                           num_classes=2, num_iterations=10, num_ulb=2)
    alg.attach(FeatModel({}), None, DataInfo(domain="image", num_classes=2, num_lb=4,
                                             num_ulb=2, lb_class_counts=torch.tensor([1, 1])))
    # both samples confidently class 0, but the labelled distribution is balanced: DARP moves
    # the less confident one (sample 1) to class 1; its confidence stays the model's
    weak = [[4.0, 0.0], [2.0, 0.0]]
    out = alg.method.adjust_outputs(outputs(weak=weak), batch(), 0)  # 0 % num_refine_iter
    p = torch.softmax(out.logits["ulb_weak"], dim=1)
    assert p.argmax(dim=1).tolist() == [0, 1]
    assert p.max(dim=1).values.tolist() == pytest.approx([softmax(weak[0])[0],
                                                          softmax(weak[1])[0]], rel=1e-5)
    again = create_algorithm(Composition("fixmatch", "darp"), {}, {"warmup": 0.0},
                             num_classes=2, num_iterations=10, num_ulb=2)
    again.attach(FeatModel({}), None, alg.method.info)
    again.load_state_dict(alg.state_dict())
    nxt = outputs(weak=[[1.0, 0.0], [3.0, 0.0]])
    a = alg.compute_loss(nxt, batch(), 2)
    b = again.compute_loss(outputs(weak=[[1.0, 0.0], [3.0, 0.0]]), batch(), 2)
    assert float(a.loss.detach()) == float(b.loss.detach())


def test_saw_weights_and_weighted_gradients_by_hand():
    from semibench.imbalance.saw import effective_weights

    # counts 3, 1: N = 2, beta = 1/2; (1/2) / (1 - 1/8) = 4/7 and (1/2) / (1/2) = 1;
    # normalised to sum 2: 8/11, 14/11
    assert effective_weights(torch.tensor([3, 1])).tolist() == pytest.approx([8 / 11, 14 / 11])
    alg, _ = compose("fixmatch_saw", counts=(3, 1), update_every=1)
    lb = torch.tensor(LB, requires_grad=True)
    strong = torch.tensor(STRONG, requires_grad=True)
    out = Outputs(logits={"lb_weak": lb, "ulb_weak": torch.tensor(WEAK), "ulb_strong": strong},
                  feats={})
    result = alg.compute_loss(out, batch(), 0)
    assert float(result.loss.detach()) == pytest.approx(fixmatch_by_hand(), rel=1e-6)
    result.loss.backward()
    # d CE / dz = softmax(z) - onehot(y), over the batch of 2, times the class weight
    for i, (w, z, y) in enumerate(zip([8 / 11, 14 / 11], LB, Y, strict=True)):
        expected = [(p - (k == y)) * w / 2 for k, p in enumerate(softmax(z))]
        assert lb.grad[i].tolist() == pytest.approx(expected, rel=1e-5)
    # unlabelled weights start at 1: only sample 0 passes the mask (pseudo-label 0)
    expected = [(p - (k == 0)) / 2 for k, p in enumerate(softmax(STRONG[0]))]
    assert strong.grad[0].tolist() == pytest.approx(expected, rel=1e-5)
    assert strong.grad[1].tolist() == [0.0, 0.0]
    # each update reads the weak classes recorded before its step: step 1's, those of step 0
    # (classes 0, 1: equal counts, weights 1); step 2's, step 1's (both class 0 -> counts 2, 1,
    # an empty class counting 1): N = 1.5, beta = 1/3: (2/3) / (8/9) = 3/4 and (2/3) / (2/3)
    # = 1, normalised to sum 2: 6/7, 8/7
    alg.method.adjust_outputs(outputs(weak=[[5.0, 0.0], [3.0, 0.0]]), batch(), 1)
    assert alg.method.ulb_weights.tolist() == pytest.approx([1.0, 1.0])
    alg.method.adjust_outputs(outputs(), batch(), 2)
    assert alg.method.ulb_weights.tolist() == pytest.approx([2 * 3 / 7, 2 * 4 / 7])


def test_daso_blends_semantic_labels_by_hand():
    alg, model = compose("fixmatch_daso", num_pretrain_iter=0, T_proto=1.0, T_dist=1.0,
                         num_pl_dist_iter=100)
    t = torch.tensor
    # the queue: labelled features e0 (class 0) and e1 (class 1) -> prototypes e0, e1
    out = Outputs(logits={"lb_weak": t(LB), "ulb_weak": t([[0.0, 2.0], [0.0, 3.0]]),
                          "ulb_strong": t(STRONG)},
                  feats={"ulb_weak": t([[1.0, 0.0], [0.2, 1.0]]),
                         "ulb_strong": t([[0.0, 1.0], [1.0, 0.0]])})
    out = alg.method.complete_outputs(model, {"lb_weak": t([[1.0, 0.0], [0.0, 1.0]])}, out)
    alg.method.pl_dist = t([1.0, 3.0])  # class 1 over-predicted: its samples lean semantic
    result = alg.compute_loss(out, batch(), 0)
    # q_sem = softmax(cos / 1): row 0 [1, 0] -> [0.731, 0.269]; row 1 cos [0.196, 0.981]
    c1 = [0.2 / math.hypot(0.2, 1.0), 1.0 / math.hypot(0.2, 1.0)]
    q = [softmax([1.0, 0.0]), softmax(c1)]
    # both linear labels are class 1, dist [1/4, 3/4] / max -> rho = 1: p_mix = q_sem, labels
    # 0 and 1; confidences stay the model's, 0.881 (masked at 0.95) and 0.953 (kept)
    sup = sum(ce(z, y) for z, y in zip(LB, Y, strict=True)) / 2
    unsup = ce(STRONG[1], 1) / 2
    assign = (ce([0.0, 1.0], q[0]) + ce([1.0, 0.0], q[1])) / 2
    assert float(result.log["assign_loss"]) == pytest.approx(assign, rel=1e-5)
    assert float(result.loss.detach()) == pytest.approx(sup + unsup + assign, rel=1e-5)
    assert result.pseudo_label.tolist() == [0, 1]
    assert alg.method.pl_counts.tolist() == [1.0, 1.0]  # the blended labels are counted


def test_tras_loss_by_hand():
    alg, model = compose("fixmatch_tras", counts=(4, 1), warmup_iterations=0)
    la, strength = alg.method.adjustment()
    # w = [1/4, 1]: la = [log 1/4, 0]; softmax(-la) = [4/5, 1/5]; T = 2 * that + 2
    assert la.tolist() == pytest.approx([math.log(0.25), 0.0], abs=1e-6)
    assert strength.tolist() == pytest.approx([3.6, 2.4])
    result = alg.compute_loss(outputs(), batch(), 0)
    lb_adj = [[2.0 + math.log(0.25), 0.0], [math.log(0.25), 1.0]]
    sup = (ce(lb_adj[0], 0) + ce(lb_adj[1], 1)) / 2
    # only weak row 0 passes FixMatch's mask (0.993 >= 0.95); its class 0 takes T = 3.6
    q = softmax([(5.0 - 3.6 * math.log(0.25)) / 2, 0.0])
    unsup = ce(STRONG[0], q) / 2
    assert float(result.log["tras_loss"]) == pytest.approx(sup + unsup, rel=1e-5)
    assert float(result.loss.detach()) == pytest.approx(fixmatch_by_hand() + sup + unsup,
                                                        rel=1e-5)
    x = torch.tensor([[1.0, 2.0]])
    assert alg.predictor(model)(x).tolist() == [[1.0, 2.0]]  # the (identity) target head
    with pytest.raises(ConfigError, match="tras composes only with fixmatch"):
        check_config({"algorithms": ["remixmatch_tras"], "tasks": {"mnist": {}}})


def test_a_run_carries_algorithm_and_imbalance_as_fields():
    """The shorthand is parsed once, by the config: the run's settings carry the fields; the
    label is formed back by spec.run_label only; settings written before the fields (the
    shorthand in ``algorithm``, parameters as {"base", "imbalance"}) still read."""
    from semibench.compose import settings_composition
    from semibench.config import run_config
    from semibench.metrics_file import run_composition

    cfg = check_config({"algorithms": ["fixmatch_abc", "fixmatch"], "seeds": [0],
                        "imbalance_params": {"abc": {"abc_p_cutoff": 0.9}},
                        "tasks": {"mnist": {"num_labels": [40]}}})
    run = run_config(cfg, "mnist", 40, "fixmatch_abc", 0)
    assert (run["algorithm"], run["imbalance"]) == ("fixmatch", "abc")
    assert run["imbalance_params"]["abc_p_cutoff"] == 0.9 and "p_cutoff" in run["algorithm_params"]
    plain = run_config(cfg, "mnist", 40, "fixmatch", 0)
    assert "imbalance" not in plain and "imbalance_params" not in plain  # unchanged settings
    composition, params, method = settings_composition(run)
    assert composition == Composition("fixmatch", "abc") and composition.label == "fixmatch_abc"
    assert method == run["imbalance_params"] and params == run["algorithm_params"]
    old = {"algorithm": "fixmatch_abc", "algorithm_params": {"base": params, "imbalance": method}}
    assert settings_composition(old) == (composition, params, method)
    # a plugin's algorithm before its plugin is loaded: no composition, whatever its name
    assert settings_composition({"algorithm": "fixmatch_v9"})[0] == Composition("fixmatch_v9")
    assert run_composition({"algorithm": "fixmatch_abc", "config": run}) == ("fixmatch", "abc")
    assert run_composition({"algorithm": "fixmatch_abc", "config": old}) == ("fixmatch_abc", None)


def test_lower_layers_never_import_higher_ones():
    """algorithms/ knows neither its extensions nor the trainer; imbalance/ is composed from
    above (semibench.compose) and never reaches the trainer: imports inside functions count."""
    import ast
    from pathlib import Path

    import semibench

    root = Path(semibench.__file__).parent
    forbidden = {"algorithms": ("semibench.imbalance", "semibench.compose", "semibench.train",
                                "semibench.config"),
                 "imbalance": ("semibench.compose", "semibench.train", "semibench.config")}
    for package, above in forbidden.items():
        for path in sorted((root / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for name in names:
                    assert not name.startswith(above), f"{path.name} imports {name}"
