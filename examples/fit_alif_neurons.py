"""Fit BlockALIF neurons to synthetic recordings at DT = 0.1 ms (R = 2 ms = 20 steps) by gradient descent.

The Blocks paper's neuroscience experiment, on data we generate: a population of ground-truth adaptive LIF
neurons (the paper's ALIF, heterogeneous membrane and adaptation time constants, thresholds and adaptation
strengths, refractory period 2 ms) is driven by noisy current (Ornstein-Uhlenbeck, 5 ms) for T steps of
0.1 ms. From the spike trains alone we fit each neuron's four parameters with Adam on the van Rossum distance
(10 ms kernel, as the paper), using the engine's exact gradients (``block_neuron``, ``grad="exact"``). Reported:
parameter recovery, the coincidence factor Gamma (Kistler et al. 1997, +-4 ms) on held-out stimuli, and the
time per fitting iteration against the same iteration through the sequential per-step PyTorch loop
(``backend="reference"``, the engine's ground truth). Writes ``fit_alif_neurons.png`` / ``.json``.

Run: ``python examples/fit_alif_neurons.py [--quick] [--out DIR]``
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from snn_blockbackend import block_neuron, make_profile

try:
    from _common import Progress, parser, pyplot, write_results
except ImportError:  # imported as examples._common
    from ._common import Progress, parser, pyplot, write_results

NAME = "fit_alif_neurons"
DT_MS = 0.1
REFRACTORY_STEPS = 20  # 2 ms
COINCIDENCE_MS = 4.0
VAN_ROSSUM_MS = 10.0
SIZES = {  # default / --quick
    False: {"steps": 10_000, "neurons": 32, "train_trials": 8, "test_trials": 4, "iterations": 100,
            "eval_every": 10, "loop_iterations": 2},
    True: {"steps": 4_000, "neurons": 8, "train_trials": 4, "test_trials": 4, "iterations": 30,
           "eval_every": 5, "loop_iterations": 1},
}  # fmt: skip
PARAMETER_NAMES = ("tau_m_ms", "threshold", "tau_a_ms", "adaptation_strength")
# ground truth drawn uniformly from these ranges; the fit starts every neuron at INITIAL
TRUE_RANGE = {"tau_m_ms": (10.0, 30.0), "threshold": (0.8, 1.2), "tau_a_ms": (50.0, 200.0),
              "adaptation_strength": (0.05, 0.3)}  # fmt: skip
INITIAL = {"tau_m_ms": 20.0, "threshold": 1.0, "tau_a_ms": 100.0, "adaptation_strength": 0.1}
PROFILE = make_profile("paper")  # BlockALIF's neuron, multi-Gaussian surrogate


def engine_params(p: dict) -> dict:
    """BlockALIF's parameters (per-step decays) from time constants in ms."""
    return {
        "beta": torch.exp(-DT_MS / p["tau_m_ms"]),
        "threshold": p["threshold"],
        "adaptation_decay": torch.exp(-DT_MS / p["tau_a_ms"]),
        "adaptation_strength": p["adaptation_strength"],
    }


def run_neurons(current, p, backend="auto"):
    return block_neuron(current, PROFILE, engine_params(p), REFRACTORY_STEPS, backend=backend)


def rheobase_of(p: dict) -> torch.Tensor:
    """threshold * (1 - beta): the per-step input that holds the membrane at threshold."""
    return p["threshold"] * (1 - torch.exp(-DT_MS / p["tau_m_ms"]))


def noisy_current(steps, trials, neurons, generator):
    """Input per step, [T, trials, neurons]: (DT/20 ms) * (1.2 + 0.8 * OU noise of 5 ms, unit variance)."""
    decay = math.exp(-DT_MS / 5.0)
    kicks = torch.randn(steps, trials, neurons, generator=generator, dtype=torch.float64) * math.sqrt(1 - decay**2)
    noise = torch.empty_like(kicks)
    level = torch.randn(trials, neurons, generator=generator, dtype=torch.float64)
    for t in range(steps):  # the stimulus, not the neuron: an AR(1) recursion
        level = decay * level + kicks[t]
        noise[t] = level
    return ((DT_MS / 20.0) * (1.2 + 0.8 * noise)).float()


