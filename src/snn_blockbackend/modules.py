"""Thin stateful ``nn.Module``s over ``functional.block_neuron`` (framework-free, the paper's neuron).

Parameters are real ``nn.Parameter``s (``learn_*=True``) or buffers, so ``state_dict``, ``.to()``, ``.double()``
and DDP work. Input is time-first input current [T, B, ...]; the output is spikes of the same shape.
"""

from __future__ import annotations

import torch
from torch import nn

from .functional import BlockResult, block_neuron, check_refractory_steps, prepare_kernels
from .profiles import make_profile


def _tensor(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return torch.tensor(float(value))


class _BlockNeuron(nn.Module):
    profile_name: str
    _param_names: tuple[str, ...]

    def __init__(self, values: dict, learn: dict, refractory_steps, grad, backend, surrogate, check_finite):
        super().__init__()
        self.refractory_steps = check_refractory_steps(refractory_steps)
        self.grad = grad
        self.backend = backend
        self.check_finite = check_finite
        self.profile = make_profile(self.profile_name, surrogate=surrogate)
        prepare_kernels(self.profile)
        for name, value in values.items():
            tensor = _tensor(value)
            if learn.get(name, False):
                setattr(self, name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    def _params(self):
        # Like torch.nn layers, parameters are not cast: a dtype/device mismatch with the input is an error
        # (convert the module with .double() / .to(device)).
        return {name: getattr(self, name) for name in self._param_names}

    def run(self, x: torch.Tensor, state: dict | None = None) -> BlockResult:
        """Spikes, membrane and final state (pass ``state`` to continue a sequence)."""
        return block_neuron(
            x,
            self.profile,
            self._params(),
            self.refractory_steps,
            state=state,
            grad=self.grad,
            backend=self.backend,
            check_finite=self.check_finite,
        )

    def forward(self, x: torch.Tensor, state: dict | None = None, return_state: bool = False):
        result = self.run(x, state)
        return (result.spikes, result.state) if return_state else result.spikes

    def extra_repr(self) -> str:
        return f"refractory_steps={self.refractory_steps}, grad={self.grad!r}, backend={self.backend!r}"


class BlockLIF(_BlockNeuron):
    """The paper's LIF: V = beta*V*(1-S) + I, spike iff V > threshold, reset to 0, then R refractory steps.

    ``beta`` in (0, 1] and ``threshold`` > 0: floats or per-neuron tensors (broadcast against [B, ...]).
    """

    profile_name = "paper_lif"
    _param_names = ("beta", "threshold")

    def __init__(
        self,
        beta,
        threshold=1.0,
        refractory_steps: int = 0,
        grad: str = "exact",
        backend: str = "auto",
        learn_beta: bool = False,
        learn_threshold: bool = False,
        surrogate=None,
        check_finite: bool = True,
    ):
        super().__init__(
            {"beta": beta, "threshold": threshold},
            {"beta": learn_beta, "threshold": learn_threshold},
            refractory_steps,
            grad,
            backend,
            surrogate,
            check_finite,
        )


class BlockALIF(_BlockNeuron):
    """The paper's adaptive LIF: threshold + b*a with a = p*a + S (``adaptation_decay`` p,
    ``adaptation_strength`` b), reset to 0 and R refractory steps."""

    profile_name = "paper"
    _param_names = ("beta", "threshold", "adaptation_decay", "adaptation_strength")

    def __init__(
        self,
        beta,
        threshold=1.0,
        adaptation_decay=0.9,
        adaptation_strength=1.0,
        refractory_steps: int = 0,
        grad: str = "exact",
        backend: str = "auto",
        learn_beta: bool = False,
        learn_threshold: bool = False,
        learn_adaptation: bool = False,
        surrogate=None,
        check_finite: bool = True,
    ):
        super().__init__(
            {
                "beta": beta,
                "threshold": threshold,
                "adaptation_decay": adaptation_decay,
                "adaptation_strength": adaptation_strength,
            },
            {
                "beta": learn_beta,
                "threshold": learn_threshold,
                "adaptation_decay": learn_adaptation,
                "adaptation_strength": learn_adaptation,
            },
            refractory_steps,
            grad,
            backend,
            surrogate,
            check_finite,
        )
