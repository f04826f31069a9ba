# Rules figures_task and sensitivity (workflow/rules/report.smk): one task's part of the tables
# -> its figures.
from semibench.report import jobs

sm = snakemake  # noqa: F821 (Snakemake's script directive defines it)
with jobs.job(sm.log[0], f"figures ({sm.wildcards.task})"):
    jobs.task_figures(sm.wildcards.task, sm.params.tables, sm.params.out_dir,
                      sm.params.algorithms)
