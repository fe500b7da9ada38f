"""Helpers shared by the tests (importable because pytest puts tests/ on sys.path)."""

import re

import apache_beam as beam
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
