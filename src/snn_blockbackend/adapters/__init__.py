"""Framework adapters (snnTorch, SpikingJelly, Norse): map a framework's conventions onto profiles.

An adapter never re-implements neuron math; it builds a profile and calls ``functional.block_neuron``.
"""
