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
