"""The shipped bundles on the shared annotated recordings (skipped without ../shared)."""

import pytest

from discovery.frontend import audio
from discovery import bundle
from discovery.evaluate import silence_scores

# The shipped models on the whole shared data set.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name, folder, floor", [
    ("default", "recordings", 0.95),   # measured 0.981 (docs/models.md)
    ("birdsong", "bfsongrepo", 0.95),  # measured 0.982, annotations never seen in training
])
def test_silence_detector_of_each_shipped_model(shared_data, name, folder, floor):
    loaded = bundle.Bundle.load(name)
    recordings = audio.find_audio_files([shared_data / folder])
    assert silence_scores(recordings, model=loaded.model,
                          config=loaded.config)["all"] >= floor


@pytest.mark.parametrize("name", ["default", "birdsong"])
def test_shipped_bundle_has_its_presets_settings(name):
    """scripts/train_default.py trains each bundle from its preset: they must agree."""
    from discovery.nn import get_preset

    preset = get_preset(name)
    shipped = bundle.load_config(bundle.resolve_model_dir(name))
    assert (shipped.features, shipped.windows, shipped.model) == (
        preset.features, preset.windows, preset.model)
