"""The real-benchmark configs: valid, and a dry run lists one train job per
task x label budget x algorithm x seed (3 seeds). Timing is measured in benchmarks/."""

import re

import pytest
import yaml

from semibench.algorithms import ALGORITHMS
from semibench.config import check_config, run_config, run_grid
from tests.helpers.workflow import snakemake

USB_TASKS = {
    "cifar100": 2, "stl10": 2, "eurosat": 2, "tissuemnist": 2, "semi_aves": 1,
    "imdb": 2, "ag_news": 2, "amazon_review": 2, "yahoo_answers": 2, "yelp_review": 2,
    "gtzan": 2, "urbansound8k": 2, "superb_ks": 2, "fsdnoisy18k": 1, "esc50": 2,
}  # fmt: skip
CLASSIC_TASKS = {"cifar10": 3, "cifar100": 3, "svhn": 3, "stl10": 3}


@pytest.mark.parametrize("name, tasks", [("usb", USB_TASKS), ("classic_cv", CLASSIC_TASKS)])
def test_config_grid(repo_root, name, tasks):
    cfg = check_config(yaml.safe_load((repo_root / "config" / f"{name}.yaml").read_text()))
    assert cfg["seeds"] == [0, 1, 2]
    grid = run_grid(cfg)
    assert len(grid) == sum(tasks.values()) * len(ALGORITHMS.names()) * 3
    assert {t for t, *_ in grid} == set(tasks)
    for task, n, alg, seed in grid[:: max(1, len(grid) // 50)]:  # every run resolves
        run = run_config(cfg, task, n, alg, seed)
        assert run["train"]["iterations"] > 0


def test_classic_settings(repo_root):
    cfg = check_config(yaml.safe_load((repo_root / "config" / "classic_cv.yaml").read_text()))
    run = run_config(cfg, "cifar100", 400, "fixmatch", 0)
    assert run["backbone"] == "wrn_28_2" and run["train"]["uratio"] == 7
    assert run["train"]["iterations"] == 2**20 and run["train"]["weight_decay"] == 1e-3
    assert run_config(cfg, "cifar100", 400, "mixmatch", 0)["train"]["uratio"] == 1
    assert run_config(cfg, "stl10", 40, "fixmatch", 0)["backbone"] == "wrn_37_2"


@pytest.mark.slow
@pytest.mark.parametrize("name, tasks", [("usb", USB_TASKS), ("classic_cv", CLASSIC_TASKS)])
def test_dry_run_lists_every_train_job(repo_root, tmp_path, name, tasks):
    run = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile",
                    str(repo_root / "config" / f"{name}.yaml"))
    assert run.returncode == 0, run.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout + run.stderr, re.M))
    assert int(counts["train"]) == sum(tasks.values()) * len(ALGORITHMS.names()) * 3
    assert int(counts["fetch"]) == len(tasks)
    if name == "usb":  # the five NLP tasks get their back-translations
        assert int(counts["backtranslate"]) == 5


def _config(repo_root, name):
    return check_config(yaml.safe_load((repo_root / "config" / f"{name}.yaml").read_text()))


# USB's committed run configs (config/usb_{cv,nlp,audio}/simmatch/*.yaml at 1ef4cbe): T
USB_SIMMATCH_T = {
    "cifar100": 0.1, "stl10": 0.1, "eurosat": 0.2, "tissuemnist": 0.2, "semi_aves": 0.2,
    "imdb": 0.1, "ag_news": 0.1, "amazon_review": 0.1, "yahoo_answers": 0.1, "yelp_review": 0.1,
    "gtzan": 0.2, "urbansound8k": 0.2, "superb_ks": 0.2, "fsdnoisy18k": 0.2, "esc50": 0.2,
}  # fmt: skip


@pytest.mark.parametrize("task, T", sorted(USB_SIMMATCH_T.items()))
def test_usb_simmatch_temperature_is_usbs_per_task(repo_root, task, T):
    cfg = _config(repo_root, "usb")
    n = cfg["tasks"][task]["num_labels"][0]
    assert run_config(cfg, task, n, "simmatch", 0)["algorithm_params"]["T"] == T


