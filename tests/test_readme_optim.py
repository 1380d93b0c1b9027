"""The README's "Training with an optimizer" example runs as written."""
import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
HEADING = "## Training with an optimizer"


def _example():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    if HEADING not in text:
        pytest.skip("README has no optimizer section")
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the optimizer section has no python block"
    return blocks[0]


def test_readme_optimizer_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the example writes checkpoint.npz
    exec(compile(_example(), "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    loss = float(re.search(r"loss ([0-9.]+)", out).group(1))
    accuracy = float(re.search(r"accuracy ([0-9.]+)", out).group(1))
    assert loss < 0.5 and accuracy > 0.9, out
    assert (tmp_path / "checkpoint.npz").exists()
