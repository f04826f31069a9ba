# Rule report (workflow/rules/report.smk): the tables and figures -> the page, or for a large
# sweep the index page, a page per task and the figures beside them.
from semibench.report import jobs

sm = snakemake  # noqa: F821 (Snakemake's script directive defines it)
with jobs.job(sm.log[0], "report"):
    jobs.report(sm.input.runs, sm.input.grid, sm.input.figures, sm.output.html, sm.params.title,
                sm.params.config_json, sm.params.published, sm.params.show, sm.params.split)