@pytest.mark.parametrize("name, task, n, algorithm, key, value", [
    # classic CV: USB's FreeMatch SVHN configs clip the global threshold, the others do not
    ("classic_cv", "svhn", 40, "freematch", "clip_thresh", True),
    ("classic_cv", "svhn", 1000, "freematch", "clip_thresh", True),
    ("classic_cv", "cifar10", 40, "freematch", "clip_thresh", False),
    ("classic_cv", "stl10", 40, "freematch", "clip_thresh", False),
    # CoMatch's contrast_loss_ratio: 5 on STL-10 (classic and USB), 1 elsewhere
    ("classic_cv", "stl10", 250, "comatch", "lambda_c", 5.0),
    ("classic_cv", "cifar100", 400, "comatch", "lambda_c", 1.0),
    ("classic_cv", "cifar100", 400, "comatch", "queue_batch", 5),
    ("usb", "stl10", 40, "comatch", "lambda_c", 5.0),
    ("usb", "cifar100", 200, "comatch", "lambda_c", 1.0),
    ("usb", "cifar100", 200, "comatch", "queue_batch", 32),
    ("usb", "imdb", 20, "comatch", "queue_batch", 128),
    # hard pseudo-labels in every USB config (the soft-label path is a documented deviation)
    ("usb", "cifar100", 200, "fixmatch", "hard_label", True),
    ("usb", "imdb", 20, "flexmatch", "hard_label", True),
    # SoftMatch aligns in every USB run (USB aligns whatever its flag says)
    ("usb", "gtzan", 100, "softmatch", "dist_align", True),
])  # fmt: skip
def test_resolved_algorithm_params_are_usbs(repo_root, name, task, n, algorithm, key, value):
    run = run_config(_config(repo_root, name), task, n, algorithm, 0)
    assert run["algorithm_params"][key] == value


