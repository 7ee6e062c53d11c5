"""Overflowing values: where finite input drives a membrane to +-inf, every provider still equals the sequential
reference (spikes and membranes, NaN where the reference has NaN). (Infinite *input* is refused by the default
finiteness check.) A hold written as lerp(v, u, live) turned an overflowing candidate into NaN
during the refractory period (0*inf) and lost the next spike; the providers must select, as the reference does."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_blockbackend import block_neuron, make_profile, plugins

# (profile, options, parameters): decays of 1 let the membrane overflow to +-inf from finite input
CONFIGS = [
    ("snntorch_leaky", {}, {"beta": 1.0, "threshold": 1.0}),
    ("snntorch_leaky", {"reset_mechanism": "zero"}, {"beta": 1.0, "threshold": 1.0}),
    ("snntorch_leaky", {"reset_mechanism": "none"}, {"beta": 1.0, "threshold": 1.0}),
    ("paper_lif", {}, {"beta": 1.0}),
    ("paper", {}, {"beta": 1.0, "adaptation_decay": 0.9}),
    ("spikingjelly_lif", {}, {"tau": 2.0}),
    ("spikingjelly_lif", {"v_reset": None, "decay_input": False}, {"tau": 1.5}),
    ("norse_lif_box", {}, {}),
    ("norse_lif", {}, {}),
    ("norse_lsnn", {}, {}),
]
PROVIDERS = [name for name in ("torch", "numba", "triton") if name in plugins.providers()]
CASES = [
    pytest.param(config, backend, id=f"{config[0]}{'-' + '-'.join(map(str, config[1].values())) if config[1] else ''}-{backend}")
    for config in CONFIGS
    for backend in PROVIDERS
    if plugins.providers()[backend].supports(make_profile(config[0], **config[1]), torch.device("cpu"), "exact") is None
]
# fractions of the dtype's largest value: sums of two or more overflow to +-inf inside the neuron
SCALES = [1.0, -1.0, 0.9, -0.9, 1 / 3, -1 / 3]
ORDINARY = [2.0, -1.0, 0.5, 0.0]


def _same(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal values with NaN where the reference has NaN (the sign of a zero may differ, see README)."""
    return got.shape == want.shape and bool(((got == want) | (got.isnan() & want.isnan())).all())


@pytest.mark.parametrize("config, backend", CASES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_overflow_equals_reference(config, backend, data):
    name, options, params = config
    R = data.draw(st.integers(0, 4), label="R")
    T = data.draw(st.integers(1, 12 if backend == "triton" else 30), label="T")
    N = data.draw(st.integers(1, 3), label="N")
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]), label="dtype")
    big = torch.finfo(dtype).max
    choices = [scale * big for scale in SCALES] + ORDINARY
    values = data.draw(st.lists(st.sampled_from(choices), min_size=T * N, max_size=T * N), label="x")
    x = torch.tensor(values, dtype=dtype).view(T, 1, N)
    profile = make_profile(name, **options)
    ref = block_neuron(x, profile, params, R, backend="reference", check_finite=False)
    got = block_neuron(x, profile, params, R, backend=backend, check_finite=False)
    assert torch.equal(got.spikes, ref.spikes)
    assert _same(got.membrane, ref.membrane)
    assert torch.equal(got.state["refractory"], ref.state["refractory"])


@pytest.mark.parametrize("backend", PROVIDERS)
def test_overflow_during_refractory_period_keeps_the_next_spike(backend):
    """The issue's case: beta=1 overflows the held membrane to inf while the neuron is refractory."""
    x = torch.full((8, 1, 1), 3.0e38)
    kwargs = dict(beta=1.0, threshold=1.0)
    ref = block_neuron(x, "snntorch_leaky", kwargs, 1, backend="reference")
    if plugins.providers()[backend].supports(make_profile("snntorch_leaky"), x.device, "exact") is not None:
        pytest.skip(f"{backend} does not run on this device here")
    got = block_neuron(x, "snntorch_leaky", kwargs, 1, backend=backend)
    assert ref.spikes.flatten().tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    assert torch.equal(got.spikes, ref.spikes)
    assert not got.membrane.isnan().any()
