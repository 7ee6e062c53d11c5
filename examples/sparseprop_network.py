"""Simulate a balanced E/I network of 1e5 LIF neurons exactly with SparseProp, check it, and train a small one.

1. An E/I network (80% excitatory, 20% inhibitory neurons, K = 100 random targets each, delta synapses,
   J_E = +0.02, J_I = -0.5, i.e. inhibition-dominated; constant suprathreshold drive balanced by recurrent
   inhibition) simulated event by event for a few seconds of network time with ``snn_blockbackend.sparseprop``:
   raster, firing-rate and ISI-CV histograms, time per spike. (Delta synapses have no delay: an excitatory
   input that crosses threshold fires its target at the same instant, so K * J_E must stay well below 1 or
   the network cascades.)
2. Exactness: on a small network, SparseProp (O(K log N) per spike) against the conventional O(N) algorithm
   (``method="reference"``): an inhibitory network must give identical spike order and times. In the E/I
   network an excitatory input that crosses threshold fires its target at the same instant, so about a third
   of its spikes are simultaneous with another; the two algorithms break such ties differently and, since
   inputs do not commute across the threshold clamp, the runs then part (docs/sparseprop.md). There the check
   is: identical up to the first difference, which lies inside a group of simultaneous spikes, and the
   same duration for the same number of spikes (within 10%).
3. Training: the coupling weight and the drive of a small inhibitory network (N = 100, K = 10) are fitted
   by Adam with the exact event-based gradients (``sparseprop.loss_gradients``) so that its spike times match
   those of a teacher network with the same connectivity (loss: mean squared difference of the s-th network
   spike times, ms^2).

Writes ``sparseprop_network.png`` and ``sparseprop_network.json``.
Run: ``python examples/sparseprop_network.py [--quick] [--out DIR]``
"""

from __future__ import annotations

import numpy as np

try:
    from _common import Progress, parser, pyplot, write_results
except ImportError:  # imported as examples._common
    from ._common import Progress, parser, pyplot, write_results

NAME = "sparseprop_network"
TAU = 0.01  # membrane time constant, s
K = 100
EXCITATORY_FRACTION = 0.8
J_E, J_I = 0.02, -0.5
DRIVE = 0.5
SIZES = {  # default / --quick
    False: {"neurons": 100_000, "seconds": 2.0, "check_neurons": 2000, "check_spikes": 20_000,
            "train_iterations": 80},
    True: {"neurons": 10_000, "seconds": 0.5, "check_neurons": 1000, "check_spikes": 20_000,
           "train_iterations": 80},
}  # fmt: skip


def ei_network(n: int, k: int, seed: int):
    """Every neuron sends K synapses to distinct-index random targets (no self-connections); the first 80%
    are excitatory (weight J_E), the rest inhibitory (J_I). A scipy matrix W[post, pre] -> Network."""
    import scipy.sparse as sparse

    from snn_blockbackend import sparseprop as sp

    rng = np.random.default_rng(seed)
    pre = np.repeat(np.arange(n, dtype=np.int64), k)
    post = rng.integers(0, n - 1, size=n * k)
    post += post >= pre  # skip the neuron itself
    weights = np.where(pre < int(EXCITATORY_FRACTION * n), J_E, J_I)
    matrix = sparse.csr_matrix((weights, (post, pre)), shape=(n, n))
    matrix.sum_duplicates()  # a repeated target becomes one stronger synapse
    return sp.from_sparse_matrix(matrix)


