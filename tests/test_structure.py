"""The package's structure: public names, imports between modules, layering.

* Every public name users imported before ``nn`` became a package still imports.
* No import cycle between normreg's modules: each imports alone in a fresh interpreter,
  and the static import graph (read with ``ast``) has no cycle.
* No function-level import of a normreg module (an import hidden in a function to dodge
  a cycle); functions import only optional third-party dependencies.
* ``_C`` is imported by ``normreg/__init__.py`` and the functional layer alone.
* No Python file of the package, nor of the repository (python/, tests/, benchmarks/,
  scripts/ and the top-level scripts such as setup.py), is over 500 lines.
"""

import ast
import importlib
import json
import os
import subprocess
import sys

import pytest

import normreg

PACKAGE_DIR = os.path.dirname(os.path.abspath(normreg.__file__))

# The public names (no leading underscore) of each module as of the nn/ package change,
# leaving out what a module merely imports from the standard library or NumPy and aliases
# of other modules (``nn.F``): each must still be importable. A snapshot kept as data, apart
# from the modules' ``__all__``, so that a name dropped from a module and its ``__all__``
# together is still caught.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "public_names.json")) as f:
    PUBLIC_NAMES = json.load(f)


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_names_still_import(module):
    mod = importlib.import_module(module)
    missing = [name for name in PUBLIC_NAMES[module] if not hasattr(mod, name)]
    assert not missing, f"{module} lost {missing}"


def test_nn_utils_is_a_submodule():
    import normreg.nn.utils as utils
    from normreg.nn import utils as same

    assert utils is same
    assert utils.__name__ == "normreg.nn.utils"


# ---- the modules and their imports ----------------------------------------------------------


def _read(path):
    with open(path) as f:
        return f.read()


def _modules():
    """{module name: path} of every .py file of the installed package."""
    found = {}
    for root, _, files in os.walk(PACKAGE_DIR):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                found[".".join(rel)] = path
    return found


MODULES = _modules()
# compiled extension modules (normreg._C): imported like the others, no source to read
EXTENSIONS = {"normreg." + f.split(".")[0] for f in os.listdir(PACKAGE_DIR) if f.endswith((".so", ".pyd"))}


def _imports(name, path):
    """(imported module, line, at module level?) for every import of a normreg module in
    the file; ``from a import b`` counts as importing ``a.b`` when that is a module."""
    tree = ast.parse(_read(path), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    top_level = set(map(id, tree.body))
    for node in tree.body:  # imports under a module-level if/try still run at import time
        if isinstance(node, (ast.If, ast.Try)):
            top_level.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            targets = [
                f"{base}.{alias.name}"
                if f"{base}.{alias.name}" in MODULES or f"{base}.{alias.name}" in EXTENSIONS
                else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target == "normreg" or target.startswith("normreg."):
                yield target, node.lineno, id(node) in top_level


def _graph():
    """module -> modules it imports at module level. Importing ``a.b.c`` also runs the
    packages ``a.b`` and ``a``, except those that contain the importing module."""
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for target, _, top in _imports(name, path):
            if not top:
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in MODULES and not (name == dep or name.startswith(dep + ".")):
                    edges.add(dep)
        graph[name] = edges
    return graph


def test_the_static_import_graph_has_no_cycle():
    graph = _graph()
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_each_module_imports_alone_in_a_fresh_interpreter():
    """``python -c 'import normreg.x'`` for every module, a few interpreters at a time."""
    # (a package's __main__ is the command itself: importing it runs the program)
    modules = [m for m in MODULES if not m.endswith(".__main__")]
    failures, pending = [], sorted(modules) + sorted(EXTENSIONS)
    while pending:
        batch, pending = pending[:4], pending[4:]
        procs = [
            (
                module,
                subprocess.Popen(
                    [sys.executable, "-c", f"import {module}"],
                    cwd=os.path.dirname(PACKAGE_DIR),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for module in batch
        ]
        for module, proc in procs:
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                failures.append(f"{module}: {err.strip().splitlines()[-1:]}")
    assert not failures, failures


def test_no_function_level_import_of_a_normreg_module():
    hidden = [
        f"{name}:{line} imports {target}"
        for name, path in MODULES.items()
        for target, line, top in _imports(name, path)
        if not top
    ]
    assert not hidden, hidden


def test_only_functional_and_the_package_init_import_the_extension():
    allowed = {"normreg", "normreg.functional"}
    users = sorted(
        {
            name
            for name, path in MODULES.items()
            for target, _, _ in _imports(name, path)
            if target == "normreg._C"
        }
    )
    assert users, "the scan found no import of normreg._C at all"
    assert all(u in allowed or u.startswith("normreg.functional.") for u in users), users


REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _repository_python_files():
    """{path relative to the repository: path} of every .py file of python/, tests/,
    benchmarks/, scripts/ and the repository's top level (setup.py); a walk rather than
    ``git ls-files``, so that it holds in an unpacked source distribution too."""
    found = {}
    for f in os.listdir(REPO_DIR):
        if f.endswith(".py"):
            found[f] = os.path.join(REPO_DIR, f)
    for top in ("python", "tests", "benchmarks", "scripts"):
        for root, dirs, files in os.walk(os.path.join(REPO_DIR, top)):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__pycache__"))]
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(root, f)
                    found[os.path.relpath(path, REPO_DIR)] = path
    return found


def test_no_file_over_500_lines():
    files = dict(MODULES)
    repository = _repository_python_files()
    assert os.path.relpath(__file__, REPO_DIR) in repository, "the walk missed this very file"
    files.update(repository)
    lines = {name: _read(path).count("\n") for name, path in files.items()}
    long = {name: n for name, n in lines.items() if n > 500}
    assert not long, long


def test_py_typed_and_the_extension_stub_are_installed():
    assert os.path.isfile(os.path.join(PACKAGE_DIR, "py.typed"))
    stub = os.path.join(PACKAGE_DIR, "_C.pyi")
    assert os.path.isfile(stub)
    declared = {node.name for node in ast.parse(_read(stub)).body if isinstance(node, ast.FunctionDef)}

    exported = {n for n in dir(normreg._C) if not n.startswith("_") and callable(getattr(normreg._C, n))}
    assert declared == exported, (sorted(exported - declared), sorted(declared - exported))
