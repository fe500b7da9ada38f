"""Versioned prompt templates under ``prompts/<name>/v<N>.jinja2``, rendered strictly.

A missing variable is an error (``StrictUndefined``). Every rendered prompt carries the hash of
its template so rows record exactly which text produced them.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import jinja2

from pipeline.resources import resource_dir

PROBLEM_TEMPLATES = {"code": "problem_code", "math": "problem_math"}
ATTEMPT_TEMPLATES = {"code": "attempt_code", "math": "attempt_math"}


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    source: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def render(self, **variables) -> str:
        return _compiled(self.source).render(**variables).strip() + "\n"


@functools.cache
def _compiled(source: str) -> jinja2.Template:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    return env.from_string(source)


@functools.cache
def load_template(name: str, version: int | None = None) -> Template:
    """The given version of a template, or its latest one."""
    folder = resource_dir("prompts") / name
    versions = sorted(int(p.stem[1:]) for p in folder.glob("v*.jinja2") if p.stem[1:].isdigit())
    if not versions:
        raise FileNotFoundError(f"no prompt template named '{name}'")
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        raise FileNotFoundError(f"prompt '{name}' has no version {chosen}")
    return Template(name, chosen, (folder / f"v{chosen}.jinja2").read_text())


def prompt_hashes() -> dict[str, str]:
    """Hash of every prompt template used by a run, for the manifest."""
    names = [*PROBLEM_TEMPLATES.values(), *ATTEMPT_TEMPLATES.values()]
    return {f"{n}/v{load_template(n).version}": load_template(n).hash for n in names}
