"""Fixtures shared by every test (helpers that are not fixtures are in helpers.py)."""

import numpy as np
import pytest

import normreg


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
