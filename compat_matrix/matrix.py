"""The compatibility matrix, declared as data: framework versions (how to install each) x neuron classes x
configuration axes. ``cells_for(framework, version)`` expands it into the concrete cells the equivalence suite
(``compat_matrix.suite``) runs inside one environment; ``group_key`` says which cells share a row of
RESULTS.md.

Nothing here imports a framework, so the runner and the unit tests can read the matrix anywhere.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

TORCH_REQUIREMENT = "torch==2.13.0"  # the CPU wheel; every pip call also gets -c constraints.txt
# our package's runtime and test dependencies, installed once in the shared base environment
BASE_REQUIREMENTS = ("numpy", "pluggy", "packaging", "rich", "numba", "hypothesis", "pytest", "setuptools", "wheel")


@dataclass(frozen=True)
class FrameworkVersion:
    """One framework version of the matrix and how its environment is built.

    ``requirements`` are installed with ``--no-deps`` (a framework's declared dependencies would pull in
    torchvision/torchaudio/tensorboard or another torch); ``deps`` are the runtime dependencies its neuron
    code really imports, installed with their own dependencies (torch pinned by the constraints).
    ``no_build_isolation``: build an sdist against the environment's torch instead of one pip would download
    into an isolated build environment (Norse 1.0.0 ships only an sdist with a C++ extension).
    """

    framework: str  # import name: snntorch | spikingjelly | norse
    version: str
    requirements: tuple[str, ...]
    deps: tuple[str, ...] = ()
    no_build_isolation: bool = False
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.framework}=={self.version}"

    @property
    def venv_name(self) -> str:
        return f"{self.framework}-{self.version}"


VERSIONS: tuple[FrameworkVersion, ...] = (
    FrameworkVersion("snntorch", "0.9.4", ("snntorch==0.9.4",)),
    FrameworkVersion("snntorch", "1.0.0", ("snntorch==1.0.0",)),
    FrameworkVersion(
        "spikingjelly", "0.0.0.0.14", ("spikingjelly==0.0.0.0.14",), ("tqdm", "scipy", "matplotlib"),
    ),
    FrameworkVersion(
        "spikingjelly", "2.0.0", ("spikingjelly==2.0.0",), ("loguru>=0.7,<1", "tqdm", "scipy", "matplotlib"),
        note="METADATA asks for torchvision/torchaudio/tensorboard, which the neuron code never imports",
    ),
    FrameworkVersion(
        "norse", "1.0.0", ("norse==1.0.0",), ("setuptools", "wheel"), no_build_isolation=True,
        note="sdist only; its C++ op norse_op is built against torch 2.13 (--no-build-isolation). A norse_op "
        "built against another torch fails to import; the suite then applies the workaround of "
        "frameworks.md 0.7 (sys.modules['norse_op'] = None) and records it",
    ),
    FrameworkVersion("norse", "1.1.0", ("norse==1.1.0",), ("nir", "nirtorch")),
)


def find_versions(only: list[str] | None) -> list[FrameworkVersion]:
    """The versions selected by ``--only`` items ``framework`` or ``framework==version`` (all when empty)."""
    if not only:
        return list(VERSIONS)
    selected = []
    for item in only:
        framework, _, version = item.partition("==")
        matches = [v for v in VERSIONS if v.framework == framework and (not version or v.version == version)]
        if not matches:
            known = ", ".join(v.key for v in VERSIONS)
            raise ValueError(f"--only {item!r} matches no framework version of the matrix (known: {known})")
        selected += [m for m in matches if m not in selected]
    return selected


# ---------------------------------------------------------------------------------------------
# neuron classes and configuration axes
# ---------------------------------------------------------------------------------------------
REFRACTORY = (0, 1, 9)
HALF_DTYPES = ("float16", "bfloat16")
DTYPES = ("float32", "float64", *HALF_DTYPES)
# "compiled": our adapter class in sequence mode under torch.compile(fullgraph=True) (suite.COMPILE_BACKEND).
# A compile costs seconds, so that column is a covering selection (COMPILED_*), not the full product.
MODES = ("step", "sequence", "compiled")
PATHS = ("engine", "adapter")
COMPILED_REFRACTORY = (0, 9)
COMPILED_DTYPES = ("float32",)


@dataclass(frozen=True)
class Neuron:
    """A neuron class of one framework. ``native`` is the framework's class (None: no native counterpart,
    every R is compared with the engine's sequential reference); ``adapter`` is our class;
    ``group_axes`` are the configuration axes whose values make a RESULTS.md row, ``axes`` the others
    (varied inside a row), each a tuple of values. ``versions``: the framework versions that have it."""

    framework: str
    name: str
    native: str | None
    adapter: str
    group_axes: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    versions: tuple[str, ...] | None = None  # None: all versions of the framework
    refractory: tuple[int, ...] = REFRACTORY


NEURONS: tuple[Neuron, ...] = (
    # -- snnTorch ----------------------------------------------------------------------------
    Neuron(
        "snntorch", "Leaky", "snntorch.Leaky", "BlockLeaky",
        group_axes={"reset_mechanism": ("subtract", "zero", "none"), "reset_delay": (True, False)},
        # learnable cells use per-neuron beta/threshold vectors
        axes={"learn": (False, True), "graded": (1.0, 0.7)},
    ),
    Neuron(
        "snntorch", "ALIF", None, "BlockALIF",
        group_axes={},
        axes={"learn": (False, True)},
    ),
    # -- SpikingJelly ------------------------------------------------------------------------
    Neuron(
        "spikingjelly", "LIFNode", "neuron.LIFNode", "BlockLIFNode",
        group_axes={"v_reset": (0.0, None, -0.2), "decay_input": (True, False)},
        axes={"detach_reset": (False, True), "tau": (2.0, 3.0)},
    ),
    Neuron(
        "spikingjelly", "ParametricLIFNode", "neuron.ParametricLIFNode", "BlockParametricLIFNode",
        group_axes={"v_reset": (0.0, None, -0.2), "decay_input": (True, False)},
        axes={"detach_reset": (False, True), "tau": (2.0, 3.0)},
    ),
    Neuron("spikingjelly", "ALIFNode", None, "BlockALIFNode", axes={"tau": (2.0, 3.0)}),
    # -- Norse -------------------------------------------------------------------------------
    Neuron(
        "norse", "LIFBoxCell", "LIFBoxCell", "BlockLIFBoxCell|BlockLIFBox",
        group_axes={"reset_method": ("value",)}, axes={"params": ("default", "leak_reset", "per_neuron")},
    ),
    Neuron(
        "norse", "LIFBoxCell", "LIFBoxCell", "BlockLIFBoxCell|BlockLIFBox",
        group_axes={"reset_method": ("subtract",)}, axes={"params": ("default", "leak_reset", "per_neuron")},
        versions=("1.1.0",),  # Norse 1.0's LIFBoxParameters has no reset_method
    ),
    Neuron(
        "norse", "LIFCell", "LIFCell|LIF", "BlockLIFCell|BlockLIF",
        axes={"params": ("default", "leak_reset", "per_neuron")},
    ),
    Neuron(
        "norse", "LSNNCell", "LSNNCell|LSNN", "BlockLSNNCell|BlockLSNN",
        axes={"params": ("default", "leak_reset", "per_neuron")},
    ),
    Neuron(
        "norse", "LIFRefracCell", "LIFRefracCell", "BlockLIFRefracCell",
        group_axes={"rho_reset": (1, 5)}, axes={"params": ("leak_reset", "per_neuron")},
        # its refractory period is its own counter rho (rho_reset); the engine's refractory_steps would add a
        # second one. LIFCell with R > 0 covers the engine's period (its forward pass is LIFRefracCell's).
        refractory=(0,),
    ),
)


@dataclass(frozen=True)
class Cell:
    """One check: a neuron configuration, run natively (or by the engine's reference) and by one of our
    paths, on one seeded random input."""

    framework: str
    version: str
    neuron: str
    path: str  # "engine" (functional.block_neuron + profile) | "adapter" (our framework class)
    refractory_steps: int
    dtype: str
    # "step" (one call per time step, state threaded) | "sequence" (one call per sequence) | "compiled"
    # (one call per sequence, our module under torch.compile(fullgraph=True))
    mode: str
    group: tuple  # ((axis, value), ...) of the neuron's group axes
    options: tuple  # ((axis, value), ...) of the other axes
    seed: int

    def config(self) -> dict:
        return {**dict(self.group), **dict(self.options)}

    def to_json(self) -> dict:
        return asdict(self)


def group_key(cell: Cell | dict) -> tuple:
    """The RESULTS.md row of a cell: framework, version, neuron, path, group axes, R."""
    if isinstance(cell, Cell):
        cell = cell.to_json()
    group = tuple((a, v) for a, v in cell["group"])
    return (cell["framework"], cell["version"], cell["neuron"], cell["path"], group, cell["refractory_steps"])


def neurons_for(framework: str, version: str) -> list[Neuron]:
    return [n for n in NEURONS if n.framework == framework and (n.versions is None or version in n.versions)]


def _product(axes: dict) -> list[tuple]:
    names = list(axes)
    return [tuple(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]


def _rotation(neuron: Neuron, r: int, mode: str, path: str) -> int:
    """A running index over (R, mode, path): which option values / dtype a covering selection takes there."""
    return (neuron.refractory.index(r) * len(MODES) + MODES.index(mode)) * len(PATHS) + PATHS.index(path)


def is_selected(neuron: Neuron, group_index: int, options_index: int, r: int, dtype: str, mode: str, path: str) -> bool:
    """Whether a combination of the axes is a cell of the full matrix. float32/float64: every combination
    of step/sequence. Half precision (HALF_DTYPES): every group x R x mode x path in both half dtypes, with
    the option values rotating over those (every option value is met, in both dtypes): a dtype changes how
    each step's arithmetic rounds, which does not depend on the option values, and the full product would
    double the run time. ``compiled`` (a compile costs seconds): each neuron class in its first group, our
    adapter, float32, R in COMPILED_REFRACTORY, the first option values at the smallest R and the last ones
    (learnable / per-neuron parameters) at the largest."""
    options_count = len(_product(neuron.axes))
    if mode == "compiled":
        if path != "adapter" or group_index != 0 or dtype not in COMPILED_DTYPES or r not in COMPILED_REFRACTORY:
            return False
        refractory = [x for x in COMPILED_REFRACTORY if x in neuron.refractory]
        return options_index == (0 if r == refractory[0] else options_count - 1)
    if dtype in HALF_DTYPES:
        return options_index == _rotation(neuron, r, mode, path) % options_count
    return True


def _in_subset(neuron: Neuron, group_index: int, options_index: int, r: int, dtype: str, mode: str, path: str) -> bool:
    """Of the selected cells: the first group at R > 0; one dtype per (R, mode, path), rotating through all
    four; the first option values (half precision: the rotation's); one compiled cell per neuron class (R = 0)."""
    if r > 0 and group_index != 0:
        return False
    if mode == "compiled":
        return r == 0
    if options_index != 0 and dtype not in HALF_DTYPES:
        return False
    return DTYPES.index(dtype) == _rotation(neuron, r, mode, path) % len(DTYPES)


def cells_for(framework: str, version: str, subset: bool = False) -> list[Cell]:
    """All cells of one framework version (``is_selected``). ``subset``: a small, still covering selection
    for CI (``_in_subset``): every neuron, path, mode and R; every group at R = 0 (against the native class),
    the first group at R > 0; every dtype."""
    cells = []
    seed = 0
    for neuron in neurons_for(framework, version):
        for group_index, group in enumerate(_product(neuron.group_axes)):
            for options_index, options in enumerate(_product(neuron.axes)):
                for r, dtype, mode, path in itertools.product(neuron.refractory, DTYPES, MODES, PATHS):
                    if not is_selected(neuron, group_index, options_index, r, dtype, mode, path):
                        continue
                    seed += 1
                    if subset and not _in_subset(neuron, group_index, options_index, r, dtype, mode, path):
                        continue
                    cells.append(
                        Cell(framework, version, neuron.name, path, r, dtype, mode, group, options, seed)
                    )
    return cells
