"""Math for the generated numba kernels that LLVM can vectorize.

numba has no vector libm: a ``math.exp`` call per element keeps a loop scalar (the surrogates' exponentials were
most of a backward). ``exp`` here is straight-line arithmetic plus one bit cast, inlined into the kernel's neuron
loop, which then vectorizes.
"""

from __future__ import annotations

import numba
from numba import types
from numba.extending import intrinsic


@intrinsic
def _bits_as_float64(typingctx, bits):
    """The float64 whose IEEE-754 bits are the int64 ``bits`` (a bit cast, no conversion)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


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