# ---------------------------------------------------------------------------------------------
# 1. the large network
# ---------------------------------------------------------------------------------------------
def simulate_large(size, seed, show):
    from snn_blockbackend import sparseprop as sp

    model = sp.LIF(drive=DRIVE, tau=TAU)
    network = ei_network(size["neurons"], K, seed)
    sp.simulate(model, ei_network(200, 10, seed), n_spikes=100, seed=seed)  # compile (or load) the kernels first
    with Progress(f"SparseProp, N = {size['neurons']:,} (network seconds)", size["seconds"], show) as bar:
        result = sp.simulate(model, network, t_stop=size["seconds"], seed=seed,
                             progress=lambda spikes, t: bar.update(t, info=f"{spikes:,} spikes"))  # fmt: skip
        bar.update(result.t_stop, info=f"{result.n_spikes:,} spikes")
    n_exc = int(EXCITATORY_FRACTION * size["neurons"])
    counts = np.bincount(result.neuron_ids, minlength=size["neurons"])
    rates = counts / result.t_stop
    cvs = sp.isi_cv_per_neuron(result.spike_times, result.neuron_ids)
    summary = {
        "neurons": size["neurons"], "k": K, "excitatory_fraction": EXCITATORY_FRACTION, "j_e": J_E, "j_i": J_I,
        "drive": DRIVE, "tau_s": TAU, "network_seconds": result.t_stop, "spikes": result.n_spikes,
        "rate_hz": result.rate_hz, "rate_hz_excitatory": float(rates[:n_exc].mean()),
        "rate_hz_inhibitory": float(rates[n_exc:].mean()), "silent_fraction": float(np.mean(counts == 0)),
        "cv_isi_mean": result.cv, "wall_s": result.wall_time_s, "us_per_spike": result.us_per_spike,
    }  # fmt: skip
    return summary, result, rates, cvs


