# Config validation, run grid and input functions. Logic lives in semibench.config.
import json
import shlex
import sys

from snakemake.utils import validate

from semibench.config import ConfigError, check_config, load_schema, run_config, run_grid

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
try:
    config.update(check_config(config, load_schema(SCHEMA)))
except ConfigError as err:
    sys.exit(f"SemiBench config error: {err}")
validate(config, SCHEMA, set_default=True)

BENCHMARK = config["benchmark"]
GRID = run_grid(config)
RUN_DIR = "results/runs/{task}/{num_labels}/{algorithm}/seed{seed}"
TABLES_DIR = f"results/tables/{BENCHMARK}"
FIGURES_DIR = f"results/figures/{BENCHMARK}"
REPORT_HTML = f"reports/{BENCHMARK}/index.html"
TASK_NAMES = sorted(config["tasks"])


wildcard_constraints:
    task="[a-z0-9_]+",
    algorithm="[a-z0-9_]+",
    num_labels=r"\d+",
    seed=r"\d+",


def all_metrics():
    return [
        f"results/runs/{t}/{n}/{a}/seed{s}/metrics.json" for t, n, a, s in GRID
    ]


def run_settings(wildcards):
    """The resolved settings of one run, quoted for the shell. As a param, a change to it
    (and only to it) reruns the job."""
    run = run_config(
        config,
        wildcards.task,
        int(wildcards.num_labels),
        wildcards.algorithm,
        int(wildcards.seed),
    )
    return shlex.quote(json.dumps(run, sort_keys=True))
