"""Test-session set-up shared by every test module."""

import os

import torch

# Without a GPU the Triton kernels run in Triton's interpreter on CPU tensors. The switch is read when a kernel
# is defined, so it is set before any test imports snn_blockbackend (which registers the Triton provider).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