def van_rossum(model_spikes, data_spikes, kernel_fft, steps):
    """Mean squared difference of the spike trains filtered with exp(-t / 10 ms) (FFT convolution over time)."""
    diff = torch.fft.rfft(model_spikes - data_spikes, n=2 * steps, dim=0)
    filtered = torch.fft.irfft(diff * kernel_fft, n=2 * steps, dim=0)[:steps]
    return filtered.square().mean()


def coincidence_factor(data, model, window_steps, steps):
    """Gamma of Kistler et al. (1997): (N_coinc - <N_coinc>) / (0.5 (N_data + N_model)) / (1 - 2 nu Delta).

    ``data``/``model``: sorted spike step indices of one trace. <N_coinc> = 2 nu Delta N_data is the count a
    Poisson train at the model's rate nu would reach; each data spike counts once. None when either is empty.
    """
    if len(data) == 0 or len(model) == 0:
        return None
    rate = len(model) / steps
    lo = np.searchsorted(model, data - window_steps, side="left")
    hi = np.searchsorted(model, data + window_steps, side="right")
    coincidences = int(np.count_nonzero(hi > lo))
    expected = 2 * rate * window_steps * len(data)
    return (coincidences - expected) / (0.5 * (len(data) + len(model))) / (1 - 2 * rate * window_steps)


