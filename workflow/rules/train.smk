rule train:
    input:
        unpack(backtranslations),
        unpack(prepared_inputs),  # a variant's: its registered task's (common.smk base_task)
        split=split_file,
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        curve=f"{RUN_DIR}/curve.csv",
    params:
        run=run_settings,
        out_dir=RUN_DIR,
        # derived from the input (not a new param of existing runs): the registered task's data
        prepared=lambda wildcards, input: os.path.dirname(input.meta),
        backtranslations=lambda wildcards, input: input.get("backtranslations", ""),
        jobs_per_gpu=config["jobs_per_gpu"],
    threads: config["threads"]
    resources:
        gpu=config["gpus_per_job"],
    conda:
        "../../envs/semibench.yaml"
    log:
        f"logs/train/{BENCHMARK}/{{task}}/{{num_labels}}/{{algorithm}}/seed{{seed}}.log",
    benchmark:
        f"logs/benchmarks/train/{BENCHMARK}/{{task}}/{{num_labels}}/{{algorithm}}/seed{{seed}}.tsv"
    shell:
        "semibench train --run-config {params.run} --prepared {params.prepared}"
        " --split {input.split} --out-dir {params.out_dir} --threads {threads}"
        " --jobs-per-gpu {params.jobs_per_gpu}"
        " --backtranslations '{params.backtranslations}' 2> {log}"
