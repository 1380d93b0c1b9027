"""The documentation is true: the examples of README.md and docs/*.md run as written (and
the training loops learn), and every public name README.md and docs/*.md list imports."""

import contextlib
import importlib
import inspect
import io
import pathlib
import re

import numpy as np
import pytest

import normreg

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def _text(path):
    if not path.is_file():
        pytest.skip(f"{path.name} not found (tests run from an installed copy)")
    return path.read_text(encoding="utf-8")


def _section(path, heading):
    """The text under ``heading`` (a whole line) up to the next heading of its level or above."""
    text = _text(path)
    level = len(heading) - len(heading.lstrip("#"))
    match = re.search(rf"^{re.escape(heading)}\s*$(.*?)(?=^#{{1,{level}}} |\Z)", text, re.M | re.S)
    assert match, f"{path.name} has no section {heading!r}"
    return match.group(1)


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, re.S)


def _run(blocks, path, namespace=None):
    namespace = {"__name__": "__docs__"} if namespace is None else namespace
    for block in blocks:
        exec(compile(block, str(path), "exec"), namespace)
    return namespace


# The python blocks of the docs and the test that runs each (every block is run somewhere).
RUN_HERE = [  # (file, section): run in order in one namespace per file
    (README, "## A training loop"),
    (README, "## Training with an optimizer"),
    (ROOT / "docs" / "api.md", "## `normreg.nn`"),
    (ROOT / "docs" / "api.md", "## `normreg.nn.utils`"),
    (ROOT / "docs" / "api.md", "## `normreg.testing`: checking gradients"),
    (ROOT / "docs" / "conventions.md", "## Course conventions: `normreg.conventions`"),
]
RUN_ELSEWHERE = {
    (
        ROOT / "docs" / "distributed.md",
        "# Distributed training (MPI)",
    ): "test_distributed_mpi.py runs it on 1 and 2 ranks",
    (
        ROOT / "docs" / "api.md",
        "## `normreg.data`",
    ): "needs Fashion-MNIST; test_data.py and test_dataloader.py test the loaders",
}


@pytest.fixture
def one_thread():
    # The examples' results do not depend on the thread count, and on a machine whose cores
    # are busy with other work, OpenMP fork/join of their small arrays is slow.
    before = normreg.get_num_threads()
    normreg.set_num_threads(1)
    yield
    normreg.set_num_threads(before)


def test_readme_training_loop_runs_and_learns(one_thread):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace = _run(_python_blocks(_section(README, "## A training loop"))[:1], README)
    printed = out.getvalue()
    loss = float(re.search(r"loss ([0-9.]+)", printed).group(1))
    accuracy = float(re.search(r"accuracy ([0-9.]+)", printed).group(1))
    # 3 balanced-ish classes: chance is log(3) = 1.10 and accuracy ~0.4
    assert loss < 0.5, printed
    assert accuracy > 0.9, printed
    assert namespace["loss"] == pytest.approx(loss, abs=5e-4)


def test_readme_optimizer_example_runs_and_learns(one_thread, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the example writes checkpoint.npz
    _run(_python_blocks(_section(README, "## Training with an optimizer"))[:1], README)
    out = capsys.readouterr().out
    loss = float(re.search(r"loss ([0-9.]+)", out).group(1))
    accuracy = float(re.search(r"accuracy ([0-9.]+)", out).group(1))
    assert loss < 0.5 and accuracy > 0.9, out
    assert (tmp_path / "checkpoint.npz").exists()


def test_layer_convention_and_gradcheck_examples_run_and_print_what_they_say(capsys):
    before = normreg.conventions.current()
    try:
        for path in (ROOT / "docs" / "api.md", ROOT / "docs" / "conventions.md"):
            blocks = [b for p, heading in RUN_HERE if p == path for b in _python_blocks(_section(p, heading))]
            assert blocks, path
            _run(blocks, path)
    finally:
        normreg.conventions.use(before)
    out = capsys.readouterr().out
    expected = {"torch": [1.5667, 3.5667, 6.9], "needle": [1.4, 2.9, 5.4], "cs231n": [0.5, 2.0, 4.5]}
    for name, values in expected.items():
        line = re.search(rf"^{name} \[(.*?)\]", out, re.M)
        assert line, out
        np.testing.assert_allclose(np.array(line.group(1).split(), dtype=float), values, atol=1e-4)
    assert "gradcheck passed" in out
    assert "FAIL input 0 (4, 5): worst at index" in out  # the buggy module of the example is caught


def test_every_python_block_is_run_by_a_test():
    covered = 0
    for path, heading in RUN_HERE + list(RUN_ELSEWHERE):
        covered += len(_python_blocks(_section(path, heading)))
    total = sum(len(_python_blocks(_text(p))) for p in [README] + DOCS)
    assert covered == total, "a python block of README.md or docs/*.md is not run by any test"


# ---- every public name the docs list imports --------------------------------------------------


def _resolve(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        break
    for name in parts[i:]:
        obj = getattr(obj, name)
    return obj


def _listed_names():
    """``normreg.x.y`` written in backticks anywhere; and in docs/api.md, under each
    ``## `normreg.module` `` heading, the names a list item or table row starts with: its
    leading run of backticked names (which goes on to the next line after a trailing comma)."""
    names = set()
    for path in [README] + DOCS:
        text = _text(path)
        names.update(re.findall(r"`(normreg(?:\.[A-Za-z_]\w*)+)", text))
        if path.name != "api.md":
            continue
        module, continued = None, False
        for line in text.splitlines():
            if line.startswith("#"):
                heading = re.search(r"`(normreg(?:\.[A-Za-z_]\w*)*)`", line)
                module = heading.group(1) if heading else None
                if module and not inspect.ismodule(_resolve(module)):  # `normreg.save`: its module
                    module = module.rsplit(".", 1)[0]
                continue
            run = re.match(r"^(?:[-|] |  (?=`))((?:`[^`]+`(?:, |,$)?)+)", line)
            if not module or not run or (line.startswith("  ") and not continued):
                continued = False
                continue
            for token in re.findall(r"`([^`]+)`", run.group(1)):
                name = re.match(r"^([A-Za-z_]\w*)(\(.*\))?$", token)
                assert name, f"api.md: {token!r} starts a list item under {module} but is not a name"
                names.add(f"{module}.{name.group(1)}")
            continued = run.group(0) == line and line.endswith(",")
    return sorted(names)


def test_every_listed_public_name_imports():
    names = _listed_names()
    assert len(names) > 120, names  # the parser still finds the lists
    missing = []
    for dotted in names:
        try:
            _resolve(dotted)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{dotted}: {exc}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("doc", DOCS + [ROOT / "README.md"], ids=lambda p: p.name)
def test_no_paragraph_is_there_twice(doc):
    """A section pasted twice (docs/api.md had its two paragraphs on modules used several
    times, and the examples after them, twice): every paragraph of prose (outside code
    blocks, over 100 characters) is in a document once."""
    prose, code = [], False
    for block in re.split(r"\n\s*\n", doc.read_text()):
        fences = block.count("```")
        if not code and fences == 0 and len(block) > 100:
            prose.append(block.strip())
        code ^= fences % 2 == 1
    repeated = {p[:60] for p in prose if prose.count(p) > 1}
    assert not repeated, repeated
