"""Merging windows into unit occurrences, the `Occurrences` table, and the unit table."""

import dataclasses

import numpy as np
import pytest

from discovery.errors import ParameterError
from discovery.units.occurrences import (
    OCCURRENCE_KEYS,
    UNIT_TABLE_KEYS,
    Occurrences,
    merge_units,
    unit_table,
)

# Two recordings of 1 s windows with a 0.5 s hop. Recording 0: unit 2, noise, unit 2
# again (two occurrences), then unit 3. Recording 1: unit 3 (not joined to recording
# 0's), and a window after a 3.5 s gap (windows left out upstream).
WINDOWS = {
    "file_index": [0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
    "start_s": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.0, 0.5, 5.0],
    "labels": [2, 2, -1, 2, 3, 3, 3, 3, 3, 3],
    "probabilities": [0.9, 0.7, 0.0, 0.6, 0.5, 1.0, 0.9, 0.4, 0.8, 1.0],
}


def _windows(order=None):
    arrays = {name: np.asarray(values) for name, values in WINDOWS.items()}
    arrays["end_s"] = arrays["start_s"] + 1.0
    if order is not None:
        arrays = {name: values[order] for name, values in arrays.items()}
    return arrays


def _merge(order=None, **kwargs):
    w = _windows(order)
    return merge_units(w["file_index"], w["start_s"], w["end_s"], w["labels"],
                       w["probabilities"], **kwargs)


def test_merge_units_by_hand():
    occurrences = _merge()
    assert isinstance(occurrences, Occurrences) and len(occurrences) == 5
    assert tuple(f.name for f in dataclasses.fields(occurrences)) == OCCURRENCE_KEYS
    assert occurrences.file.dtype == occurrences.unit.dtype == np.int64
    assert occurrences.n_windows.dtype == np.int64
    assert occurrences.start_s.dtype == occurrences.confidence.dtype == np.float64
    np.testing.assert_array_equal(occurrences.file, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(occurrences.unit, [2, 2, 3, 3, 3])
    # Overlapping windows split their overlap at the midpoint between centres, so
    # occurrences tile the timeline without overlapping; outer edges are kept.
    np.testing.assert_allclose(occurrences.start_s, [0.0, 1.75, 2.25, 0.0, 5.0])
    np.testing.assert_allclose(occurrences.end_s, [1.25, 2.25, 4.0, 1.5, 6.0])
    np.testing.assert_array_equal(occurrences.n_windows, [2, 1, 3, 2, 1])
    np.testing.assert_allclose(occurrences.confidence, [0.8, 0.6, 0.8, 0.6, 1.0])


def test_merge_units_sorts_its_input(rng):
    shuffled = _merge(order=rng.permutation(len(WINDOWS["labels"])))
    expected = _merge()
    for name in OCCURRENCE_KEYS:
        np.testing.assert_array_equal(getattr(shuffled, name), getattr(expected, name))


def test_merge_units_gap_and_min_windows():
    bridged = _merge(max_gap_s=4.0)  # recording 1's gap (3.5 s) no longer splits it
    np.testing.assert_array_equal(bridged.n_windows, [2, 1, 3, 3])
    np.testing.assert_allclose(bridged.end_s[-1], 6.0)
    np.testing.assert_allclose(bridged.confidence[-1], (0.4 + 0.8 + 1.0) / 3)
    long_only = _merge(min_windows=2)
    np.testing.assert_array_equal(long_only.n_windows, [2, 3, 2])


def test_merge_units_touching_windows_despite_rounding():
    # hop == length: 0.1 * k and 0.1 * k + 0.1 differ in the last bits.
    start = np.arange(30) * 0.1
    occurrences = merge_units(np.zeros(30, int), start, start + 0.1, np.zeros(30, int),
                              np.ones(30))
    np.testing.assert_array_equal(occurrences.n_windows, [30])


def test_merge_units_empty_and_all_noise():
    for occurrences in (merge_units([], [], [], [], []),
                        merge_units([0, 0], [0.0, 0.5], [1.0, 1.5], [-1, -1], [0.0, 0.0])):
        assert len(occurrences) == 0 and list(occurrences.rows()) == []
        assert all(len(getattr(occurrences, name)) == 0 for name in OCCURRENCE_KEYS)


@pytest.mark.parametrize("change, match", [
    ({"labels": [2] * 9}, r"`labels`: expected one value per window, shape \(10,\)"),
    ({"labels": [-2] + [0] * 9}, "`labels`: expected units >= 0 or -1"),
    ({"labels": [0.5] * 10}, "`labels`: expected an integer array"),
    ({"end_s": [-1.0] + [9.0] * 9}, "`end_s`: expected values >= start_s"),
    ({"probabilities": [1.5] * 10}, r"`probabilities`: expected values in \[0, 1\]"),
    ({"start_s": [np.nan] * 10}, "`start_s`: expected finite values"),
    ({"max_gap_s": -1.0}, "`max_gap_s`: expected a finite number >= 0"),
    ({"min_windows": 0}, "`min_windows`: expected an integer >= 1, received 0"),
])
def test_merge_units_invalid(change, match):
    w = _windows()
    options = {key: change.pop(key) for key in ("max_gap_s", "min_windows")
               if key in change}
    w.update({name: np.asarray(values) for name, values in change.items()})
    with pytest.raises(ParameterError, match=match):
        merge_units(w["file_index"], w["start_s"], w["end_s"], w["labels"],
                    w["probabilities"], **options)


def test_occurrences_rows_in_time_order_per_recording():
    occurrences = Occurrences(file=[1, 0, 0], start_s=[0.0, 2.0, 1.0],
                              end_s=[1.0, 3.0, 2.0], unit=[4, 5, 6],
                              confidence=[0.5, 0.25, 1.0], n_windows=[1, 2, 3])
    assert list(occurrences.rows()) == [(0, 1.0, 2.0, 6, 1.0), (0, 2.0, 3.0, 5, 0.25),
                                        (1, 0.0, 1.0, 4, 0.5)]
    assert list(occurrences.rows(1)) == [(1, 0.0, 1.0, 4, 0.5)]
    assert all(type(value) in (int, float) for row in occurrences.rows() for value in row)


@pytest.mark.parametrize("change, match", [
    ({"unit": [1, 2]}, "`occurrences`: expected 1-D arrays of one length"),
    ({"file": np.zeros((3, 1))}, "`occurrences`: expected 1-D arrays of one length"),
    ({"confidence": ["a", "b", "c"]}, "expected numeric arrays"),
])
def test_occurrences_are_checked_when_made(change, match):
    columns = {name: np.zeros(3) for name in OCCURRENCE_KEYS}
    with pytest.raises(ParameterError, match=match):
        Occurrences(**{**columns, **change})


def test_occurrences_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _merge().unit = np.zeros(5, int)


def test_unit_table():
    table = unit_table(_merge())
    assert tuple(table) == UNIT_TABLE_KEYS
    np.testing.assert_array_equal(table["unit"], [2, 3])
    np.testing.assert_array_equal(table["count"], [2, 3])
    np.testing.assert_array_equal(table["n_windows"], [3, 6])
    np.testing.assert_allclose(table["total_duration_s"], [1.75, 4.25])
    np.testing.assert_allclose(table["mean_duration_s"], [0.875, 4.25 / 3])
    np.testing.assert_allclose(table["mean_confidence"], [0.7, (0.8 + 0.6 + 1.0) / 3])
    assert len(unit_table(merge_units([], [], [], [], []))["unit"]) == 0
    with pytest.raises(ParameterError, match="`occurrences`: expected an Occurrences"):
        unit_table({"unit": np.zeros(2, int)})
