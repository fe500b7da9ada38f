"""The sandbox: untrusted code runs here, never in the worker; graders that run inside it."""
