"""Math for the generated numba kernels that LLVM can vectorize.

numba has no vector libm: a ``math.exp`` call per element keeps a loop scalar (the surrogates' exponentials were
most of a backward). ``exp`` here is straight-line arithmetic plus one bit cast, inlined into the kernel's neuron
loop, which then vectorizes.
"""

from __future__ import annotations

import numba
from numba import types
from numba.extending import intrinsic


def _bit_cast(int_type, float_type):
    """An intrinsic: the ``float_type`` whose IEEE-754 bits are the ``int_type`` argument (a bit cast, no
    conversion)."""

    @intrinsic
    def bits_as_float(typingctx, bits):
        if bits != int_type:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(float_type))

        return float_type(int_type), codegen

    return bits_as_float


_bits_as_float64 = _bit_cast(types.int64, types.float64)
_bits_as_float32 = _bit_cast(types.int32, types.float32)


@numba.njit(inline="always", error_model="numpy")
def exp(z):
    """exp(z) in float64 within about one ulp of ``math.exp`` (0 below -708, inf above ~709.8, NaN for NaN):
    exp(z) = 2^n * e^r with n = round(z / ln 2), r = z - n*ln 2 (ln 2 in two parts, Cody-Waite), |r| <= ln(2)/2,
    e^r by its degree-13 Taylor polynomial (relative error < 1e-17), 2^n written into the exponent bits."""
    y = z if z > -708.0 else -708.0
    y = y if y < 710.0 else 710.0
    n = numba.int32(y * 1.4426950408889634 + 1100.5) - numba.int32(1100)  # round half up (the sum is > 0: truncation floors)
    nf = numba.float64(n)
    r = (y - nf * 0.693147180369123816490) - nf * 1.90821492927058770002e-10
    p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (
        1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (1 / 479001600 + r / 6227020800))))))))))))
    # 2^n as 2 * 2^(n-1): n reaches 1024 just below the overflow threshold, 2^(n-1) is always a normal number
    out = (p * 2.0) * _bits_as_float64((numba.int64(n) + numba.int64(1022)) << numba.int64(52))
    out = out if z > -708.0 else 0.0
    return out if z == z else z


@numba.njit(inline="always", error_model="numpy")
def exp32(z):
    """exp(z) in float32 arithmetic, within a few float32 ulps of ``math.exp`` (0 below -86, where the result
    would be near or below the smallest normal float32, inf above ~88.7, NaN for NaN): the same scheme as ``exp`` with ln 2 split for float32
    (Cody-Waite: the high part has 9 significant bits, so n * high is exact) and a degree-7 Taylor polynomial
    (relative error < 1e-8 on |r| <= ln(2)/2). Eight lanes per AVX2 vector instead of ``exp``'s four."""
    f = numba.float32
    y = z if z > f(-86.0) else f(-86.0)
    y = y if y < f(89.0) else f(89.0)
    n = numba.int32(y * f(1.44269504) + f(200.5)) - numba.int32(200)  # round half up (the sum is > 0)
    nf = f(n)
    r = (y - nf * f(0.693359375)) - nf * f(-2.12194440e-4)
    p = f(1.0) + r * (f(1.0) + r * (f(0.5) + r * (f(1 / 6) + r * (f(1 / 24) + r * (f(1 / 120) + r * (
        f(1 / 720) + r * f(1 / 5040)))))))
    # 2^n as 2 * 2^(n-1): 2^(n-1) is a normal float32 for n in -125..128
    out = (p * f(2.0)) * _bits_as_float32(numba.int32((n + numba.int32(126)) << numba.int32(23)))
    out = out if z > f(-86.0) else f(0.0)
    return out if z == z else z
