# SemiBench: fetch -> prepare -> split -> train -> aggregate -> figures -> report.
# The config is validated (schema + registries) before any job is scheduled.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        REPORT_HTML,
    default_target: True
