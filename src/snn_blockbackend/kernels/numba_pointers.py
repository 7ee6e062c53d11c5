"""What a generated module's launch functions (``forward_launch``, ``backward_launch``: numba ``cfunc``s that
OpenMP threads call with one pointer) need to read their arguments: an address as a typed pointer, and an atomic
counter that deals out the chunks of neurons. Intrinsics, because numba has neither."""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic


def _address_as_pointer(element):
    """An intrinsic: the int64 argument (an address) as a pointer to ``element`` values (LLVM ``inttoptr``)."""

    @intrinsic
    def as_pointer(typingctx, address):
        if address != types.int64:
            return None

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return types.CPointer(element)(types.int64), codegen

    return as_pointer


float32_at = _address_as_pointer(types.float32)
float64_at = _address_as_pointer(types.float64)
int16_at = _address_as_pointer(types.int16)  # half-precision arrays, as their bit patterns
uint8_at = _address_as_pointer(types.uint8)
int64_at = _address_as_pointer(types.int64)


@intrinsic
def fetch_add(typingctx, pointer, value):
    """``*pointer += value`` as one atomic operation; returns the value before (each thread that asks gets a
    different one)."""
    if pointer != types.CPointer(types.int64) or value != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", args[0], args[1], "monotonic")

    return types.int64(types.CPointer(types.int64), types.int64), codegen
