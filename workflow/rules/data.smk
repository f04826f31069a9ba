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
