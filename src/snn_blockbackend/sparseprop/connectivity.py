"""Sparse connectivity: fixed out-degree random graphs (stored or regenerated) and user matrices.

Rows are *presynaptic*: ``indices[indptr[j]:indptr[j+1]]`` are the targets of neuron j and
``weights`` the voltage jumps they receive. Random graphs draw, for each neuron j, K distinct
targets among the other N-1 neurons from a generator keyed by (seed, j) (splitmix64 mixing,
Lemire bounded draws, hash-set rejection of repeats). The stored CSR and the on-the-fly mode
use the same generator, so they describe the same network.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)

MAX_NEURONS = 2**31 - 1  # int32 neuron ids


@njit(cache=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True)
def neuron_stream_state(seed_key, j):
    """Initial splitmix64 state of neuron j's private stream (mixed so neighbours decorrelate)."""
    return _mix64(seed_key ^ (np.uint64(j) * _GOLDEN + _GOLDEN))


@njit(cache=True, inline="always")
def _bounded(state, m):
    """Unbiased draw in [0, m) for m < 2**32 (Lemire). Returns (new_state, value)."""
    mm = np.uint64(m)
    while True:
        state = state + _GOLDEN
        x = _mix64(state) >> _S32
        prod = x * mm
        low = prod & _LOW32
        if low >= mm:
            return state, np.int64(prod >> _S32)
        threshold = (np.uint64(4294967296) - mm) % mm
        if low >= threshold:
            return state, np.int64(prod >> _S32)


@njit(cache=True)
def hash_table_size(k):
    size = 16
    while size < 4 * k:
        size *= 2
    return size


@njit(cache=True)
def online_targets(j, n, k, seed_key, out, table):
    """Write the K distinct targets of neuron j (never j itself) into ``out[:k]``.

    ``table`` is a scratch int64 array of size hash_table_size(k) filled with -1; it is
    left filled with -1 on return.
    """
    mask = table.shape[0] - 1
    state = neuron_stream_state(seed_key, j)
    count = 0
    while count < k:
        state, r = _bounded(state, n - 1)
        h = (r * 2654435761) & mask
        duplicate = False
        while table[h] != -1:
            if table[h] == r:
                duplicate = True
                break
            h = (h + 1) & mask
        if duplicate:
            continue
        table[h] = r
        # skip j so that there is no autapse
        out[count] = r + 1 if r >= j else r
        count += 1
    # clear only the slots we touched (the probe skips already-cleared slots, so order is safe)
    for c in range(k):
        r = out[c] - 1 if out[c] > j else out[c]
        h = (r * 2654435761) & mask
        while table[h] != r:
            h = (h + 1) & mask
        table[h] = -1


@njit(cache=True)
def _build_csr_indices(n, k, seed_key, indices):
    table = np.full(hash_table_size(k), -1, dtype=np.int64)
    buf = np.empty(k, dtype=np.int64)
    for j in range(n):
        online_targets(j, n, k, seed_key, buf, table)
        base = j * k
        for c in range(k):
            indices[base + c] = buf[c]


def seed_key_of(seed: int) -> np.uint64:
    return np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF)


