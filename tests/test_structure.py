"""The package's structure: public names, imports between modules, layering.

* Every public name users imported before ``nn`` became a package still imports.
* No import cycle between normreg's modules: each imports alone in a fresh interpreter,
  and the static import graph (read with ``ast``) has no cycle.
* No function-level import of a normreg module (an import hidden in a function to dodge
  a cycle); functions import only optional third-party dependencies.
* ``_C`` is imported by ``normreg/__init__.py`` and the functional layer alone.
* No Python file of the package is over 500 lines.
"""

import ast
import importlib
import os
import subprocess
import sys

import pytest

import normreg

PACKAGE_DIR = os.path.dirname(os.path.abspath(normreg.__file__))

# The public names (no leading underscore) of each module as of the nn/ package change,
# leaving out what a module merely imports from the standard library or NumPy and aliases
# of other modules (``nn.F``): each must still be importable.
PUBLIC_NAMES = {
    "normreg": [
        "CheckpointError",
        "Generator",
        "__version__",
        "conventions",
        "default_generator",
        "empty_cache",
        "functional",
        "get_num_threads",
        "init",
        "initial_seed",
        "load",
        "manual_seed",
        "nn",
        "optim",
        "random",
        "save",
        "seed",
        "serialization",
        "set_num_threads",
        "testing",
    ],
    "normreg.nn": [
        "BatchNorm1d",
        "BatchNorm2d",
        "CrossEntropyLoss",
        "DEFAULT",
        "Dropout",
        "Flatten",
        "GroupNorm",
        "Identity",
        "InstanceNorm1d",
        "InstanceNorm2d",
        "LayerNorm",
        "Linear",
        "Module",
        "Parameter",
        "RMSNorm",
        "ReLU",
        "Residual",
        "Sequential",
        "SoftmaxLoss",
        "l2_penalty",
        "utils",
        "Conv2d",
        "MaxPool2d",
        "AvgPool2d",
        "AdaptiveAvgPool2d",
        "Unflatten",
    ],
    "normreg.nn.utils": ["clip_grad_norm_", "clip_grad_value_", "freeze_batch_norm_stats", "get_total_norm"],
    "normreg.functional": [
        "Generator",
        "adam_step_",
        "batch_norm",
        "batch_norm_backward",
        "cross_entropy",
        "cross_entropy_backward",
        "default_generator",
        "dropout",
        "dropout_backward",
        "group_norm",
        "group_norm_backward",
        "layer_norm",
        "layer_norm_backward",
        "linear",
        "linear_backward",
        "relu",
        "relu_backward",
        "rms_norm",
        "rms_norm_backward",
        "sgd_step_",
        "conv2d",
        "conv2d_backward",
        "max_pool2d",
        "max_pool2d_backward",
        "avg_pool2d",
        "avg_pool2d_backward",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool2d_backward",
    ],
    "normreg.optim": [
        "Adam",
        "AdamW",
        "Module",
        "Optimizer",
        "Parameter",
        "SGD",
        "lr_scheduler",
        "param_groups",
    ],
    "normreg.optim.lr_scheduler": ["CosineAnnealingLR", "LRScheduler", "LinearLR", "SequentialLR", "StepLR"],
    "normreg.init": [
        "Parameter",
        "calculate_fan_in_and_fan_out",
        "calculate_gain",
        "constant_",
        "default_generator",
        "kaiming_normal_",
        "kaiming_uniform_",
        "normal_",
        "ones_",
        "uniform_",
        "xavier_normal_",
        "xavier_uniform_",
        "zeros_",
    ],
    "normreg.data": [
        "DataLoader",
        "FASHION_MNIST_CLASSES",
        "FASHION_MNIST_FILES",
        "FASHION_MNIST_URL",
        "Generator",
        "default_generator",
        "download_fashion_mnist",
        "fashion_mnist_dirs",
        "find_fashion_mnist",
        "load_fashion_mnist",
        "read_idx",
    ],
    "normreg.models": [
        "MLP",
        "MLPResNet",
        "NORMS",
        "ResidualBlock",
        "make_norm",
        "CNN",
        "NORMS_2D",
        "make_norm2d",
    ],
    "normreg.random": ["Generator", "default_generator", "initial_seed", "manual_seed", "seed"],
    "normreg.testing": [
        "Generator",
        "GradcheckError",
        "GradcheckReport",
        "Module",
        "Parameter",
        "check_gradients",
        "default_generator",
        "gradcheck",
    ],
    "normreg.conventions": [
        "Convention",
        "DEFAULT",
        "PRESETS",
        "check_choice",
        "current",
        "get",
        "resolve",
        "use",
    ],
    "normreg.distributed": [
        "DistributedDataLoader",
        "DistributedDataParallel",
        "DistributedSampler",
        "GradientReducer",
        "LocalComm",
        "SyncBatchNorm",
        "abort_on_failure",
        "all_reduce_mean",
        "allgather",
        "allreduce_sum_",
        "broadcast_",
        "broadcast_parameters",
        "comm",
        "convert_sync_batchnorm",
        "get_rank",
        "get_timeout",
        "get_world_size",
        "init",
        "install_abort_handler",
        "is_available",
        "local_size",
        "merge_moments",
        "parallel",
        "sampler",
        "set_timeout",
        "shard_bounds",
        "sync_batchnorm",
        "world",
    ],
    "normreg.train": [
        "TrainConfig",
        "build_model",
        "build_optimizer",
        "evaluate",
        "main",
        "parser",
        "plot_curves",
        "train",
        "write_json",
        "CNN_RECIPE",
        "default_config",
    ],
    "normreg.experiments": [
        "EXPERIMENTS",
        "TrainConfig",
        "build_model",
        "evaluate",
        "init_scale",
        "main",
        "norm_lr",
        "regularization",
        "run",
        "run_all",
        "summary",
        "train",
        "write_json",
    ],
}


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


def test_no_file_over_500_lines():
    lines = {name: _read(path).count("\n") for name, path in MODULES.items()}
    long = {name: n for name, n in lines.items() if n > 500}
    assert not long, long


def test_py_typed_and_the_extension_stub_are_installed():
    assert os.path.isfile(os.path.join(PACKAGE_DIR, "py.typed"))
    stub = os.path.join(PACKAGE_DIR, "_C.pyi")
    assert os.path.isfile(stub)
    declared = {node.name for node in ast.parse(_read(stub)).body if isinstance(node, ast.FunctionDef)}

    exported = {n for n in dir(normreg._C) if not n.startswith("_") and callable(getattr(normreg._C, n))}
    assert declared == exported, (sorted(exported - declared), sorted(declared - exported))
