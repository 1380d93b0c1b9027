"""The README's section on the extra normalization layers and conventions runs as written."""
import os
import re

import numpy as np
import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
HEADING = "## More normalization layers, course conventions and gradient checks"


def _blocks():
    if not os.path.isfile(README):
        pytest.skip("README.md not found (tests run from an installed copy)")
    with open(README, encoding="utf-8") as f:
        text = f.read()
    assert HEADING in text, "README has no section on the extra normalization layers"
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


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
