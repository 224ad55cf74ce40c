"""Every code block of README.md and of the documentation pages (docs/**/*.md) runs as written.

Each fenced block tagged ``python``, ``bash``, ``sh`` or ``shell`` is one test case, with the id
``<page>:<line of its opening fence>``:

* ``python`` blocks run in this process, each page's blocks in order in one fresh namespace, so
  a page can build on its earlier blocks; a block that itself uses a deprecated keras-lrp name
  (a DeprecationWarning attributed to the block) fails;
* ``bash``/``sh``/``shell`` blocks run as ``bash -e`` subprocesses, with the interpreter's bin
  folder first on PATH (so ``keras-lrp`` and ``python`` are this environment's);
* both run in one temporary folder per page, never the checkout's root: an example must not
  depend on where it is run from.

Blocks that only show something (output, a session transcript, a recipe for several machines)
are tagged ``text`` or ``console`` and are not run; any other tag is an error, so a typo cannot
silently turn a runnable example into a shown one. The README's set-up block (the one creating
a virtual environment with ``python3 -m venv``) is the one runnable block skipped: CI runs it
itself in a fresh environment (``.ci/run``), which :func:`test_readme_setup_block_is_what_ci_runs`
checks.

The analyzer table of the reference pages is generated from ``keras_lrp.analyzers.ANALYZERS`` at
build time (``docs/_ext/analyzer_table.py``); the last tests check that the generator lists
every analyzer name and common keyword, and that the page shows the generated table.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Languages of blocks that run, and how.
RUNNABLE = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
#: Languages of blocks that are only shown.
SHOWN = {"text", "console", "none"}
#: Marks the README's set-up block, which CI runs (.ci/run).
SETUP_MARK = "python3 -m venv"
BASH_TIMEOUT = 600


@dataclasses.dataclass
class Block:
    page: str  # relative to the checkout, e.g. "docs/howto/cli.md"
    line: int  # 1-based line of the opening fence
    lang: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> List[Path]:
    """README.md and every Markdown page of the docs (the build folder excluded)."""
    docs = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)
    return [ROOT / "README.md"] + docs


_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fenced_blocks(path: Path) -> List[Block]:
    """The fenced code blocks of a Markdown file (CommonMark fences), in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(ROOT).as_posix()
    blocks, i = [], 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match or (match["fence"][0] == "`" and "`" in match["info"]):
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        info = match["info"].strip()
        close = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        body, j = [], i + 1
        while j < len(lines) and not close.match(lines[j]):
            line = lines[j]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
            j += 1
        blocks.append(Block(page, i + 1, info.split()[0] if info else "", "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _is_setup(block: Block) -> bool:
    return block.page == "README.md" and SETUP_MARK in block.code


ALL_BLOCKS = [b for p in pages() for b in fenced_blocks(p)]
RUNNABLE_BLOCKS = [b for b in ALL_BLOCKS if b.lang in RUNNABLE]


@dataclasses.dataclass
class PageState:
    """What the blocks of one page share: a namespace and a folder."""

    folder: Path
    namespace: dict
    done: set = dataclasses.field(default_factory=set)
    failed: Optional[str] = None


_STATES: Dict[str, PageState] = {}


@pytest.fixture(scope="module", autouse=True)
def _registrations_undone():
    """The pages register layers, rules, linear maps and blocks process-wide, as their readers
    would; the tests that run after this module see none of it."""
    from keras_lrp.composites.registry import REGISTRY

    with REGISTRY.scoped():
        yield


def _state(page: str, tmp_path_factory) -> PageState:
    if page not in _STATES:
        folder = tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9]+", "-", page))
        assert not (folder / "keras_lrp").exists() and folder.resolve() != ROOT
        _STATES[page] = PageState(folder, {"__name__": "__docs_example__"})
    return _STATES[page]


def _tail(text: str, n: int = 4000) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def _run_python(block: Block, state: PageState) -> None:
    code = compile(block.code, block.id, "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        exec(code, state.namespace)
    deprecated = [str(w.message) for w in caught
                  if issubclass(w.category, DeprecationWarning) and w.filename == block.id]
    assert not deprecated, f"{block.id} uses deprecated names: {deprecated}"


def _run_bash(block: Block, state: PageState) -> None:
    bin_dir = os.path.dirname(sys.executable)
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
               PYTHONPATH=python_path, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(["bash", "-e", "-c", block.code], cwd=state.folder, env=env,
                          capture_output=True, text=True, timeout=BASH_TIMEOUT)
    assert proc.returncode == 0, (
        f"{block.id} exited with status {proc.returncode}\n--- stdout\n{_tail(proc.stdout)}"
        f"\n--- stderr\n{_tail(proc.stderr)}")


def _run(block: Block, state: PageState, monkeypatch) -> None:
    monkeypatch.chdir(state.folder)
    try:
        if RUNNABLE[block.lang] == "python":
            _run_python(block, state)
        else:
            _run_bash(block, state)
    except BaseException:
        state.failed = block.id
        raise
    finally:
        state.done.add(block.line)


_FRAMEWORK_IMPORT = re.compile(r"^\s*(?:import|from)\s+(tensorflow|jax|torch)\b", re.M)


def _needs_elsewhere(block: Block) -> Optional[str]:
    """Why ``block`` cannot run in this environment, or ``None``: it is written for another
    Keras backend (it imports that framework), or it (or an earlier block of its page, which it
    builds on) uses keras-hub where keras-hub is not installed (the JAX and PyTorch
    environments: keras-hub needs TensorFlow)."""
    backend = __import__("keras").backend.backend()
    framework = _FRAMEWORK_IMPORT.search(block.code)
    if framework and framework.group(1) != backend:
        return f"written for the {framework.group(1)} backend; this is {backend}"
    if "--devices" in block.code and backend != "tensorflow":
        return "--devices N on a CPU makes N logical devices on TensorFlow only"
    if importlib.util.find_spec("keras_hub") is None and any(
            "keras_hub" in b.code for b in RUNNABLE_BLOCKS
            if b.page == block.page and b.line <= block.line):
        return "uses keras-hub (on its page, at or before this block), which is not installed"
    return None


@pytest.mark.parametrize("block", RUNNABLE_BLOCKS, ids=[b.id for b in RUNNABLE_BLOCKS])
def test_block_runs(block, tmp_path_factory, monkeypatch):
    if _is_setup(block):
        pytest.skip("the README's set-up block: CI runs it in a fresh environment (.ci/run)")
    reason = _needs_elsewhere(block)
    if reason:
        pytest.skip(reason)
    state = _state(block.page, tmp_path_factory)
    # A page's blocks run in order; when this one is selected alone, its predecessors run first.
    for earlier in RUNNABLE_BLOCKS:
        if earlier.page != block.page or earlier.line >= block.line or _is_setup(earlier):
            continue
        if state.failed:
            break
        if earlier.line not in state.done and not _needs_elsewhere(earlier):
            _run(earlier, state, monkeypatch)
    if state.failed:
        pytest.skip(f"builds on {state.failed}, which failed")
    _run(block, state, monkeypatch)


def test_every_block_has_a_known_language():
    """Runnable or shown, nothing else: ```py or an untagged fence would silently not run."""
    unknown = [f"{b.id} ({b.lang or 'no tag'})" for b in ALL_BLOCKS
               if b.lang not in RUNNABLE and b.lang not in SHOWN and not b.lang.startswith("{")]
    assert not unknown, f"code blocks with a tag that is neither runnable nor shown: {unknown}"
    assert len(RUNNABLE_BLOCKS) > 10 and {b.page for b in RUNNABLE_BLOCKS} >= {
        "README.md", "docs/getting-started.md"}


def test_readme_setup_block_is_what_ci_runs():
    """The one skipped block exists, exactly once, and CI runs each of its commands: written
    out in ``.ci/run``, or read from README.md by a ``grep -m1 -E 'PATTERN' README.md`` there
    whose first match is that command of the set-up block."""
    setup = [b for b in ALL_BLOCKS if SETUP_MARK in b.code and b.lang in RUNNABLE]
    assert [b.page for b in setup] == ["README.md"], (
        f"expected one runnable set-up block, in README.md; found {[b.id for b in setup]}")
    commands = [line.strip() for line in setup[0].code.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    patterns = re.findall(r"grep\s+-m1\s+-E\s+'([^']+)'\s+README\.md", ci)
    for command in commands:
        written_out = command in ci
        read = any(next((line for line in readme if re.search(p, line)), None) == command
                   for p in patterns)
        assert written_out or read, (
            f"CI (.ci/run) does not run the README's set-up command {command!r}")


def _analyzer_table():
    spec = importlib.util.spec_from_file_location("analyzer_table",
                                                  DOCS / "_ext" / "analyzer_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_analyzer_table_lists_every_analyzer():
    from keras_lrp.analyzers import ANALYZERS, COMMON_KWARGS

    table = _analyzer_table()
    rows = table.analyzer_rows()
    assert [r["name"] for r in rows] == list(ANALYZERS)
    for row, entry in zip(rows, ANALYZERS.values()):
        assert row["description"] == entry.description
        assert [k.split("=")[0] for k in row["keywords"]] == list(entry.params)
    assert [r["name"] for r in table.common_kwargs_rows()] == list(COMMON_KWARGS)


def test_rendered_analyzer_table_lists_every_analyzer():
    pytest.importorskip("docutils", reason="the docs extra (Sphinx) renders the table")
    from docutils import nodes

    from keras_lrp.analyzers import ANALYZERS, COMMON_KWARGS

    table = _analyzer_table()
    body = next(iter(table.analyzer_table().findall(nodes.tbody)))
    assert [row.children[0].astext() for row in body.children] == list(ANALYZERS)
    body = next(iter(table.common_kwargs_table().findall(nodes.tbody)))
    assert [row.children[0].astext() for row in body.children] == list(COMMON_KWARGS)


def test_every_module_has_a_reference_page():
    """A module added to the package appears in the API reference (docs/reference/api/*.rst)."""
    package = ROOT / "keras_lrp"
    modules = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    documented = set()
    for page in (DOCS / "reference" / "api").glob("*.rst"):
        text = page.read_text(encoding="utf-8")
        documented |= set(re.findall(r"^\.\. automodule:: (\S+)", text, re.M))
    missing, extra = sorted(modules - documented), sorted(documented - modules)
    assert not missing, f"modules without an automodule in docs/reference/api: {missing}"
    assert not extra, f"automodule of a module that does not exist: {extra}"


def test_analyzer_page_shows_the_generated_tables():
    """The names are generated, never kept by hand; the common keywords are each explained."""
    text = (DOCS / "reference" / "analyzers.md").read_text(encoding="utf-8")
    assert "```{analyzer-table}" in text and "```{common-kwargs-table}" in text
    from keras_lrp.analyzers import COMMON_KWARGS

    missing = [k for k in COMMON_KWARGS if f"`{k}`" not in text]
    assert not missing, f"docs/reference/analyzers.md does not explain {missing}"
