"""Python driver around the compiled loops: validation, buffers, chunking, progress."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Callable, Union

import numpy as np

from .connectivity import Network, check_fits_in_memory, estimate_memory_bytes
from .heap import heap_build
from .inputs import ExternalInput
from .kernels import reference_run, sparseprop_run, timebased_run
from .models import _Model
from .phasecurves import EIF_HEADER, EIF_ID
from .result import SimulationResult

METHODS = ("auto", "sparseprop", "timebased", "reference")
_DUMMY_TABLE = np.zeros(EIF_HEADER + 1)


def _check_stop(t_stop, n_spikes):
    if t_stop is None and n_spikes is None:
        raise ValueError("give t_stop (seconds) and/or n_spikes")
    if t_stop is not None:
        if isinstance(t_stop, bool) or not isinstance(t_stop, (int, float, np.integer, np.floating)):
            raise TypeError(f"t_stop must be a number, got {type(t_stop).__name__}")
        if math.isnan(t_stop) or t_stop <= 0:
            raise ValueError(f"t_stop must be positive, got {t_stop}")
        if math.isinf(t_stop) and n_spikes is None:
            raise ValueError("t_stop=inf never ends without a spike budget: give a finite t_stop or n_spikes")
    if n_spikes is not None:
        if isinstance(n_spikes, bool) or not isinstance(n_spikes, (int, np.integer)):
            raise TypeError(f"n_spikes must be an integer, got {n_spikes!r}")
        if n_spikes <= 0:
            raise ValueError(f"n_spikes must be positive, got {n_spikes}")


Progress = Union[bool, None, Callable[[int, float], None]]


@contextlib.contextmanager
def _progress_reporter(progress: Progress, t_stop: float | None, n_spikes: int | None):
    """The ``progress(spikes_so_far, time_reached_s)`` callable for ``simulate``'s ``progress`` argument:
    None for None/False, the callable itself, or for True a rich progress bar over simulated time (over
    spikes when only ``n_spikes`` bounds the run)."""
    if progress is None or progress is False:
        yield None
        return
    if progress is not True:
        if not callable(progress):
            raise TypeError(
                f"progress must be True (a progress bar), False/None or a callable progress(spikes, time_s), "
                f"not {type(progress).__name__}"
            )
        yield progress
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    by_time = t_stop is not None and math.isfinite(t_stop)
    total = float(t_stop) if by_time else float(n_spikes)
    with Progress(TextColumn("[bold]sparseprop"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task("simulate", total=total, info="")

        def report(n_done: int, t_now: float) -> None:
            bar.update(task, completed=min(t_now if by_time else n_done, total),
                       info=f"{n_done} spikes, t={t_now:.3f}s")

        yield report
        bar.update(task, completed=total)


def _compile(kernel, args) -> float:
    """Compile ``kernel`` (a numba dispatcher) for the types of ``args``, or load it from numba's cache, without
    running it; returns the seconds that took (about 0 once compiled in this process). ``simulate`` does this
    before its clock starts, so its wall time (and µs per spike) is the simulation alone."""
    start = time.perf_counter()
    kernel.compile(tuple(kernel.typeof_pyval(arg) for arg in args))
    return time.perf_counter() - start


def _initial_phases(model: _Model, n: int, initial_phases, seed: int) -> np.ndarray:
    if initial_phases is None:
        return model.initial_phases(n, seed)
    phases = np.array(initial_phases, dtype=np.float64)
    if phases.shape != (n,):
        raise ValueError(f"initial_phases must have shape ({n},), got {phases.shape}")
    if not np.isfinite(phases).all():
        raise ValueError("initial_phases contain NaN or infinite values")
    if (phases > model.threshold).any():
        raise ValueError(f"initial phases must be <= the threshold phase {model.threshold}")
    return phases


def _model_table(model: _Model, network: Network, external: ExternalInput | None) -> np.ndarray:
    if model.model_id != EIF_ID:
        return _DUMMY_TABLE
    if not network.uniform_weight:
        raise ValueError("EIF needs one uniform coupling (its PTC is tabulated per jump size)")
    if external is not None and len(external) and not np.all(external.weights == network.weight):
        raise ValueError("EIF external inputs must use the network's coupling weight")
    return model.table(network.weight)


def simulate(model: _Model, network: Network, *, t_stop: float | None = None,
             n_spikes: int | None = None, initial_phases=None, seed: int = 0,
             external: ExternalInput | None = None, method: str = "auto",
             renorm_every: int | None = None, record_tape: bool = False,
             progress: Progress = None, chunk: int = 1 << 16,
             memory_limit: int | None = None) -> SimulationResult:
    """Exact event-driven simulation of a pulse-coupled network.

    Parameters
    ----------
    model : LIF, QIF or EIF instance (drive may be per-neuron for ``method="timebased"``).
    network : :class:`Network` (stored CSR, on-the-fly, or from a user matrix).
    t_stop : simulate until this time (seconds); ``n_spikes``: stop after this many spikes.
    initial_phases : phases at t=0 (default uniform in [reset, threshold) from ``seed``).
    external : :class:`ExternalInput` event list (e.g. :func:`poisson_input`).
    method : ``"sparseprop"`` (co-moving phase frame, needs a homogeneous drive),
        ``"timebased"`` (heap of next spike times; heterogeneous drives), ``"reference"``
        (conventional O(N) per spike), or ``"auto"``.
    renorm_every : fold the global phase offset into the keys every this many spikes
        (default max(N, 65536)); keeps the phase sums precise for long runs.
    record_tape : keep the pre-input phases of every target (needed by :mod:`.gradients`).
    progress : True for a progress bar (rich), or a callable called after each chunk as
        ``progress(spikes_so_far, time_reached_s)``.

    Numba compiles the loops on first use (or loads them from its cache): that happens before the clock
    starts and is reported apart, as ``result.compile_time_s``; ``result.wall_time_s`` is the simulation.
    """
    if not isinstance(model, _Model):
        raise TypeError(f"model must be LIF, QIF or EIF, got {type(model).__name__}")
    if not isinstance(network, Network):
        raise TypeError(f"network must be a Network, got {type(network).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_stop(t_stop, n_spikes)
    n = network.n_neurons
    if model.heterogeneous and model.drive.shape != (n,):
        raise ValueError(f"per-neuron drive has length {model.drive.shape[0]}, network has {n} neurons")
    if method == "auto":
        method = "timebased" if model.heterogeneous else "sparseprop"
    if model.heterogeneous and method != "timebased":
        raise ValueError("heterogeneous drives need method='timebased' (one phase velocity per neuron)")
    if external is not None:
        if not isinstance(external, ExternalInput):
            raise TypeError("external must be an ExternalInput")
        external.check_targets(n)
    if record_tape and method != "sparseprop":
        raise ValueError("record_tape is only available for method='sparseprop'")
    if record_tape and n_spikes is None:
        raise ValueError("record_tape needs n_spikes (the tape size is n_spikes * K)")
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    tape_bytes = 8 * n_spikes * network.max_out_degree if record_tape else 0
    check_fits_in_memory(estimate_memory_bytes(n, network.k, stored=False, time_based=method == "timebased")
                         + tape_bytes, memory_limit, f"a simulation of N={n} neurons")
    tab = _model_table(model, network, external)
    phases0 = _initial_phases(model, n, initial_phases, seed)
    conn = network.kernel_args()
    max_total = n_spikes if n_spikes is not None else np.iinfo(np.int64).max
    stop_t = float(t_stop) if t_stop is not None else math.inf
    if renorm_every is None:
        renorm_every = max(n, 1 << 16)
    if renorm_every <= 0:
        raise ValueError("renorm_every must be positive")

    if method == "timebased":
        omegas = np.broadcast_to(np.asarray(model.omega, dtype=np.float64), (n,)).copy()
        c_factors = np.broadcast_to(np.asarray(model.coupling_factor, dtype=np.float64), (n,)).copy()
        to_internal = 1.0 / model.tau  # times in units of tau
    else:
        omega = float(model.omega)
        c_factor = float(model.coupling_factor)
        to_internal = omega / model.tau  # phases
    ext_t = (external.times * to_internal) if external is not None else np.zeros(0)
    ext_tgt = external.targets if external is not None else np.zeros(0, dtype=np.int64)
    ext_w = external.weights if external is not None else np.zeros(0)
    stop_internal = stop_t * to_internal

    times_chunks, id_chunks = [], []
    done = 0
    tape = np.empty(tape_bytes // 8 if record_tape else 1)
    state_i = np.zeros(3, dtype=np.int64)
    if method == "reference":
        phases = phases0.copy()
        state_f = np.zeros(1)
        kernel = reference_run

        def kernel_args(size, out_t, out_id):
            return (phases, state_f, state_i, model.model_id, omega, model.threshold, model.reset, c_factor, tab,
                    *conn, ext_t, ext_tgt, ext_w, size, stop_internal, out_t, out_id)
    else:
        keys = np.empty(n)
        nodes = np.empty(n, dtype=np.int32)
        slot = np.empty(n, dtype=np.int32)
        state_f = np.zeros(3)
        heap_values = phases0 if method == "sparseprop" else -(model.threshold - phases0) / omegas
        if method == "sparseprop":
            kernel = sparseprop_run

            def kernel_args(size, out_t, out_id):
                return (keys, nodes, slot, state_f, state_i, model.model_id, omega, model.threshold, model.reset,
                        c_factor, tab, *conn, ext_t, ext_tgt, ext_w, size, stop_internal, renorm_every,
                        out_t, out_id, record_tape, tape)
        else:
            kernel = timebased_run

            def kernel_args(size, out_t, out_id):
                return (keys, nodes, slot, state_f, state_i, model.model_id, omegas, model.threshold, model.reset,
                        c_factors, tab, *conn, ext_t, ext_tgt, ext_w, size, stop_internal, out_t, out_id)
    first_size = int(min(chunk, max_total))
    compile_time = _compile(kernel, kernel_args(first_size, np.empty(0), np.empty(0, dtype=np.int32)))
    if method != "reference":
        compile_time += _compile(heap_build, (heap_values, keys, nodes, slot))
    finished = 0
    with _progress_reporter(progress, t_stop, n_spikes) as report:
        start = time.perf_counter()
        if method != "reference":
            heap_build(heap_values, keys, nodes, slot)
        while done < max_total and not finished:
            size = int(min(chunk, max_total - done))
            out_t = np.empty(size)
            out_id = np.empty(size, dtype=np.int32)
            got, finished = kernel(*kernel_args(size, out_t, out_id))
            times_chunks.append(out_t[:got] / to_internal)
            id_chunks.append(out_id[:got])
            done += got
            if report is not None:
                report(done, float(times_chunks[-1][-1]) if got else 0.0)
            if got < size:
                break
        wall = time.perf_counter() - start
    spike_times = np.concatenate(times_chunks) if times_chunks else np.zeros(0)
    neuron_ids = np.concatenate(id_chunks) if id_chunks else np.zeros(0, dtype=np.int32)
    t_end = stop_t if (t_stop is not None and finished) else (float(spike_times[-1]) if spike_times.size else stop_t)
    final = _final_phases(method, model, state_f, phases if method == "reference" else None,
                          None if method == "reference" else (keys, slot),
                          omegas if method == "timebased" else None)
    return SimulationResult(spike_times, neuron_ids, n, t_end, method, wall, phases0, final,
                            tape if record_tape else None,
                            {"model": model, "network": network, "renorm_every": renorm_every,
                             "external": external is not None and len(external) > 0},
                            compile_time_s=compile_time)


def _final_phases(method, model, state_f, phases, heap, omegas):
    """Phases at the last processed event (frame-independent)."""
    if method == "reference":
        return phases.copy()
    keys, slot = heap
    by_neuron = keys[slot]
    if method == "sparseprop":
        return by_neuron + state_f[0]
    return model.threshold - (-by_neuron - state_f[0]) * omegas
