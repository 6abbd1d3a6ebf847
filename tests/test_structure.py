"""The package's structure: no module imports, however indirectly, a module that imports it."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "l2hmc_theano"


def package_imports():
    """{module: the package's modules it imports anywhere in its file (at the top or inside a
    function: an import put in a function to dodge a circle is still one)}."""
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    edges = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("l2hmc_theano."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("l2hmc_theano."))
        edges[name] = (found & set(modules)) - {name, "__init__"}
    return edges


def import_circles(edges):
    """The circles of a graph ``{node: set of nodes}``: each a sorted list of the nodes that reach
    one another (strongly connected, more than one node)."""
    reach = {node: set() for node in edges}
    for start in edges:
        todo = list(edges[start])
        while todo:
            node = todo.pop()
            if node not in reach[start]:
                reach[start].add(node)
                todo.extend(edges.get(node, ()))
    circles = {tuple(sorted({start} | {n for n in reach[start] if start in reach.get(n, ())}))
               for start in edges if start in reach[start]}
    return sorted(list(c) for c in circles)


def test_the_circle_finder_finds_a_circle():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_imports_itself_through_others():
    edges = package_imports()
    assert {"sampler", "energy", "warmup", "training", "persistence", "loading"} <= set(edges)  # the walk sees them
    assert "model_adapter" in edges["sampler"] and "sampler" in edges["loading"]
    circles = import_circles(edges)
    assert circles == [], "import circles: " + "; ".join(
        " <-> ".join(f"{a} -> {sorted(edges[a] & set(c))}" for a in c) for c in circles)


def private_uses(source, owner="sampler"):
    """The attributes with a leading underscore read from a name ``owner`` (``sampler._x``,
    ``self.sampler._x``) in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            value = node.value
            name = value.id if isinstance(value, ast.Name) else value.attr if isinstance(value, ast.Attribute) else None
            if name == owner:
                found.append(node.attr)
    return found


def test_the_private_use_finder_finds_one():
    assert sorted(private_uses("sampler._compiled['x']\nself.sampler._loops\nsampler.dim")) == ["_compiled", "_loops"]


def test_no_module_reads_a_private_attribute_of_the_sampler():
    """The sampler's set-up, graphs and kernels live in modules that take it as an argument: they read
    what it offers (its parameters and public methods), not its privates."""
    uses = {path.name: private_uses(path.read_text()) for path in PACKAGE.glob("*.py") if path.name != "sampler.py"}
    assert {name: found for name, found in uses.items() if found} == {}


def imported_libraries(source):
    """The top-level names of the modules ``source`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_facades_import_theano_and_pymc3():
    """Theano is imported in ``_theano_backend.py`` (and its compile fixes, ``_theano_fixes.py`` and
    ``_theano_build.py``) only, PyTensor in ``_pytensor_backend.py`` only (both chosen by ``_theano.py``), PyMC3
    in ``_pymc3.py`` only and today's PyMC in ``_pymc.py`` only: every other module takes them from there, so a second stack slots in
    behind those."""
    owners = {"theano": {"_theano_backend.py", "_theano_fixes.py", "_theano_build.py"}, "pymc3": {"_pymc3.py"},
              "pytensor": {"_pytensor_backend.py"}, "pymc": {"_pymc.py"}}
    found = {library: {path.name for path in PACKAGE.glob("*.py") if library in imported_libraries(path.read_text())}
             for library in owners}
    assert found == owners


#: The longest a module of the package may be: one module, one job.
MAX_MODULE_LINES = 350


def test_no_module_of_the_package_is_over_the_line_limit():
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {"sampler.py", "warmup.py", "vectorize.py"} <= set(sizes)  # the walk sees them
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def uncovered_compiles(source):
    """Line numbers of the ``theano.function(...)`` calls in ``source`` outside any ``with`` block
    that enters ``compile_fixes()``."""
    tree = ast.parse(source)
    covered = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
                isinstance(item.context_expr, ast.Call) and getattr(item.context_expr.func, "id", None) == "compile_fixes"
                for item in node.items):
            covered.update(id(n) for n in ast.walk(node))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "function"
            and getattr(node.func.value, "id", None) == "theano" and id(node) not in covered]


def test_the_uncovered_compile_finder_finds_one():
    source = "with compile_fixes():\n    theano.function([], [])\ntheano.function([], [])\n"
    assert uncovered_compiles(source) == [3]


def test_every_compile_of_the_package_runs_with_theanos_compile_fixes():
    """Theano's compile fixes are in place only within ``compile_fixes()`` (:mod:`._theano_fixes`):
    every function the package compiles is compiled there.  Constant folding's evaluation runs
    Theano's Python linker with no optimizer, which the fixes do not touch."""
    found = {path.name: uncovered_compiles(path.read_text()) for path in PACKAGE.glob("*.py")}
    assert {name: lines for name, lines in found.items() if lines and name != "constants.py"} == {}
    assert found["constants.py"] and found["compile_cache.py"] == []  # the finder sees them
