"""Run configuration: one YAML file, validated before the pipeline graph exists.

``load_config(path, overrides)`` returns a frozen ``Config`` or raises ``ConfigError`` with a
one-line message naming the offending key. Unknown keys, wrong types, out-of-range values and
missing files are all errors. The API key itself never appears here: only the *name* of the
environment variable that holds it.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.records import stable_hash

# Benchmarks that ship in PyPI packages; pipeline.stages.decontam knows how to load each.
BUILTIN_BENCHMARKS = ("humaneval", "gsm8k", "aime2025")


class ConfigError(ValueError):
    """A configuration problem, reported as one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunConfig(_Section):
    seed: int = 0
    problems_per_combo: int = Field(
        4, ge=1, le=1_000_000, description="per domain x topic x difficulty"
    )
    seeds_file: str | None = Field(None, description="JSONL of seeds instead of the combinations")


class Price(_Section):
    prompt: float = Field(ge=0.0, description="USD per million prompt tokens")
    completion: float = Field(ge=0.0, description="USD per million completion tokens")


# Request fields synthgen sets itself (the token limit, sampling and reasoning have keys of
# their own); extra_body may not override them.
_OWN_FIELDS = {
    "model", "messages", "stream", "stream_options", "seed", "max_tokens",
    "max_completion_tokens", "temperature", "top_p", "reasoning_effort", "response_format",
}  # fmt: skip


class TeacherConfig(_Section):
    base_url: str = Field("builtin", description="'builtin' or an OpenAI-compatible base URL")
    model: str = "synthgen-builtin-teacher"
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    concurrency: int = Field(16, ge=1, le=1024)
    # null omits the parameter (OpenAI's reasoning models refuse any but the default).
    temperature: float | None = Field(0.8, ge=0.0, le=2.0)
    top_p: float | None = Field(1.0, gt=0.0, le=1.0)
    # Room for long thinking (OpenAI advises reserving >= 25k tokens for reasoning).
    max_tokens: int = Field(32768, ge=16, le=1_000_000)
    token_limit_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # Minutes, not seconds: a long thinking answer takes that long (Curator waits 10 min).
    timeout_s: float = Field(600.0, gt=0.0, le=7200.0)
    stream: bool = Field(False, description="server-sent events (DashScope thinking needs it)")
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="provider fields sent as they are, e.g. enable_thinking"
    )
    system_prompt: str | None = Field(None, description="a system message before every prompt")
    response_format: Literal["none", "json_object", "json_schema"] = Field(
        "none", description="structured output for the problem requests"
    )
    fail_fast: int = Field(
        5, ge=0, le=1000, description="stop when this many first requests fail alike; 0 = never"
    )
    retries: int = Field(4, ge=0, le=20)
    backoff_s: float = Field(
        0.5, ge=0.0, le=60.0, description="first retry delay, doubled each retry"
    )
    max_backoff_s: float = Field(30.0, ge=0.0, le=600.0)
    # Quotas and caps, shared by the teacher stages of one worker process; each of
    # ``workers`` processes gets 1/workers of them (Beam has no cross-worker counter).
    rpm: int = Field(0, ge=0, description="requests per minute; 0 = no limit")
    tpm: int = Field(0, ge=0, description="prompt + completion tokens per minute; 0 = no limit")
    workers: int = Field(1, ge=1, le=100_000, description="worker processes sharing the quotas")
    max_requests: int = Field(0, ge=0, description="hard cap on requests sent; 0 = none")
    max_total_tokens: int = Field(0, ge=0, description="hard cap on billed tokens; 0 = none")
    max_cost_usd: float = Field(0.0, ge=0.0, description="hard cap on estimated cost; 0 = none")
    prices: dict[str, Price] = Field(default_factory=dict, description="USD per 1M tokens by model")
    cache_dir: str | None = Field(None, description="response cache; default ~/.cache/synthgen")
    cache_mode: Literal["on", "read-only", "refresh", "off"] = "on"
    # A cut answer is kept so that a re-run at the same max_tokens does not pay for it again.
    cache_truncated: bool = Field(True, description="also cache finish_reason=length answers")
    progress_s: float = Field(10.0, gt=0.0, description="seconds between progress lines")
    # Built-in teacher only: how often it plants defects, and its simulated latency / faults.
    builtin_defect_scale: float = Field(1.0, ge=0.0, le=10.0)
    builtin_latency: str = "none"
    builtin_faults: str = ""
    builtin_style: Literal[
        "json", "reasoning_content", "reasoning", "think", "think_open", "plain", "mixed"
    ] = "mixed"
    builtin_provider: Literal["none", "openai-reasoning", "dashscope-thinking"] = "none"

    @field_validator("cache_mode", mode="before")
    @classmethod
    def _yaml_on_off(cls, v):
        # YAML 1.1 reads a bare on / off as a boolean.
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("extra_body")
    @classmethod
    def _extra_body_fields(cls, v):
        taken = sorted(set(v) & _OWN_FIELDS)
        if taken:
            raise ValueError(f"{', '.join(taken)} is set by synthgen itself, not in extra_body")
        return v

    @model_validator(mode="after")
    def _priced_when_capped(self):
        if self.max_cost_usd and self.model not in self.prices:
            raise ValueError(f"max_cost_usd needs prices.{self.model} (USD per 1M tokens)")
        return self