def mean_gamma(data_spikes, model_spikes, steps):
    window = int(round(COINCIDENCE_MS / DT_MS))
    data = data_spikes.reshape(steps, -1).T.numpy()
    model = model_spikes.reshape(steps, -1).T.numpy()
    gammas = [coincidence_factor(np.flatnonzero(d), np.flatnonzero(m), window, steps) for d, m in zip(data, model)]
    gammas = [g for g in gammas if g is not None]
    return float(np.mean(gammas)) if gammas else 0.0


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    size = SIZES[args.quick]
    steps, neurons = size["steps"], size["neurons"]
    generator = torch.Generator().manual_seed(args.seed)
    truth = {name: lo + (hi - lo) * torch.rand(neurons, generator=generator, dtype=torch.float64)
             for name, (lo, hi) in TRUE_RANGE.items()}  # fmt: skip
    truth = {name: value.float() for name, value in truth.items()}
    train_current = noisy_current(steps, size["train_trials"], neurons, generator)
    test_current = noisy_current(steps, size["test_trials"], neurons, generator)
    with torch.no_grad():
        train_spikes = run_neurons(train_current, truth).spikes
        test_truth = run_neurons(test_current, truth)

    # unconstrained fit variables: logs of the positive parameters, the threshold as it is
    fit = {
        "log_tau_m_ms": torch.full((neurons,), math.log(INITIAL["tau_m_ms"])),
        "threshold": torch.full((neurons,), INITIAL["threshold"]),
        "log_tau_a_ms": torch.full((neurons,), math.log(INITIAL["tau_a_ms"])),
        "log_adaptation_strength": torch.full((neurons,), math.log(INITIAL["adaptation_strength"])),
    }
    for value in fit.values():
        value.requires_grad_(True)

    def current_params():
        return {
            "tau_m_ms": fit["log_tau_m_ms"].exp(),
            "threshold": fit["threshold"].clamp(min=0.05),
            "tau_a_ms": fit["log_tau_a_ms"].exp(),
            "adaptation_strength": fit["log_adaptation_strength"].exp(),
        }

    optimizer = torch.optim.Adam(fit.values(), lr=0.03)
    t = torch.arange(2 * steps, dtype=torch.float32)
    kernel_fft = torch.fft.rfft(torch.exp(-t * DT_MS / VAN_ROSSUM_MS) * (t < steps), dim=0)[:, None, None]

    def loss_at(backend):
        return van_rossum(run_neurons(train_current, current_params(), backend).spikes, train_spikes, kernel_fft,
                          steps)  # fmt: skip

    def fitting_iteration(backend="auto"):
        loss = loss_at(backend)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    def held_out_gamma():
        with torch.no_grad():
            return mean_gamma(test_truth.spikes, run_neurons(test_current, current_params()).spikes, steps)

    def parameters_now():
        with torch.no_grad():
            return {name: value.clone() for name, value in current_params().items()}

    initial_params = parameters_now()
    losses, gamma_curve, iteration_s = [], [(0, held_out_gamma())], []
    with Progress(f"fitting {neurons} ALIF neurons, T = {steps}", size["iterations"], not args.no_progress) as bar:
        for i in range(1, size["iterations"] + 1):
            start = time.perf_counter()
            losses.append(fitting_iteration())
            iteration_s.append(time.perf_counter() - start)
            if i % size["eval_every"] == 0 or i == size["iterations"]:
                gamma_curve.append((i, held_out_gamma()))
            bar.advance(info=f"loss {losses[-1]:.3g}  Gamma {gamma_curve[-1][1]:.3f}")

    # the same iteration through the sequential per-step loop (a few iterations: it is slow), on a copy of the state
    saved = {name: value.detach().clone() for name, value in fit.items()}
    saved_optimizer = optimizer.state_dict()
    loop_s = []
    with Progress("same iteration, per-step loop", size["loop_iterations"], not args.no_progress) as bar:
        for _ in range(size["loop_iterations"]):
            start = time.perf_counter()
            fitting_iteration("reference")
            loop_s.append(time.perf_counter() - start)
            bar.advance()
    with torch.no_grad():
        for name, value in fit.items():
            value.copy_(saved[name])
    optimizer.load_state_dict(saved_optimizer)

    fitted = parameters_now()
    with torch.no_grad():
        test_fitted = run_neurons(test_current, fitted)
        test_initial = run_neurons(test_current, initial_params)

    def relative_error(params):
        errors = {name: float(((params[name] - truth[name]).abs() / truth[name]).median()) for name in PARAMETER_NAMES}
        # the constant input at which the membrane just reaches threshold: what the spikes pin down best
        # (threshold and tau_m alone trade off against each other under mean-driven firing)
        rheobase, true_rheobase = rheobase_of(params), rheobase_of(truth)
        errors["rheobase"] = float(((rheobase - true_rheobase).abs() / true_rheobase).median())
        return errors

    block_s = float(np.median(iteration_s[1:] or iteration_s))
    results = {
        "size": size,
        "dt_ms": DT_MS,
        "refractory_steps": REFRACTORY_STEPS,
        "recorded_seconds_per_trace": steps * DT_MS / 1000,
        "traces_per_iteration": size["train_trials"] * neurons,
        "train_spikes_per_trace_per_s": float(train_spikes.sum() / (size["train_trials"] * neurons) / (steps * DT_MS / 1000)),
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "loss_min": min(losses),
        "gamma_initial": gamma_curve[0][1],
        "gamma_fitted": gamma_curve[-1][1],
        "gamma_curve": gamma_curve,
        "median_relative_error_initial": relative_error(initial_params),
        "median_relative_error_fitted": relative_error(fitted),
        "truth": {name: truth[name].tolist() for name in PARAMETER_NAMES},
        "fitted": {name: fitted[name].tolist() for name in PARAMETER_NAMES},
        "iteration_s_block": block_s,
        "iteration_s_loop": float(np.median(loop_s)),
        "loop_iterations_timed": len(loop_s),
        "speedup_per_iteration": float(np.median(loop_s)) / block_s,
        "losses": losses,
    }
    figure = plot(results, test_current, test_truth, test_fitted, test_initial, truth, fitted, steps)
    results = write_results(args.out, NAME, results, figure)
    report(results)
    return results


