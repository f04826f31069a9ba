# Rule figures (workflow/rules/report.smk): the benchmark's tables -> the critical-difference
# diagrams and the cost figure.
from semibench.report import jobs

sm = snakemake  # noqa: F821 (Snakemake's script directive defines it)
with jobs.job(sm.log[0], "figures"):
    jobs.group_figures(sm.input.runs, sm.input.grid, sm.params.out_dir, sm.params.cd_groups)