class GenerationConfig(_Section):
    domains: tuple[Literal["code", "math"], ...] = ("code", "math")
    topics: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "code": ("strings", "lists", "number theory"),
            "math": ("arithmetic", "algebra", "geometry"),
        }
    )
    difficulties: tuple[str, ...] = ("easy", "medium", "hard")
    attempts: int = Field(4, ge=1, le=64)
    prompts_dir: str | None = Field(
        None, description="your templates (<name>.jinja2) replacing built-in ones of that name"
    )

    @field_validator("domains")
    @classmethod
    def _domains_unique(cls, v):
        if not v or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list of distinct domains")
        return v

    @model_validator(mode="after")
    def _topics_for_domains(self):
        for domain in self.domains:
            if not self.topics.get(domain):
                raise ValueError(f"topics.{domain}: needs at least one topic")
        if not self.difficulties:
            raise ValueError("difficulties: needs at least one difficulty")
        return self


class VerifyConfig(_Section):
    timeout_s: float = Field(5.0, gt=0.0, le=600.0)
    memory_mb: int = Field(512, ge=32, le=65536)
    max_output_kb: int = Field(256, ge=1, le=1 << 20)
    max_file_mb: int = Field(16, ge=0, le=1 << 14)
    max_processes: int = Field(16, ge=1, le=4096)
    workers: int = Field(0, ge=0, le=256, description="parallel sandbox runs; 0 = CPU count")
    math_rel_tol: float = Field(1e-6, ge=0.0, le=0.1)
    require_isolation: Literal["process", "process+uid", "namespaces", "namespaces+uid"] | None = (
        Field(None, description="refuse to run below this sandbox level (None: the best there is)")
    )


class LanguageConfig(_Section):
    allowed: tuple[str, ...] = ("en",)
    min_prob: float = Field(0.8, ge=0.0, le=1.0)


class DedupConfig(_Section):
    enabled: bool = True
    threshold: float = Field(0.8, gt=0.0, le=1.0)
    num_perm: int = Field(128, ge=16, le=1024)
    shingle_size: int = Field(5, ge=1, le=32)
    cc_rounds: int = Field(
        12, ge=1, le=64, description="large-star / small-star rounds of the distributed clustering"
    )
    solution: bool = Field(
        False, description="also link problems whose reference solutions are near duplicates"
    )
    against: tuple[str, ...] = Field(
        (), description="earlier synthgen outputs (directories) or JSONL/Parquet files / globs"
    )
    against_field: str = Field("text", description="text field of `against` files")

    @field_validator("against")
    @classmethod
    def _against_exists(cls, v):
        for spec in v:
            if "://" not in spec and not glob.glob(spec):
                raise ValueError(f"'{spec}' matches no file or directory")
        return v


class DecontamConfig(_Section):
    enabled: bool = True
    ngram: int = Field(13, ge=4, le=100)
    benchmarks: tuple[str, ...] = Field(
        ("humaneval",), description="built-in names or JSONL/Parquet paths"
    )
    field: str = Field("text", description="text field of benchmark files given as paths")

    @field_validator("benchmarks")
    @classmethod
    def _benchmarks_exist(cls, v):
        for item in v:
            if item not in BUILTIN_BENCHMARKS and not Path(item).is_file():
                raise ValueError(
                    f"'{item}' is neither a built-in benchmark ({', '.join(BUILTIN_BENCHMARKS)}) "
                    "nor an existing file"
                )
        return v


class TokensConfig(_Section):
    tokenizer: str = Field(
        "qwen2",
        description="'qwen2' (offline default), a tokenizer.json path or URL, or a HF hub name",
    )
    chat_template: str = Field(
        "auto",
        description="'auto' (the tokenizer's own, else ChatML), 'chatml', a Jinja file or text",
    )
    max_length: int = Field(32768, ge=16, le=1 << 20)  # room for a long thinking trace
    pack: int | None = Field(
        None, ge=64, le=1 << 20, description="pack samples into sequences of this many tokens"
    )
    reasoning: Literal["keep", "drop"] = Field(
        "keep", description="the teacher's thinking in the assistant turn, or the answer only"
    )


class OutputConfig(_Section):
    shards: int | None = Field(
        None, ge=1, le=100_000, description="a fixed number of shards per table"
    )
    shard_rows: int = Field(100_000, ge=1, description="target rows per shard")
    shard_tokens: int | None = Field(
        None, ge=1, description="target tokens per shard of data/ and packed/"
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"

    @model_validator(mode="after")
    def _one_size_rule(self):
        if self.shards and self.shard_tokens:
            raise ValueError("give output.shards or output.shard_tokens, not both")
        return self


class Config(_Section):
    run: RunConfig = RunConfig()
    teacher: TeacherConfig = TeacherConfig()
    generation: GenerationConfig = GenerationConfig()
    verify: VerifyConfig = VerifyConfig()
    language: LanguageConfig = LanguageConfig()
    dedup: DedupConfig = DedupConfig()
    decontam: DecontamConfig = DecontamConfig()
    tokens: TokensConfig = TokensConfig()
    output: OutputConfig = OutputConfig()

    def config_hash(self) -> str:
        return stable_hash(self.model_dump(mode="json"))[:16]


def _apply_override(data: dict, assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""


def _format_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "config"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = len(exc.errors()) - 1
    return f"{loc}: {msg}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> Config:
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise ConfigError(f"{p}: not valid YAML{where}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
        for section, value in list(data.items()):
            if value is None:  # "run:" with nothing under it
                data[section] = value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"{section}: must be a mapping of keys, got {value!r}")
        for section, key in (("run", "seeds_file"), ("generation", "prompts_dir")):
            value = data.get(section, {}).get(key)
            if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
                data[section][key] = str(p.parent / value)
    for assignment in overrides:
        _apply_override(data, assignment)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
    if config.run.seeds_file and not Path(config.run.seeds_file).is_file():
        raise ConfigError(f"run.seeds_file: file not found: {config.run.seeds_file}")
    from pipeline.prompts import PromptError, resolve_prompts  # noqa: PLC0415 - jinja2 on demand

    try:
        resolve_prompts(config)
    except PromptError as exc:
        raise ConfigError(str(exc)) from None
    return config
