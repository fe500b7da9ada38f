import jinja2
import pytest

from pipeline.prompts import load_template, prompt_hashes


def test_missing_variable_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        load_template("problem_code").render(topic="x")


def test_unknown_template_or_version():
    with pytest.raises(FileNotFoundError):
        load_template("nope")
    with pytest.raises(FileNotFoundError):
        load_template("problem_code", 999)


def test_hashes_are_stable_and_distinct():
    hashes = prompt_hashes()
    assert len(hashes) == 4 and len(set(hashes.values())) == 4
    assert hashes == prompt_hashes()
