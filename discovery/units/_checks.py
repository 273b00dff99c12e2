"""Argument checks shared by the clusterer and the occurrence tables: one-line
`ParameterError`s naming the argument, what was expected and what was received."""

from __future__ import annotations

from typing import Any

import numpy as np

from discovery.errors import ParameterError


def _fail(name: str, expected: str, value: Any) -> None:
    raise ParameterError(f"Invalid value for `{name}`: expected {expected}, "
                         f"received {value!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not _is_int(value) or value < low:
        _fail(name, f"an integer >= {low}" + (" or None" if optional else ""), value)


def _as_array(name: str, value: Any, *, ndim: int, dtype=np.float64) -> np.ndarray:
    """`value` as a finite numeric array of `ndim` dimensions."""
    array = np.asarray(value)
    kinds = "iu" if np.dtype(dtype).kind in "iu" else "biuf"
    if array.dtype.kind not in kinds and array.size:
        _fail(name, "an integer array" if kinds == "iu" else "a numeric array",
              f"an array of dtype {array.dtype}")
    if array.ndim != ndim:
        _fail(name, f"a {ndim}-D array", f"shape {array.shape}")
    array = array.astype(dtype, copy=False)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        _fail(name, "finite values", "NaN or infinity")
    return array
