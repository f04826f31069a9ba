# SemiBench: fetch -> prepare -> split -> train -> aggregate -> figures -> report.
# The config is validated (schema + registries) before any job is scheduled.
import os

from snakemake.utils import min_version

min_version("9.0")


# The offline default, unless --configfile is given (Snakemake would otherwise deep-merge the
# two, e.g. adding the default tasks to config/usb.yaml).
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        REPORT_HTML,
    default_target: True
