# synthgen's SDK worker container: Beam's Python SDK image with synthgen installed from this
# checkout, bubblewrap for the sandbox, and an entrypoint that puts the teacher's API key into
# the environment before it runs Beam's boot. For Dataflow (--sdk_container_image) and for
# portable runners (Flink: --environment_type=DOCKER, or as the --worker_pool of EXTERNAL).
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/synthgen-worker:0.1.0 \
#     --build-arg SYNTHGEN_API_KEY_SECRET=projects/PROJECT/secrets/SECRET/versions/latest .
#
# The key itself is never baked in: SYNTHGEN_API_KEY_SECRET is the *name* of a Secret Manager
# version, read at container start with the worker's service account (docker/entrypoint.sh).
# Without it, the key comes from the container's environment (docker run -e, Kubernetes envFrom).

# Must equal the Beam version that launches the job (pyproject.toml: the gcp extra).
ARG BEAM_VERSION=2.77.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

# bwrap: the sandbox's "namespaces" level, where the container may create user namespaces.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

# A regular (not editable) install: prompts, schemas and the sandbox harness ship inside the
# package, so nothing refers to the source afterwards. The gcp extra brings the Secret Manager
# client the entrypoint uses.
COPY pyproject.toml README.md /tmp/synthgen-src/
COPY pipeline /tmp/synthgen-src/pipeline
COPY prompts /tmp/synthgen-src/prompts
COPY schemas /tmp/synthgen-src/schemas
RUN pip install --no-cache-dir "/tmp/synthgen-src[gcp]" \
    && rm -rf /tmp/synthgen-src \
    && cd / \
    && python -c "from pipeline.config import Config; from pipeline.prompts import resolve_prompts; from pipeline.schemas import load_schema; from pipeline.stages.tokens import load_tokenizer; resolve_prompts(Config()); load_schema('data_row'); load_tokenizer('qwen2')" \
    && python -c "import google.cloud.secretmanager" \
    && command -v bwrap

COPY docker/entrypoint.sh docker/fetch_secret.py /opt/synthgen/
RUN chmod 0755 /opt/synthgen/entrypoint.sh

ARG SYNTHGEN_API_KEY_SECRET=""
ARG SYNTHGEN_API_KEY_ENV=OPENAI_API_KEY
ENV SYNTHGEN_API_KEY_SECRET=${SYNTHGEN_API_KEY_SECRET} \
    SYNTHGEN_API_KEY_ENV=${SYNTHGEN_API_KEY_ENV}

# Beam's /opt/apache/beam/boot stays the last step: the entrypoint execs it with the runner's
# arguments (--id=..., --provision_endpoint=..., or --worker_pool).
ENTRYPOINT ["/opt/synthgen/entrypoint.sh"]