class NetworkTooLargeError(ValueError):
    """Raised *before* allocating when a simulation would not fit in memory."""


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (falls back to total physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate_memory_bytes(n: int, k: int, stored: bool, per_synapse_weights: bool = False,
                          time_based: bool = False, spike_buffer: int = 1 << 16) -> int:
    """Bytes a simulation needs: heap (16 B/neuron), initial/final phases and a temporary
    (24 B/neuron), per-neuron velocities for the time-based variant, optional CSR, spike buffers."""
    per_neuron = 16 + 24 + (16 if time_based else 0)
    total = n * per_neuron + spike_buffer * 12
    if stored:
        total += 8 * (n + 1) + 4 * n * k + (8 * n * k if per_synapse_weights else 0)
    return int(total)


def check_fits_in_memory(required: int, memory_limit: int | None, what: str) -> None:
    limit = available_memory_bytes() if memory_limit is None else int(memory_limit)
    if required > limit:
        raise NetworkTooLargeError(
            f"{what} needs about {required / 2**30:.2f} GiB but only {limit / 2**30:.2f} GiB are "
            f"available; use on-the-fly connectivity (stored=False) or a smaller network")


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Network:
    """A directed sparse network with delta synapses.

    Either stored (``indptr``/``indices``, optional per-synapse ``weights``) or regenerated
    on the fly (``online=True``: each spike re-derives the K targets from ``seed``).
    ``weight`` is the uniform voltage jump used when ``weights`` is None.
    """

    n_neurons: int
    k: int
    weight: float
    seed: int
    online: bool
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self):
        # the compiled loops index with these arrays unchecked: a stored network is validated once, here (O(nnz))
        if self.online:
            return
        if self.indptr is None or self.indices is None:
            raise ValueError("a stored Network needs indptr and indices (or online=True)")
        indptr, indices = np.asarray(self.indptr), np.asarray(self.indices)
        if indptr.dtype != np.int64 or indices.dtype != np.int32:
            raise TypeError(f"Network indptr must be int64 and indices int32 (the compiled loops' types), got "
                            f"{indptr.dtype} and {indices.dtype}")
        _check_compressed("CSR (rows = presynaptic neurons)", indptr, indices, self.n_neurons, self.n_neurons)
        if self.weights is not None and np.asarray(self.weights).shape != indices.shape:
            raise ValueError(f"Network weights must have one entry per synapse ({indices.shape[0]}), "
                             f"got shape {np.asarray(self.weights).shape}")

    @property
    def uniform_weight(self) -> bool:
        return self.weights is None

    @property
    def n_synapses(self) -> int:
        return self.n_neurons * self.k if self.online else int(self.indptr[-1])

    @property
    def max_out_degree(self) -> int:
        if self.online:
            return self.k
        return int(np.diff(self.indptr).max()) if self.n_neurons else 0

    def nbytes(self) -> int:
        if self.online:
            return 0
        total = self.indptr.nbytes + self.indices.nbytes
        return total + (self.weights.nbytes if self.weights is not None else 0)

    def targets(self, j: int) -> np.ndarray:
        """Targets of neuron j (int64 array)."""
        if not 0 <= j < self.n_neurons:
            raise IndexError(f"neuron {j} out of range")
        if self.online:
            out = np.empty(self.k, dtype=np.int64)
            table = np.full(hash_table_size(self.k), -1, dtype=np.int64)
            online_targets(j, self.n_neurons, self.k, seed_key_of(self.seed), out, table)
            return out
        return self.indices[self.indptr[j]:self.indptr[j + 1]].astype(np.int64)

    def synapse_weights(self, j: int) -> np.ndarray:
        n_t = self.k if self.online else int(self.indptr[j + 1] - self.indptr[j])
        if self.weights is None:
            return np.full(n_t, self.weight)
        return self.weights[self.indptr[j]:self.indptr[j + 1]].copy()

    def stored(self, memory_limit: int | None = None) -> "Network":
        """The same network with its connectivity stored as CSR."""
        if not self.online:
            return self
        return fixed_outdegree_network(self.n_neurons, self.k, self.weight, self.seed,
                                       stored=True, memory_limit=memory_limit)

    def to_scipy(self):
        """Weight matrix W[post, pre] as scipy.sparse.csr_matrix."""
        import scipy.sparse as sp

        net = self.stored()
        data = net.weights if net.weights is not None else np.full(net.n_synapses, net.weight)
        by_pre = sp.csr_matrix((data, net.indices, net.indptr), shape=(self.n_neurons, self.n_neurons))
        return by_pre.T.tocsr()

    def kernel_args(self):
        """Arrays in the order the compiled loops expect them."""
        empty_i64 = np.zeros(1, dtype=np.int64)
        empty_i32 = np.zeros(1, dtype=np.int32)
        empty_f = np.zeros(1, dtype=np.float64)
        if self.online:
            return (True, empty_i64, empty_i32, empty_f, True, float(self.weight),
                    np.int64(self.k), seed_key_of(self.seed))
        return (False, self.indptr, self.indices,
                self.weights if self.weights is not None else empty_f,
                self.weights is None, float(self.weight),
                np.int64(self.max_out_degree), seed_key_of(self.seed))