# ---------------------------------------------------------------------------------------------
# 2. exactness against the O(N) algorithm
# ---------------------------------------------------------------------------------------------
def exactness(size, seed):
    from snn_blockbackend import sparseprop as sp

    model = sp.LIF(drive=DRIVE, tau=TAU)
    n, spikes = size["check_neurons"], size["check_spikes"]
    out = {}
    inhibitory = sp.fixed_outdegree_network(n, K // 2, seed=seed)
    fast = sp.simulate(model, inhibitory, n_spikes=spikes, seed=seed)
    slow = sp.simulate(model, inhibitory, n_spikes=spikes, seed=seed, method="reference")
    out["inhibitory"] = {
        "neurons": n, "spikes": spikes, "identical_order": bool(np.array_equal(fast.neuron_ids, slow.neuron_ids)),
        "max_abs_dt_s": float(np.max(np.abs(fast.spike_times - slow.spike_times))),
        "us_per_spike_sparseprop": fast.us_per_spike, "us_per_spike_reference": slow.us_per_spike,
    }  # fmt: skip
    mixed = ei_network(n, K // 2, seed)
    fast = sp.simulate(model, mixed, n_spikes=spikes, seed=seed)
    slow = sp.simulate(model, mixed, n_spikes=spikes, seed=seed, method="reference")
    differ = np.flatnonzero(fast.neuron_ids != slow.neuron_ids)
    first = int(differ[0]) if differ.size else spikes
    simultaneous = np.flatnonzero(np.diff(slow.spike_times) < 1e-12)
    out["excitatory_inhibitory"] = {
        "neurons": n, "spikes": spikes,
        "identical_spikes_before_first_tie_break": first,
        "max_abs_dt_s_before": float(np.max(np.abs(fast.spike_times[:first] - slow.spike_times[:first]))),
        "first_difference_is_a_tie": bool(differ.size == 0 or slow.spike_times[first] - slow.spike_times[first - 1] < 1e-12),
        "first_simultaneous_spikes_at": int(simultaneous[0] + 1) if simultaneous.size else None,
        "simultaneous_spike_pairs": int(simultaneous.size),
        # after the runs part they stay statistically alike: the time their last spike is reached, and the CV
        "duration_ratio": float(fast.spike_times[-1] / slow.spike_times[-1]),
        "cv_isi": [fast.cv, slow.cv],
        "us_per_spike_sparseprop": fast.us_per_spike, "us_per_spike_reference": slow.us_per_spike,
    }  # fmt: skip
    out["passed"] = bool(
        out["inhibitory"]["identical_order"] and out["inhibitory"]["max_abs_dt_s"] < 1e-9
        and out["excitatory_inhibitory"]["max_abs_dt_s_before"] < 1e-9
        and out["excitatory_inhibitory"]["first_difference_is_a_tie"]
        and abs(out["excitatory_inhibitory"]["duration_ratio"] - 1) < 0.1
    )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# 3. gradient training of a small network
# ---------------------------------------------------------------------------------------------
def train_small(size, seed, show):
    """Fit the coupling weight J and the drive I of a student network to a teacher's spike times."""
    import torch

    from snn_blockbackend import sparseprop as sp

    n, k, n_spikes = 100, 10, 400
    teacher_weight, teacher_drive = -0.3, 0.3
    phases = sp.LIF(drive=teacher_drive, tau=TAU).initial_phases(n, seed)

    def run(weight, drive, tape=False):  # the same connectivity (seed) for teacher and student
        network = sp.fixed_outdegree_network(n, k, weight=weight, seed=seed + 1)
        return sp.simulate(sp.LIF(drive=drive, tau=TAU), network, n_spikes=n_spikes, initial_phases=phases,
                           record_tape=tape)  # fmt: skip

    target = run(teacher_weight, teacher_drive).spike_times
    params = torch.tensor([-0.15, 0.45], dtype=torch.float64)  # [J, I], start far from the teacher's
    params.requires_grad_(True)
    optimizer = torch.optim.Adam([params], lr=0.01)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.97)

    def loss_and_grad():
        weight, drive = params.detach().tolist()
        student = run(weight, drive, tape=True)
        # the s-th network spike of the student against the teacher's: the sorted spike sequence is continuous
        # in the parameters even where the spiking order changes (the gradient holds the order fixed)
        residual_ms = (student.spike_times - target) * 1e3
        loss = float(np.mean(residual_ms**2))
        grads = sp.loss_gradients(student, 2 * residual_ms * 1e3 / n_spikes)  # dL/dt_s, t in seconds
        return loss, torch.tensor([grads.weights, grads.drive], dtype=torch.float64)

    losses, trajectory = [], []
    with Progress("training a small network with SparseProp gradients", size["train_iterations"], show) as bar:
        for _ in range(size["train_iterations"]):
            loss, grad = loss_and_grad()
            losses.append(loss)
            trajectory.append(params.detach().tolist())
            optimizer.zero_grad()
            params.grad = grad
            optimizer.step()
            schedule.step()
            bar.advance(info=f"loss {loss:.3g} ms^2")
    final_loss, _ = loss_and_grad()
    fitted = params.detach().tolist()
    return {
        "trained": f"the synaptic weight J and the drive I of an inhibitory LIF network (N = {n}, K = {k}, tau = "
                   f"{TAU * 1e3:g} ms), from J = -0.15, I = 0.45 towards a teacher with J = {teacher_weight}, "
                   f"I = {teacher_drive} (same connectivity and initial phases)",
        "loss": f"mean squared difference (ms^2) between the student's and the teacher's s-th network spike time, "
                f"first {n_spikes} spikes; Adam lr 0.01 decaying by 0.97 per iteration",
        "loss_before": losses[0], "loss_after": final_loss, "losses": losses + [final_loss],
        "initial": {"weight": trajectory[0][0], "drive": trajectory[0][1]},
        "fitted": {"weight": fitted[0], "drive": fitted[1]},
        "teacher": {"weight": teacher_weight, "drive": teacher_drive},
    }  # fmt: skip


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    size = SIZES[args.quick]
    show = not args.no_progress
    summary, result, rates, cvs = simulate_large(size, args.seed, show)
    check = exactness(size, args.seed)
    training = train_small(size, args.seed, show)
    results = {"network": summary, "exactness": check, "training": training}
    figure = plot(results, result, rates, cvs)
    results = write_results(args.out, NAME, results, figure)
    report(results)
    return results


def plot(results, result, rates, cvs):
    plt = pyplot()
    net = results["network"]
    n = net["neurons"]
    n_exc = int(EXCITATORY_FRACTION * n)
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    ax = axes[0]
    shown_exc, shown_inh = np.arange(160), np.arange(n_exc, n_exc + 40)
    t0 = max(0.0, net["network_seconds"] - 0.5)
    keep = result.spike_times >= t0
    for ids, colour, offset in ((shown_exc, "tab:red", 0), (shown_inh, "tab:blue", len(shown_exc))):
        mask = keep & np.isin(result.neuron_ids, ids)
        ax.scatter(result.spike_times[mask], result.neuron_ids[mask] - ids[0] + offset, s=1.5, color=colour)
    ax.set(xlabel="time (s)", ylabel="neuron (160 E red, 40 I blue)", title=f"raster, N = {n:,}")
    ax = axes[1]
    bins = np.linspace(0, np.percentile(rates, 99.5) + 1e-9, 50)
    ax.hist(rates[:n_exc], bins=bins, alpha=0.6, color="tab:red", label="E", density=True)
    ax.hist(rates[n_exc:], bins=bins, alpha=0.6, color="tab:blue", label="I", density=True)
    ax.set(xlabel="firing rate (Hz)", ylabel="density", title=f"rates (mean {net['rate_hz']:.1f} Hz)")
    ax.legend()
    ax = axes[2]
    ax.hist(cvs, bins=50, color="tab:gray")
    ax.set(xlabel="CV of inter-spike intervals", ylabel="neurons", title=f"ISI CV (mean {net['cv_isi_mean']:.2f})")
    ax = axes[3]
    ax.semilogy(results["training"]["losses"])
    ax.set(xlabel="Adam iteration", ylabel="spike-time loss (ms^2)", title="small network, SparseProp gradients")
    fig.suptitle(f"SparseProp: {net['spikes']:,} spikes in {net['network_seconds']} s of network time, "
                 f"{net['us_per_spike']:.1f} us per spike; exactness check "
                 f"{'passed' if results['exactness']['passed'] else 'FAILED'}")  # fmt: skip
    fig.tight_layout()
    return fig


def report(results):
    from rich.console import Console

    console = Console()
    net, check, train = results["network"], results["exactness"], results["training"]
    console.print(f"N = {net['neurons']:,}: {net['spikes']:,} spikes in {net['network_seconds']} s, "
                  f"{net['rate_hz']:.2f} Hz (E {net['rate_hz_excitatory']:.2f}, I {net['rate_hz_inhibitory']:.2f}), "
                  f"mean ISI CV {net['cv_isi_mean']:.2f}, {net['us_per_spike']:.2f} us/spike")  # fmt: skip
    inh, ei = check["inhibitory"], check["excitatory_inhibitory"]
    console.print(f"exactness vs O(N): inhibitory {inh['spikes']} spikes identical order {inh['identical_order']}, "
                  f"max |dt| {inh['max_abs_dt_s']:.1e} s; E/I identical for {ei['identical_spikes_before_first_tie_break']}"
                  f" spikes (max |dt| {ei['max_abs_dt_s_before']:.1e} s), first difference at a tie: "
                  f"{ei['first_difference_is_a_tie']}, duration ratio {ei['duration_ratio']:.3f} -> "
                  f"{'passed' if check['passed'] else 'FAILED'}")  # fmt: skip
    console.print(f"training: loss {train['loss_before']:.3g} -> {train['loss_after']:.3g} ms^2; (J, I) "
                  f"({train['initial']['weight']:.3f}, {train['initial']['drive']:.3f}) -> "
                  f"({train['fitted']['weight']:.4f}, {train['fitted']['drive']:.4f}), teacher "
                  f"({train['teacher']['weight']}, {train['teacher']['drive']})")  # fmt: skip
    console.print(f"wrote {results['figure']} and {results['json']}")


if __name__ == "__main__":
    main()
