"""Helpers shared by the tests (importable because pytest puts tests/ on sys.path)."""

import json
import re

import apache_beam as beam
import numpy as np
from apache_beam.testing.util import assert_that, equal_to


def word_5grams(text: str) -> set:
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return {tuple(words[i : i + 5]) for i in range(max(1, len(words) - 4))}


def jaccard(a: str, b: str) -> float:
    sa, sb = word_5grams(a), word_5grams(b)
    return len(sa & sb) / len(sa | sb)


def assert_conserved(out, inputs: list[dict]) -> None:
    """Every input id leaves a stage exactly once: kept + dropped + errors == inputs."""
    assert_that(
        (out.kept, out.dropped, out.errors)
        | "All" >> beam.Flatten()
        | "AllIds" >> beam.Map(lambda r: r["id"]),
        equal_to([r["id"] for r in inputs]),
        label="Funnel",
    )


def data_row(i: int) -> dict:
    n = 5 + i % 7
    return {
        "id": f"code-x-easy-{i:05d}",
        "domain": "code",
        "topic": "x",
        "difficulty": "easy",
        "problem": f"problem {i}",
        "solution": f"solution {i}",
        "answer": None,
        "entry_point": "f",
        "tests": "from solution import f",
        "input_ids": np.arange(n, dtype=np.int32),
        "loss_mask": np.ones(n, dtype=np.int8),
        "num_tokens": n,
        "tokenizer": "qwen2",
        "teacher_model": "m",
        "sampling": "{}",
        "config_hash": "c",
        "problem_prompt_hash": "p",
        "attempt_prompt_hash": "a",
        "attempt": 0,
        "attempts": 4,
        "pass_rate": 0.75,
        "verdict": "PASS",
        "isolation_level": "process",
        "language": "en",
        "language_prob": 0.99,
        "dedup_cluster": f"code-x-easy-{i:05d}",
    }


def char_tokenizer(folder, specials, config=None, name="tokenizer.json"):
    """A real HF tokenizer.json (one token per character) with ``specials``, and optionally a
    tokenizer_config.json beside it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n.,:!?`'()=+-_*#/"
    hf = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="?"))
    hf.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    hf.decoder = decoders.Fuse()
    hf.add_special_tokens(specials)
    folder.mkdir(parents=True, exist_ok=True)
    hf.save(str(folder / name))
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return str(folder / name)


# The output tables and the key that orders each one.
TABLE_KEYS = {"data": ["id"], "rejected": ["id"], "attempts": ["problem_id", "attempt"]}


def output_rows(read_table) -> dict[str, list[dict]]:
    """Every row of an output's tables as plain JSON values, in key order, without the
    attempts' wall-clock ``duration_s``; ``read_table(name)`` gives a table as a DataFrame."""
    tables = {}
    for table, key in TABLE_KEYS.items():
        frame = read_table(table).sort_values(key).drop(columns=["duration_s"], errors="ignore")
        tables[table] = json.loads(frame.to_json(orient="records"))
    return tables


def learned_text(row) -> str:
    """What the loss mask of a kept row covers with ChatML and ``tokens.reasoning: keep``: the
    thinking inline (ChatML has no place of its own for it), the answer, ``<|im_end|>``."""
    answer = row["solution"]
    if isinstance(row["reasoning"], str):
        answer = f"<think>\n{row['reasoning']}\n</think>\n\n{answer}"
    return answer + "<|im_end|>"


# The v1 attempt prompts ask for these objects (the pipeline itself now sends v2 prompts).
_TEXT = {"type": "string", "minLength": 1}
V1_ATTEMPT_SCHEMAS = {
    "code_attempt": {
        "type": "object",
        "additionalProperties": False,
        "required": ["solution"],
        "properties": {"solution": _TEXT},
    },
    "math_attempt": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reasoning", "answer", "program"],
        "properties": {"reasoning": _TEXT, "answer": _TEXT, "program": _TEXT},
    },
}


def bank_schemas() -> dict:
    """The schemas of what the built-in teacher answers: problems, and v1 attempts."""
    from pipeline.schemas import load_schema

    return {
        **{name: load_schema(name) for name in ("code_problem", "math_problem")},
        **V1_ATTEMPT_SCHEMAS,
    }


def passes(solution: str, tests: str, failures=(AssertionError,)) -> bool:
    """Run the bank's own trusted code in process: ``solution`` as module ``solution``, then
    every ``test_*`` of ``tests``; an exception of ``failures`` is a fail, any other raises."""
    import sys
    import types

    module = types.ModuleType("solution")
    sys.modules["solution"] = module
    try:
        exec(solution, module.__dict__)
        namespace: dict = {}
        exec(tests, namespace)
        for name, fn in namespace.items():
            if name.startswith("test_") and callable(fn):
                fn()
        return True
    except failures:
        return False
    finally:
        del sys.modules["solution"]
