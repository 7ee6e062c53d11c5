"""The documentation runs: every ```python block of README.md and docs/*.md, and the "after" side of every
```diff block (its context and + lines), is executed.

Each file's blocks run in order in one namespace, so a block may use the names of the blocks above it.
Markers (an HTML comment on the line before the fence, blank lines allowed in between):

* ``<!-- fragment: why -->``: not run; the test is skipped with that reason.
* ``<!-- requires: package==version -->`` (or ``package>=version``, or just ``package``): skipped, saying why,
  unless that version of the package is installed.

A block importing an optional framework that is not installed (snnTorch, SpikingJelly, Norse, scipy, numba,
matplotlib) is skipped with a reason too. The "before" side of a diff (the native code) is compiled, not run.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTIONAL_MODULES = {"snntorch", "spikingjelly", "norse", "scipy", "numba", "matplotlib"}
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*(fragment|requires)\s*:\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str  # "python" or "diff"
    text: str  # the code that runs: the block itself, or a diff's "after" side
    before: str | None = None  # a diff's "before" side
    fragment: str | None = None  # the fragment marker's reason
    requires: str | None = None  # the requires marker's requirement

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def diff_sides(diff: str) -> tuple[str, str]:
    """(before, after) of a unified-diff body without headers: ' ' lines in both, '-' before, '+' after."""
    before, after = [], []
    for line in diff.splitlines():
        tag, code = (line[:1], line[1:]) if line else (" ", "")
        if tag not in " +-":
            raise ValueError(f"a diff line must start with ' ', '+' or '-': {line!r}")
        if tag != "+":
            before.append(code)
        if tag != "-":
            after.append(code)
    return "\n".join(before) + "\n", "\n".join(after) + "\n"


def parse_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The python and diff blocks of a markdown file, with the markers before them."""
    lines = (path.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        language, start = fence.group(1), i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"{path}:{start + 1}: unclosed code block")
        i = end + 1
        if language not in ("python", "diff"):
            continue
        markers, k = {}, start - 1
        while k >= 0 and (not lines[k].strip() or _MARKER.match(lines[k])):
            found = _MARKER.match(lines[k])
            if found:
                markers.setdefault(found.group(1), found.group(2))
            k -= 1
        body = "\n".join(lines[start + 1 : end]) + "\n"
        before = None
        if language == "diff":
            before, body = diff_sides(body)
        blocks.append(Block(path, start + 1, language, body, before, markers.get("fragment"), markers.get("requires")))
    return blocks


def _imported_top_modules(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def skip_reason(block: Block) -> str | None:
    """Why ``block`` is not run here, or None."""
    if block.fragment is not None:
        return f"fragment: {block.fragment}"
    if block.requires is not None:
        requirement = Requirement(block.requires)
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return f"needs {block.requires}; {requirement.name} is not installed"
        if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
            return f"needs {block.requires}; {requirement.name} {installed} is installed"
    missing = sorted(
        name for name in _imported_top_modules(block.text) & OPTIONAL_MODULES if importlib.util.find_spec(name) is None
    )
    if missing:
        return f"needs {', '.join(missing)}, not installed"
    return None


ALL_BLOCKS = [block for path in DOC_FILES for block in parse_blocks(path)]
_namespaces: dict[Path, tuple[dict, int]] = {}  # per file: its namespace and how many of its blocks have run


def _run(block: Block, namespace: dict) -> None:
    code = compile(block.text, f"{block.name} ({block.language})", "exec")
    exec(code, namespace)  # noqa: S102 - running our own documentation is the point


def test_the_docs_have_blocks():
    assert len(ALL_BLOCKS) >= 15
    assert {block.language for block in ALL_BLOCKS} == {"python", "diff"}


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.name for block in ALL_BLOCKS])
def test_doc_block_runs(block: Block):
    if block.before is not None:  # the native side of a diff is valid Python (it is not run)
        compile(block.before, f"{block.name} (diff, before)", "exec")
    reason = skip_reason(block)
    if reason is not None:
        pytest.skip(reason)
    file_blocks = [b for b in ALL_BLOCKS if b.path == block.path]
    namespace, done = _namespaces.get(block.path, ({"__name__": f"doc:{block.path.name}"}, 0))
    position = file_blocks.index(block)
    # a block may use names from the blocks above it: run those that have not run yet (e.g. under -k)
    for earlier in file_blocks[done:position]:
        if skip_reason(earlier) is None:
            try:
                _run(earlier, namespace)
            except Exception as error:
                pytest.fail(f"the block at {earlier.name}, which this one follows, fails: {error!r}")
    _namespaces[block.path] = (namespace, position + 1)
    _run(block, namespace)


def test_markers_and_diff_sides_are_parsed(tmp_path):
    doc = tmp_path / "doc.md"
    text = (
        "<!-- fragment: shows a signature only -->\n\n```python\nf(\n```\n"
        "<!-- requires: not-a-real-package==1.0 -->\n```diff\n import a\n-b = 1\n+b = 2\n```\n"
        "```sh\nls\n```\n"
    )
    fragment, diff = parse_blocks(doc, text)
    assert fragment.fragment == "shows a signature only" and fragment.requires is None
    assert skip_reason(fragment) == "fragment: shows a signature only"
    assert (diff.before, diff.text) == ("import a\nb = 1\n", "import a\nb = 2\n")
    assert skip_reason(diff) == "needs not-a-real-package==1.0; not-a-real-package is not installed"
    with pytest.raises(ValueError, match="must start with"):
        diff_sides("*oops")
