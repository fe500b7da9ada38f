import jinja2
import pytest

from pipeline.config import ConfigError, load_config
from pipeline.prompts import load_template, prompt_hashes, resolve_prompts
from pipeline.stages.generate import attempt_messages, problem_messages


def test_missing_variable_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        load_template("problem_code").render(topic="x")


def test_unknown_template_or_version():
    with pytest.raises(FileNotFoundError):
        load_template("nope")
    with pytest.raises(FileNotFoundError):
        load_template("problem_code", 999)


def test_hashes_are_stable_and_distinct():
    hashes = prompt_hashes(resolve_prompts(load_config(None)))
    assert len(hashes) == 4 and len(set(hashes.values())) == 4
    assert "attempt_code/v2" in hashes and "attempt_math/v2" in hashes
    assert hashes == prompt_hashes(resolve_prompts(load_config(None)))


ATTEMPT = (
    "Task: solve the math problem below.\n\nProblem:\n{{ statement }}\n\nShow your work; box it.\n"
)


def test_a_prompts_dir_template_replaces_the_builtin_one(tmp_path):
    (tmp_path / "attempt_math.jinja2").write_text(ATTEMPT)
    (tmp_path / "problem_code").mkdir()
    (tmp_path / "problem_code" / "v1.jinja2").write_text(
        "old {{ topic }}{{ difficulty }}{{ index }}"
    )
    newer = "Task: write one original problem. {{ topic }} {{ difficulty }} {{ index }} JSON"
    (tmp_path / "problem_code" / "v3.jinja2").write_text(newer)
    cfg = load_config(None, [f"generation.prompts_dir={tmp_path}"])
    templates = resolve_prompts(cfg)
    assert templates["attempt_math"].source == ATTEMPT
    assert templates["problem_code"].source == newer  # the highest version
    assert templates["attempt_code"] == load_template("attempt_code")  # not overridden
    hashes = prompt_hashes(templates)
    assert hashes["attempt_math/custom"] == templates["attempt_math"].hash
    assert hashes["problem_code/custom"] != load_template("problem_code").hash
    math = {"domain": "math", "statement": "What is 1 + 1?"}
    assert attempt_messages(math, templates)[0]["content"].endswith("Show your work; box it.\n")
    seed = {"domain": "code", "topic": "t", "difficulty": "d", "index": 3}
    assert problem_messages(seed, templates)[0]["content"].startswith("Task: write one original")


def test_a_relative_prompts_dir_is_read_beside_the_config(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "attempt_math.jinja2").write_text(ATTEMPT)
    config = tmp_path / "run.yaml"
    config.write_text("generation:\n  prompts_dir: mine\n")
    assert resolve_prompts(load_config(config))["attempt_math"].source == ATTEMPT


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("attempt_math.jinja2", "Solve it.", "does not use statement"),
        ("attempt_code.jinja2", "{{ statement }}", "does not use entry_point"),
        ("attempt_math.jinja2", "{{ statement }} {{ entry_point }}", "uses entry_point, which"),
        ("attempt_math.jinja2", "{{ statement }} {% if %}", "line 1"),
        ("atempt_math.jinja2", "{{ statement }}", "unknown template 'atempt_math.jinja2'"),
    ],
)
def test_a_template_that_does_not_fit_its_stage_is_a_config_error(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"generation.prompts_dir={tmp_path}"])


def test_an_empty_or_missing_prompts_dir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no \\*.jinja2 template"):
        load_config(None, [f"generation.prompts_dir={tmp_path}"])


def test_json_mode_needs_the_word_json_in_the_problem_prompt(tmp_path):
    (tmp_path / "problem_math.jinja2").write_text(
        "Write a problem: {{ topic }} {{ difficulty }} {{ index }}"
    )
    settings = [f"generation.prompts_dir={tmp_path}", "teacher.response_format=json_object"]
    with pytest.raises(ConfigError, match="must contain the word JSON"):
        load_config(None, settings)
    load_config(None, [*settings, "teacher.system_prompt=Answer in JSON."])
    load_config(None, [f"generation.prompts_dir={tmp_path}"])  # JSON mode off: fine
