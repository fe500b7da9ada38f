"""Language: problem -> kept | dropped(reason) | errors.

Detects the language of a problem's ``statement`` and keeps it when the language is in
``LanguageConfig.allowed`` with probability at least ``LanguageConfig.min_prob``.

Language identifiers do not recognise code or LaTeX (code mostly comes back as "en"), so
detection runs on the prose only: fenced and inline code, LaTeX and URLs are stripped first
(``strip_non_prose``). Prose that is empty after stripping, or in which langdetect finds no
features, is ``("unknown", 0.0)`` and is dropped as ``language_not_allowed``.

Every record leaving the stage, kept or dropped, carries ``language`` (an ISO 639-1 code as
langdetect spells it, e.g. "en", "zh-cn", or "unknown") and ``language_prob`` (float).
Reasons: ``language_not_allowed``, ``language_low_confidence``. Counters ``language/<reason>``.

langdetect is made deterministic with a fixed seed (``DetectorFactory.seed = 0``); its
profiles take about a second to load, so they are loaded once per process, on first use.
"""

from __future__ import annotations

import functools
import re
import threading

import apache_beam as beam

from pipeline import records
from pipeline.config import LanguageConfig

UNKNOWN = "unknown"

# langdetect reads at most this many characters; cutting earlier also bounds the regex work.
_MAX_CHARS = 100_000

# Each pattern removes one kind of non-prose span. An opening delimiter without its closing
# one removes the rest of the text: teacher output cut mid-block is code or maths to its end,
# and matching "to the end" keeps every pattern linear on unbalanced input.
_NON_PROSE = [
    # Fenced code blocks (``` or ~~~, optionally indented, any info string).
    re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S),
    # Inline code.
    re.compile(r"`+[^`\n]+`+"),
    # LaTeX environments, display and inline maths.
    re.compile(r"\\begin\{([^{}\n]*)\}.*?(?:\\end\{\1\}|\Z)", re.S),
    re.compile(r"\$\$.*?(?:\$\$|\Z)", re.S),
    re.compile(r"\\\[.*?(?:\\\]|\Z)", re.S),
    re.compile(r"\\\(.*?(?:\\\)|\Z)", re.S),
    # Inline $...$ as pandoc reads it: the opening $ is followed by a non-space, the closing $
    # is preceded by a non-space and not followed by a digit, so "$2 and $3" stays prose.
    re.compile(r"(?<![\\$])\$(?=\S)(?:\\.|[^$\\])+?(?<=\S)\$(?!\d)"),
    # URLs.
    re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.I),
]


def strip_non_prose(text: str) -> str:
    """``text`` without code, LaTeX and URLs, whitespace collapsed to single spaces."""
    for pattern in _NON_PROSE:
        text = pattern.sub(" ", text)
    return " ".join(text.split())


_factory_lock = threading.Lock()
_factory = None


def _detector_factory():
    """The langdetect profiles, loaded once per process (a cache, not a client)."""
    global _factory
    if _factory is None:
        with _factory_lock:
            if _factory is None:
                from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

                DetectorFactory.seed = 0
                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.set_seed(0)
                _factory = factory
    return _factory


def detect_language(text: str) -> tuple[str, float]:
    """``(language, probability)`` of the prose in ``text``; ``("unknown", 0.0)`` if none."""
    from langdetect.lang_detect_exception import LangDetectException

    prose = strip_non_prose(text[:_MAX_CHARS])
    if not prose:
        return UNKNOWN, 0.0
    detector = _detector_factory().create()
    detector.append(prose)
    try:
        best = detector.get_probabilities()
    except LangDetectException:  # "No features in text": digits, symbols, punctuation only
        return UNKNOWN, 0.0
    if not best:
        return UNKNOWN, 0.0
    return best[0].lang, float(best[0].prob)


def language_reason(lang: str, prob: float, cfg: LanguageConfig) -> str | None:
    """None to keep; otherwise the reason code for dropping."""
    if lang not in cfg.allowed:
        return records.LANGUAGE_NOT_ALLOWED
    if prob < cfg.min_prob:
        return records.LANGUAGE_LOW_CONFIDENCE
    return None


def _decide(record: dict, cfg: LanguageConfig) -> tuple[dict, str | None, str]:
    lang, prob = detect_language(record["statement"])
    out = {**record, "language": lang, "language_prob": prob}
    return out, language_reason(lang, prob, cfg), f"language={lang} prob={prob:.3f}"


class FilterLanguage(beam.PTransform):
    """Problem records -> StageOutputs; detection runs on ``statement``."""

    def __init__(self, cfg: LanguageConfig):
        super().__init__()
        self._cfg = cfg

    def expand(self, problems):
        decide = functools.partial(_decide, cfg=self._cfg)
        return records.route(problems, "DetectLanguage", records.LANGUAGE, decide)
