"""Shared fixtures. Ray must stay on 127.0.0.1: the variable below is read when Ray is imported."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
# A cache of built models shared by this session's tests and their subprocesses.
os.environ.setdefault("RLSYS_CACHE", str(Path(tempfile.gettempdir()) / "rlsys-test-cache"))

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    from rlsys.models.catalog import resolve_model

    return resolve_model("tiny-random")
