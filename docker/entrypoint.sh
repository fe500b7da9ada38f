#!/bin/sh
# Entrypoint of synthgen's worker container: put the teacher's API key into the environment,
# then hand over to Beam's boot, which must run last, with the arguments the runner passed.
#
#   SYNTHGEN_API_KEY_SECRET  a Secret Manager version, projects/P/secrets/S/versions/V (or
#                            projects/P/locations/L/secrets/S/versions/V): when set, its value
#                            is read with the worker's service account (Dataflow) into the
#                            variable named by SYNTHGEN_API_KEY_ENV. When unset, the key is
#                            whatever the container's environment holds (docker run -e,
#                            Kubernetes envFrom).
#   SYNTHGEN_API_KEY_ENV     the variable the pipeline reads (teacher.api_key_env);
#                            default OPENAI_API_KEY.
#
# SYNTHGEN_BEAM_BOOT and SYNTHGEN_FETCH_SECRET move Beam's boot and the fetcher (for tests).
set -eu

boot="${SYNTHGEN_BEAM_BOOT:-/opt/apache/beam/boot}"
fetch="${SYNTHGEN_FETCH_SECRET:-/opt/synthgen/fetch_secret.py}"

if [ -n "${SYNTHGEN_API_KEY_SECRET:-}" ]; then
  key_env="${SYNTHGEN_API_KEY_ENV:-OPENAI_API_KEY}"
  case "$key_env" in
    "" | [0-9]* | *[!A-Za-z0-9_]*)
      echo "synthgen entrypoint: SYNTHGEN_API_KEY_ENV is not a variable name: '$key_env'" >&2
      exit 2
      ;;
  esac
  if ! key="$(python "$fetch" "$SYNTHGEN_API_KEY_SECRET")"; then
    echo "synthgen entrypoint: no API key: reading $SYNTHGEN_API_KEY_SECRET failed" >&2
    exit 1
  fi
  export "$key_env=$key"
  unset key
fi

exec "$boot" "$@"
