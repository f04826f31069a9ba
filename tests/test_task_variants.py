"""Task variants (``tasks.<name>.variant_of``): several settings of one registered task in one
benchmark, reading its data, under their own names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from semibench.config import ConfigError, base_task, check_config, run_config, run_grid
from semibench.report import published
from semibench.report.aggregate import grid_frame
from semibench.tasks import TASKS, create_task
from semibench.tasks import from_files as ff
from semibench.variants import run_base_task, task_settings
from semibench.workflow_plan import compute
from tests.helpers.workflow import snakemake, write

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
LT = {"lb_gamma": 10, "ulb_gamma": 10, "ulb_head": 300}
TINY_TRAIN = {"iterations": 4, "eval_every": 2, "batch_size": 4, "uratio": 2}


def variant_config() -> dict:
    return {
        "benchmark": "variants",
        "seeds": [0],
        "algorithms": ["supervised", "fixmatch"],
        "tasks": {
            "mnist": {"num_labels": [40], "train": {**TINY_TRAIN, "lr": 0.01}},
            # balanced, the same split as mnist's: shares its split files
            "mnist_bal": {"variant_of": "mnist", "num_labels": [40, 20]},
            "mnist_lt": {"variant_of": "mnist", "num_labels": [40], "long_tailed": LT,
                         "algorithms": ["fixmatch", "fixmatch_debiaspl"]},
            # the same long-tailed setting as mnist_lt: the same split file
            "mnist_lt_same": {"variant_of": "mnist", "num_labels": [40], "long_tailed": LT,
                              "algorithms": ["supervised"]},
            "mnist_rev": {"variant_of": "mnist", "num_labels": [40],
                          "long_tailed": {**LT, "ulb_reversed": True},
                          "algorithms": ["supervised"]},
        },
        "train": {"device": "cpu"},
    }


def test_a_variant_reads_its_registered_task_and_takes_its_defaults():
    cfg = check_config(variant_config())
    assert base_task(cfg, "mnist_lt") == "mnist" and base_task(cfg, "mnist") == "mnist"
    mnist = create_task("mnist")
    run = run_config(cfg, "mnist_lt", 40, "fixmatch_debiaspl", 0)
    assert run["task"] == "mnist_lt" and run["base_task"] == "mnist"
    assert run_base_task(run) == "mnist"
    assert run["backbone"] == mnist.backbone
    assert run["augment"] == json.loads(json.dumps(dict(mnist.augment)))
    assert run["split_tag"] == "lt_l10_u10_m300"
    # its own entry, not mnist's: mnist's lr 0.01 is not inherited, the task's default is
    assert run_config(cfg, "mnist", 40, "fixmatch", 0)["train"]["lr"] == 0.01
    plain = check_config({"algorithms": ["fixmatch"], "tasks": {"mnist": {"num_labels": [40]}},
                          "train": {"device": "cpu"}})
    assert run["train"] == run_config(plain, "mnist", 40, "fixmatch", 0)["train"] != \
        run_config(cfg, "mnist", 40, "fixmatch", 0)["train"]
    # a registered task's runs carry no base_task: their settings (and jobs) stay as they were
    assert "base_task" not in run_config(cfg, "mnist", 40, "fixmatch", 0)
    assert {t for t, *_ in run_grid(cfg)} == set(cfg["tasks"])


def test_the_workflow_plan_names_each_tasks_registered_task():
    plan = compute(variant_config(), SCHEMA)
    assert plan["tasks"]["mnist_lt"] == {"domain": "image", "backtranslation": False,
                                         "base": "mnist", "long_tailed": LT}
    assert plan["tasks"]["mnist"]["base"] == "mnist"
    assert plan["tasks"]["mnist_bal"]["long_tailed"] is None


def test_the_cost_planner_sizes_a_variant_as_its_task():
    from semibench.plan import eval_sizes, sample_shape

    cfg = check_config(variant_config())
    variant = sample_shape(run_config(cfg, "mnist_lt", 40, "fixmatch", 0), None)
    assert variant == sample_shape(run_config(cfg, "mnist", 40, "fixmatch", 0), None)
    assert eval_sizes(run_base_task(run_config(cfg, "mnist_lt", 40, "fixmatch", 0))) == \
        eval_sizes("mnist")


def _tasks(**tasks) -> dict:
    return {"algorithms": ["fixmatch"], "tasks": tasks}


@pytest.mark.parametrize("cfg, message", [
    (_tasks(mnist_lt={"variant_of": "mnistt"}),
     r"^tasks\.mnist_lt\.variant_of='mnistt': unknown task; allowed: .*\bmnist\b"),
    (_tasks(a={"variant_of": "mnist"}, b={"variant_of": "a"}),
     r"^tasks\.b\.variant_of='a': a is itself a variant \(of mnist\); name the registered "
     r"task: variant_of: mnist$"),
    (_tasks(keywords={"variant_of": "mnist"}),
     r"^tasks\.keywords\.variant_of='mnist': keywords is a registered task; give the variant "
     r"a name of its own"),
    (_tasks(mnist={"variant_of": "mnist"}), r"^tasks\.mnist\.variant_of='mnist': mnist is a "
     r"registered task"),
    (_tasks(Mnist_LT={"variant_of": "mnist"}),
     r"^tasks\.Mnist_LT: the variant's name must be lower-case letters, digits and _"),
    (_tasks(mine={"variant_of": "mnist", "from_files": {"domain": "image", "train": "x"}}),
     r"^tasks\.mine: variant_of and from_files exclude each other"),
    (_tasks(mnist_lt={"variant_of": 3}), r"^tasks\.mnist_lt\.variant_of=3: must be of type string"),
    (_tasks(mnist_lt={"variant_of": "mnist", "num_labels": [45]}),
     r"^tasks\.mnist_lt\.num_labels\[0\]=45: must be a multiple of the 10 classes of mnist_lt"),
    (_tasks(mnist_lt={"variant_of": "mnist", "num_labels": [40],
                      "long_tailed": {"lb_gamma": 100}}),
     r"^tasks\.mnist_lt\.num_labels\[0\]=40: N1 / gamma_l = 0\.4 leaves the tail class"),
    (_tasks(notatask={}), r"^tasks\.notatask: unknown task; allowed: .* \(or another name with "
     r"variant_of: <one of them>\)$"),
])
def test_variant_errors_are_one_line_naming_the_key(cfg, message):
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert "\n" not in str(err.value)
    assert re.search(message, str(err.value)), str(err.value)


@pytest.fixture
def _forget_declared_tasks():
    yield
    for name in list(ff._DECLARED):
        del ff._DECLARED[name]
        TASKS.unregister(name)


def test_a_variant_of_a_from_files_task(tmp_path, monkeypatch, _forget_declared_tasks):
    rng = np.random.default_rng(0)
    for role, n in (("train", 12), ("test", 2)):
        for c, colour in {"red": (200, 0, 0), "blue": (0, 0, 200)}.items():
            (tmp_path / role / c).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(colour) + rng.integers(0, 6, (16, 16 + i, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / role / c / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    spec = {"domain": "image", "train": "train", "test": "test", "val_per_class": 1}
    cfg = check_config({"algorithms": ["supervised"], "tasks": {
        "mine": {"from_files": spec, "num_labels": [4]},
        "mine_lt": {"variant_of": "mine", "num_labels": [6],
                    "long_tailed": {"lb_gamma": 3, "ulb_gamma": 3, "ulb_head": 4}}}})
    run = run_config(cfg, "mine_lt", 6, "supervised", 0)
    assert run["base_task"] == "mine" and run["split_tag"] == "lt_l3_u3_m4"


# --------------------------------------------------------------------------- published numbers


def _cells(rows) -> pd.DataFrame:
    """Configured cells as the report builds them (no finished run needed)."""
    from semibench.report.aggregate import cells

    grid = grid_frame([(t, n, a, 0) for t, n, a in rows], {t: "image" for t, _, _ in rows})
    return cells(pd.DataFrame(columns=list(grid.columns)), grid)


IMB_TABLES = ["classic_cv_imb", "classic_cv_imb_strong", "classic_cv_imb_reversed"]


def test_published_rows_are_matched_by_task_budget_algorithm_and_setting():
    head = {"1500": 3000, "500": 4000}
    tasks = {
        "cifar10": {"base": "cifar10", "long_tailed": {"lb_gamma": 100, "ulb_gamma": 100,
                                                       "ulb_head": head}},
        "cifar10_g150": {"base": "cifar10", "long_tailed": {"lb_gamma": 150, "ulb_gamma": 150,
                                                            "ulb_head": head}},
        "cifar10_rev": {"base": "cifar10", "long_tailed": {
            "lb_gamma": 100, "ulb_gamma": 100, "ulb_reversed": True, "ulb_head": head}},
        # not USB's M1 for N1 = 1500: no published row
        "cifar10_m": {"base": "cifar10", "long_tailed": {"lb_gamma": 100, "ulb_gamma": 100,
                                                         "ulb_head": 5000}},
        "stl10_g20": {"base": "stl10", "long_tailed": {"lb_gamma": 20, "ulb_gamma": 1}},
        "cifar10_bal": {"base": "cifar10", "long_tailed": None},  # balanced: not imbalanced rows
    }
    rows = [(t, 150 if t.startswith("stl10") else 1500, "fixmatch") for t in tasks]
    table = published.compare_to_published(_cells(rows), IMB_TABLES, tasks)
    got = {r.task: (r.usb_benchmark, r.usb_mean) for r in table.itertuples(index=False)}
    usb = published.load_published(IMB_TABLES)

    def error(benchmark, task, n):
        row = usb.query(f"benchmark == '{benchmark}' and task == '{task}' and num_labels == {n} "
                        "and algorithm == 'fixmatch'")
        assert len(row) == 1
        return float(row["error_mean"].iloc[0])

    assert got == {
        "cifar10": ("classic_cv_imb", error("classic_cv_imb", "cifar10", 1500)),
        "cifar10_g150": ("classic_cv_imb_strong", error("classic_cv_imb_strong", "cifar10", 1500)),
        "cifar10_rev": ("classic_cv_imb_reversed",
                        error("classic_cv_imb_reversed", "cifar10", 1500)),
        "stl10_g20": ("classic_cv_imb_strong", error("classic_cv_imb_strong", "stl10", 150)),
    }
    assert len({v[1] for v in got.values()}) == 4  # four different published numbers
    # without task settings (an older caller): by task name, budget and algorithm, as before
    old = published.compare_to_published(_cells([("cifar10", 1500, "fixmatch")]), IMB_TABLES)
    assert old["usb_benchmark"].tolist() == ["classic_cv_imb"]


def test_a_balanced_task_is_compared_with_the_balanced_tables_only():
    tasks = {"cifar10": {"base": "cifar10", "long_tailed": None}}
    cells = _cells([("cifar10", 40, "fixmatch"), ("cifar10", 1500, "fixmatch")])
    table = published.compare_to_published(cells, ["classic_cv", *IMB_TABLES], tasks)
    assert table[["num_labels", "usb_benchmark"]].values.tolist() == [[40, "classic_cv"]]


def test_setting_names_agree_for_ours_and_usbs():
    assert published.run_setting({"lb_gamma": 100, "ulb_gamma": 100, "ulb_reversed": True,
                                  "ulb_head": {"500": 4000}}, 500) == "l100_u-100_m4000"
    assert published.setting_name(100.0, -100.0, 4000.0) == "l100_u-100_m4000"
    assert published.run_setting({"lb_gamma": 10, "ulb_gamma": 1}, 150) == "l10_u1_mall"
    assert published.setting_name(10, 1, float("nan")) == "l10_u1_mall"
    assert published.run_setting(None, 40) == published.BALANCED
    assert published.setting_name(float("nan"), float("nan"), float("nan")) == published.BALANCED


# --------------------------------------------------------------------------- USB's imbalanced grid


def _classic_cv_imb(repo_root) -> dict:
    return check_config(yaml.safe_load((repo_root / "config" / "classic_cv_imb.yaml").read_text()))


def test_classic_cv_imb_has_every_usb_setting_and_each_run_its_published_row(repo_root):
    cfg = _classic_cv_imb(repo_root)
    tasks = task_settings(cfg)
    grid = run_grid(cfg)
    ours = {(tasks[t]["base"], n, published.run_setting(tasks[t]["long_tailed"], n))
            for t, n, _, _ in grid}
    usb = published.load_published(IMB_TABLES)
    usb_settings = {(t, int(n), published.setting_name(lb, ulb, m))
                    for t, n, lb, ulb, m in usb[["task", "num_labels", *published.SETTING_COLUMNS]]
                    .itertuples(index=False, name=None)}
    assert len(usb_settings) == 11  # CIFAR-10 3 x 2, CIFAR-100 3, STL-10 2
    assert ours == usb_settings
    # every configured cell that USB published is set next to its own row, once
    algorithms = set(cfg["algorithms"])
    cells = _cells(sorted({(t, n, a) for t, n, a, _ in grid}))
    table = published.compare_to_published(cells, cfg["published_reference"], tasks)
    assert len(table) == int(usb["algorithm"].isin(algorithms).sum())
    assert not table.duplicated(["task", "num_labels", "algorithm"]).any()
    reversed_ = table.loc[table["task"] == "cifar100_rev", "usb_benchmark"]
    assert set(reversed_) == {"classic_cv_imb_reversed"}


def test_classic_cv_imb_variants_share_their_tasks_data(repo_root):
    cfg = _classic_cv_imb(repo_root)
    assert {t: base_task(cfg, t) for t in cfg["tasks"]} == {
        "cifar10": "cifar10", "cifar10_g150": "cifar10", "cifar10_rev": "cifar10",
        "cifar100": "cifar100", "cifar100_g15": "cifar100", "cifar100_rev": "cifar100",
        "stl10": "stl10", "stl10_g20": "stl10"}
    run = run_config(cfg, "cifar100_rev", 150, "fixmatch_daso", 1)
    assert run["split_tag"] == "lt_l10_ur10_m300" and run["backbone"] == "wrn_28_2"
    assert run["imbalance_params"]["T_dist"] == 0.3
    assert run_config(cfg, "stl10_g20", 150, "fixmatch", 0)["split_tag"] == "lt_l20_u1_mall"


# --------------------------------------------------------------------------- the workflow


def _dry_run_jobs(output: str) -> list[dict[str, str]]:
    """Each job of a dry run's listing (``-n`` without ``--quiet``): its rule and fields."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:|localrule \w+:)", output):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if head:
            fields = dict(re.findall(r"^\s+(\w+): (.*)$", block, re.M))
            jobs.append({"rule": head.group(1), **fields})
    return jobs


