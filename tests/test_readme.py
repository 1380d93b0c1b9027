"""The README's training loop runs as written and learns."""
import contextlib
import io
import pathlib
import re

import pytest

import normreg

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _training_loop_code():
    if not README.is_file():
        pytest.skip("README.md not found (tests run from an installed copy)")
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## A training loop\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README has no '## A training loop' section"
    block = re.search(r"```python\n(.*?)```", section.group(1), re.S)
    assert block, "the training-loop section has no python code block"
    return block.group(1)


def test_readme_training_loop_runs_and_learns():
    code = _training_loop_code()
    out = io.StringIO()
    namespace = {"__name__": "__readme__"}
    # One thread: the loop's results do not depend on the thread count, and on a machine
    # whose cores are busy with other work, OpenMP fork/join of its small arrays is slow.
    threads = normreg.get_num_threads()
    normreg.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(README), "exec"), namespace)
    finally:
        normreg.set_num_threads(threads)
    printed = out.getvalue()
    loss = float(re.search(r"loss ([0-9.]+)", printed).group(1))
    accuracy = float(re.search(r"accuracy ([0-9.]+)", printed).group(1))
    # 3 balanced-ish classes: chance is log(3) = 1.10 and accuracy ~0.4
    assert loss < 0.5, printed
    assert accuracy > 0.9, printed
    assert namespace["loss"] == pytest.approx(loss, abs=5e-4)
