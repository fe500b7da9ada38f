"""The teacher: OpenAI-compatible client, response cache, limits, and the built-in teacher.

No Beam stage lives here; stages use it.
"""
