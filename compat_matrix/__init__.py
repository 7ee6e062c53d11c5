"""Compatibility matrix of snn-blockbackend: framework versions x neuron classes x configurations, each
checked against the native neuron (or the engine's sequential reference) in its own virtual environment.

``python -m compat_matrix [--only framework[==version]] [--jobs N]`` builds the environments under
``compat_matrix/.venvs/``, runs ``compat_matrix.suite`` in each and writes ``compat_matrix/RESULTS.md`` and
``compat_matrix/results.json``. See ``matrix.py`` for the declaration.
"""