def default_weight(k: int, j0: float = 1.0) -> float:
    """Reference coupling: every synapse is inhibitory with jump -J0/sqrt(K)."""
    return -j0 / math.sqrt(k)


def fixed_outdegree_network(n: int, k: int, weight: float | None = None, seed: int = 0,
                            stored: bool = True, memory_limit: int | None = None) -> Network:
    """Random network: every neuron projects to K distinct other neurons, seeded.

    ``weight`` is the voltage jump of every synapse (default ``-1/sqrt(K)``, inhibitory).
    ``stored=False`` keeps O(N) memory by regenerating targets at each spike.
    """
    n = _check_int("n (number of neurons)", n, 2)
    k = _check_int("k (out-degree)", k, 1)
    if n > MAX_NEURONS:
        raise ValueError(f"n={n} exceeds the supported maximum {MAX_NEURONS} (int32 ids)")
    if k >= n:
        raise ValueError(f"k={k} must be smaller than n={n} (K distinct targets, no self-connections)")
    weight = default_weight(k) if weight is None else weight
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise TypeError(f"weight must be a real number, got {type(weight).__name__}")
    weight = float(weight)
    if math.isnan(weight) or not math.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if not stored:
        return Network(n, k, weight, int(seed), True)
    check_fits_in_memory(estimate_memory_bytes(n, k, stored=True), memory_limit,
                         f"a stored network with N={n}, K={k}")
    indptr = np.arange(0, (n + 1) * k, k, dtype=np.int64)
    indices = np.empty(n * k, dtype=np.int32)
    _build_csr_indices(n, k, seed_key_of(seed), indices)
    return Network(n, k, weight, int(seed), False, indptr, indices, None)


def _check_index_range(what: str, index: np.ndarray, size: int) -> None:
    """Every entry of ``index`` in [0, size): checked before any compiled code (or torch's coalesce) reads it."""
    if index.size and (index.min() < 0 or index.max() >= size):
        raise ValueError(f"weight matrix {what} must lie in [0, {size}), got values in [{index.min()}, {index.max()}]")


def _check_compressed(what: str, indptr: np.ndarray, indices: np.ndarray, n_major: int, n_minor: int) -> None:
    """A compressed (CSR/CSC) layout's pointers and indices are consistent (O(nnz))."""
    if indptr.shape != (n_major + 1,):
        raise ValueError(f"weight matrix {what} indptr must have {n_major + 1} entries, got {indptr.shape[0]}")
    if indptr[0] != 0 or indptr[-1] != indices.shape[0]:
        raise ValueError(f"weight matrix {what} indptr must run from 0 to nnz={indices.shape[0]}, "
                         f"got {indptr[0]} to {indptr[-1]}")
    if (np.diff(indptr) < 0).any():
        raise ValueError(f"weight matrix {what} indptr must be non-decreasing (it is decreasing at row "
                         f"{int(np.argmax(np.diff(indptr) < 0))})")
    _check_index_range(f"{what} indices", indices, n_minor)


def _torch_entries(matrix, torch):
    """(post, pre, values, shape) of a torch tensor, its indices validated before torch touches them."""
    matrix = matrix.detach().to("cpu")
    shape = tuple(matrix.shape)
    if len(shape) != 2:
        raise ValueError(f"weight matrix must be square, got shape {shape}")
    if matrix.layout == torch.sparse_coo:
        # the raw (uncoalesced) indices: coalesce() itself writes out of bounds on invalid ones
        indices = matrix._indices().numpy()
        if indices.shape[0] != 2:
            raise ValueError(f"weight matrix must be a 2-d sparse tensor, got {indices.shape[0]}-d indices")
        _check_index_range("row (post) indices", indices[0], shape[0])
        _check_index_range("column (pre) indices", indices[1], shape[1])
        post, pre, values = indices[0], indices[1], matrix._values()
    elif matrix.layout in (torch.sparse_csr, torch.sparse_csc):
        row_major = matrix.layout == torch.sparse_csr
        indptr = (matrix.crow_indices() if row_major else matrix.ccol_indices()).numpy()
        minor = (matrix.col_indices() if row_major else matrix.row_indices()).numpy()
        n_major, n_minor = shape if row_major else shape[::-1]
        _check_compressed("CSR" if row_major else "CSC", indptr, minor, n_major, n_minor)
        major = np.repeat(np.arange(n_major, dtype=np.int64), np.diff(indptr))
        post, pre = (major, minor) if row_major else (minor, major)
        values = matrix.values()
    elif matrix.layout == torch.strided:
        coo = matrix.to_sparse_coo()
        post, pre, values = coo.indices()[0].numpy(), coo.indices()[1].numpy(), coo.values()
    else:
        raise TypeError(f"torch layout {matrix.layout} is not supported: convert it with .to_sparse_coo() "
                        "or .to_sparse_csr()")
    return post, pre, values.to(torch.float64).numpy(), shape


