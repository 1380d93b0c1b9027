"""Fixtures shared by every test (helpers that are not fixtures are in helpers.py)."""

import numpy as np
import pytest

import normreg
from normreg import data

#: Files whose tests run normreg's programs whole (the training command and its kill and
#: resume, the notebook, the experiments, the benchmark suite) or check the package's import
#: structure: Python layers over kernels that the rest of the suite tests one by one. Marked
#: `end_to_end`; CI runs them with the README's command and leaves them out (-m "not
#: end_to_end") where it runs the suite again on another build (no OpenMP, sanitizers).
END_TO_END = {
    "test_notebook.py",
    "test_experiments.py",
    "test_kill.py",
    "test_structure.py",
    "test_train.py",
    "test_train_cli.py",
    "test_benchmarks.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in END_TO_END:
            item.add_marker(pytest.mark.end_to_end)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def set_threads():
    """``normreg.set_num_threads``, with the thread count restored after the test."""
    before = normreg.get_num_threads()
    yield normreg.set_num_threads
    normreg.set_num_threads(before)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def nthreads(request):
    """Runs the test with 1 and with 2 OpenMP threads (restored after)."""
    before = normreg.get_num_threads()
    normreg.set_num_threads(request.param)
    yield request.param
    normreg.set_num_threads(before)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No NORMREG_DATA, a fresh HOME (so a fresh cache), no Debian directory, no network."""
    monkeypatch.delenv("NORMREG_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(data, "_DEBIAN_DIR", str(tmp_path / "debian"))
    monkeypatch.setenv("NORMREG_FASHION_MNIST_URL", "http://127.0.0.1:9/")  # discard port: refused
    return tmp_path
