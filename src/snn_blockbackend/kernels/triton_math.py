"""Half precision in the generated Triton kernels: values computed in float32 and rounded to the half dtype after
every operation (PyTorch's rule), arrays passed as their int16 bit patterns (as the numba kernels take them).

bfloat16 is rounded in integer arithmetic: Triton's interpreter converts float32 to bfloat16 by truncation (its
"round to nearest" does not carry into the exponent either), so the native conversion would be checked by
nothing; the integer rounding is the same on a GPU and in the interpreter. float16 uses the native conversion,
which rounds to nearest even on both (PTX ``cvt.rn.f16.f32``; NumPy's ``astype`` in the interpreter).
"""

import triton
import triton.language as tl


@triton.jit
def round_bf16(v):
    """The float32 ``v`` rounded to the nearest bfloat16 (ties to even), as c10's ``BFloat16``; NaN stays NaN."""
    b = v.to(tl.int32, bitcast=True)
    r = (b + 0x7FFF + ((b >> 16) & 1)) & -65536
    return tl.where(v == v, r.to(tl.float32, bitcast=True), v)


@triton.jit
def bf16_to_f32(h):
    """A bfloat16 bit pattern (int16) as its float32 value."""
    return (h.to(tl.int32) << 16).to(tl.float32, bitcast=True)


@triton.jit
def f32_to_bf16(v):
    """A bfloat16 value held in a float32 as its bit pattern (int16); NaN as 0x7FC0."""
    h = (v.to(tl.int32, bitcast=True) >> 16).to(tl.int16)
    return tl.where(v == v, h, tl.full(h.shape, 0x7FC0, tl.int16))


@triton.jit
def round_f16(v):
    """The float32 ``v`` rounded to the nearest float16 (ties to even; inf above 65504), held in a float32."""
    return v.to(tl.float16).to(tl.float32)


@triton.jit
def f16_to_f32(h):
    """A float16 bit pattern (int16) as its float32 value."""
    return h.to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def f32_to_f16(v):
    """A float16 value held in a float32 (or +-inf, NaN) as its bit pattern (int16)."""
    return v.to(tl.float16).to(tl.int16, bitcast=True)