def _scipy_entries(matrix):
    """(post, pre, values, shape) of a scipy sparse matrix or array, its indices validated first."""
    shape = tuple(matrix.shape)
    fmt = getattr(matrix, "format", None)
    if fmt in ("csr", "csc"):
        n_major, n_minor = shape if fmt == "csr" else shape[::-1]
        _check_compressed(fmt.upper(), np.asarray(matrix.indptr), np.asarray(matrix.indices), n_major, n_minor)
    elif fmt == "coo":
        _check_index_range("row (post) indices", np.asarray(matrix.row), shape[0])
        _check_index_range("column (pre) indices", np.asarray(matrix.col), shape[1])
    coo = matrix.tocoo()
    return coo.row, coo.col, np.asarray(coo.data, dtype=np.float64), shape


def _sum_duplicates(post: np.ndarray, pre: np.ndarray, data: np.ndarray):
    """Entries sorted by (pre, post), duplicates of one (post, pre) summed in their given order (the rule of
    scipy's CSR conversion and torch's ``coalesce``)."""
    order = np.lexsort((post, pre))  # stable: duplicates keep their given order
    post, pre, data = post[order], pre[order], data[order]
    if post.size < 2:
        return post, pre, data
    first = np.concatenate(([True], (post[1:] != post[:-1]) | (pre[1:] != pre[:-1])))
    if first.all():
        return post, pre, data
    starts = np.flatnonzero(first)
    return post[starts], pre[starts], np.add.reduceat(data, starts)


def from_sparse_matrix(matrix) -> Network:
    """Network from a user weight matrix ``W[post, pre]`` (scipy.sparse or torch sparse/dense).

    Entries are voltage jumps. Duplicate entries of one (post, pre) pair (possible in COO or unsorted CSR
    input) are summed into one synapse, as scipy's and torch's conversions do; entries that are (or sum to)
    zero are no synapse. Self-connections (non-zero diagonal) are refused because the spiking neuron is reset
    after its targets are updated. Indices are validated first (out of range, negative, a decreasing indptr).
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        torch = None
    if torch is not None and isinstance(matrix, torch.Tensor):
        post, pre, data, shape = _torch_entries(matrix, torch)
    elif hasattr(matrix, "tocoo"):
        post, pre, data, shape = _scipy_entries(matrix)
    else:
        raise TypeError("matrix must be a scipy.sparse matrix/array or a torch tensor, got "
                        f"{type(matrix).__name__}")
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"weight matrix must be square, got shape {shape}")
    n = int(shape[0])
    if n < 2:
        raise ValueError("a network needs at least 2 neurons")
    if not np.isfinite(data).all():
        raise ValueError("weight matrix contains NaN or infinite entries")
    post, pre, data = _sum_duplicates(np.asarray(post, dtype=np.int64), np.asarray(pre, dtype=np.int64), data)
    keep = data != 0.0
    post, pre, data = post[keep], pre[keep], data[keep]
    if (post == pre).any():
        raise ValueError("weight matrix has self-connections (non-zero diagonal); they are not supported")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pre, minlength=n), out=indptr[1:])
    k_max = int(np.diff(indptr).max()) if data.size else 0
    if k_max == 0:
        raise ValueError("weight matrix has no non-zero entries")
    return Network(n, k_max, 0.0, 0, False, indptr, post.astype(np.int32), data.copy())
