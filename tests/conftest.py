"""Every test gets its own teacher response cache, so no test reads another's answers and
nothing is written to the user's ~/.cache."""

import pytest


@pytest.fixture(autouse=True)
def _private_teacher_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHGEN_CACHE_DIR", str(tmp_path / "teacher-cache"))
