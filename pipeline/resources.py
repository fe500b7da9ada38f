"""Locate the files that ship with the package (prompts/, schemas/).

In a built wheel they live inside the package (``pipeline/prompts``, ``pipeline/schemas``); in a
source checkout they are the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"synthgen resource folder '{name}' is missing from the installation")
