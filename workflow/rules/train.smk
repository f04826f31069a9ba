rule train:
    input:
        unpack(backtranslations),
        meta="data/prepared/{task}/meta.json",
        data="data/prepared/{task}/data.npz",
        split=split_file,
    output:
        metrics=f"{RUN_DIR}/metrics.json",
        curve=f"{RUN_DIR}/curve.csv",
    params:
        run=run_settings,
        out_dir=RUN_DIR,
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
        "semibench train --run-config {params.run} --prepared data/prepared/{wildcards.task}"
        " --split {input.split} --out-dir {params.out_dir} --threads {threads}"
        " --jobs-per-gpu {params.jobs_per_gpu}"
        " --backtranslations '{params.backtranslations}' 2> {log}"
