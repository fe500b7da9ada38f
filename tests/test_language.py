import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import records
from pipeline.config import LanguageConfig
from pipeline.stages.language import (
    UNKNOWN,
    FilterLanguage,
    detect_language,
    language_reason,
    strip_non_prose,
)

ENGLISH = (
    "Write a function that takes a list of integers and returns the length of the longest "
    "strictly increasing subsequence. The list may be empty, in which case return zero."
)
SPANISH = (
    "Escribe una función que reciba una lista de números enteros y devuelva la longitud de "
    "la subsecuencia estrictamente creciente más larga. La lista puede estar vacía."
)
GERMAN = (
    "Schreiben Sie eine Funktion, die eine Liste von ganzen Zahlen erhält und die Länge der "
    "längsten streng monoton steigenden Teilfolge zurückgibt. Die Liste kann leer sein."
)
CODE_HEAVY = (
    "Implement `merge_intervals(intervals)` so that overlapping intervals are merged.\n\n"
    "```python\n"
    "def merge_intervals(intervals):\n"
    "    intervals = sorted(intervals)\n"
    "    merged = []\n"
    "    for start, end in intervals:\n"
    "        if merged and start <= merged[-1][1]:\n"
    "            merged[-1][1] = max(merged[-1][1], end)\n"
    "        else:\n"
    "            merged.append([start, end])\n"
    "    return merged\n"
    "```\n\n"
    "For example:\n\n"
    "```\n>>> merge_intervals([[1, 3], [2, 6], [8, 10]])\n[[1, 6], [8, 10]]\n```\n"
    "Return the merged intervals sorted by their start."
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Plain prose stays.", "Plain prose stays."),
        ("  lots\n\tof   whitespace \n", "lots of whitespace"),
        ("", ""),
        ("Before\n```python\nx = 1\n```\nafter", "Before after"),
        ("Before\n~~~\nx = 1\n~~~\nafter", "Before after"),
        ("Unterminated\n```\nx = 1\nprint(x)", "Unterminated"),
        ("Call `f(x)` twice", "Call twice"),
        ("Solve $x^2 = 4$ for x", "Solve for x"),
        ("Display $$\\int_0^1 x\\,dx$$ here", "Display here"),
        ("Bracket \\[a+b\\] and paren \\(c\\) done", "Bracket and paren done"),
        ("Env \\begin{align} a &= b \\\\ c &= d \\end{align} end", "Env end"),
        ("See https://example.com/a?b=c and www.example.org now", "See and now"),
        ("It costs $2 each and $3 a dozen", "It costs $2 each and $3 a dozen"),
        ("Ünïcödé prose — with «quotes»", "Ünïcödé prose — with «quotes»"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_strip_non_prose(text, expected):
    assert strip_non_prose(text) == expected


def test_strip_non_prose_huge_and_unbalanced_input():
    huge = ("Prose words here. `code` $x$ " * 20_000) + "\\[ never closed " + "\\( " * 10_000
    stripped = strip_non_prose(huge)
    assert stripped.startswith("Prose words here. Prose words here.")
    assert "never closed" not in stripped and "`" not in stripped


@pytest.mark.parametrize(
    "text, lang",
    [(ENGLISH, "en"), (SPANISH, "es"), (GERMAN, "de"), (CODE_HEAVY, "en")],
    ids=["en", "es", "de", "code-heavy-en"],
)
def test_detect_language(text, lang):
    detected, prob = detect_language(text)
    assert detected == lang
    assert 0.8 <= prob <= 1.0


@pytest.mark.parametrize("text", ["", "   ", "```\nx = 1\n```", "$$x^2$$", "12345 + 678 = ?"])
def test_detect_language_without_prose_is_unknown(text):
    assert detect_language(text) == (UNKNOWN, 0.0)


def test_detect_language_is_deterministic_and_handles_huge_input():
    mixed = "The cat sat on the mat. Le chat est sur le tapis. " * 5
    assert len({detect_language(mixed) for _ in range(5)}) == 1
    assert detect_language(ENGLISH * 5_000)[0] == "en"


@pytest.mark.parametrize(
    "lang, prob, reason",
    [
        ("en", 0.99, None),
        ("en", 0.8, None),
        ("en", 0.79, records.LANGUAGE_LOW_CONFIDENCE),
        ("es", 0.99, records.LANGUAGE_NOT_ALLOWED),
        (UNKNOWN, 0.0, records.LANGUAGE_NOT_ALLOWED),
    ],
)
def test_language_reason(lang, prob, reason):
    assert language_reason(lang, prob, LanguageConfig(allowed=("en",), min_prob=0.8)) == reason


def test_language_reason_with_several_allowed():
    cfg = LanguageConfig(allowed=("en", "de"), min_prob=0.5)
    assert language_reason("de", 0.6, cfg) is None
    assert language_reason("es", 0.99, cfg) == records.LANGUAGE_NOT_ALLOWED


def test_filter_language_pipeline():
    inputs = [
        {"id": "p1", "domain": "code", "statement": ENGLISH},
        {"id": "p2", "domain": "code", "statement": SPANISH},
        {"id": "p3", "domain": "math", "statement": GERMAN},
        {"id": "p4", "domain": "code", "statement": CODE_HEAVY},
        {"id": "p5", "domain": "math", "statement": "$$x^2 + 1 = 0$$"},
        {"id": "p6", "domain": "math"},  # no statement: an error, not a silent drop
    ]
    options = PipelineOptions(["--runner=FnApiRunner"])
    with BeamTestPipeline(options=options) as p:
        out = p | beam.Create(inputs) | FilterLanguage(LanguageConfig())
        kept = out.kept | "KeptView" >> beam.Map(lambda r: (r["id"], r["language"]))
        dropped = out.dropped | "DroppedView" >> beam.Map(
            lambda r: (r["id"], r["stage"], r["reason"], r["language"], r["language_prob"] > 0.8)
        )
        errors = out.errors | "ErrorsView" >> beam.Map(lambda r: (r["id"], r["reason"]))
        every = (
            (out.kept, out.dropped, out.errors)
            | beam.Flatten()
            | "AllIds" >> beam.Map(lambda r: r["id"])
        )
        assert_that(kept, equal_to([("p1", "en"), ("p4", "en")]), label="Kept")
        assert_that(
            dropped,
            equal_to(
                [
                    ("p2", "language", records.LANGUAGE_NOT_ALLOWED, "es", True),
                    ("p3", "language", records.LANGUAGE_NOT_ALLOWED, "de", True),
                    ("p5", "language", records.LANGUAGE_NOT_ALLOWED, UNKNOWN, False),
                ]
            ),
            label="Dropped",
        )
        assert_that(errors, equal_to([("p6", records.ERROR)]), label="Errors")
        assert_that(every, equal_to([r["id"] for r in inputs]), label="Funnel")
