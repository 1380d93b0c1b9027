"""scripts/quickstart.sh run twice, as a user following the README would: with stand-ins for
Python, pip and normreg-train (the real ones take minutes), each run trains into a directory
of its own instead of refusing the first run's."""

import os
import shutil
import stat
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `python -m venv DIR` makes DIR/bin/python (pip: nothing to do) and DIR/bin/normreg-train,
# which refuses an --out holding a checkpoint (as the real one does) and writes one there
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
    mkdir -p "$3/bin"
    printf '#!/bin/sh\\nexit 0\\n' > "$3/bin/python"
    cat > "$3/bin/normreg-train" <<'EOS'
#!/bin/sh
[ "$1" = --out ] || exit 3
if [ -e "$2/checkpoint.npz" ]; then
    echo "normreg-train: error: --out $2 holds the checkpoint of another run" >&2
    exit 2
fi
mkdir -p "$2" && : > "$2/checkpoint.npz" && echo "trained into $2"
EOS
    chmod +x "$3/bin/python" "$3/bin/normreg-train"
fi
exit 0
"""


def _executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_quickstart_twice(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "scripts", "quickstart.sh"), checkout / "scripts")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _executable(stubs / "python", FAKE_PYTHON)
    _executable(stubs / "id", "#!/bin/sh\necho 1000\n")  # not root: no apt-get
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", PYTHON=str(stubs / "python"))
    env.pop("NORMREG_VENV", None)
    outputs = []
    for _ in range(3):
        run = subprocess.run(
            ["bash", str(checkout / "scripts" / "quickstart.sh"), "--threads", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout)
    assert "trained into runs/quickstart\n" in outputs[0]
    assert "trained into runs/quickstart-2\n" in outputs[1]
    assert "runs/quickstart holds an earlier run" in outputs[1]
    assert "trained into runs/quickstart-3\n" in outputs[2]
    assert sorted(os.listdir(checkout / "runs")) == ["quickstart", "quickstart-2", "quickstart-3"]
