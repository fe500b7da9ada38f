"""Prompt templates: ``prompts/<name>/v<N>.jinja2``, or your own, rendered strictly.

A missing variable is an error (``StrictUndefined``). Every rendered prompt carries the hash of
its template so rows record exactly which text produced them.

``generation.prompts_dir`` holds templates that replace built-in ones of the same name:
``<dir>/<name>.jinja2`` or ``<dir>/<name>/v<N>.jinja2`` (the highest N). ``resolve_prompts``
reads them once, on the launching machine; the texts travel with the job, so workers never
read the directory. A template must use exactly the variables its stage provides
(``VARIABLES``): one it does not use, or one the stage does not provide, is an error at start,
as is an unknown template name in the directory.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass

import jinja2
import jinja2.meta

from pipeline.resources import resource_dir

PROBLEM_TEMPLATES = {"code": "problem_code", "math": "problem_math"}
ATTEMPT_TEMPLATES = {"code": "attempt_code", "math": "attempt_math"}
# What each stage renders its template with.
VARIABLES = {
    "problem_code": {"topic", "difficulty", "index"},
    "problem_math": {"topic", "difficulty", "index"},
    "attempt_code": {"statement", "entry_point"},
    "attempt_math": {"statement"},
}


class PromptError(ValueError):
    """A template that cannot be used, as one line."""


@dataclass(frozen=True)
class Template:
    name: str
    version: int  # 0: a template of generation.prompts_dir
    source: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.name}/v{self.version}" if self.version else f"{self.name}/custom"

    def render(self, **variables) -> str:
        return _compiled(self.source).render(**variables).strip() + "\n"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@functools.cache
def _compiled(source: str) -> jinja2.Template:
    return _environment().from_string(source)


def _versions(folder) -> list[int]:
    return sorted(int(p.stem[1:]) for p in folder.glob("v*.jinja2") if p.stem[1:].isdigit())


@functools.cache
def load_template(name: str, version: int | None = None) -> Template:
    """The given version of a built-in template, or its latest one."""
    folder = resource_dir("prompts") / name
    versions = _versions(folder)
    if not versions:
        raise FileNotFoundError(f"no prompt template named '{name}'")
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        raise FileNotFoundError(f"prompt '{name}' has no version {chosen}")
    return Template(name, chosen, (folder / f"v{chosen}.jinja2").read_text())


def _read(path: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return handle.read().decode("utf-8")


def _custom_sources(folder: str) -> dict[str, str]:
    """name -> template text of every template in ``folder`` (a local path or any URL)."""
    from apache_beam.io.filesystems import FileSystems

    pattern = [FileSystems.join(folder, "*.jinja2"), FileSystems.join(folder, "*", "v*.jinja2")]
    found: dict[str, tuple[int, str]] = {}
    for result in FileSystems.match(pattern):
        for meta in result.metadata_list:
            rel = meta.path[len(folder.rstrip("/")) + 1 :].replace(os.sep, "/")
            name, _, leaf = rel.partition("/")
            version = int(leaf[1:-7]) if leaf and leaf[1:-7].isdigit() else 0
            name = name.removesuffix(".jinja2")
            if name not in VARIABLES:
                known = ", ".join(VARIABLES)
                raise PromptError(
                    f"generation.prompts_dir: unknown template {rel!r}; known: {known}"
                )
            if name not in found or version > found[name][0]:
                found[name] = (version, meta.path)
    return {name: _read(path) for name, (_, path) in found.items()}


def check_template(template: Template) -> None:
    """PromptError when ``template`` does not fit its stage (syntax, variables)."""
    try:
        used = jinja2.meta.find_undeclared_variables(_environment().parse(template.source))
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"prompt {template.label}: line {exc.lineno}: {exc.message}") from None
    provided = VARIABLES[template.name]
    if used - provided:
        unknown = ", ".join(sorted(used - provided))
        raise PromptError(
            f"prompt {template.label} uses {unknown}, which its stage does not provide "
            f"(it provides {', '.join(sorted(provided))})"
        )
    if provided - used:
        raise PromptError(
            f"prompt {template.label} does not use {', '.join(sorted(provided - used))}"
        )


def resolve_prompts(cfg) -> dict[str, Template]:
    """The template of every stage for config ``cfg``: built-in, or from ``prompts_dir``."""
    t = cfg.teacher
    return _resolve(cfg.generation.prompts_dir, t.response_format, t.system_prompt or "")


@functools.cache
def _resolve(prompts_dir: str | None, response_format: str, system: str) -> dict[str, Template]:
    custom = {}
    if prompts_dir:
        try:
            custom = _custom_sources(prompts_dir)
        except OSError as exc:
            raise PromptError(f"generation.prompts_dir: cannot read {prompts_dir}: {exc}") from None
        if not custom:
            raise PromptError(f"generation.prompts_dir: no *.jinja2 template in {prompts_dir}")
    templates = {}
    for name in VARIABLES:
        template = Template(name, 0, custom[name]) if name in custom else load_template(name)
        check_template(template)
        templates[name] = template
    if response_format == "json_object":
        for name in PROBLEM_TEMPLATES.values():
            if "json" not in (templates[name].source + system).lower():
                raise PromptError(
                    f"teacher.response_format json_object: prompt {templates[name].label} must "
                    "contain the word JSON (DashScope and OpenAI refuse JSON mode without it)"
                )
    return templates


def prompt_hashes(templates: dict[str, Template]) -> dict[str, str]:
    """Hash of every prompt template used by a run, for the manifest."""
    return {t.label: t.hash for t in templates.values()}
