"""The built-in teacher: an OpenAI-compatible HTTP server over a procedural problem bank."""
