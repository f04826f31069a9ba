# The report: every table, figure and the page, from exactly the files the train jobs declare
# (metrics.json, curve.csv, the Snakemake benchmark file) and nothing else. Logic lives in
# semibench.report; report() captions are in workflow/report/*.rst.
from semibench.report import layout as report_layout
from semibench.report.sensitivity import swept_tasks

# `semibench report --partial` finds runs through semibench.report.layout: it must name the
# files this workflow writes
if RUN_DIR != report_layout.RUN_DIR.format(
    benchmark=BENCHMARK,
    task="{task}",
    num_labels="{num_labels}",
    algorithm="{algorithm}",
    seed="{seed}",
) or str(rules.train.benchmark) != report_layout.TRAIN_BENCHMARK.format(
    benchmark=BENCHMARK,
    task="{task}",
    num_labels="{num_labels}",
    algorithm="{algorithm}",
    seed="{seed}",
):
    sys.exit("SemiBench: semibench/report/layout.py does not match workflow/rules (run dirs)")

DOMAINS = {t: PLAN["tasks"][t]["domain"] for t in TASK_NAMES}
REPORT_GROUPS = report_layout.groups(DOMAINS.values())
# statistics groups whose grid allows a Friedman test get a critical-difference diagram
CD_GROUPS = report_layout.testable_groups(GRID, DOMAINS)
# tasks with swept runs (semibench.sweep) get a sensitivity figure
SWEPT_TASKS = swept_tasks({t: [a for task, _, a, _ in GRID if task == t] for t in TASK_NAMES})


# the configured runs, for "n of N runs" and the missing cells; each task's registered task
# and long-tailed setting, which USB's published rows match (semibench.variants.task_settings)
TASK_SETTINGS = {
    t: {"base": PLAN["tasks"][t]["base"], "long_tailed": PLAN["tasks"][t]["long_tailed"]}
    for t in TASK_NAMES
}
EXPECTED_RUNS = shlex.quote(
    json.dumps({"domains": DOMAINS, "runs": GRID, "tasks": TASK_SETTINGS}, sort_keys=True)
)


rule aggregate:
    input:
        metrics=all_metrics(),
        curves=[run_file(t, n, a, s, "curve.csv") for t, n, a, s in GRID],
        benchmarks=[
            report_layout.train_benchmark(BENCHMARK, t, n, a, s) for t, n, a, s in GRID
        ],
    output:
        runs=report(
            f"{TABLES_DIR}/runs.csv",
            caption="../report/runs.rst",
            category="5. Runs and cost",
        ),
        grid=f"{TABLES_DIR}/grid.csv",
        curves=f"{TABLES_DIR}/curves.csv",
        per_class=f"{TABLES_DIR}/per_class.csv",
        summary=f"{TABLES_DIR}/summary.csv",
        markdown=f"{TABLES_DIR}/summary.md",
        paper=report(
            expand(f"{TABLES_DIR}/paper_{{group}}.csv", group=REPORT_GROUPS),
            caption="../report/paper.rst",
            category="1. Results",
        ),
        paper_text=expand(
            f"{TABLES_DIR}/paper_{{group}}.{{ext}}", group=REPORT_GROUPS, ext=["md", "tex"]
        ),
        statistics=report(
            f"{TABLES_DIR}/statistics.csv",
            caption="../report/statistics.rst",
            category="2. Statistics",
        ),
        ranks=f"{TABLES_DIR}/statistics_ranks.csv",
        sensitivity=f"{TABLES_DIR}/sensitivity.csv",
        posthoc=f"{TABLES_DIR}/statistics_posthoc.csv",
        comparisons=report(
            f"{TABLES_DIR}/comparisons.csv",
            caption="../report/comparisons.rst",
            category="2. Statistics",
        ),
        cost=report(
            f"{TABLES_DIR}/cost.csv",
            caption="../report/cost_table.rst",
            category="5. Runs and cost",
        ),
        published=report(
            f"{TABLES_DIR}/usb_published.csv",
            caption="../report/published.rst",
            category="6. Published vs ours",
        ),
    conda:
        "../../envs/semibench.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.runs),
        published=PUBLISHED,
        grid=EXPECTED_RUNS,
        title=f"'SemiBench: {BENCHMARK}'",
        show=" ".join(config["metrics"]),
    log:
        f"logs/aggregate/{BENCHMARK}.log",
    shell:
        "semibench aggregate --metrics {input.metrics} --curves {input.curves}"
        " --benchmarks {input.benchmarks} --grid-json {params.grid}"
        " --out-dir {params.out_dir} --published {params.published}"
        " --title {params.title} --show-metrics {params.show} 2> {log}"


rule figures:
    input:
        runs=rules.aggregate.output.runs,
        grid=rules.aggregate.output.grid,
        curves=rules.aggregate.output.curves,
        per_class=rules.aggregate.output.per_class,
    output:
        bars=report(
            expand(f"{FIGURES_DIR}/{{task}}.png", task=TASK_NAMES),
            caption="../report/errors.rst",
            category="3. Per task",
        ),
        curves=report(
            expand(f"{FIGURES_DIR}/{{task}}_curves.png", task=TASK_NAMES),
            caption="../report/curves.rst",
            category="3. Per task",
        ),
        pseudolabels=report(
            expand(f"{FIGURES_DIR}/{{task}}_pseudolabels.png", task=TASK_NAMES),
            caption="../report/pseudolabels.rst",
            category="4. Diagnostics",
        ),
        per_class=report(
            expand(f"{FIGURES_DIR}/{{task}}_per_class.png", task=TASK_NAMES),
            caption="../report/per_class.rst",
            category="4. Diagnostics",
        ),
        sensitivity=report(
            expand(f"{FIGURES_DIR}/{{task}}_sensitivity.png", task=SWEPT_TASKS),
            caption="../report/sensitivity.rst",
            category="3. Per task",
        ),
        cd=report(
            expand(f"{FIGURES_DIR}/cd_{{group}}.png", group=CD_GROUPS),
            caption="../report/cd.rst",
            category="2. Statistics",
        ),
        cost=report(
            f"{FIGURES_DIR}/cost_pareto.png",
            caption="../report/cost.rst",
            category="5. Runs and cost",
        ),
    conda:
        "../../envs/semibench.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.cost),
        cd_groups=" ".join(CD_GROUPS),
    log:
        f"logs/figures/{BENCHMARK}.log",
    shell:
        "semibench figures --runs {input.runs} --grid {input.grid} --curves {input.curves}"
        " --per-class {input.per_class} --cd-groups {params.cd_groups}"
        " --out-dir {params.out_dir} 2> {log}"


rule report:
    input:
        runs=rules.aggregate.output.runs,
        grid=rules.aggregate.output.grid,
        figures=rules.figures.output,
    output:
        html=REPORT_HTML,
    params:
        config_json=lambda wildcards: shlex.quote(json.dumps(config, sort_keys=True)),
        title=f"'SemiBench: {BENCHMARK}'",
        published=PUBLISHED,
        show=" ".join(config["metrics"]),
    conda:
        "../../envs/semibench.yaml"
    log:
        f"logs/report/{BENCHMARK}.log",
    shell:
        "semibench report --runs {input.runs} --grid {input.grid} --figures {input.figures}"
        " --out {output.html} --title {params.title} --config-json {params.config_json}"
        " --published {params.published} --show-metrics {params.show} 2> {log}"