def plot(results, current, truth_run, fitted_run, initial_run, truth, fitted, steps):
    plt = pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(20, 7.5))
    window = slice(0, min(steps, 4000))  # the first 400 ms of held-out trial 0, neuron 0
    time_ms = np.arange(steps)[window] * DT_MS
    ax = axes[0, 0]
    for run, colour, label in ((truth_run, "k", "ground truth"), (fitted_run, "tab:red", "fitted"),
                               (initial_run, "tab:gray", "initial guess")):  # fmt: skip
        ax.plot(time_ms, run.membrane[window, 0, 0], color=colour, lw=0.8, label=label)
    ax.set(xlabel="time (ms)", ylabel="membrane (post-reset)", title="held-out stimulus, neuron 0")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for row, (run, colour) in enumerate(((truth_run, "k"), (fitted_run, "tab:red"), (initial_run, "tab:gray"))):
        spikes = np.flatnonzero(run.spikes[window, 0, 0].numpy()) * DT_MS
        ax.vlines(spikes, row + 0.1, row + 0.9, color=colour)
    ax.set(xlabel="time (ms)", yticks=[0.5, 1.5, 2.5], yticklabels=["truth", "fitted", "initial"],
           title="spikes, same window", xlim=(time_ms[0], time_ms[-1]))  # fmt: skip
    ax = axes[0, 2]
    iterations, gammas = zip(*results["gamma_curve"])
    ax.plot(iterations, gammas, "o-")
    ax.set(xlabel="fitting iteration", ylabel="Gamma (held-out, +-4 ms)", title="coincidence factor vs iteration",
           ylim=(min(0, min(gammas)), 1))  # fmt: skip
    ax = axes[0, 3]
    ax.semilogy(results["losses"])
    ax.set(xlabel="fitting iteration", ylabel="van Rossum loss (training)", title="training loss")
    truth = {**truth, "rheobase": rheobase_of(truth)}
    fitted = {**fitted, "rheobase": rheobase_of(fitted)}
    for ax, name in zip(axes[1], ("tau_m_ms", "threshold", "tau_a_ms", "rheobase")):
        ax.scatter(truth[name], fitted[name], s=12, label="fitted")
        lo, hi = float(truth[name].min()), float(truth[name].max())
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        initial = INITIAL[name] if name in INITIAL else float(rheobase_of({k: torch.tensor(v) for k, v in INITIAL.items()}))
        ax.axhline(initial, color="tab:gray", lw=0.8, ls="--", label="initial guess")
        ax.set(xlabel=f"true {name}", ylabel=f"fitted {name}", title="parameter recovery")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"BlockALIF fit, DT = {DT_MS} ms, R = {REFRACTORY_STEPS} steps, T = {steps}: "
        f"{results['iteration_s_block']:.3f} s/iteration vs {results['iteration_s_loop']:.2f} s per-step loop "
        f"({results['speedup_per_iteration']:.1f}x)"
    )
    fig.tight_layout()
    return fig


def report(results):
    from rich.console import Console

    console = Console()
    console.print(f"van Rossum loss {results['loss_first']:.4g} -> {results['loss_last']:.4g}; held-out Gamma "
                  f"{results['gamma_initial']:.3f} -> {results['gamma_fitted']:.3f}")  # fmt: skip
    for name in (*PARAMETER_NAMES, "rheobase"):
        console.print(f"  {name}: median relative error {results['median_relative_error_initial'][name]:.3f} -> "
                      f"{results['median_relative_error_fitted'][name]:.3f}")  # fmt: skip
    console.print(f"time per iteration: {results['iteration_s_block']:.3f} s (block engine) vs "
                  f"{results['iteration_s_loop']:.2f} s (per-step loop): {results['speedup_per_iteration']:.1f}x")  # fmt: skip
    console.print(f"wrote {results['figure']} and {results['json']}")


if __name__ == "__main__":
    main()
