"""The package's structure: keras.src is touched in one module only, and no module imports
another that (directly or through others) imports it back, function-local imports included."""
import ast
import pathlib

import keras

from keras_lrp.core import types

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "keras_lrp"
#: Function-local imports that are deliberate lazy loads of optional, downstream modules.
LAZY_OK: set = set()


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield ".".join(parts) or "__init__", path


def test_only_types_touches_keras_src():
    users = [name for name, path in _modules() if "keras.src" in path.read_text()
             and name != "core.types"]
    assert users == [], f"modules reaching into keras.src besides core/types.py: {users}"


def _imports(path):
    """keras_lrp modules imported anywhere in the file (top level and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "keras_lrp"):
            base = node.module[len("keras_lrp"):].lstrip(".")
            # "from keras_lrp.cli import devices" imports the module cli.devices; the owner()
            # of "cli.main" (a name defined in cli/__init__) is the package cli
            found.update(f"{base}.{alias.name}".lstrip(".") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name[len("keras_lrp."):] for a in node.names
                         if a.name.startswith("keras_lrp."))
    return found


def test_no_import_cycles():
    names = {name for name, _ in _modules()}

    def owner(target):  # "rules.base" → "rules.base"; "rules" → "rules" (a package __init__)
        while target and target not in names:
            target = target.rpartition(".")[0]
        return target

    graph = {}
    for name, path in _modules():
        if name == "__init__":
            continue  # the lazy public namespace imports on attribute access only
        edges = {owner(t) for t in _imports(path)} - {"", name}
        graph[name] = {t for t in edges if (name, t) not in LAZY_OK and t != "__init__"}
    assert _cycles(graph) == [], f"import cycles: {_cycles(graph)}"


def test_no_import_cycles_between_folders():
    """The rooms of the house (core, canonizers, composites, rules, layers, analyzers, io,
    plots, cli, demos) import each other without a cycle: each folder sits on one floor."""
    names = {name for name, _ in _modules()}
    room = lambda name: name.split(".")[0]  # noqa: E731
    graph = {}
    for name, path in _modules():
        if name == "__init__" or "." not in name and not (PACKAGE / name).is_dir():
            continue  # the lazy namespace, and top-level modules (generation, version)
        edges = {room(t) for t in _imports(path) if room(t) in {room(n) for n in names}}
        graph.setdefault(room(name), set()).update(edges - {room(name), "__init__"})
    graph = {k: {t for t in v if (PACKAGE / t).is_dir()} for k, v in graph.items()}
    assert _cycles(graph) == [], f"import cycles between folders: {_cycles(graph)}"


def _cycles(graph):
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    return cycles


def test_layer_families():
    assert isinstance(keras.layers.Conv2D(2, 2), types.CONV)
    assert isinstance(keras.layers.DepthwiseConv2D(2), types.CONV)
    assert isinstance(keras.layers.Conv2DTranspose(2, 2), types.CONV)
    assert not isinstance(keras.layers.SeparableConv2D(2, 2), types.CONV)  # split first
    assert isinstance(keras.layers.LSTM(2), types.RECURRENT)
    assert types.is_nonnegative_producer(keras.layers.Activation("relu"), False)
    assert not types.is_nonnegative_producer(keras.layers.Activation("tanh"), True)
    assert types.is_gate_producer(keras.layers.Activation("sigmoid"))
    assert types.is_gate_producer(keras.layers.ReLU(max_value=6.0))
    assert not types.is_gate_producer(keras.layers.ReLU())