# USB's committed run configs at 1ef4cbe, one task per domain (CIFAR-100-200, IMDB-20, GTZAN-100;
# the other tasks of a domain have the same values, except SimMatch's T and CoMatch's lambda_c
# above), in SemiBench's names (ulb_loss_ratio -> lambda_u, ent_loss_ratio -> lambda_e,
# kl_loss_ratio -> lambda_kl, rot_loss_ratio -> lambda_rot (ReMixMatch), in_loss_ratio ->
# lambda_in, contrast_loss_ratio -> lambda_c); keys a YAML leaves out take USB's argument
# defaults (VAT's YAMLs set none of its own).
VAT = {"lambda_u": 1.0, "ent_loss_ratio": 0.06, "vat_eps": 6.0, "xi": 1e-6, "unsup_warm_up": 0.4}
USB_ALGORITHM_PARAMS = {  # config/usb_{cv,nlp,audio}/<alg>/<alg>_<task>_*_0.yaml
    ("fixmatch", "cifar100"): {"p_cutoff": 0.95, "lambda_u": 1.0, "hard_label": True},
    ("fixmatch", "imdb"): {"p_cutoff": 0.95, "lambda_u": 1.0, "hard_label": True},
    ("fixmatch", "gtzan"): {"p_cutoff": 0.95, "lambda_u": 1.0, "hard_label": True},
    ("flexmatch", "cifar100"): {"p_cutoff": 0.95, "lambda_u": 1.0, "thresh_warmup": True},
    ("flexmatch", "imdb"): {"p_cutoff": 0.95, "lambda_u": 1.0, "thresh_warmup": True},
    ("flexmatch", "gtzan"): {"p_cutoff": 0.95, "lambda_u": 1.0, "thresh_warmup": True},
    ("freematch", "cifar100"): {"lambda_u": 1.0, "lambda_e": 0.001, "ema_p": 0.999, "use_quantile": False, "clip_thresh": False},
    ("freematch", "imdb"): {"lambda_u": 1.0, "lambda_e": 0.001, "ema_p": 0.999, "use_quantile": False, "clip_thresh": False},
    ("freematch", "gtzan"): {"lambda_u": 1.0, "lambda_e": 0.001, "ema_p": 0.999, "use_quantile": False, "clip_thresh": False},
    ("softmatch", "cifar100"): {"lambda_u": 1.0, "ema_p": 0.999, "n_sigma": 2, "dist_align": True, "hard_label": True, "per_class": False},
    ("softmatch", "imdb"): {"lambda_u": 1.0, "ema_p": 0.999, "n_sigma": 2, "dist_align": True, "hard_label": True, "per_class": False},
    ("softmatch", "gtzan"): {"lambda_u": 1.0, "ema_p": 0.999, "n_sigma": 2, "dist_align": True, "hard_label": True, "per_class": False},
    ("adamatch", "cifar100"): {"p_cutoff": 0.95, "lambda_u": 1.0, "ema_p": 0.999},
    ("adamatch", "imdb"): {"p_cutoff": 0.95, "lambda_u": 1.0, "ema_p": 0.999},
    ("adamatch", "gtzan"): {"p_cutoff": 0.95, "lambda_u": 1.0, "ema_p": 0.999},
    ("uda", "cifar100"): {"p_cutoff": 0.8, "lambda_u": 1.0, "T": 0.4, "tsa_schedule": "none"},
    ("uda", "imdb"): {"p_cutoff": 0.8, "lambda_u": 1.0, "T": 0.4, "tsa_schedule": "exp"},
    ("uda", "gtzan"): {"p_cutoff": 0.8, "lambda_u": 1.0, "T": 0.4, "tsa_schedule": "none"},
    ("mixmatch", "cifar100"): {"lambda_u": 10, "T": 0.5, "mixup_alpha": 0.5, "unsup_warm_up": 0.4},
    ("mixmatch", "imdb"): {"lambda_u": 100, "T": 0.5, "mixup_alpha": 0.5, "unsup_warm_up": 0.4, "mixup_manifold": True},
    ("mixmatch", "gtzan"): {"lambda_u": 10, "T": 0.5, "mixup_alpha": 0.5, "unsup_warm_up": 0.4, "mixup_manifold": True},
    ("remixmatch", "cifar100"): {"lambda_u": 1.5, "lambda_kl": 0.5, "lambda_rot": 0.5, "T": 0.5, "mixup_alpha": 0.75, "unsup_warm_up": 0.015625},
    ("remixmatch", "imdb"): {"lambda_u": 1.5, "lambda_kl": 0.5, "lambda_rot": 0.0, "T": 0.5, "mixup_alpha": 0.75, "unsup_warm_up": 0.015625, "mixup_manifold": True},
    ("remixmatch", "gtzan"): {"lambda_u": 1.5, "lambda_kl": 0.5, "lambda_rot": 0.0, "T": 0.5, "mixup_alpha": 0.75, "unsup_warm_up": 0.015625, "mixup_manifold": True},
    ("vat", "cifar100"): VAT,
    ("vat", "imdb"): VAT,
    ("vat", "gtzan"): VAT,
    ("pimodel", "cifar100"): {"lambda_u": 10, "unsup_warm_up": 0.4},
    ("pimodel", "imdb"): {"lambda_u": 10, "unsup_warm_up": 0.4},
    ("pimodel", "gtzan"): {"lambda_u": 10, "unsup_warm_up": 0.4},
    ("meanteacher", "cifar100"): {"lambda_u": 50, "unsup_warm_up": 0.4},
    ("meanteacher", "imdb"): {"lambda_u": 50, "unsup_warm_up": 0.4},
    ("meanteacher", "gtzan"): {"lambda_u": 50, "unsup_warm_up": 0.4},
    ("pseudolabel", "cifar100"): {"p_cutoff": 0.95, "lambda_u": 1.0, "unsup_warm_up": 0.4},
    ("pseudolabel", "imdb"): {"p_cutoff": 0.95, "lambda_u": 1.0, "unsup_warm_up": 0.4},
    ("pseudolabel", "gtzan"): {"p_cutoff": 0.95, "lambda_u": 1.0, "unsup_warm_up": 0.4},
    ("dash", "cifar100"): {"gamma": 1.27, "C": 1.0001, "rho_min": 0.05, "T": 0.5},
    ("dash", "imdb"): {"gamma": 1.27, "C": 1.0001, "rho_min": 0.05, "T": 0.5},
    ("dash", "gtzan"): {"gamma": 1.27, "C": 1.0001, "rho_min": 0.05, "T": 0.5},
    ("crmatch", "cifar100"): {"p_cutoff": 0.95},
    ("crmatch", "imdb"): {"p_cutoff": 0.95, "rot_loss_ratio": 0.0},
    ("crmatch", "gtzan"): {"p_cutoff": 0.95, "rot_loss_ratio": 0.0},
    ("simmatch", "cifar100"): {"p_cutoff": 0.95, "lambda_in": 1.0, "T": 0.1, "smoothing_alpha": 0.9, "da_len": 32, "proj_size": 128},
    ("simmatch", "imdb"): {"p_cutoff": 0.95, "lambda_in": 1.0, "T": 0.1, "smoothing_alpha": 0.9, "da_len": 32, "proj_size": 128},
    ("simmatch", "gtzan"): {"p_cutoff": 0.95, "lambda_in": 1.0, "T": 0.2, "smoothing_alpha": 0.9, "da_len": 32, "proj_size": 128},
    ("comatch", "cifar100"): {"p_cutoff": 0.95, "lambda_c": 1.0, "contrast_p_cutoff": 0.8, "T": 0.2, "smoothing_alpha": 0.9, "da_len": 32, "proj_size": 64, "queue_batch": 32},
    ("comatch", "imdb"): {"p_cutoff": 0.95, "lambda_c": 1.0, "contrast_p_cutoff": 0.8, "T": 0.2, "smoothing_alpha": 0.9, "da_len": 32, "proj_size": 64, "queue_batch": 128},
    ("comatch", "gtzan"): {"p_cutoff": 0.95, "lambda_c": 1.0, "contrast_p_cutoff": 0.8, "T": 0.2, "smoothing_alpha": 0.9, "da_len": 32, "proj_size": 64, "queue_batch": 128},
    ("defixmatch", "cifar100"): {"p_cutoff": 0.95, "lambda_u": 0.5},
    ("defixmatch", "imdb"): {"p_cutoff": 0.95, "lambda_u": 0.5},
    ("defixmatch", "gtzan"): {"p_cutoff": 0.95, "lambda_u": 0.5},
}


