"""What normreg's commands (``normreg-train``, ``normreg-experiments``) share: a parser whose
mistakes are one ``prog: error: ...`` line and exit status 2, argparse types that check their
range, and the checks of ``--out`` and ``--data-dir`` made before any work starts."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from typing import Any, NoReturn

from . import _validation as V
from .data import fashion_mnist_files


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """argparse's exit status 2, in one line."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: X)" after each help text, except where the text gives the
    default itself, the default is None (the text says what happens) or the flag is a switch."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.default is None or isinstance(action.default, bool):
            return text
        return super()._get_help_string(action)


class UsageError(Exception):
    """A mistake in the command line, found before any data is loaded."""


def number(
    kind: Callable[[str], Any],
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` (int or float) number in the interval from ``low``
    to ``high`` (either end open with ``low_open`` / ``high_open``; None: unbounded)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an int' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        below = low is not None and (value < low or (low_open and value == low))
        above = high is not None and (value > high or (high_open and value == high))
        if below or above:
            raise argparse.ArgumentTypeError(
                f"must be {V.interval(low, high, low_open, high_open)}, got {text}"
            )
        return value

    return parse


#: ``--threads``: what ``normreg.set_num_threads`` takes.
threads = number(int, 1, V.MAX_THREADS)
#: ``--seed``: the seeds that differ (normreg's generators reduce a seed modulo 2**64, NumPy's
#: refuse negative ones).
seed = number(int, 0, 2**64 - 1)


def check_data_dir(path: str) -> None:
    """``--data-dir``: a directory holding the four Fashion-MNIST files."""
    try:
        fashion_mnist_files(path)
    except FileNotFoundError as exc:
        raise UsageError(f"--data-dir: {exc}") from None


def check_out(out: str, create: bool) -> str | None:
    """``--out``: a directory, or a path where one can be made, that can be written. With
    ``create``, makes it (and tries writing a file there); returns the topmost directory it
    made (None if ``out`` existed), for :func:`remove_made`."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a directory")
    if not create:
        return None
    made = _top_missing(out)
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        remove_made(out, made)
        raise UsageError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return made


def _top_missing(out: str) -> str | None:
    """The topmost directory of ``out``'s path that does not exist yet (None: ``out`` exists)."""
    path, top = os.path.abspath(out), None
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        top, path = path, os.path.dirname(path)
    return top


def remove_made(out: str, made: str | None) -> None:
    """Remove the empty directories :func:`check_out` made, from ``out`` up to ``made``: a
    command that did not start leaves nothing behind."""
    if made is None:
        return
    path = os.path.abspath(out)
    while True:
        try:
            os.rmdir(path)  # only an empty directory
        except OSError:
            return
        if path == made:
            return
        path = os.path.dirname(path)
