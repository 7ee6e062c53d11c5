"""Parallel spiking units by obvious loops: the ground truth for the GEMM provider. Never optimise it.

Each matrix entry is computed on its own from its definition (python floats for the fixed matrices,
``weight[t, s]`` only for s <= t, which *is* the causal mask) and each membrane row is summed term by term:

    A[t,s] = gain * decay^(t-s)  (s <= t);   R[t,s] = -decay^(t-s)  (s < t)

    PSU : H[t] = sum_{s<=t} A[t,s] X[s];  V[t] = H[t] + theta * sum_{s<t} R[t,s] sigmoid(H[s])
    IPSU: V[t] = sum_{s<=t} W[t,s] X[s] + b[t] + sum_{s<t} R[t,s] X[s]
    RPSU: P[t] = sum_{s<=t} W[t,s] X[s] + b[t];  V[t] = H[t] + sum_{s<t} R[t,s] sigmoid(P[s])
    PPSU: P as in RPSU;                           V[t] = P[t] + sum_{s<t} R[t,s] sigmoid(P[s])

``psu_step`` is PSU's exact two-variable recurrence (streaming form), used for step-by-step inference.
"""

from __future__ import annotations

import torch

from ..plugins import hookimpl


def _fixed(gain, decay):
    def a(t, s):
        return gain * decay ** (t - s)

    def r(t, s):
        return -(decay ** (t - s))

    return a, r


def _weighted(weight, bias, x, t):
    """sum_{s<=t} W[t,s] X[s] + b[t] (the causal mask: only s <= t is ever read)."""
    total = torch.zeros_like(x[0])
    for s in range(t + 1):
        total = total + weight[t, s] * x[s]
    return total + bias[t]


def run_psu_loops(kind, x, *, gain, decay, threshold, weight, bias, spike_fn, state):
    T = x.shape[0]
    a, r = _fixed(gain, decay)
    h, p, v, spikes = [], [], [], []
    for t in range(T):
        if kind in ("psu", "rpsu"):
            total = torch.zeros_like(x[0])
            for s in range(t + 1):
                total = total + a(t, s) * x[s]
            if state is not None:
                total = total + decay ** (t + 1) * state[0]
            h.append(total)
        if kind == "psu":
            p.append(torch.sigmoid(h[t]))
            reset = torch.zeros_like(x[0])
            for s in range(t):
                reset = reset + r(t, s) * p[s]
            if state is not None:
                reset = reset - decay ** (t + 1) * state[1]
            v.append(h[t] + threshold * reset)
        elif kind == "ipsu":
            total = _weighted(weight, bias, x, t)
            for s in range(t):
                total = total + r(t, s) * x[s]
            v.append(total)
        elif kind in ("rpsu", "ppsu"):
            pre = _weighted(weight, bias, x, t)
            p.append(torch.sigmoid(pre))
            reset = torch.zeros_like(x[0])
            for s in range(t):
                reset = reset + r(t, s) * p[s]
            # RPSU leaks with the fixed A; PPSU's membrane is the learned P itself
            v.append((h[t] if kind == "rpsu" else pre) + reset)
        else:
            raise ValueError(f"unknown unit {kind!r}")
        spikes.append(spike_fn(v[t] - threshold))
    final = None
    if kind == "psu":
        # reset accumulator including the last step's estimate: sum_{s<=T-1} decay^(T-1-s) sigmoid(H[s])
        k = torch.zeros_like(x[0]) if state is None else decay**T * state[1]
        for s in range(T):
            k = k + decay ** (T - 1 - s) * p[s]
        final = (h[-1], k)
    return torch.stack(spikes), torch.stack(v), final


def psu_step(x_t, state, *, gain, decay, threshold, spike_fn):
    """One step of PSU's exact recurrence. ``state = (h, k)``: H[t-1] and the reset accumulator K[t-1].

        H[t] = decay H[t-1] + gain X[t]
        Q[t] = decay K[t-1]                 (= sum_{s<t} decay^(t-s) sigmoid(H[s]))
        V[t] = H[t] - theta Q[t];  S[t] = spike(V[t] - theta)
        K[t] = Q[t] + sigmoid(H[t])

    Returns (spike, membrane, new_state). Starting from h = k = 0 it reproduces the parallel PSU.
    """
    h_prev, k_prev = state
    h = decay * h_prev + gain * x_t
    q = decay * k_prev
    v = h - threshold * q
    return spike_fn(v - threshold), v, (h, q + torch.sigmoid(h))


def learned_step(kind, x_t, state, *, gain, decay, threshold, weight, bias, spike_fn):
    """One step of IPSU / RPSU / PPSU from their history (W's rows are not Toeplitz, so P needs all past inputs).

    ``state = (history, h, k)``: the inputs so far (a tuple), H[t-1] (RPSU's fixed leak) and the reset
    accumulator K[t-1] = sum_{s<=t-1} decay^(t-1-s) u[s] with u = X (IPSU) or sigmoid(P) (RPSU, PPSU):

        P[t] = sum_{s<=t} W[t,s] X[s] + b[t];  Q[t] = decay K[t-1];  K[t] = Q[t] + u[t]
        IPSU: V = P - Q;   RPSU: H[t] = decay H[t-1] + gain X[t], V = H - Q;   PPSU: V = P - Q
    """
    history, h_prev, k_prev = state
    t = len(history)
    history = (*history, x_t)
    pre = torch.zeros_like(x_t)
    for s in range(t + 1):
        pre = pre + weight[t, s] * history[s]
    pre = pre + bias[t]
    q = decay * k_prev
    if kind == "ipsu":
        membrane, update = pre - q, x_t
    elif kind == "rpsu":
        h_prev = decay * h_prev + gain * x_t
        update = torch.sigmoid(pre)
        membrane = h_prev - q
    elif kind == "ppsu":
        update = torch.sigmoid(pre)
        membrane = pre - q
    else:
        raise ValueError(f"unknown unit {kind!r}")
    return spike_fn(membrane - threshold), membrane, (history, h_prev, q + update)


class ReferencePSUProvider:
    name = "reference"
    priority = 0  # never chosen by "auto" while the GEMM provider is available

    def supports(self, kind, device):
        return None

    def run(self, kind, x, **kwargs):
        return run_psu_loops(kind, x, **kwargs)


@hookimpl
def snn_blockbackend_psu_providers():
    return [ReferencePSUProvider()]
