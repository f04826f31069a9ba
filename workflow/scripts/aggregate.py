# Rule aggregate (workflow/rules/report.smk): the tasks' parts -> the benchmark's tables.
from semibench.report import jobs

sm = snakemake  # noqa: F821 (Snakemake's script directive defines it)
with jobs.job(sm.log[0], "aggregate"):
    jobs.aggregate(sm.params.task_dirs, sm.params.out_dir, sm.params.published,
                   sm.params.title, sm.params.show, sm.params.tasks)
