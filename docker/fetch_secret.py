"""Print the value of one Secret Manager secret version, for the worker container's entrypoint.

    python fetch_secret.py projects/P/secrets/S/versions/latest

Authenticates with Application Default Credentials: on Dataflow, the worker service account,
which needs roles/secretmanager.secretAccessor on the secret. SYNTHGEN_SECRET_MANAGER_ENDPOINT
names another endpoint: a regional one (secretmanager.REGION.rep.googleapis.com) for regional
secrets, or an http:// URL, taken to be a local stand-in and sent no credentials. The value goes
to stdout only, without a trailing newline; errors name the secret, never its value. Exit codes:
0 printed, 1 not readable or empty, 2 usage.
"""

from __future__ import annotations

import os
import re
import sys

_NAME = re.compile(r"projects/[^/]+/(locations/[^/]+/)?secrets/[^/]+/versions/[^/]+")
_TIMEOUT_S = 60.0


def _client():
    from google.cloud import secretmanager

    endpoint = os.environ.get("SYNTHGEN_SECRET_MANAGER_ENDPOINT", "")
    if not endpoint:
        return secretmanager.SecretManagerServiceClient()
    if endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        return secretmanager.SecretManagerServiceClient(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options={"api_endpoint": endpoint},
        )
    return secretmanager.SecretManagerServiceClient(client_options={"api_endpoint": endpoint})


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not _NAME.fullmatch(argv[1]):
        print(
            "usage: fetch_secret.py projects/P/[locations/L/]secrets/S/versions/V",
            file=sys.stderr,
        )
        return 2
    name = argv[1]
    try:
        response = _client().access_secret_version(request={"name": name}, timeout=_TIMEOUT_S)
        value = response.payload.data.decode("utf-8").rstrip("\r\n")
    except Exception as exc:  # noqa: BLE001 - one line for the container log, then exit 1
        print(f"fetch_secret: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not value:
        print(f"fetch_secret: {name}: the secret is empty", file=sys.stderr)
        return 1
    sys.stdout.write(value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
