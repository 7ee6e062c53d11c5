"""Compiled event loops: SparseProp (phase frame), time-based SparseProp, and the O(N) reference.

Every loop runs up to ``max_spikes`` network spikes or until the next event lies beyond
``stop``; its state lives in arrays that are updated in place, so the Python driver can
call it chunk by chunk (progress bars, growing output buffers) without per-spike Python.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .connectivity import hash_table_size, online_targets
from .heap import heap_update
from .phasecurves import ptc


@njit(cache=True, inline="always")
def _fill_targets(j, n, online, indptr, indices, k, seed_key, buf, table):
    """Targets of j into buf; returns (count, CSR offset of the first synapse)."""
    if online:
        online_targets(j, n, k, seed_key, buf, table)
        return k, 0
    start = indptr[j]
    count = indptr[j + 1] - start
    for c in range(count):
        buf[c] = indices[start + c]
    return count, start


@njit(cache=True)
def sparseprop_run(keys, nodes, slot, state_f, state_i,
                   model_id, omega, phi_th, phi_r, c_factor, tab,
                   online, indptr, indices, weights, uniform_w, weight, k, seed_key,
                   ext_phase, ext_target, ext_weight,
                   max_spikes, stop_phase, renorm_every,
                   out_phase, out_id, record_tape, tape_phi):
    """SparseProp in the co-moving frame: key y_i = phi_i - Phi, max-heap on y.

    state_f = [Phi, base, scratch] (absolute phase = base + Phi); state_i = [spikes since
    renormalisation, next external event, tape write position]. ``ext_phase`` holds
    absolute phases (t * omega / tau) of external input events, sorted.
    Returns (spikes written, 1 if ``stop_phase`` was reached else 0).
    """
    n = keys.shape[0]
    phi_total_base = state_f[1]
    big_phi = state_f[0]
    since_renorm = state_i[0]
    ext_ptr = state_i[1]
    tape_ptr = state_i[2]
    n_ext = ext_phase.shape[0]
    buf = np.empty(max(k, 1), dtype=np.int64)
    new_keys = np.empty(max(k, 1), dtype=np.float64)
    phis = np.empty(max(k, 1), dtype=np.float64)
    slots_buf = np.empty(max(k, 1), dtype=np.int64)
    table = np.full(hash_table_size(k) if online else 1, -1, dtype=np.int64)
    n_out = 0
    finished = 0
    touch = 0.0
    while n_out < max_spikes:
        y_max = keys[0]
        j = nodes[0]
        spike_phi = phi_th - y_max  # Phi at which the top neuron reaches threshold
        if ext_ptr < n_ext:
            ext_local = ext_phase[ext_ptr] - phi_total_base
            if ext_local < spike_phi:
                if ext_phase[ext_ptr] > stop_phase:
                    finished = 1
                    break
                big_phi = ext_local
                i = ext_target[ext_ptr]
                phi_i = keys[slot[i]] + big_phi
                new_phi = ptc(model_id, phi_i, ext_weight[ext_ptr] * c_factor, omega, tab)
                heap_update(keys, nodes, slot, i, new_phi - big_phi)
                ext_ptr += 1
                continue
        if phi_total_base + spike_phi > stop_phase:
            finished = 1
            break
        big_phi = spike_phi
        count, start = _fill_targets(j, n, online, indptr, indices, k, seed_key, buf, table)
        # Memory-bound at large N: issue the independent loads of all K targets first in
        # tight loops (many cache misses in flight), touching the children that the
        # sift-downs will read; then the PTCs; then the heap updates, which mostly hit cache.
        for c in range(count):
            slots_buf[c] = slot[buf[c]]
        for c in range(count):
            p = slots_buf[c]
            phis[c] = keys[p]
            child = 2 * p + 1
            if child < n:
                touch += keys[child] + nodes[child]
                grandchild = 2 * child + 1
                if grandchild < n:
                    touch += keys[grandchild]
        for c in range(count):
            w = weight if uniform_w else weights[start + c]
            phi_i = phis[c] + big_phi
            if record_tape:
                tape_phi[tape_ptr + c] = phi_i
            new_keys[c] = ptc(model_id, phi_i, w * c_factor, omega, tab) - big_phi
        if record_tape:
            tape_ptr += count
        for c in range(count):
            heap_update(keys, nodes, slot, buf[c], new_keys[c])
        heap_update(keys, nodes, slot, j, phi_r - big_phi)
        out_phase[n_out] = phi_total_base + big_phi
        out_id[n_out] = j
        n_out += 1
        since_renorm += 1
        if since_renorm >= renorm_every:
            # a uniform shift keeps the heap order: no re-heapify needed
            for p in range(n):
                keys[p] += big_phi
            phi_total_base += big_phi
            big_phi = 0.0
            since_renorm = 0
    state_f[0] = big_phi
    state_f[1] = phi_total_base
    state_i[0] = since_renorm
    state_i[1] = ext_ptr
    state_i[2] = tape_ptr
    state_f[2] = touch  # keeps the prefetching loads from being optimised away
    return n_out, finished


@njit(cache=True)
def timebased_run(keys, nodes, slot, state_f, state_i,
                  model_id, omegas, phi_th, phi_r, c_factors, tab,
                  online, indptr, indices, weights, uniform_w, weight, k, seed_key,
                  ext_time, ext_target, ext_weight,
                  max_spikes, stop_time, out_time, out_id):
    """Time-based SparseProp: key = -(next spike time of i) in units of tau, max-heap.

    Supports per-neuron phase velocities ``omegas`` and coupling factors ``c_factors``
    (heterogeneous drives). state_f = [current time D]; state_i = [next external event].
    """
    n = keys.shape[0]
    now = state_f[0]
    ext_ptr = state_i[0]
    n_ext = ext_time.shape[0]
    buf = np.empty(max(k, 1), dtype=np.int64)
    table = np.full(hash_table_size(k) if online else 1, -1, dtype=np.int64)
    n_out = 0
    finished = 0
    while n_out < max_spikes:
        t_next = -keys[0]
        j = nodes[0]
        if ext_ptr < n_ext and ext_time[ext_ptr] < t_next:
            if ext_time[ext_ptr] > stop_time:
                finished = 1
                break
            now = ext_time[ext_ptr]
            i = ext_target[ext_ptr]
            w_i = omegas[i]
            phi_i = phi_th - (-keys[slot[i]] - now) * w_i
            new_phi = ptc(model_id, phi_i, ext_weight[ext_ptr] * c_factors[i], w_i, tab)
            heap_update(keys, nodes, slot, i, -(now + (phi_th - new_phi) / w_i))
            ext_ptr += 1
            continue
        if t_next > stop_time:
            finished = 1
            break
        now = t_next
        count, start = _fill_targets(j, n, online, indptr, indices, k, seed_key, buf, table)
        for c in range(count):
            i = buf[c]
            w = weight if uniform_w else weights[start + c]
            w_i = omegas[i]
            phi_i = phi_th - (-keys[slot[i]] - now) * w_i
            new_phi = ptc(model_id, phi_i, w * c_factors[i], w_i, tab)
            heap_update(keys, nodes, slot, i, -(now + (phi_th - new_phi) / w_i))
        heap_update(keys, nodes, slot, j, -(now + (phi_th - phi_r) / omegas[j]))
        out_time[n_out] = now
        out_id[n_out] = j
        n_out += 1
    state_f[0] = now
    state_i[0] = ext_ptr
    return n_out, finished


@njit(cache=True)
def reference_run(phases, state_f, state_i,
                  model_id, omega, phi_th, phi_r, c_factor, tab,
                  online, indptr, indices, weights, uniform_w, weight, k, seed_key,
                  ext_phase, ext_target, ext_weight,
                  max_spikes, stop_phase, out_phase, out_id):
    """Conventional event-driven algorithm, O(N) per spike: find the max phase, shift all."""
    n = phases.shape[0]
    total = state_f[0]
    ext_ptr = state_i[0]
    n_ext = ext_phase.shape[0]
    buf = np.empty(max(k, 1), dtype=np.int64)
    table = np.full(hash_table_size(k) if online else 1, -1, dtype=np.int64)
    n_out = 0
    finished = 0
    while n_out < max_spikes:
        j = 0
        best = phases[0]
        for i in range(1, n):
            if phases[i] > best:
                best = phases[i]
                j = i
        delta = phi_th - best
        if ext_ptr < n_ext and ext_phase[ext_ptr] - total < delta:
            if ext_phase[ext_ptr] > stop_phase:
                finished = 1
                break
            step = ext_phase[ext_ptr] - total
            for i in range(n):
                phases[i] += step
            total = ext_phase[ext_ptr]
            tgt = ext_target[ext_ptr]
            phases[tgt] = ptc(model_id, phases[tgt], ext_weight[ext_ptr] * c_factor, omega, tab)
            ext_ptr += 1
            continue
        if total + delta > stop_phase:
            finished = 1
            break
        for i in range(n):
            phases[i] += delta
        total += delta
        count, start = _fill_targets(j, n, online, indptr, indices, k, seed_key, buf, table)
        for c in range(count):
            i = buf[c]
            w = weight if uniform_w else weights[start + c]
            phases[i] = ptc(model_id, phases[i], w * c_factor, omega, tab)
        phases[j] = phi_r
        out_phase[n_out] = total
        out_id[n_out] = j
        n_out += 1
    state_f[0] = total
    state_i[0] = ext_ptr
    return n_out, finished
