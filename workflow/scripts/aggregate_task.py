# Rule aggregate_task (workflow/rules/report.smk): one task's runs -> its part of the tables.
# The file lists reach semibench as Python lists (Snakemake's `script:`), never a command line.
from semibench.report import jobs

sm = snakemake  # noqa: F821 (Snakemake's script directive defines it)
with jobs.job(sm.log[0], f"aggregate ({sm.wildcards.task})"):
    jobs.aggregate_task(sm.wildcards.task, sm.params.domain, sm.params.runs, sm.input.metrics,
                        sm.input.curves, sm.input.benchmarks, sm.params.out_dir)
