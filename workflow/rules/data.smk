rule fetch:
    output:
        manifest="data/raw/{task}/manifest.json",
    conda:
        "../../envs/semibench.yaml"
    log:
        "logs/fetch/{task}.log",
    benchmark:
        "logs/benchmarks/fetch/{task}.tsv"
    shell:
        "semibench fetch --task {wildcards.task} --raw-dir data/raw/{wildcards.task} 2> {log}"


# A task declared with `from_files`: fetch lists and checksums the user's files where they are.
rule fetch_files:
    input:
        file_task_inputs,
    output:
        manifest="data/raw/{task}/manifest.json",
    params:
        declaration=file_task_declaration,
    wildcard_constraints:
        task=FILE_TASK_PATTERN,
    conda:
        "../../envs/semibench.yaml"
    log:
        "logs/fetch/{task}.log",
    benchmark:
        "logs/benchmarks/fetch/{task}.tsv"
    shell:
        "semibench fetch --task {wildcards.task} --raw-dir data/raw/{wildcards.task} 2> {log}"


ruleorder: fetch_files > fetch


rule prepare:
    input:
        manifest="data/raw/{task}/manifest.json",
    output:
        data="data/prepared/{task}/data.npz",
        meta="data/prepared/{task}/meta.json",
    conda:
        "../../envs/semibench.yaml"
    log:
        "logs/prepare/{task}.log",
    benchmark:
        "logs/benchmarks/prepare/{task}.tsv"
    shell:
        "semibench prepare --task {wildcards.task} --raw-dir data/raw/{wildcards.task}"
        " --out-dir data/prepared/{wildcards.task} 2> {log}"


rule split:
    input:
        meta="data/prepared/{task}/meta.json",
        data="data/prepared/{task}/data.npz",
    output:
        "data/splits/{task}/{num_labels}/seed{seed}.json",
    conda:
        "../../envs/semibench.yaml"
    log:
        "logs/split/{task}/{num_labels}/seed{seed}.log",
    shell:
        "semibench split --task {wildcards.task} --prepared data/prepared/{wildcards.task}"
        " --num-labels {wildcards.num_labels} --seed {wildcards.seed} --out {output} 2> {log}"


# A long-tailed split (USB's classic_cv_imb) of the same prepared data: num_labels is N1, the
# labelled head count, and the tag names the setting (semibench.splits_lt, e.g. lt_l100_u100_m3000).
rule split_long_tailed:
    input:
        meta="data/prepared/{task}/meta.json",
        data="data/prepared/{task}/data.npz",
    output:
        "data/splits/{task}/{lt_tag}/{num_labels}/seed{seed}.json",
    wildcard_constraints:
        lt_tag="lt_[a-z0-9_]+",
    conda:
        "../../envs/semibench.yaml"
    log:
        "logs/split/{task}/{lt_tag}/{num_labels}/seed{seed}.log",
    shell:
        "semibench split --task {wildcards.task} --prepared data/prepared/{wildcards.task}"
        " --num-labels {wildcards.num_labels} --seed {wildcards.seed}"
        " --long-tailed {wildcards.lt_tag} --out {output} 2> {log}"


# Optional, NLP only: USB's strong text view (en-de-en / en-ru-en back-translations, MarianMT).
# `backtranslation: {weights_dir: DIR, fallback: token-edit}` in the config chooses where the
# Helsinki-NLP models are and whether missing models fall back to the token-edit stand-in.
rule backtranslate:
    input:
        data="data/prepared/{task}/data.npz",
        meta="data/prepared/{task}/meta.json",
    output:
        texts="data/backtranslated/{task}/backtranslations.npz",
        info="data/backtranslated/{task}/info.json",
    params:
        weights_dir=lookup(dpath="backtranslation/weights_dir", within=config, default=""),
        fallback=lookup(dpath="backtranslation/fallback", within=config, default="none"),
    resources:
        gpu=min(1, config["gpus_per_job"]),
    conda:
        "../../envs/semibench.yaml"
    log:
        "logs/backtranslate/{task}.log",
    benchmark:
        "logs/benchmarks/backtranslate/{task}.tsv"
    shell:
        "semibench backtranslate --task {wildcards.task} --prepared data/prepared/{wildcards.task}"
        " --out-dir data/backtranslated/{wildcards.task} --weights-dir '{params.weights_dir}'"
        " --fallback {params.fallback} 2> {log}"
