# The report: every table, figure and the page, from exactly the files the train jobs declare
# (metrics.json, curve.csv, the Snakemake benchmark file) and nothing else. Logic lives in
# semibench.report; report() captions are in workflow/report/*.rst.


include: "report_common.smk"


# The report's jobs are Snakemake scripts (workflow/scripts/) that hand their file lists to
# semibench.report.jobs as Python lists: no command line, so no sweep is too large for them.
rule aggregate_task:
    input:
        unpack(task_run_files),
    output:
        runs=f"{TASK_TABLES}/runs.csv",
        grid=f"{TASK_TABLES}/grid.csv",
        curves=f"{TASK_TABLES}/curves.csv",
        per_class=f"{TASK_TABLES}/per_class.csv",
    params:
        # the task's configured runs: a change to them (and only to them) reads it again
        runs=lambda wildcards: TASK_RUNS[wildcards.task],
        domain=lambda wildcards: DOMAINS[wildcards.task],
        out_dir=lambda wildcards, output: os.path.dirname(output.runs),
    wildcard_constraints:
        task=one_of(TASK_NAMES),
    conda:
        "../../envs/semibench.yaml"
    log:
        f"logs/aggregate/{BENCHMARK}/{{task}}.log",
    script:
        "../scripts/aggregate_task.py"


rule aggregate:
    input:
        runs=task_part("runs.csv"),
        grid=task_part("grid.csv"),
        curves=task_part("curves.csv"),
        per_class=task_part("per_class.csv"),
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
    params:
        task_dirs=lambda wildcards, input: [os.path.dirname(f) for f in input.runs],
        out_dir=lambda wildcards, output: os.path.dirname(output.runs),
        published=config["published_reference"],
        title=f"SemiBench: {BENCHMARK}",
        show=config["metrics"],
        tasks=TASK_SETTINGS,
    conda:
        "../../envs/semibench.yaml"
    log:
        f"logs/aggregate/{BENCHMARK}.log",
    script:
        "../scripts/aggregate.py"


rule figures_task:
    input:
        runs=f"{TASK_TABLES}/runs.csv",
        grid=f"{TASK_TABLES}/grid.csv",
        curves=f"{TASK_TABLES}/curves.csv",
        per_class=f"{TASK_TABLES}/per_class.csv",
    output:
        **task_figure_outputs(swept=False),
    params:
        tables=lambda wildcards, input: os.path.dirname(input.runs),
        out_dir=lambda wildcards, output: os.path.dirname(output.bars),
        algorithms=ALGORITHM_LABELS,
    wildcard_constraints:
        task=one_of(UNSWEPT_TASKS),
    conda:
        "../../envs/semibench.yaml"
    log:
        f"logs/figures/{BENCHMARK}/{{task}}.log",
    script:
        "../scripts/task_figures.py"


use rule figures_task as figures_task_swept with:
    output:
        **task_figure_outputs(swept=True),
    wildcard_constraints:
        task=one_of(SWEPT_TASKS),


rule figures:
    input:
        runs=rules.aggregate.output.runs,
        grid=rules.aggregate.output.grid,
    output:
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
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.cost),
        cd_groups=CD_GROUPS,
    conda:
        "../../envs/semibench.yaml"
    log:
        f"logs/figures/{BENCHMARK}.log",
    script:
        "../scripts/figures.py"


# every figure, in the order of semibench.report.figures.write_figures
FIGURES = [
    *[f for t in TASK_NAMES for f in task_figures(
        [t], [*report_layout.TASK_FIGURES, *([report_layout.SENSITIVITY_FIGURE]
                                             if t in SWEPT_TASKS else [])])],
    *rules.figures.output,
]


rule report:
    input:
        runs=rules.aggregate.output.runs,
        grid=rules.aggregate.output.grid,
        figures=FIGURES,
    output:
        html=REPORT_HTML,
        # a large sweep's: a page per task and the figures beside the index page
        pages=[f"{REPORT_DIR}/{report_layout.TASK_PAGE.format(task=t)}" for t in TASK_NAMES]
        if SPLIT_PAGES else [],
        figures=[f"{REPORT_DIR}/{report_layout.PAGE_FIGURES_DIR}/{os.path.basename(f)}"
                 for f in FIGURES] if SPLIT_PAGES else [],
    params:
        config_json=lambda wildcards: json.dumps(config, sort_keys=True),
        title=f"SemiBench: {BENCHMARK}",
        published=config["published_reference"],
        show=config["metrics"],
        split=SPLIT_PAGES,
    conda:
        "../../envs/semibench.yaml"
    log:
        f"logs/report/{BENCHMARK}.log",
    script:
        "../scripts/report.py"
