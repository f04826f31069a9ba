rule aggregate:
    input:
        metrics=all_metrics(),
    output:
        runs=f"{TABLES_DIR}/runs.csv",
        summary=f"{TABLES_DIR}/summary.csv",
        markdown=f"{TABLES_DIR}/summary.md",
        published=f"{TABLES_DIR}/usb_published.csv",
    conda:
        "../../envs/semibench.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.runs),
        published=PUBLISHED,
    log:
        f"logs/aggregate/{BENCHMARK}.log",
    shell:
        "semibench aggregate --metrics {input.metrics} --out-dir {params.out_dir}"
        " --published {params.published} 2> {log}"


rule figures:
    input:
        runs=f"{TABLES_DIR}/runs.csv",
        curves=[run_file(t, n, a, s, "curve.csv") for t, n, a, s in GRID],
    output:
        bars=report(
            expand(f"{FIGURES_DIR}/{{task}}.png", task=TASK_NAMES),
            caption="../report/errors.rst",
            category="Test error",
        ),
        curves=report(
            expand(f"{FIGURES_DIR}/{{task}}_curves.png", task=TASK_NAMES),
            caption="../report/curves.rst",
            category="Learning curves",
        ),
    conda:
        "../../envs/semibench.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.bars[0]),
    log:
        f"logs/figures/{BENCHMARK}.log",
    shell:
        "semibench figures --runs {input.runs} --out-dir {params.out_dir} 2> {log}"


rule report:
    input:
        runs=f"{TABLES_DIR}/runs.csv",
        markdown=f"{TABLES_DIR}/summary.md",
        figures=rules.figures.output.bars + rules.figures.output.curves,
    output:
        html=REPORT_HTML,
    params:
        config_json=lambda wildcards: shlex.quote(json.dumps(config, sort_keys=True)),
        figures_dir=lambda wildcards, input: os.path.dirname(input.figures[0]),
        title=f"'SemiBench: {BENCHMARK}'",
        published=PUBLISHED,
    conda:
        "../../envs/semibench.yaml"
    log:
        f"logs/report/{BENCHMARK}.log",
    shell:
        "semibench report --runs {input.runs} --summary-md {input.markdown}"
        " --figures-dir {params.figures_dir} --out {output.html} --title {params.title}"
        " --config-json {params.config_json} --published {params.published} 2> {log}"