@pytest.mark.slow
def test_dry_run_variants_read_their_tasks_data_and_write_their_own_runs(tmp_path, repo_root):
    cfg = write(tmp_path / "variants.yaml", variant_config())
    run = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = _dry_run_jobs(run.stdout + run.stderr)
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    # one fetch, one prepare: of mnist; no variant is fetched or prepared
    assert [j["output"] for j in by_rule["prepare"]] == [
        "data/prepared/mnist/data.npz, data/prepared/mnist/meta.json"]
    assert len(by_rule["fetch"]) == 1
    # splits: mnist's 40 (shared with mnist_bal) and mnist_bal's 20; one long-tailed file for
    # mnist_lt and mnist_lt_same (the same setting), another for mnist_rev
    assert sorted(j["output"] for j in by_rule["split"]) == [
        "data/splits/mnist/20/seed0.json", "data/splits/mnist/40/seed0.json"]
    assert sorted(j["output"] for j in by_rule["split_long_tailed"]) == [
        "data/splits/mnist/lt_l10_u10_m300/40/seed0.json",
        "data/splits/mnist/lt_l10_ur10_m300/40/seed0.json"]
    trains = {j["wildcards"]: j for j in by_rule["train"]}
    assert len(trains) == len(run_grid(check_config(variant_config())))
    lt = trains["task=mnist_lt, num_labels=40, algorithm=fixmatch_debiaspl, seed=0"]
    assert lt["input"] == ("data/prepared/mnist/meta.json, data/prepared/mnist/data.npz, "
                           "data/splits/mnist/lt_l10_u10_m300/40/seed0.json")
    assert lt["output"].startswith("results/variants/runs/mnist_lt/40/fixmatch_debiaspl/seed0/")
    bal = trains["task=mnist_bal, num_labels=40, algorithm=fixmatch, seed=0"]
    assert bal["input"].endswith("data/splits/mnist/40/seed0.json")
    assert bal["output"].startswith("results/variants/runs/mnist_bal/40/fixmatch/seed0/")
    # each task's figures are their own job (a variant's under its own name)
    figures = " ".join(j["output"] for j in by_rule["figures_task"])
    assert "results/variants/figures/mnist_lt.png" in figures


