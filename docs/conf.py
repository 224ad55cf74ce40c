"""Sphinx configuration of the keras-lrp documentation.

Build it (offline; warnings are errors) from the repository root:

    sphinx-build -W --keep-going -b html docs docs/_build/html

It needs the package importable (``pip install ".[docs]"`` installs it with Sphinx and
myst-parser): the reference pages are generated from the docstrings, and the table of analyzer
names from ``keras_lrp.analyzers.ANALYZERS`` (``docs/_ext/analyzer_table.py``).
"""

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the checkout's keras_lrp, also when not installed
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # autodoc imports TensorFlow

from keras_lrp.version import __version__  # noqa: E402

project = "keras-lrp"
author = "the keras-lrp authors"
copyright = "the keras-lrp authors"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
    "analyzer_table",  # docs/_ext: the ``analyzer-table`` and ``common-kwargs-table`` directives
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
language = "en"
smartquotes_action = "qD"  # curly quotes and dashes; "..." stays three dots (as in rule=...)

# MyST: headings get anchors (links like page.md#a-heading), ::: fences for directives,
# definition lists (a term, then lines starting with ": ").
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# autodoc: the members each module defines itself (not the names it re-exports through
# ``__all__``, which are documented where they are defined), in source order, without the
# docstrings Keras' base classes would lend to overridden methods such as ``call``.
autodoc_default_options = {
    "members": True,
    "ignore-module-all": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_inherit_docstrings = False
# The docs build on one backend (TensorFlow); the JAX and PyTorch modules of the backend seam
# import their framework, which that environment need not have.
autodoc_mock_imports = [m for m in ("jax", "torch") if importlib.util.find_spec(m) is None]
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# Google-style docstrings; keras-lrp's docstrings also use a "Formula:" section.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = ["Formula"]

html_theme = "alabaster"
html_title = f"keras-lrp {release}"
html_static_path = []
html_theme_options = {"description": "Layer-wise Relevance Propagation for Keras 3",
                      "fixed_sidebar": True}


# -- keras-lrp's docstring conventions ---------------------------------------------------------
# The docstrings write mathematics as plain Unicode text: |x| is an absolute value (never a
# reStructuredText substitution), and a "Formula:" section (optionally "Formula (where …):")
# holds one formula per line, wrapped lines indented further. Before napoleon reads a
# docstring, the hook below escapes such bars and turns each Formula section into a rubric and a
# line block, so the lines stay lines. Code (``…``, roles, literal blocks, >>> examples) is left
# as it is.

import inspect  # noqa: E402
import re  # noqa: E402

_FORMULA = re.compile(r"^(\s*)Formula(\s*\(.*\))?:\s*$")
_CODE = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`|`[^`]*`_{0,2})")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _escape_bars(text: str) -> str:
    parts = _CODE.split(text)
    return "".join(p if i % 2 else p.replace("|", r"\|") for i, p in enumerate(parts))


def _formula_block(lines, start, base):
    """The lines of the indented block after a Formula header at ``start`` and its end."""
    block, i = [], start
    while i < len(lines):
        line = lines[i]
        if line.strip() and _indent(line) <= base:
            break
        block.append(line)
        i += 1
    while block and not block[-1].strip():
        block.pop()
        i -= 1
    return block, i


def _convention(lines):
    out, i, literal_indent, doctest = [], 0, None, False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if literal_indent is not None:  # inside a literal block: up to the first dedent
            if not stripped or _indent(line) > literal_indent:
                out.append(line)
                i += 1
                continue
            literal_indent = None
        if doctest:  # a >>> example runs to the next blank line
            if stripped:
                out.append(line)
                i += 1
                continue
            doctest = False
        if stripped.startswith(">>>"):
            doctest = True
            out.append(line)
            i += 1
            continue
        match = _FORMULA.match(line)
        if match:
            base = len(match.group(1))
            block, i = _formula_block(lines, i + 1, base)
            pad = " " * base
            out += [f"{pad}.. rubric:: Formula{_escape_bars(match.group(2) or '')}", ""]
            inner = min((_indent(b) for b in block if b.strip()), default=base)
            for b in block:
                if not b.strip():
                    out.append("")
                    continue
                lead = "  " if _indent(b) > inner else "| "  # deeper: a wrapped line goes on
                out.append(f"{pad}{lead}{_escape_bars(b.strip())}")
            out.append("")
            continue
        out.append(_escape_bars(line))
        if stripped.endswith("::"):
            literal_indent = _indent(line)
        i += 1
    return out


def _process_docstring(app, what, name, obj, options, lines):
    lines[:] = _convention(list(lines))


def _process_signature(app, what, name, obj, options, signature, return_annotation):
    """Keras layers get their signature from ``keras.Operation.__new__(*args, **kwargs)``; show
    the constructor's own instead (a rule's: its ``PARAMS`` with their defaults)."""
    if what != "class" or signature != "(*args, **kwargs)":
        return None
    params = getattr(obj, "PARAMS", None)
    from keras_lrp.rules import Rule

    if isinstance(obj, type) and issubclass(obj, Rule) and isinstance(params, dict):
        return "(" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")", return_annotation
    try:
        init = inspect.signature(obj.__init__)
    except (TypeError, ValueError):
        return None
    parameters = list(init.parameters.values())[1:]  # without self
    return str(init.replace(parameters=parameters,
                            return_annotation=inspect.Signature.empty)), return_annotation


def setup(app):
    # before napoleon (priority 500), so that it sees reStructuredText it leaves alone
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)
    app.connect("autodoc-process-signature", _process_signature)
