"""numba_math's half-precision helpers, exhaustively against PyTorch's conversions.

Generated numba kernels hold bfloat16/float16 values in float32 variables and store them as int16 bit patterns:
``round_bf16``/``round_f16`` must round exactly as ``tensor.to(torch.bfloat16/float16)`` does, and the pattern
conversions must match ``tensor.view(half dtype).float()`` for all 65536 patterns. Each helper runs inlined in a
numba loop over an array, as in a kernel."""

import numpy as np
import pytest
import torch

numba = pytest.importorskip("numba", reason="the numba provider is not installed (extra [numba])")

from snn_blockbackend.kernels.numba_math import (  # noqa: E402
    bf16_to_f32,
    f16_to_f32,
    f32_to_bf16,
    f32_to_f16,
    round_bf16,
    round_f16,
)


def _loop(fn, out_dtype):
    @numba.njit
    def loop(a):
        out = np.empty(a.size, out_dtype)
        for i in range(a.size):
            out[i] = fn(a[i])
        return out

    return loop


_round = {torch.bfloat16: _loop(round_bf16, np.float32), torch.float16: _loop(round_f16, np.float32)}
_to_f32 = {torch.bfloat16: _loop(bf16_to_f32, np.float32), torch.float16: _loop(f16_to_f32, np.float32)}
_to_half = {torch.bfloat16: _loop(f32_to_bf16, np.int16), torch.float16: _loop(f32_to_f16, np.int16)}
DTYPES = [torch.bfloat16, torch.float16]
IDS = ["bf16", "f16"]

ALL_PATTERNS = np.arange(-(2**15), 2**15, dtype=np.int64).astype(np.int16)


def _bits(x):
    return np.asarray(x, np.float32).view(np.int32)


def _from_bits(bits):
    return (np.asarray(bits, np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.float32)


def _assert_same_float32(got, want, inputs):
    """Bitwise equal, except that any NaN matches any NaN."""
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    nan = np.isnan(want)
    bad = (np.isnan(got) != nan) | (~nan & (_bits(got) != _bits(want)))
    if bad.any():
        idx = np.flatnonzero(bad)[:10]
        rows = [f"{inputs[i]!r} (bits {int(_bits(inputs)[i]) & 0xFFFFFFFF:#010x}): got {got[i]!r} "
                f"({int(_bits(got)[i]) & 0xFFFFFFFF:#010x}), want {want[i]!r} "
                f"({int(_bits(want)[i]) & 0xFFFFFFFF:#010x})" for i in idx]
        raise AssertionError(f"{bad.sum()} of {bad.size} differ:\n" + "\n".join(rows))


def _half_values_f32(dtype):
    return torch.from_numpy(ALL_PATTERNS.copy()).view(dtype).float().numpy()


def _round_inputs():
    """float32 inputs around every bfloat16 and float16 value: each value +-0..3 float32 ulps (in the bits), the
    midpoints between consecutive values (ties) +-0..2 ulps, random bit patterns and the edges of both formats."""
    parts = []
    for dtype in DTYPES:
        values = _half_values_f32(dtype)
        b = _bits(values).astype(np.int64)
        parts += [_from_bits(b + k) for k in range(-3, 4)]
    # bfloat16 midpoints: the pattern's top 16 bits with bit 15 set (0x7F7F8000 is the tie between the largest
    # bfloat16 and 2^128, i.e. inf)
    mid = (ALL_PATTERNS.astype(np.int64) << 16) | 0x8000
    parts += [_from_bits(mid + k) for k in range(-2, 3)]
    # float16 midpoints: consecutive nonnegative finite values (patterns 0..0x7BFF increase), then 65536
    pos = torch.arange(0, 0x7C00, dtype=torch.int16).view(torch.float16).double().numpy()
    pos = np.append(pos, 65536.0)
    mids = ((pos[:-1] + pos[1:]) / 2).astype(np.float32)  # exact: a float16 midpoint has 12 significant bits
    assert np.array_equal(mids.astype(np.float64), (pos[:-1] + pos[1:]) / 2)
    mids = np.concatenate([mids, -mids]).view(np.int32).astype(np.int64)
    parts += [_from_bits(mids + k) for k in range(-2, 3)]
    rng = np.random.default_rng(12345)
    parts.append(rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32))
    edges = np.array([0.0, 65504.0, 65505.0, 65519.0, 65519.996, 65520.0, 65520.004, 65535.0, 65536.0, 1e5,
                      2.0**-14, 2.0**-24, 2.0**-25, 3 * 2.0**-25, 1.5 * 2.0**-24, 2.0**-26, 1.0, 1.5, 2.0**127,
                      3.3895313892515355e38, 3.4028234663852886e38, np.inf, 2.0**-126, 2.0**-149, 2.0**-133,
                      2.0**-133 * 1.5], np.float32)
    eb = np.concatenate([_bits(edges), _bits(-edges)]).astype(np.int64)
    parts += [_from_bits(eb + k) for k in range(-4, 5)]
    parts.append(_from_bits(np.array([0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x7FBFFFFF, 0xFFC00000, 0xFF800001,
                                      0xFFFFFFFF, 0x7F808000, 0x7F802000], np.int64)))
    return np.ascontiguousarray(np.concatenate(parts).astype(np.float32))


ROUND_INPUTS = _round_inputs()


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_round_matches_torch(dtype):
    x = ROUND_INPUTS
    want = torch.from_numpy(x).to(dtype).float().numpy()
    _assert_same_float32(_round[dtype](x), want, x)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_round_then_store_matches_torch_bits(dtype):
    """The whole store path: round, then the bit pattern, equals torch's conversion viewed as int16 (NaN: a NaN
    pattern; its payload is not part of the contract, and PyTorch's own code paths disagree on it)."""
    x = ROUND_INPUTS
    want = torch.from_numpy(x).to(dtype).view(torch.int16).numpy()
    got = _to_half[dtype](_round[dtype](x))
    nan = np.isnan(x)
    assert torch.from_numpy(got[nan].copy()).view(dtype).isnan().all()
    bad = np.flatnonzero((got != want) & ~nan)
    assert bad.size == 0, [(float(x[i]), hex(int(got[i]) & 0xFFFF), hex(int(want[i]) & 0xFFFF)) for i in bad[:10]]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_pattern_to_f32_all_patterns(dtype):
    want = _half_values_f32(dtype)
    got = _to_f32[dtype](ALL_PATTERNS)
    _assert_same_float32(got, want, want)
    # not only "NaN matches NaN": exactly the NaN patterns are NaN
    assert np.array_equal(np.isnan(got), torch.from_numpy(ALL_PATTERNS.copy()).view(dtype).isnan().numpy())


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_f32_to_pattern_round_trips_all_patterns(dtype):
    values = _to_f32[dtype](ALL_PATTERNS)
    got = _to_half[dtype](values)
    nan = np.isnan(values)
    assert torch.from_numpy(got[nan].copy()).view(dtype).isnan().all()
    bad = np.flatnonzero((got != ALL_PATTERNS) & ~nan)
    assert bad.size == 0, [(hex(int(ALL_PATTERNS[i]) & 0xFFFF), hex(int(got[i]) & 0xFFFF)) for i in bad[:10]]
    # the rounding of an exact half value is the value itself
    _assert_same_float32(_round[dtype](values), values, values)
