from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.sample import SampleRepo, make_sample_repo


@pytest.fixture
def sample_repo(tmp_path: Path) -> SampleRepo:
    """A committed project with passing pytest tests and a bare `origin` remote."""
    return make_sample_repo(tmp_path / "sample")
