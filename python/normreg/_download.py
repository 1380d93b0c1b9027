"""Downloads that cannot be swapped: a file is fetched from the first of its mirrors that
serves it with the pinned SHA-256 (and MD5) digest.

Each attempt writes into a temporary file in the destination's directory and renames it
into place only once both digests match; a file with another digest is deleted before
anything reads it, and the next mirror is tried. HTTPS mirrors go first by convention of
the caller; the digests, not the transport, are what make the file trustworthy.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
import warnings
from collections.abc import Sequence


class _DigestMismatch(Exception):
    pass


def file_digests(path: str) -> tuple[str, str]:
    """``(sha256, md5)`` of the file at ``path``, as hex strings, in one pass."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def has_digests(path: str, sha256: str, md5: str | None) -> bool:
    """Whether the file at ``path`` exists and has these digests."""
    if not os.path.isfile(path):
        return False
    got_sha, got_md5 = file_digests(path)
    return got_sha == sha256 and (md5 is None or got_md5 == md5)


def _fetch_one(url: str, dest: str, sha256: str, md5: str | None, progress: bool, timeout: float) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)), prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm.auto import tqdm  # optional dependency: imported on first use

                bar = tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=os.path.basename(dest)
                )
            try:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
        got_sha, got_md5 = file_digests(tmp)
        if got_sha != sha256:
            raise _DigestMismatch(f"SHA-256 {got_sha}, expected {sha256}")
        if md5 is not None and got_md5 != md5:
            raise _DigestMismatch(f"MD5 {got_md5}, expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def fetch(
    urls: Sequence[str],
    dest: str,
    sha256: str,
    md5: str | None = None,
    progress: bool = False,
    timeout: float = 30,
) -> str:
    """Download ``dest`` from the first of ``urls`` that serves it with digest ``sha256``
    (and ``md5`` when given); returns that URL.

    A mirror that cannot be reached or answers with an error is skipped, as is one that
    serves other bytes (with a warning: the file was deleted unread). When none succeeds:
    ``ValueError`` if some mirror served a file with another digest, else ``OSError``,
    listing every attempt; nothing is left at ``dest`` or in its directory.
    """
    failures: list[str] = []
    mismatch = False
    for url in urls:
        try:
            _fetch_one(url, dest, sha256, md5, progress, timeout)
            return url
        except _DigestMismatch as exc:
            mismatch = True
            failures.append(f"{url}: {exc}")
            warnings.warn(
                f"{url} served a file with another digest ({exc}): deleted unread",
                RuntimeWarning,
                stacklevel=2,
            )
        except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts, resets
            failures.append(f"{url}: {exc}")
    detail = "; ".join(failures) or "no URL given"
    if mismatch:
        raise ValueError(
            f"checksum mismatch: no mirror served {os.path.basename(dest)} with its pinned digest "
            f"({detail}); the download is corrupted or a mirror serves other files"
        )
    raise OSError(f"could not download {os.path.basename(dest)} ({detail})")
