"""The built-in teacher over real HTTP on 127.0.0.1, driven by the real ``openai`` client.

Generated code and programs run in a subprocess (``python -I``) in a temporary directory; this
harness is test-only (the project's sandbox lives in ``pipeline.sandbox.sandbox``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jsonschema
import openai
import pytest
from langdetect import DetectorFactory, detect
from support import bank_schemas, jaccard

from pipeline.prompts import load_template
from pipeline.teacher.builtin import bank
from pipeline.teacher.builtin import server as ts
from pipeline.teacher.builtin.server import TeacherServer

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = bank_schemas()
LABEL_FIELDS = {
    "kind",
    "domain",
    "topic",
    "difficulty",
    "index",
    "seed",
    "defects",
    "copied_from_index",
    "entry_point",
    "style",
    "reasoning_served",
}
HARNESS = """\
import importlib.util
import sys

sys.path.insert(0, ".")
spec = importlib.util.spec_from_file_location("test_problem", "test_problem.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
names = sorted(n for n in vars(module) if n.startswith("test_") and callable(getattr(module, n)))
for name in names:
    getattr(module, name)()
print(f"RAN {len(names)} TESTS")
"""


# --------------------------------------------------------------------------------------------
# Helpers


def render(name: str, **values) -> str:
    return load_template(name, 1).render(**values)


def client(url: str, timeout: float = 10.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=timeout)


def ask(api: openai.OpenAI, content: str, seed: int = 0, **extra):
    return api.chat.completions.create(
        model="any-model-name",
        messages=[{"role": "user", "content": content}],
        seed=seed,
        **extra,
    )


def problem_prompt(domain: str, index: int, topic: str = "lists", difficulty: str = "medium"):
    return render(f"problem_{domain}", topic=topic, difficulty=difficulty, index=index)


def attempt_prompt(domain: str, problem: dict) -> str:
    if domain == "code":
        return render("attempt_code", **problem)
    return render("attempt_math", statement=problem["statement"])


def parse(content: str) -> dict:
    fenced = re.fullmatch(r"```json\n(.*)\n```", content, re.S)
    return json.loads(fenced.group(1) if fenced else content)


def planted(response) -> list[str]:
    return response.model_extra["synthgen_planted"]


def only(name: str) -> dict[str, float]:
    """Rates that plant exactly one defect, always."""
    return {**dict.fromkeys(bank.DEFAULT_RATES, 0.0), name: 1.0}


def run_code(tmp_path: Path, solution: str, tests: str, timeout: float = 20) -> str:
    """pass | fail | no_report (exited 0 without running the tests) | timeout."""
    work = tmp_path / uuid.uuid4().hex
    work.mkdir()
    (work / "solution.py").write_text(solution)
    (work / "test_problem.py").write_text(tests)
    (work / "harness.py").write_text(HARNESS)
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "harness.py"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    if proc.returncode != 0:
        return "fail"
    return "pass" if proc.stdout.rstrip().endswith("TESTS") else "no_report"


def printed(tmp_path: Path, program: str) -> str:
    """The last line a math program prints."""
    path = tmp_path / f"{uuid.uuid4().hex}.py"
    path.write_text(program)
    proc = subprocess.run(
        [sys.executable, "-I", str(path)], capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def json_teacher(**kwargs) -> TeacherServer:
    """A teacher that answers exactly what the (v1) prompts ask for: no thinking trace."""
    return TeacherServer(style="json", **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def clean_url():
    with json_teacher(seed=1, defect_scale=0) as server:
        yield server.url


# --------------------------------------------------------------------------------------------
# Endpoints and response shape


def test_models_endpoint_says_it_is_not_a_language_model(clean_url):
    api = client(clean_url)
    models = api.models.list().data
    assert [m.id for m in models] == [ts.MODEL_ID]
    assert models[0].model_extra["is_language_model"] is False
    assert "not a language model" in models[0].model_extra["description"]
    assert api.models.retrieve(ts.MODEL_ID).id == ts.MODEL_ID


@pytest.mark.parametrize("domain", ["code", "math"])
def test_clean_problem_and_attempt_match_the_schemas(clean_url, domain):
    api = client(clean_url)
    response = ask(api, problem_prompt(domain, 3))
    assert response.object == "chat.completion" and response.model == "any-model-name"
    assert response.choices[0].finish_reason == "stop" and planted(response) == []
    content = response.choices[0].message.content
    usage = response.usage
    assert usage.completion_tokens == -(-len(content) // 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    problem = parse(content)
    jsonschema.validate(problem, SCHEMAS[f"{domain}_problem"])
    attempt = ask(api, attempt_prompt(domain, problem), seed=2)
    jsonschema.validate(parse(attempt.choices[0].message.content), SCHEMAS[f"{domain}_attempt"])


def test_same_request_same_content_and_seed_varies_attempts(clean_url):
    api = client(clean_url)
    first = ask(api, problem_prompt("code", 9), seed=4).choices[0].message.content
    assert ask(api, problem_prompt("code", 9), seed=4).choices[0].message.content == first
    attempt = attempt_prompt("code", parse(first))
    contents = {ask(api, attempt, seed=s).choices[0].message.content for s in range(6)}
    assert len(contents) > 1
    with json_teacher(seed=2, defect_scale=0) as other:
        reply = ask(client(other.url), problem_prompt("code", 9), seed=4)
        assert reply.choices[0].message.content != first


def test_max_tokens_cuts_the_answer(clean_url):
    response = ask(client(clean_url), problem_prompt("math", 1), max_tokens=20)
    assert response.choices[0].finish_reason == "length"
    assert len(response.choices[0].message.content) <= 80
    assert planted(response) == ["max_tokens"]


# --------------------------------------------------------------------------------------------
# Executed content


def test_code_references_pass_and_planted_attempts_fail(clean_url, tmp_path):
    api = client(clean_url)
    problems = [
        parse(ask(api, problem_prompt("code", i, topic)).choices[0].message.content)
        for i, topic in enumerate(["strings", "lists", "matrices", "number theory", "misc"])
    ]
    for problem in problems:
        assert run_code(tmp_path, problem["reference_solution"], problem["tests"]) == "pass"
        good = parse(ask(api, attempt_prompt("code", problem), seed=3).choices[0].message.content)
        assert run_code(tmp_path, good["solution"], problem["tests"]) == "pass"
    expected = {"wrong_solution": "fail", "fake_pass": "no_report", "infinite_loop": "timeout"}
    for defect, verdict in expected.items():
        with json_teacher(defect_rates=only(f"attempt.{defect}")) as server:
            for problem in problems[: 1 if defect == "infinite_loop" else 3]:
                reply = ask(client(server.url), attempt_prompt("code", problem))
                assert planted(reply) == [defect]
                solution = parse(reply.choices[0].message.content)["solution"]
                assert run_code(tmp_path, solution, problem["tests"], timeout=3) == verdict


def test_failing_tests_and_benchmark_copies(tmp_path):
    for defect, verdict in (("failing_tests", "fail"), ("benchmark_copy", "pass")):
        with json_teacher(defect_rates=only(f"problem.{defect}")) as server:
            for index in range(3):
                reply = ask(client(server.url), problem_prompt("code", index))
                assert planted(reply) == [defect]
                problem = parse(reply.choices[0].message.content)
                jsonschema.validate(problem, SCHEMAS["code_problem"])
                assert (
                    run_code(tmp_path, problem["reference_solution"], problem["tests"]) == verdict
                )
    humaneval = {p["prompt"] for p in bank.humaneval_problems()}
    assert problem["statement"] in humaneval
    assert problem["tests"].rstrip().endswith(f"check({problem['entry_point']})")


def test_math_programs_and_attempts(clean_url, tmp_path):
    api = client(clean_url)
    for index, topic in enumerate(["arithmetic", "geometry", "probability", "number theory"]):
        problem = parse(ask(api, problem_prompt("math", index, topic)).choices[0].message.content)
        assert printed(tmp_path, problem["program"]) == problem["answer"]
        good = parse(ask(api, attempt_prompt("math", problem), seed=1).choices[0].message.content)
        assert good["answer"] == problem["answer"] == printed(tmp_path, good["program"])
        for defect in ("wrong_solution", "inconsistent_answer"):
            with json_teacher(defect_rates=only(f"attempt.{defect}")) as server:
                reply = ask(client(server.url), attempt_prompt("math", problem))
                bad = parse(reply.choices[0].message.content)
                output = printed(tmp_path, bad["program"])
                if defect == "wrong_solution":  # self-consistent but wrong
                    assert bad["answer"] == output != problem["answer"]
                else:
                    assert bad["answer"] != output
    with json_teacher(defect_rates=only("problem.wrong_reference_answer")) as server:
        reply = ask(client(server.url), problem_prompt("math", 5))
        problem = parse(reply.choices[0].message.content)
        assert printed(tmp_path, problem["program"]) != problem["answer"]


# --------------------------------------------------------------------------------------------
# Planted defects and labels


def test_high_defect_scale_plants_every_kind_and_labels_it(tmp_path):
    DetectorFactory.seed = 0
    labels_path = tmp_path / "labels.jsonl"
    responses = []
    with json_teacher(seed=5, defect_scale=3.0, label_log=str(labels_path)) as server:
        api = client(server.url)
        for domain in ("code", "math"):
            for index in range(110):
                seed = 7 * index + 1  # like the pipeline: every problem request has its own
                reply = ask(api, problem_prompt(domain, index), seed=seed)
                responses.append((domain, index, seed, reply))
            problem = bank.build_problem(domain, "lists", "easy", 1).fields
            for seed in range(100):
                reply = ask(api, attempt_prompt(domain, problem), seed)
                responses.append((domain, None, seed, reply))
    labels = read_jsonl(labels_path)
    assert len(labels) == len(responses)
    assert all(set(label) == LABEL_FIELDS for label in labels)
    assert {(lab["style"], lab["reasoning_served"]) for lab in labels} == {("json", False)}
    for label, (domain, index, seed, response) in zip(labels, responses, strict=True):
        assert label["defects"] == planted(response)
        assert (label["domain"], label["index"], label["seed"]) == (domain, index, seed)
    problem_kinds = {d for lab in labels if lab["kind"] == "problem" for d in lab["defects"]}
    attempt_kinds = {d for lab in labels if lab["kind"] == "attempt" for d in lab["defects"]}
    assert problem_kinds == set(bank.PROBLEM_DEFECTS)
    assert attempt_kinds == set(bank.ATTEMPT_DEFECTS) - {"ambiguous_code"}  # v2 answers only

    by_index = {
        (domain, index): (label, response)
        for label, (domain, index, _, response) in zip(labels, responses, strict=True)
        if index is not None
    }
    for (domain, index), (label, response) in by_index.items():
        defects = label["defects"]
        content = response.choices[0].message.content
        if defects and defects[0] in ("exact_duplicate", "near_duplicate"):
            copied_label, copied = by_index[(domain, label["copied_from_index"])]
            assert label["copied_from_index"] < index and copied_label["defects"] == []
            original = copied.choices[0].message.content
            if defects == ["exact_duplicate"]:
                assert content == original
            else:
                before, after = parse(original)["statement"], parse(content)["statement"]
                assert 0.85 <= jaccard(before, after) < 1
        if defects == ["non_english"]:
            assert detect(parse(content)["statement"]) in ("es", "de", "fr")
        if defects == ["truncated"]:
            assert response.choices[0].finish_reason == "length"
        if defects and defects[0] in ("truncated", "malformed_json"):
            with pytest.raises(json.JSONDecodeError):
                parse(content)


# --------------------------------------------------------------------------------------------
# Faults, latency, logs


def test_429_carries_retry_after_and_is_logged(tmp_path):
    log = tmp_path / "requests.jsonl"
    with TeacherServer(faults="429=1,retry_after=3", request_log=str(log)) as server:
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client(server.url), problem_prompt("code", 0))
        assert server.stats()["by_status"] == {"429": 1}
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["type"] == "rate_limit_error"
    [record] = read_jsonl(log)
    assert set(record) == {"t", "request_hash", "status", "fault", "finish_reason"}
    assert (record["status"], record["fault"]) == (429, "429")


def test_faults_are_per_arrival_so_a_retry_can_succeed():
    with TeacherServer(seed=3, faults="500=0.5") as server:
        api = client(server.url)
        outcomes = []
        for _ in range(16):
            try:
                outcomes.append(ask(api, problem_prompt("math", 2)).choices[0].message.content)
            except openai.InternalServerError:
                outcomes.append(None)
    answers = {o for o in outcomes if o is not None}
    assert None in outcomes and len(answers) == 1


def test_timeout_fault_holds_then_closes_without_answer(tmp_path):
    log = tmp_path / "requests.jsonl"
    faults = "timeout=1,timeout_s=0.3"
    with TeacherServer(faults=faults, request_log=str(log)) as server:
        with pytest.raises(openai.APIConnectionError):
            ask(client(server.url, timeout=5), problem_prompt("code", 1))
        assert server.stats()["by_status"] == {"timeout": 1}
    assert read_jsonl(log)[0]["status"] is None


def test_latency_is_applied():
    with TeacherServer(latency="fixed:0.2") as server:
        start = time.monotonic()
        ask(client(server.url), problem_prompt("code", 0))
        assert time.monotonic() - start >= 0.2


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("none", ts.Latency()),
        ("fixed:0.2", ts.Latency("fixed", 0.2)),
        ("lognormal:median=0.2,p99=2.0", ts.Latency("lognormal", 0.2, 2.0)),
        (" LogNormal:p99=1, median=0.5 ", ts.Latency("lognormal", 0.5, 1.0)),
    ],
)
def test_latency_specs(spec, expected):
    assert ts.parse_latency(spec) == expected


def test_lognormal_latency_has_the_requested_median_and_tail():
    import random

    latency, rng = ts.parse_latency("lognormal:median=0.2,p99=2.0"), random.Random(0)
    samples = sorted(latency.sample(rng) for _ in range(4000))
    assert 0.17 < samples[2000] < 0.23
    assert 1.5 < samples[3960] < 2.6
    assert samples[-1] <= 20.0


def test_fault_spec_parsing():
    faults = ts.parse_faults("429=0.1, 500=0.05,timeout=0.02,retry_after=1.5,timeout_s=30")
    assert faults == ts.Faults((("429", 0.1), ("500", 0.05), ("timeout", 0.02)), 1.5, 30.0)
    assert ts.parse_faults("") == ts.Faults()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency": "fast"},
        {"latency": "fixed:-1"},
        {"latency": "lognormal:median=2,p99=1"},
        {"latency": "lognormal:median=0.2"},
        {"faults": "429=0.7,500=0.5"},
        {"faults": "418=0.1"},
        {"faults": "429=lots"},
        {"faults": "429"},
        {"faults": "retry_after=-1"},
        {"defect_rates": {"problem.typos": 0.1}},
        {"defect_scale": -2},
        {"style": "verbose"},
        {"provider": "openai"},
        {"stream_chunk_tokens": 0},
        {"token_rate": -1},
        {"think_tokens": 2.5},
    ],
)
def test_bad_specs_raise_value_error(kwargs):
    with pytest.raises(ValueError) as caught:
        TeacherServer(**kwargs)
    assert "\n" not in str(caught.value)


def test_bad_bodies_get_400_and_unknown_paths_404_on_one_keep_alive_connection(clean_url):
    port = int(clean_url.rsplit(":", 1)[1].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    good = json.dumps({"model": "m", "seed": 1, "messages": [{"role": "user", "content": "hello"}]})
    cases = [
        ("POST", "/v1/chat/completions", "{not json", 400),
        ("POST", "/v1/chat/completions", json.dumps({"model": "m"}), 400),
        ("POST", "/v1/chat/completions", json.dumps({"messages": []}), 400),
        ("POST", "/v1/chat/completions", good[:-1] + ', "stream": "yes"}', 400),
        ("POST", "/v1/chat/completions", good[:-1] + ', "seed": "x"}', 400),
        ("GET", "/v1/nowhere", None, 404),
        ("POST", "/v1/completions", good, 404),
        ("POST", "/v1/chat/completions", good, 200),
    ]
    for method, path, body, status in cases:
        headers = {"Content-Type": "application/json", "Authorization": "Bearer whatever"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = json.loads(response.read())
        assert response.status == status, (path, body, payload)
        if status != 200:
            assert set(payload["error"]) >= {"message", "type", "code"}
    assert payload["object"] == "chat.completion"
    # A stream read to its end leaves the connection open for the next request.
    conn.request("POST", "/v1/chat/completions", body=good[:-1] + ', "stream": true}')
    response = conn.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.read().decode().endswith("data: [DONE]\n\n")
    conn.request("POST", "/v1/chat/completions", body=good)
    assert json.loads(conn.getresponse().read())["object"] == "chat.completion"
    conn.close()


def test_request_log_hashes_the_canonical_body(tmp_path):
    log = tmp_path / "requests.jsonl"
    body = {"seed": 2, "model": "m", "messages": [{"role": "user", "content": "x"}]}
    with TeacherServer(request_log=str(log)) as server:
        ask(client(server.url), problem_prompt("code", 4))
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body, indent=3))
        assert conn.getresponse().status == 200
        conn.close()
        assert server.stats()["requests"] == 2
    records = read_jsonl(log)
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert records[1]["request_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert [r["status"] for r in records] == [200, 200]


# --------------------------------------------------------------------------------------------
# CLI


def test_cli_runs_in_the_foreground_until_interrupted():
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.teacher.builtin.server", "--port", "0", "--seed", "4"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "not a language model" in line
        url = re.search(r"http://\S+/v1", line).group(0)
        assert client(url).models.list().data[0].id == ts.MODEL_ID
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_cli_rejects_a_bad_spec():
    import argparse

    parser = argparse.ArgumentParser()
    ts.add_arguments(parser)
    assert ts.serve_from_args(parser.parse_args(["--faults", "500=3"])) == 2
