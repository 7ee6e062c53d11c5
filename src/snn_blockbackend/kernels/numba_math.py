"""Math for the generated numba kernels that LLVM can vectorize.

numba has no vector libm: a ``math.exp`` call per element keeps a loop scalar (the surrogates' exponentials were
most of a backward). ``exp`` here is straight-line arithmetic plus one bit cast, inlined into the kernel's neuron
loop, which then vectorizes.
"""

from __future__ import annotations

import numba
from numba import types
from numba.extending import intrinsic


def _bit_cast(source, target):
    """An intrinsic: the ``target`` value whose bits are those of the ``source`` argument (a bit cast, no
    conversion: an integer's bits as a float, or a float's bits as an integer)."""

    @intrinsic
    def bit_cast(typingctx, value):
        if value != source:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(source), codegen

    return bit_cast


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


# Half precision: numba has no float16/bfloat16 arithmetic, so the generated kernels hold a half-precision value in
# a float32 (every half value is one) and store it as its int16 bit pattern (the tensor viewed as int16). Integer
# arithmetic in int32 lanes and selects only: the neuron loops stay vectorizable, and no LLVM half type (which
# needs F16C or a runtime routine numba cannot link: a crash on generic CPU targets).
_float32_bits = _bit_cast(types.float32, types.int32)


@numba.njit(inline="always", error_model="numpy")
def round_bf16(v):
    """The float32 ``v`` rounded to the nearest bfloat16 (ties to even), as c10's ``BFloat16``; NaN stays NaN."""
    i32 = numba.int32
    b = _float32_bits(v)
    r = i32(i32(b + i32(0x7FFF) + ((b >> i32(16)) & i32(1))) & i32(-0x10000))
    out = _bits_as_float32(r)
    return out if v == v else v


@numba.njit(inline="always", error_model="numpy")
def round_f16(v):
    """The float32 ``v`` rounded to the nearest float16 (ties to even), as c10's ``Half``: the significand at bit 13
    for normal results, below 2^-14 to a multiple of 2^-24 (the float32 sum with 0.5 rounds there), inf above
    65504; the sign kept (-tiny gives -0.0); NaN stays NaN."""
    f = numba.float32
    i32 = numba.int32
    b = _float32_bits(v)
    a = i32(b & i32(0x7FFFFFFF))
    sign = i32(b & i32(-0x80000000))
    normal = i32(i32(a + i32(0xFFF) + ((a >> i32(13)) & i32(1))) & i32(0x7FFFE000))
    tiny = _float32_bits((abs(v) + f(0.5)) - f(0.5))
    m = normal if a >= i32(0x38800000) else tiny
    m = m if m <= i32(0x477FE000) else i32(0x7F800000)
    out = _bits_as_float32(i32(m | sign))
    return out if v == v else v


@numba.njit(inline="always", error_model="numpy")
def bf16_to_f32(h):
    """A bfloat16 bit pattern (int16) as its float32 value."""
    return _bits_as_float32(numba.int32(numba.int32(h) << numba.int32(16)))


@numba.njit(inline="always", error_model="numpy")
def f32_to_bf16(v):
    """A bfloat16 value held in a float32 as its bit pattern (int16); NaN as 0x7FC0."""
    h = numba.int16(_float32_bits(v) >> numba.int32(16))
    return h if v == v else numba.int16(0x7FC0)


@numba.njit(inline="always", error_model="numpy")
def f16_to_f32(h):
    """A float16 bit pattern (int16) as its float32 value (subnormals through an exact float32 product; exponent 31
    is inf/NaN)."""
    i32 = numba.int32
    x = i32(h)
    m = i32(x & i32(0x7FFF))
    shifted = i32(m << i32(13))
    normal = i32(shifted + i32(0x38000000))
    sub = _float32_bits(numba.float32(m) * numba.float32(2.0 ** -24))
    special = i32(shifted | i32(0x7F800000))
    bits = normal if m >= i32(0x400) else sub
    bits = bits if m < i32(0x7C00) else special
    return _bits_as_float32(i32(bits | i32(i32(x & i32(0x8000)) << i32(16))))


@numba.njit(inline="always", error_model="numpy")
def f32_to_f16(v):
    """A float16 value held in a float32 (or +-inf, NaN) as its bit pattern (int16); NaN as 0x7E00."""
    f = numba.float32
    i32 = numba.int32
    b = _float32_bits(v)
    a = i32(b & i32(0x7FFFFFFF))
    normal = i32(i32(a - i32(0x38000000)) >> i32(13))
    sub = i32(_float32_bits(abs(v) + f(0.5)) - i32(0x3F000000))
    m = normal if a >= i32(0x38800000) else sub
    m = m if a < i32(0x7F800000) else i32(0x7C00)
    h = i32(m | i32(i32(b >> i32(16)) & i32(0x8000)))
    h = h if v == v else i32(0x7E00)
    return numba.int16(h)
