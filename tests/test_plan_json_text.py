"""The plan's JSON text is exactly what json.dumps(indent=2) writes, for the sample plan and for any
JSON value (property test)."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from fleet.plan.json_text import dumps_indented

_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
            | st.text())
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(), inner, max_size=4), max_leaves=30)


@given(_values)
def test_same_text_as_json_dumps(value):
    assert dumps_indented(value) == json.dumps(value, indent=2)


def test_edge_values():
    value = {"": [], "a": {}, "é\u2028\n\"": [None, True, False, 0, -1, 1.5, 1e300, math.inf, -math.inf],
             "n": [[[]], [{}], {"x": {"y": []}}]}
    assert dumps_indented(value) == json.dumps(value, indent=2)
    assert dumps_indented(value, indent=4) == json.dumps(value, indent=4)


def test_what_is_not_plain_json_is_left_to_json_dumps():
    value = {1: (2, 3), "b": {None: 1.0}}
    assert dumps_indented(value) == json.dumps(value, indent=2)
