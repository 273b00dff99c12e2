"""Shared fixtures: paths to the sample data and a seeded random generator."""

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


@pytest.fixture
def digit_clip() -> Path:
    """A real 8 kHz spoken digit."""
    return DATA / "fsdd" / "0_george_0.wav"


@pytest.fixture
def annotated_recording() -> Path:
    """85 s of spoken digits with a `start_s,end_s,label` annotation beside it."""
    return DATA / "recordings" / "rec_01.wav"


@pytest.fixture
def finch_song() -> Path:
    """A 32 kHz Bengalese finch song with an `onset_s,offset_s,label` annotation."""
    return DATA / "bfsongrepo" / "gy6or6_baseline_230312_0811.159.wav"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true",
                     help="also run the tests marked slow (end-to-end runs, real-size "
                          "models, the shared data); .ci/run and the README's test "
                          "command do")


def pytest_collection_modifyitems(config, items):
    """Without --slow, the tests marked slow are deselected (not skipped), so the quick
    loop stays under 3 minutes on 2 cores and never reports them as passed."""
    if config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
