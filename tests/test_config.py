import pytest

from pipeline.config import ConfigError, load_config


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_validate():
    cfg = load_config(None)
    assert cfg.teacher.base_url == "builtin"
    assert cfg.generation.attempts >= 1
    assert len(cfg.config_hash()) == 16


def test_example_configs_validate():
    cfg = load_config("examples/quickstart.yaml")
    assert cfg.run.problems_per_combo > 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("run:\n  seed: 1\n  bogus: 2\n", "run.bogus: unknown key"),
        ("nosuchsection: {}\n", "nosuchsection: unknown key"),
        ("teacher:\n  concurrency: lots\n", "teacher.concurrency: Input should be a valid integer"),
        (
            "teacher:\n  concurrency: 0\n",
            "teacher.concurrency: Input should be greater than or equal to 1",
        ),
        ("dedup:\n  threshold: 1.5\n", "dedup.threshold: Input should be less than or equal to 1"),
        (
            "generation:\n  domains: [code, poetry]\n",
            "generation.domains.1: Input should be 'code' or 'math'",
        ),
        (
            "generation:\n  domains: [code]\n  topics: {code: []}\n",
            "topics.code: needs at least one topic",
        ),
        (
            "teacher:\n  api_key_env: 'not a name'\n",
            "teacher.api_key_env: String should match pattern",
        ),
        ("run:\n  seeds_file: missing.jsonl\n", "run.seeds_file: file not found"),
        ("decontam:\n  benchmarks: [nope.jsonl]\n", "decontam.benchmarks: 'nope.jsonl' is neither"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("run: [unclosed\n", "not valid YAML (line"),
        ("run: 3\n", "run: must be a mapping of keys"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("does/not/exist.yaml")


def test_set_overrides_values_and_types(tmp_path):
    cfg = load_config(
        write(tmp_path, "run:\n  seed: 1\n"),
        [
            "run.seed=7",
            "teacher.temperature=0.2",
            "generation.domains=[math]",
            "dedup.enabled=false",
        ],
    )
    assert cfg.run.seed == 7
    assert cfg.teacher.temperature == 0.2
    assert cfg.generation.domains == ("math",)
    assert cfg.dedup.enabled is False


@pytest.mark.parametrize("override", ["noequals", "=3", "run.seed.deeper=1"])
def test_bad_override(override):
    with pytest.raises(ConfigError):
        load_config(None, [override])


def test_seeds_file_relative_to_config(tmp_path):
    (tmp_path / "seeds.jsonl").write_text(
        '{"domain": "math", "topic": "t", "difficulty": "easy"}\n'
    )
    cfg = load_config(write(tmp_path, "run:\n  seeds_file: seeds.jsonl\n"))
    assert cfg.run.seeds_file == str(tmp_path / "seeds.jsonl")


def test_config_hash_changes_with_content():
    assert load_config(None).config_hash() != load_config(None, ["run.seed=3"]).config_hash()
    assert load_config(None).config_hash() == load_config(None).config_hash()


def test_provider_options_and_their_request_fields():
    from pipeline.teacher.client import request_params

    cfg = load_config(
        None,
        [
            "teacher.temperature=null",
            "teacher.top_p=null",
            "teacher.token_limit_param=max_completion_tokens",
            "teacher.max_tokens=30000",
            "teacher.reasoning_effort=high",
            "teacher.extra_body={enable_thinking: true, thinking_budget: 4096}",
        ],
    ).teacher
    assert request_params(cfg, 5) == {
        "seed": 5,
        "max_completion_tokens": 30000,
        "reasoning_effort": "high",
        "enable_thinking": True,
        "thinking_budget": 4096,
    }
    default = load_config(None).teacher
    assert request_params(default, 1) == {
        "seed": 1, "max_tokens": 32768, "temperature": 0.8, "top_p": 1.0
    }  # fmt: skip
    assert default.timeout_s >= 600 and default.cache_truncated is True


@pytest.mark.parametrize(
    "override, message",
    [
        ("teacher.extra_body={temperature: 0}", "temperature is set by synthgen itself"),
        ("teacher.extra_body={stream: true}", "stream is set by synthgen itself"),
        ("teacher.reasoning_effort=extreme", "teacher.reasoning_effort"),
        ("teacher.token_limit_param=max_new_tokens", "teacher.token_limit_param"),
        ("teacher.response_format=yaml", "teacher.response_format"),
        ("teacher.builtin_style=verbose", "teacher.builtin_style"),
        ("tokens.reasoning=hide", "tokens.reasoning"),
        ("teacher.extra_body=[1, 2]", "teacher.extra_body"),
    ],
)
def test_provider_options_are_validated_up_front(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])
