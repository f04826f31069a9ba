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
