"""The README's examples of the extra normalization layers, course conventions, gradient
checks and nn.utils run as written."""
import os
import re

import numpy as np
import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
# The API reference's subsections whose python blocks run in order, in one namespace.
HEADINGS = ("### `normreg.nn`", "### Course conventions: `normreg.conventions`",
            "### Checking gradients: `normreg.testing`", "### `normreg.nn.utils`")


def _blocks():
    if not os.path.isfile(README):
        pytest.skip("README.md not found (tests run from an installed copy)")
    with open(README, encoding="utf-8") as f:
        text = f.read()
    blocks = []
    for heading in HEADINGS:
        assert "\n" + heading + "\n" in text, f"README has no section {heading!r}"
        section = re.split(r"\n##+ ", text.split("\n" + heading + "\n", 1)[1], maxsplit=1)[0]
        blocks += re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return blocks


def test_readme_norms_examples_run_and_print_each_convention(capsys):
    import normreg

    before = normreg.conventions.current()
    blocks = _blocks()
    assert len(blocks) >= 4
    namespace = {"__name__": "__readme__"}
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)
    finally:
        normreg.conventions.use(before)
    out = capsys.readouterr().out
    expected = {"torch": [1.5667, 3.5667, 6.9], "needle": [1.4, 2.9, 5.4], "cs231n": [0.5, 2.0, 4.5]}
    for name, values in expected.items():
        line = re.search(rf"^{name} \[(.*?)\]", out, re.M)
        assert line, out
        np.testing.assert_allclose(np.array(line.group(1).split(), dtype=float), values, atol=1e-4)
    assert "gradcheck passed" in out
    assert "FAIL input 0 (4, 5): worst at index" in out  # the README's buggy module is caught
