"""Column helpers of the store (geo_ibm.store.frames) against plain Python comparisons."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from geo_ibm.store.frames import id_values, same_values


def _python_same(incoming: list, pos: list[int], stored: list) -> list[bool]:
    def norm(v):
        return None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v
    return [norm(incoming[p]) == norm(s) for p, s in zip(pos, stored)]


@pytest.mark.parametrize("kind", ["arrow", "object", "int64"])
def test_same_values_equals_python_comparison(kind):
    if kind == "int64":
        values = [3, 1, 4, 1, 5]
        incoming = pd.Series(np.array(values, dtype=np.int64))
        stored_values: list = [1, 3, 5, 9, 4]
    else:
        values = ["a", None, "c", "", "é"]
        dtype = pd.ArrowDtype(pa.string()) if kind == "arrow" else object
        incoming = pd.Series(values, dtype=dtype)
        stored_values = [None, "a", "c", "", "e"]
    pos = np.array([1, 0, 4, 3, 2])
    got = same_values(incoming, pos, pd.Series(stored_values, dtype=object))
    assert got.dtype == bool
    assert got.tolist() == _python_same(values, pos.tolist(), stored_values)


def test_same_values_with_a_stored_column_of_missing_values_only():
    incoming = pd.Series(["a", None, None], dtype=pd.ArrowDtype(pa.string()))
    stored = pd.Series([None, None, np.nan], dtype=object)
    assert same_values(incoming, np.array([0, 1, 2]), stored).tolist() == [False, True, True]


def test_same_values_falls_back_when_arrow_cannot_line_the_types_up():
    incoming = pd.Series(np.array([1, 2], dtype=np.int64))
    stored = pd.Series(["1", 2], dtype=object)  # text where a number was stored: never equal to 1
    assert same_values(incoming, np.array([0, 1]), stored).tolist() == [False, True]


def test_id_values_are_python_strings_each_once():
    ids = pd.Series(["b", "a", "b"], dtype=pd.ArrowDtype(pa.string()))
    assert id_values(ids) == ["b", "a"]
    assert id_values(ids, distinct=True) == ["b", "a", "b"]
    assert all(type(v) is str for v in id_values(ids))
    assert id_values(["x", "y", "x"]) == ["x", "y"]
