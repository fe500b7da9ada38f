"""The procedural bank behind the built-in teacher, tested without HTTP.

Only the bank's own (trusted) sources are executed in process here; the server tests run
solutions in a subprocess like the pipeline would.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import random
import re
from pathlib import Path

import jsonschema
import pytest
from langdetect import DetectorFactory, detect
from support import bank_schemas, jaccard, passes, word_5grams

from pipeline.prompts import load_template
from pipeline.teacher.builtin import bank

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = bank_schemas()
DIFFICULTIES = ("easy", "medium", "hard")


def prompt(name: str, **values) -> list[dict]:
    return [{"role": "user", "content": load_template(name, 1).render(**values)}]


def parse(content: str) -> dict:
    fenced = re.fullmatch(r"```json\n(.*)\n```", content, re.S)
    return json.loads(fenced.group(1) if fenced else content)


def last_line_printed(program: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(program, {"__name__": "__main__"})
    return out.getvalue().strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------
# Rates and configuration


def test_rates_default_scale_and_overrides():
    assert bank.resolve_rates(0) == {k: 0 for k in bank.DEFAULT_RATES}
    doubled = bank.resolve_rates(2.0, {"problem.non_english": 0.1})
    assert doubled["problem.non_english"] == pytest.approx(0.2)
    assert doubled["attempt.wrong_solution"] == pytest.approx(0.3)
    both = bank.resolve_rates(1.0, {"truncated": 0.5})  # a bare name sets every level
    assert both["problem.truncated"] == both["attempt.truncated"] == 0.5


@pytest.mark.parametrize(
    "scale, overrides",
    [(-1, None), ("x", None), (1, {"nonsense": 0.1}), (1, {"problem.truncated": 1.5})],
)
def test_bad_rates_raise(scale, overrides):
    with pytest.raises(ValueError):
        bank.resolve_rates(scale, overrides)


def test_difficulty_levels():
    assert [bank.difficulty_level(d) for d in ("easy", "Medium", "HARD")] == [0, 1, 2]
    assert bank.difficulty_level("olympiad-ish") == 2
    assert bank.difficulty_level("whatever") in (0, 1, 2)


def test_families_are_many_and_named_uniquely():
    assert len(bank.CODE_FAMILIES) >= 12 and len(bank.MATH_FAMILIES) >= 12
    names = [n for f in bank.CODE_FAMILIES for n in f.names]
    assert len(names) == len(set(names))
    humaneval = {p["entry_point"] for p in bank.humaneval_problems()}
    assert humaneval and not humaneval & set(names)


@pytest.mark.parametrize("topic", ["strings", "lists", "matrices", "number theory", "☃ misc"])
def test_every_topic_maps_to_families(topic):
    for domain in ("code", "math"):
        assert bank.families_for(domain, topic)
        assert bank.build_problem(domain, topic, "medium", 0).fields["statement"]


# --------------------------------------------------------------------------------------------
# Code families


@pytest.mark.parametrize("family", bank.CODE_FAMILIES, ids=lambda f: f.key)
def test_code_family_variants_against_tests(family):
    """Every correct variant passes, every wrong variant fails, and the statement names k."""
    rng = random.Random(family.key)
    for level in (0, 1, 2):
        for _ in range(8):
            problem = bank._build_code(rng, family, level, "en")
            f, k = problem.fields, problem.meta["k"]
            jsonschema.validate(f, SCHEMAS["code_problem"])
            assert f["tests"].startswith(f"from solution import {f['entry_point']}\n")
            assert 3 <= f["tests"].count("assert ") <= 6
            for source in family.sources:
                assert passes(bank._fill(source, f["entry_point"], k), f["tests"])
            for source in family.wrong:
                assert not passes(bank._fill(source, f["entry_point"], k), f["tests"])
            if family.k_ranges:
                assert bank.parse_code_k(family, f["statement"]) == k


# --------------------------------------------------------------------------------------------
# Math families


@pytest.mark.parametrize("family", bank.MATH_FAMILIES, ids=lambda f: f.key)
def test_math_family_programs_and_parsing(family):
    rng = random.Random(family.key)
    for level in (0, 1, 2):
        for lang in ("en", "en", *bank.LANGUAGES):
            problem = bank._build_math(rng, family, level, lang)
            f = problem.fields
            jsonschema.validate(f, SCHEMAS["math_problem"])
            assert last_line_printed(f["program"]) == f["answer"]
            parsed_family, params = bank.parse_math(f["statement"])
            assert parsed_family.key == family.key
            assert {k: params[k] for k in family.variables} == {
                k: problem.meta["params"][k] for k in family.variables
            }
            right = bank.math_attempt(f["statement"], rng, "correct")
            assert right["answer"] == last_line_printed(right["program"]) == f["answer"]
            wrong = bank.math_attempt(f["statement"], rng, "wrong")
            assert wrong["answer"] == last_line_printed(wrong["program"]) != f["answer"]
            mixed = bank.math_attempt(f["statement"], rng, "inconsistent")
            assert mixed["answer"] == f["answer"] != last_line_printed(mixed["program"])


def test_answers_are_plain_numbers():
    from fractions import Fraction

    assert [bank.fmt_number(x) for x in (42, Fraction(7, 2), Fraction(7, 3), -0.25)] == [
        "42",
        "3.5",
        "7/3",
        "-0.25",
    ]


# --------------------------------------------------------------------------------------------
# Statements


def test_clean_statements_are_diverse_and_sized():
    """Over 360 clean problems (both domains, same topics and difficulties repeated), no two
    statements share half their word 5-grams, and each has 40-150 words."""
    statements = []
    for domain, topics in (("code", ("strings", "lists")), ("math", ("arithmetic", "geometry"))):
        for topic, difficulty in itertools.product(topics, DIFFICULTIES):
            for index in range(30):
                problem = bank.build_problem(domain, topic, difficulty, index, server_seed=3)
                statements.append(problem.fields["statement"])
    assert len(statements) >= 300
    assert all(40 <= len(s.split()) <= 150 for s in statements)
    grams = [word_5grams(s) for s in statements]
    worst = max(len(a & b) / len(a | b) for a, b in itertools.combinations(grams, 2))
    assert worst < 0.5


def test_near_duplicate_statement_stays_above_threshold():
    rng = random.Random(0)
    for index in range(60):
        domain = "code" if index % 2 else "math"
        statement = bank.build_problem(domain, "lists", "easy", index).fields["statement"]
        near = bank.near_duplicate_statement(statement, rng)
        assert near != statement
        assert 0.85 <= jaccard(statement, near) < 1


# --------------------------------------------------------------------------------------------
# Requests


def test_parse_request_reads_all_prompt_kinds():
    req = bank.parse_request(
        prompt("problem_code", topic="a b", difficulty="x", index=7)[0]["content"]
    )
    assert req == bank.Request("problem", "code", "a b", "x", 7)
    attempt = prompt("attempt_math", statement="Line one.\n\nLine two.")[0]["content"]
    assert bank.parse_request(attempt).statement == "Line one.\n\nLine two."
    code = prompt("attempt_code", entry_point="f", statement="S")[0]["content"]
    assert bank.parse_request(code)[:2] == ("attempt", "code")
    assert bank.parse_request("hello").kind == "other"


def test_answer_is_deterministic_and_seed_sensitive():
    messages = prompt("problem_math", topic="probability", difficulty="hard", index=4)
    assert bank.answer(messages, 1, 0) == bank.answer(messages, 1, 0)
    statement = parse(bank.answer(messages, 1, 0, bank.resolve_rates(0)).content)["statement"]
    attempt = prompt("attempt_math", statement=statement)
    contents = {bank.answer(attempt, seed, 0, bank.resolve_rates(0)).content for seed in range(8)}
    assert len(contents) > 1


def test_every_problem_defect_is_planted_and_consistent():
    DetectorFactory.seed = 0
    rates = bank.resolve_rates(3.0)
    seen = set()
    for domain, topic in (("code", "strings"), ("math", "geometry")):
        key = (0, domain, topic, "medium")
        for index in range(120):
            messages = prompt(f"problem_{domain}", topic=topic, difficulty="medium", index=index)
            result = bank.answer(messages, 5, 0, rates)
            label = result.label
            assert label["defects"] == list(result.defects) and label["index"] == index
            defect = result.defects[0] if result.defects else None
            seen.add(defect)
            if defect in ("malformed_json", "truncated"):
                with pytest.raises(json.JSONDecodeError):
                    parse(result.content)
                assert (result.finish_reason == "length") == (defect == "truncated")
                continue
            obj = parse(result.content)
            schema = SCHEMAS[f"{domain}_problem"]
            assert jsonschema.Draft202012Validator(schema).is_valid(obj) == (
                defect != "schema_invalid"
            )
            copied = label["copied_from_index"]
            if defect in ("exact_duplicate", "near_duplicate"):
                assert copied < index and bank.problem_defect(key, copied, rates) is None
                original = bank.clean_problem(key, copied)[1]
                if defect == "exact_duplicate":
                    assert result.content == original
                else:
                    base = parse(original)
                    assert jaccard(base["statement"], obj["statement"]) >= 0.85
                    assert {**base, "statement": ""} == {**obj, "statement": ""}
            else:
                assert copied is None
            if defect == "non_english":
                assert detect(obj["statement"]) in ("es", "de", "fr")
            if defect == "failing_tests":
                assert not passes(obj["reference_solution"], obj["tests"])
            if defect == "wrong_reference_answer":
                assert last_line_printed(obj["program"]) != obj["answer"]
    assert seen == {None, *bank.PROBLEM_DEFECTS}


def test_problems_do_not_depend_on_the_request_seed():
    """The pipeline sends a different seed with every problem request; duplicates must still
    reproduce exactly what the lower-numbered request was served."""
    messages = prompt("problem_code", topic="lists", difficulty="easy", index=6)
    assert bank.answer(messages, 1, 0) == bank.answer(messages, 99, 0)._replace(
        label=bank.answer(messages, 1, 0).label
    )
    assert bank.answer(messages, 1, 0).content != bank.answer(messages, 1, 1).content


def test_problem_zero_is_never_a_duplicate():
    rates = bank.resolve_rates(0, {"exact_duplicate": 1.0, "near_duplicate": 1.0})
    result = bank.answer(prompt("problem_code", topic="t", difficulty="d", index=0), 0, 0, rates)
    assert result.defects == () and result.label["copied_from_index"] is None


def test_every_attempt_defect_is_planted_in_json_answers():
    """v1 prompts ask for JSON; ambiguous_code exists only in free-form (v2) answers."""
    rates = bank.resolve_rates(3.0)
    seen = set()
    for domain in ("code", "math"):
        fields = bank.build_problem(domain, "lists", "easy", 2).fields
        if domain == "code":
            messages = prompt("attempt_code", **fields)
        else:
            messages = prompt("attempt_math", statement=fields["statement"])
        for seed in range(120):
            result = bank.answer(messages, seed, 0, rates)
            assert result.label["kind"] == "attempt"
            seen.update(result.defects)
            if not {"malformed_json", "truncated"} & set(result.defects):
                jsonschema.validate(parse(result.content), SCHEMAS[f"{domain}_attempt"])
    assert seen == set(bank.ATTEMPT_DEFECTS) - {"ambiguous_code"}


def test_unrecognised_statements_get_generic_answers():
    clean = bank.resolve_rates(0)
    code = bank.answer(
        prompt("attempt_code", entry_point="mystery", statement="Do it."), 0, 0, clean
    )
    assert "NotImplementedError" in parse(code.content)["solution"]
    maths = bank.answer(prompt("attempt_math", statement="Add 2 and 3 please."), 0, 0, clean)
    reply = parse(maths.content)
    assert reply["answer"] == last_line_printed(reply["program"]) == "5"
    other = bank.answer([{"role": "user", "content": "hi"}], None, 0, clean)
    assert other.label["kind"] == "other" and "not a language model" in other.content


def test_humaneval_copies_have_the_promised_shape():
    problems = bank.humaneval_problems()
    assert len(problems) == 164
    converted = bank.humaneval_as_problem(problems[38])  # its check uses a helper function
    assert converted["tests"].startswith(f"from solution import {converted['entry_point']}\n")
    assert "from solution import encode_cyclic" in converted["tests"]
    assert converted["tests"].rstrip().endswith(f"check({converted['entry_point']})")
    assert converted["reference_solution"].startswith(converted["statement"])
