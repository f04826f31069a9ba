# Config validation, run grid and input functions. Logic lives in semibench.config; the
# workflow reads a cached plan of it (semibench.workflow_plan) and imports nothing heavy, so a
# dry run, --unlock or --report does not load the ML stack.
import json
import os
import shlex
import sys

from snakemake.utils import validate

from semibench.config_file import ConfigFileError, for_workflow
from semibench.sweep import LABEL_PATTERN as SWEEP_LABEL
from semibench.sweep import first_values
from semibench.workflow_plan import ConfigInvalid, run_key, workflow_plan

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
try:
    # the config files again, as every command reads them (semibench.config_file): a key given
    # twice is an error, the benchmark defaults to the file's name, and relative paths are
    # read from CONFIG_DIR, the file's folder, not from the working directory
    CONFIG_DIR = for_workflow(config, workflow.configfiles)
    PLAN = workflow_plan(config, SCHEMA, base_dir=CONFIG_DIR)
except (ConfigFileError, ConfigInvalid) as err:
    sys.exit(f"SemiBench config error: {err}")
config.update(PLAN["config"])
with first_values(config):  # a sweep's lists (semibench.sweep) are checked value by value
    validate(config, SCHEMA, set_default=True)
# tasks declared with `from_files`: the `semibench` jobs get no config, so they read these
FILE_TASKS = [t for t, s in config["tasks"].items() if "from_files" in s]
FILE_TASK_PATTERN = "|".join(FILE_TASKS) or "(?!)"  # (?!) matches nothing
if FILE_TASKS:
    from semibench.tasks.from_files import FILE_TASKS_ENV, file_tasks_environment

    os.environ[FILE_TASKS_ENV] = file_tasks_environment(config["tasks"], CONFIG_DIR)

BENCHMARK = config["benchmark"]
GRID = [tuple(run) for run in PLAN["grid"]]
# runs live under their benchmark: two configs may train the same task with other settings
RUN_DIR = f"results/{BENCHMARK}/runs/{{task}}/{{num_labels}}/{{algorithm}}/seed{{seed}}"
TABLES_DIR = f"results/{BENCHMARK}/tables"
FIGURES_DIR = f"results/{BENCHMARK}/figures"
REPORT_HTML = f"reports/{BENCHMARK}/index.html"
TASK_NAMES = sorted(config["tasks"])


# a run label: an algorithm, or one point of its sweep (fixmatch,p_cutoff=0.9: semibench.sweep)
wildcard_constraints:
    task="[a-z0-9_]+",
    algorithm=SWEEP_LABEL,
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
    key = run_key(wildcards.task, int(wildcards.num_labels), wildcards.algorithm,
                  int(wildcards.seed))
    return shlex.quote(json.dumps(PLAN["runs"][key], sort_keys=True))


def base_task(task):
    """The registered task whose data a config task reads: itself, or the task a variant
    (`variant_of`) names (semibench.variants.base_task, cached in the plan). Every path under
    data/ of a run goes through here: a variant is never fetched, prepared or split apart."""
    return PLAN["tasks"][task]["base"]


def prepared_dir(task):
    return f"data/prepared/{base_task(task)}"


def prepared_inputs(wildcards):
    return {
        "meta": f"{prepared_dir(wildcards.task)}/meta.json",
        "data": f"{prepared_dir(wildcards.task)}/data.npz",
    }


def split_file(wildcards):
    """The run's split, under its registered task: a long-tailed task's carries its setting's
    tag in the path, so two settings (two benchmarks, or two variants) never share a file,
    and the same setting (a balanced variant and its task) shares the same file."""
    key = run_key(wildcards.task, int(wildcards.num_labels), wildcards.algorithm,
                  int(wildcards.seed))
    tag = PLAN["runs"][key].get("split_tag")
    base = base_task(wildcards.task)
    where = f"{base}/{tag}" if tag else base
    return f"data/splits/{where}/{wildcards.num_labels}/seed{wildcards.seed}.json"


def backtranslations(wildcards):
    """The back-translation table of a text task that uses one (USB's strong text view)."""
    enabled = config["backtranslation"].get("enabled", True)
    if enabled and PLAN["tasks"][wildcards.task]["backtranslation"]:
        base = base_task(wildcards.task)
        return {"backtranslations": f"data/backtranslated/{base}/backtranslations.npz"}
    return {}


def file_task_inputs(wildcards):
    """The folders and tables a `from_files` task reads: adding or removing a file fetches it
    again."""
    from semibench.tasks.from_files import file_task_sources

    return file_task_sources(config["tasks"], wildcards.task, CONFIG_DIR)


def file_task_declaration(wildcards):
    """A `from_files` declaration as written (relative paths stay relative: a checkout moved
    with its data fetches nothing again); as a param, a change to it fetches the task again."""
    return json.dumps(config["tasks"][wildcards.task]["from_files"], sort_keys=True)