@pytest.mark.slow
def test_dry_run_of_the_default_benchmark_has_its_long_tailed_variant(tmp_path, repo_root):
    run = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert run.returncode == 0, run.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout + run.stderr, re.M))
    assert int(counts["fetch"]) == int(counts["prepare"]) == 3  # mnist_lt reads mnist's data
    assert int(counts["split_long_tailed"]) == 2  # mnist_lt, 2 seeds


@pytest.mark.slow
@pytest.mark.xdist_group("combined_pipeline")
def test_pipeline_with_a_variant_reports_it_under_its_own_name(combined_pipeline):
    """The session's pipeline (tests/helpers/pipeline.py) has ``mnist_lt``, a long-tailed
    variant of MNIST with FixMatch and FixMatch + DebiasPL, reported with balanced error."""
    p = combined_pipeline
    assert p.config["tasks"]["mnist_lt"]["variant_of"] == "mnist"
    # the variant reads MNIST's prepared data: nothing is fetched or prepared under its name
    assert "mnist_lt" not in {d.name for d in (p.workdir / "data" / "prepared").iterdir()}
    assert "mnist_lt" not in {d.name for d in (p.workdir / "data" / "raw").iterdir()}
    summary = pd.read_csv(p.results("tables/summary.csv"))
    assert sorted(summary[summary["task"] == "mnist_lt"]["algorithm"]) == [
        "fixmatch", "fixmatch_debiaspl"]
    metrics = json.loads(p.results("runs/mnist_lt/20/fixmatch/seed0/metrics.json").read_text())
    assert metrics["task"] == "mnist_lt" and metrics["config"]["base_task"] == "mnist"
    assert metrics["config"]["split_tag"] == "lt_l5_u5_m100"
    html = (p.workdir / "reports/combined/index.html").read_text()
    assert "mnist_lt" in html
    assert p.results("figures/mnist_lt_per_class.png").stat().st_size
