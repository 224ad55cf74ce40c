"""Sphinx directives that generate the analyzer tables from ``keras_lrp.analyzers`` at build time.

* ``analyzer-table``: one row per key of :data:`keras_lrp.analyzers.ANALYZERS`, in its order:
  the name, its family, its description, its own keyword arguments with their defaults, the
  defaults it gives to common keywords, and whose definition it follows;
* ``common-kwargs-table``: the keywords every analyzer takes
  (:data:`keras_lrp.analyzers.COMMON_KWARGS`) with their defaults;
* ``public-names``: the names ``import keras_lrp`` provides (``keras_lrp._PUBLIC``), each linked
  to where it is defined, and the deprecated old names (``keras_lrp._DEPRECATED``) with their
  replacements.

Nothing here is kept by hand: a new analyzer, keyword or default appears on the next build.
``tests/docs/test_examples.py`` checks that the table lists every analyzer name.

In a MyST page::

    ```{analyzer-table}
    ```
"""

from __future__ import annotations

from typing import Dict, List, Sequence

# docutils and Sphinx are imported where nodes are made, so that the rows can be generated (and
# tested) where only keras-lrp is installed.

#: Column headers of the analyzer table.
ANALYZER_COLUMNS = ("name", "family", "what it computes", "keywords (defaults)",
                    "defaults of common keywords", "follows")


def _keyword(name: str, value) -> str:
    return f"{name}={value!r}"


def analyzer_rows() -> List[Dict[str, object]]:
    """The analyzer table's rows, one per key of ``ANALYZERS``, in its order."""
    from keras_lrp.analyzers import ANALYZERS

    rows = []
    for name, entry in ANALYZERS.items():
        rows.append({
            "name": name,
            "family": entry.family,
            "description": entry.description,
            "keywords": [_keyword(k, v) for k, v in entry.params.items()],
            "defaults": [_keyword(k, v) for k, v in entry.defaults.items()],
            "follows": entry.anchor,
        })
    return rows


def common_kwargs_rows() -> List[Dict[str, object]]:
    """The common keywords' rows, one per key of ``COMMON_KWARGS``, in its order."""
    from keras_lrp.analyzers import COMMON_KWARGS

    return [{"name": k, "default": repr(v)} for k, v in COMMON_KWARGS.items()]


def public_rows() -> List[Dict[str, str]]:
    """One row per public name of ``keras_lrp``: the name and the module defining it."""
    import keras_lrp

    return [{"name": name, "module": module} for name, module in keras_lrp._PUBLIC.items()]


def deprecated_rows() -> List[Dict[str, str]]:
    """One row per deprecated attribute of ``keras_lrp``: the old name and its replacement."""
    import keras_lrp

    return [{"old": f"keras_lrp.{old}", "new": f"{module}.{new}" if new else module}
            for old, (module, new) in keras_lrp._DEPRECATED.items()]


def _xref(target: str, text: str, docname: str):
    """A link to a documented Python object (plain code text where it is not documented)."""
    from docutils import nodes
    from sphinx import addnodes

    ref = addnodes.pending_xref("", refdomain="py", reftype="obj", reftarget=target,
                                refexplicit=True, refwarn=False, refdoc=docname)
    ref += nodes.literal(text, text, classes=["xref", "py", "py-obj"])
    return ref


def _cell(*parts):
    """A table cell; each part is plain text (str) or a list of code snippets (list)."""
    from docutils import nodes

    paragraph = nodes.paragraph()
    for part in parts:
        if isinstance(part, str):
            paragraph += nodes.Text(part)
            continue
        for i, code in enumerate(part):
            if i:
                paragraph += nodes.Text(", ")
            paragraph += nodes.literal(text=code)
    cell = nodes.entry()
    cell += paragraph
    return cell


def _table(header: Sequence[str], rows: Sequence[Sequence], widths: Sequence[int],
           classes: Sequence[str]):
    from docutils import nodes

    table = nodes.table(classes=list(classes))
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    row = nodes.row()
    for title in header:
        row += _cell(title)
    head += row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            row += cell
        body += row
    return table


def public_names_tables(docname: str = "") -> list:
    """The ``public-names`` directive's two tables."""
    from docutils import nodes

    def cell(*children):
        paragraph = nodes.paragraph()
        for child in children:
            paragraph += child
        entry = nodes.entry()
        entry += paragraph
        return entry

    public = [[cell(_xref(f"{r['module']}.{r['name']}", f"keras_lrp.{r['name']}", docname)),
               cell(_xref(r["module"], r["module"], docname))] for r in public_rows()]
    old = [[cell(nodes.literal(text=r["old"])), cell(_xref(r["new"], r["new"], docname))]
           for r in deprecated_rows()]
    return [_table(("name", "defined in"), public, (30, 40), ["public-names"]),
            _table(("deprecated name", "use instead"), old, (30, 40), ["deprecated-names"])]


def analyzer_table():
    """The analyzer table as a docutils node (what the ``analyzer-table`` directive inserts)."""
    rows = [[_cell([r["name"]]), _cell(r["family"]), _cell(r["description"]),
             _cell(r["keywords"]), _cell(r["defaults"]), _cell(r["follows"])]
            for r in analyzer_rows()]
    return _table(ANALYZER_COLUMNS, rows, (22, 8, 40, 30, 22, 12), ["analyzer-table"])


def common_kwargs_table():
    """The common keywords as a docutils node (the ``common-kwargs-table`` directive)."""
    rows = [[_cell([r["name"]]), _cell([r["default"]])] for r in common_kwargs_rows()]
    return _table(("keyword", "default"), rows, (30, 30), ["common-kwargs-table"])


def setup(app):
    from sphinx.util.docutils import SphinxDirective

    class AnalyzerTable(SphinxDirective):
        """``analyzer-table``: every analyzer name, generated from ``ANALYZERS``."""

        has_content = False

        def run(self):
            return [analyzer_table()]

    class CommonKwargsTable(SphinxDirective):
        """``common-kwargs-table``: every common keyword, generated from ``COMMON_KWARGS``."""

        has_content = False

        def run(self):
            return [common_kwargs_table()]

    class PublicNames(SphinxDirective):
        """``public-names``: the public and the deprecated names of ``keras_lrp``."""

        has_content = False

        def run(self):
            return public_names_tables(self.env.docname)

    app.add_directive("public-names", PublicNames)
    app.add_directive("analyzer-table", AnalyzerTable)
    app.add_directive("common-kwargs-table", CommonKwargsTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
