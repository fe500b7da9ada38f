import json

import pytest

from pipeline import records
from pipeline.config import load_config
from pipeline.stages.generate import (
    attempt_messages,
    make_seeds,
    parse_answer,
    parse_json_answer,
    problem_messages,
    request_seed,
    seed_id,
)

CODE = {
    "statement": "Write a function add(a, b) that returns the sum of two integers a and b.",
    "entry_point": "add",
    "reference_solution": "def add(a, b):\n    return a + b\n",
    "tests": "from solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}


def test_seeds_cover_every_combination_with_unique_ids():
    cfg = load_config(None, ["run.problems_per_combo=3"])
    seeds = make_seeds(cfg)
    topics = sum(len(cfg.generation.topics[d]) for d in cfg.generation.domains)
    assert len(seeds) == topics * len(cfg.generation.difficulties) * 3
    assert len({s["id"] for s in seeds}) == len(seeds)
    assert seeds[0]["id"] == "code-strings-easy-00000"


def test_seed_ids_sort_by_index():
    assert seed_id("code", "Number Theory", "easy", 2) < seed_id(
        "code", "Number Theory", "easy", 10
    )
    assert seed_id("code", "Number Theory", "easy", 2) == "code-number_theory-easy-00002"


def test_seeds_file(tmp_path):
    path = tmp_path / "seeds.jsonl"
    lines = [
        {"domain": "math", "topic": "algebra", "difficulty": "easy"},
        {"domain": "math", "topic": "algebra", "difficulty": "easy"},
        {"domain": "code", "topic": "graphs", "difficulty": "hard", "id": "custom-1"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    seeds = make_seeds(load_config(None, [f"run.seeds_file={path}"]))
    assert [s["id"] for s in seeds] == [
        "math-algebra-easy-00000",
        "math-algebra-easy-00001",
        "custom-1",
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "not a seed object"),
        ('{"domain": "code"}', "not a seed object"),
        ('{"domain": "poetry", "topic": "t", "difficulty": "d"}', "is not in generation.domains"),
        ('{"domain": "math", "topic": 7, "difficulty": "d"}', "must be text"),
    ],
)
def test_bad_seeds_file(tmp_path, line, message):
    path = tmp_path / "seeds.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        make_seeds(load_config(None, [f"run.seeds_file={path}"]))


def test_request_seed_is_stable_and_distinct():
    assert request_seed(0, "a", 1) == request_seed(0, "a", 1)
    assert len({request_seed(0, "a", k) for k in range(50)}) == 50
    assert request_seed(0, "a") != request_seed(1, "a")
    assert 0 <= request_seed(5, "x", 3) < 2**31


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(CODE),
        "```json\n" + json.dumps(CODE) + "\n```",
        "Here it is:\n```\n" + json.dumps(CODE, indent=2) + "\n```\nGood luck!",
        "Sure! " + json.dumps(CODE) + " Done.",
        "Plan:\n```python\nprint('draft')\n```\nAnswer: " + json.dumps(CODE),
        json.dumps({**CODE, "statement": "Use it like this:\n```python\nadd(1, 2)\n```\nok."}),
    ],
)
def test_parse_accepts_bare_and_fenced_json(text):
    fields, reason, _ = parse_answer(text, "code_problem")
    assert reason is None
    assert fields["entry_point"] == CODE["entry_point"] and fields["tests"] == CODE["tests"]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", records.PARSE_ERROR),
        ("no json here", records.PARSE_ERROR),
        ('{"statement": "unterminated', records.PARSE_ERROR),
        ("[1, 2, 3]", records.PARSE_ERROR),
        (json.dumps({k: v for k, v in CODE.items() if k != "tests"}), records.SCHEMA_INVALID),
        (json.dumps({**CODE, "entry_point": "not a name"}), records.SCHEMA_INVALID),
        (json.dumps({**CODE, "tests": 42}), records.SCHEMA_INVALID),
        (json.dumps({**CODE, "statement": "short"}), records.SCHEMA_INVALID),
    ],
)
def test_parse_rejects_with_reason(text, reason):
    fields, got, detail = parse_answer(text, "code_problem")
    assert fields is None and got == reason and detail


def test_extra_teacher_fields_are_ignored():
    fields, reason, _ = parse_answer(json.dumps({**CODE, "notes": "x"}), "code_problem")
    assert reason is None and "notes" not in fields


def test_huge_answer_does_not_crash():
    with pytest.raises(ValueError):
        parse_json_answer("{" * 100_000)


def test_prompts_carry_what_the_teacher_needs():
    seed = {"domain": "math", "topic": "geometry", "difficulty": "hard", "index": 7}
    text = problem_messages(seed)[0]["content"]
    assert "Topic: geometry" in text and "Difficulty: hard" in text and "Problem number: 7" in text
    attempt = attempt_messages({"domain": "code", **CODE})[0]["content"]
    assert CODE["statement"] in attempt and "`add`" in attempt
