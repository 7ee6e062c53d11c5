"""Indexed max-heap: invariants under random in-place key updates (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from snn_blockbackend.sparseprop import IndexedMaxHeap

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(finite, min_size=1, max_size=60),
       updates=st.lists(st.tuples(st.integers(min_value=0, max_value=10**6), finite), max_size=120))
def test_heap_invariants_under_random_updates(values, updates):
    heap = IndexedMaxHeap(np.array(values))
    model = list(values)
    assert heap.is_valid()
    for raw_index, key in updates:
        i = raw_index % len(model)
        heap.update(i, key)
        model[i] = key
        assert heap.is_valid()
        top_key, top_node = heap.top()
        assert top_key == max(model)
        assert model[top_node] == top_key
    assert [heap.key(i) for i in range(len(model))] == model


@settings(max_examples=50, deadline=None)
@given(values=st.lists(finite, min_size=2, max_size=40, unique=True))
def test_repeated_top_reset_yields_descending_order(values):
    # lowering the top key below everything emulates "spike and reset": tops come out sorted
    heap = IndexedMaxHeap(np.array(values))
    seen = []
    floor = min(values) - 1.0
    for n in range(len(values)):
        key, node = heap.top()
        seen.append(key)
        heap.update(node, floor - n)
    assert seen == sorted(values, reverse=True)


def test_heap_rejects_bad_use():
    with pytest.raises(ValueError, match="at least one"):
        IndexedMaxHeap(np.array([]))
    heap = IndexedMaxHeap(np.array([1.0, 2.0]))
    with pytest.raises(IndexError):
        heap.update(5, 0.0)