@pytest.mark.parametrize("algorithm, task", sorted(USB_ALGORITHM_PARAMS))
def test_usb_resolved_algorithm_params_are_usbs_committed_values(repo_root, algorithm, task):
    cfg = _config(repo_root, "usb")
    run = run_config(cfg, task, cfg["tasks"][task]["num_labels"][0], algorithm, 0)
    expected = USB_ALGORITHM_PARAMS[(algorithm, task)]
    assert {k: run["algorithm_params"][k] for k in expected} == expected


# USB's committed FlexMatch configs have num_warmup_iter 0 on these four tasks (a leak in its
# config generator, kept to reproduce the published numbers: see flexmatch.py); 5,120 elsewhere
@pytest.mark.parametrize("task, algorithm, warmup", [
    ("cifar100", "flexmatch", 0), ("eurosat", "flexmatch", 0), ("tissuemnist", "flexmatch", 0),
    ("semi_aves", "flexmatch", 0), ("stl10", "flexmatch", 5120), ("imdb", "flexmatch", 5120),
    ("gtzan", "flexmatch", 5120), ("cifar100", "fixmatch", 5120), ("eurosat", "freematch", 5120),
])  # fmt: skip
def test_usb_learning_rate_warmup_is_usbs_per_task_and_algorithm(repo_root, task, algorithm,
                                                                 warmup):
    cfg = _config(repo_root, "usb")
    run = run_config(cfg, task, cfg["tasks"][task]["num_labels"][0], algorithm, 0)
    assert run["train"]["warmup_iterations"] == warmup
