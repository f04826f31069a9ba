"""mkdocs hook: add the generated reference pages (config keys, registries, hyper-parameters,
command line) to the site at build time, from ``semibench.docs.reference_pages``. Nothing is
written into docs/, so nothing generated is committed and nothing can go stale."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File, Files


def on_files(files: Files, config) -> Files:
    root = Path(config.config_file_path).resolve().parent
    # document the checkout being built, whatever copy of semibench the environment holds
    sys.path.insert(0, str(root / "src"))
    from semibench.docs import reference_pages

    for rel, text in reference_pages(root).items():
        files.append(File.generated(config, rel, content=text))
    return files
