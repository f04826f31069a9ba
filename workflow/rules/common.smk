# Config validation, run grid and input functions. Logic lives in semibench.config.
import json
import shlex
import sys

from snakemake.utils import validate

from semibench.config import ConfigError, check_config, load_schema, run_config, run_grid
from semibench.tasks import create_task

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
try:
    config.update(check_config(config, load_schema(SCHEMA)))
except ConfigError as err:
    sys.exit(f"SemiBench config error: {err}")
validate(config, SCHEMA, set_default=True)

BENCHMARK = config["benchmark"]
GRID = run_grid(config)
# runs live under their benchmark: two configs may train the same task with other settings
RUN_DIR = f"results/{BENCHMARK}/runs/{{task}}/{{num_labels}}/{{algorithm}}/seed{{seed}}"
TABLES_DIR = f"results/{BENCHMARK}/tables"
FIGURES_DIR = f"results/{BENCHMARK}/figures"
REPORT_HTML = f"reports/{BENCHMARK}/index.html"
TASK_NAMES = sorted(config["tasks"])
# USB result tables the report compares with (space-separated for the shell)
PUBLISHED = " ".join(config["published_reference"])


wildcard_constraints:
    task="[a-z0-9_]+",
    algorithm="[a-z0-9_]+",
    num_labels=r"\d+",
    seed=r"\d+",


def all_metrics():
    return [run_file(t, n, a, s, "metrics.json") for t, n, a, s in GRID]


def run_file(task, num_labels, algorithm, seed, name):
    run_dir = RUN_DIR.format(task=task, num_labels=num_labels, algorithm=algorithm, seed=seed)
    return f"{run_dir}/{name}"


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


def backtranslations(wildcards):
    """The back-translation table of a text task that uses one (USB's strong text view)."""
    enabled = config["backtranslation"].get("enabled", True)
    if enabled and create_task(wildcards.task).backtranslation:
        return {"backtranslations": f"data/backtranslated/{wildcards.task}/backtranslations.npz"}
    return {}
