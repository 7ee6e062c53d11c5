"""Indexed binary max-heap over flat arrays, compiled with numba.

Layout (all arrays of length N):

* ``keys[p]``  -- key stored at heap slot p (kept next to the slot to save an indirection),
* ``nodes[p]`` -- neuron id at slot p,
* ``slot[i]``  -- slot of neuron i.

The root (slot 0) holds the largest key. Only ``heap_build``, ``heap_update`` (change the
key of one neuron in place, O(log N)) and reading the root are needed by SparseProp.
Ties: sift-down prefers the left child, sift-up stops on equality.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _sift_down(keys, nodes, slot, p, n):
    key = keys[p]
    node = nodes[p]
    while True:
        left = 2 * p + 1
        if left >= n:
            break
        child = left
        right = left + 1
        if right < n and keys[right] > keys[left]:
            child = right
        if keys[child] <= key:
            break
        keys[p] = keys[child]
        nodes[p] = nodes[child]
        slot[nodes[p]] = p
        p = child
    keys[p] = key
    nodes[p] = node
    slot[node] = p


@njit(cache=True)
def _sift_up(keys, nodes, slot, p):
    key = keys[p]
    node = nodes[p]
    while p > 0:
        parent = (p - 1) >> 1
        if keys[parent] >= key:
            break
        keys[p] = keys[parent]
        nodes[p] = nodes[parent]
        slot[nodes[p]] = p
        p = parent
    keys[p] = key
    nodes[p] = node
    slot[node] = p


@njit(cache=True)
def heap_build(values, keys, nodes, slot):
    """Fill the heap with ``values[i]`` as the key of neuron i (Floyd heapify, O(N))."""
    n = values.shape[0]
    for i in range(n):
        keys[i] = values[i]
        nodes[i] = i
        slot[i] = i
    for p in range(n // 2 - 1, -1, -1):
        _sift_down(keys, nodes, slot, p, n)


@njit(cache=True)
def heap_update(keys, nodes, slot, neuron, new_key):
    """Change the key of ``neuron`` in place and restore the heap order."""
    p = slot[neuron]
    old = keys[p]
    keys[p] = new_key
    if new_key < old:
        _sift_down(keys, nodes, slot, p, keys.shape[0])
    elif new_key > old:
        _sift_up(keys, nodes, slot, p)


@njit(cache=True)
def heap_key_of(keys, slot, neuron):
    return keys[slot[neuron]]


@njit(cache=True)
def heap_is_valid(keys, nodes, slot):
    """Check the max-heap property and the slot/node bijection (for tests)."""
    n = keys.shape[0]
    for p in range(n):
        if slot[nodes[p]] != p:
            return False
        if p > 0 and keys[(p - 1) >> 1] < keys[p]:
            return False
    return True


class IndexedMaxHeap:
    """Small Python wrapper around the compiled heap (for tests and interactive use)."""

    def __init__(self, values):
        values = np.ascontiguousarray(values, dtype=np.float64)
        n = values.shape[0]
        if n == 0:
            raise ValueError("a heap needs at least one element")
        self.keys = np.empty(n, dtype=np.float64)
        self.nodes = np.empty(n, dtype=np.int32)
        self.slot = np.empty(n, dtype=np.int32)
        heap_build(values, self.keys, self.nodes, self.slot)

    def __len__(self) -> int:
        return self.keys.shape[0]

    def top(self) -> tuple[float, int]:
        """(largest key, its neuron)."""
        return float(self.keys[0]), int(self.nodes[0])

    def update(self, neuron: int, key: float) -> None:
        if not 0 <= neuron < len(self):
            raise IndexError(f"neuron {neuron} out of range [0, {len(self)})")
        heap_update(self.keys, self.nodes, self.slot, np.int64(neuron), float(key))

    def key(self, neuron: int) -> float:
        return float(self.keys[self.slot[neuron]])

    def is_valid(self) -> bool:
        return bool(heap_is_valid(self.keys, self.nodes, self.slot))
