"""Argument checks shared by the clusterer and the occurrence tables: one-line
`ParameterError`s naming the argument, what was expected and what was received."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    make_constraint,
    validate_parameter_constraints,
)

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


def _check_constraints(name: str, value: Any, constraints: list, *,
                       caller: str) -> None:
    """Check `value` with scikit-learn's parameter validation, failing the discovery way.

    Args:
        name: the argument's name, for the message.
        value: its value.
        constraints: scikit-learn constraints (`Interval`, `StrOptions`, None,
            "boolean", a type...); the value must satisfy one of them.
        caller: the estimator's class name, for scikit-learn.

    Raises:
        ParameterError: "Invalid value for `name`: expected <constraints in words>,
            received <value>." (in place of scikit-learn's `InvalidParameterError`).
            A bool fails a numeric `Interval` too: scikit-learn counts True as 1.
    """
    try:
        validate_parameter_constraints({name: constraints}, {name: value},
                                       caller_name=caller)
    except InvalidParameterError:
        pass
    else:
        if not isinstance(value, (bool, np.bool_)) or "boolean" in constraints:
            return
    _fail(name, _describe(constraints), value)


def _describe(constraints: list) -> str:
    """Constraints in words, e.g. "an integer >= 2 or None"."""
    words = [_describe_one(constraint) for constraint in constraints]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _describe_one(constraint: Any) -> str:
    if constraint is None:
        return "None"
    if isinstance(constraint, str) and constraint == "boolean":
        return "True or False"
    if isinstance(constraint, StrOptions):
        return f"one of {tuple(sorted(constraint.options))}"
    if isinstance(constraint, Interval):
        kind = "an integer" if constraint.type is Integral else "a number"
        closed_left = constraint.closed in ("left", "both")
        closed_right = constraint.closed in ("right", "both")
        if constraint.right is None:
            return f"{kind} {'>=' if closed_left else '>'} {constraint.left}"
        if constraint.left is None:
            return f"{kind} {'<=' if closed_right else '<'} {constraint.right}"
        return (f"{kind} in {'[' if closed_left else '('}{constraint.left}, "
                f"{constraint.right}{']' if closed_right else ')'}")
    return str(make_constraint(constraint))


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
