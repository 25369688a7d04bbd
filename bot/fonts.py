"""The fonts of poem cards: fetched from package registries by `poembot font fetch`, never committed.

Noto Serif SC (SIL OFL 1.1) comes as TrueType files in the npm package @expo-google-fonts/noto-serif-sc
(the tarball is checked against its npm integrity, each file against its SHA-256). It lacks a handful of
rare characters the model's vocabulary holds (Extension B/D ones such as 𧥄), so HanaMin B (花園明朝, SIL
OFL 1.1) from Debian's fonts-hanazono package draws those. Both are cached in the fonts dir:
POEMBOT_FONT_DIR, or $POEMBOT_DATA_DIR/fonts.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from protocol.downloads import DownloadError, npm_tarball

NPM_PACKAGE = "@expo-google-fonts/noto-serif-sc"
NPM_VERSION = "0.4.3"
NPM_INTEGRITY = ("sha512-fSmUpiSFtSeyHV45/2xUOy5SdfExklQwwMKN3cQjAZAujITHDmSbpMHCVdCMhRqMjQtu0ZRgc29u8A+"
                 "CU3akfw==")
DEB_PACKAGE = "fonts-hanazono"
LICENSE_FILE = "LICENSE-fonts.txt"


class FontError(RuntimeError):
    """A font could not be fetched or verified; one sentence for the user."""


@dataclass(frozen=True)
class FontFile:
    name: str          # the file name in the fonts dir
    member: str        # its path inside the package
    sha256: str


REGULAR = FontFile("NotoSerifSC-Regular.ttf", "package/400Regular/NotoSerifSC_400Regular.ttf",
                   "c358a69de3df5f423a8946a7b03e3126fb6ba116f1130a463455b4e39e1f0742")
SEMIBOLD = FontFile("NotoSerifSC-SemiBold.ttf", "package/600SemiBold/NotoSerifSC_600SemiBold.ttf",
                    "5d19e0f438d4a30371f584d34a87c9232dba0a85237db63fe5337fe743487def")
FALLBACK = FontFile("HanaMinB.ttf", "usr/share/fonts/truetype/hanazono/HanaMinB.ttf",
                    "829543436cdf7b4c6730e2af5806fa406f8ddf0d4b656e0cd49c58d4db1c8d3c")
NPM_FILES = (REGULAR, SEMIBOLD)
ALL_FILES = (*NPM_FILES, FALLBACK)


def font_dir() -> Path:
    from protocol.settings import PathsSettings

    return PathsSettings.from_env().fonts


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def font_path(font: FontFile, directory: Path | None = None) -> Path:
    return (directory or font_dir()) / font.name


def missing(directory: Path | None = None) -> list[FontFile]:
    """Fonts not in the fonts dir yet (a file is trusted once it passed its checksum on the way in)."""
    return [f for f in ALL_FILES if not font_path(f, directory).is_file()]


def _store(font: FontFile, data: bytes, directory: Path) -> None:
    got = sha256_of(data)
    if got != font.sha256:
        raise FontError(f"{font.name} failed its checksum (got {got[:16]}…); the package changed "
                        "or the download was corrupted")
    tmp = directory / (font.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(directory / font.name)


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    if shutil.which(argv[0]) is None:
        raise FontError(f"{argv[0]} is not installed: it is needed to fetch {what}")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=cwd)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise FontError(f"could not fetch {what} ({last}); are you offline?")
    return proc.stdout


def fetch_npm_fonts(directory: Path) -> None:
    """Noto Serif SC from npm (protocol.downloads: whichever registry npm uses, integrity checked)."""
    what = f"{NPM_PACKAGE}@{NPM_VERSION}"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            tarball = npm_tarball(NPM_PACKAGE, NPM_VERSION, NPM_INTEGRITY, Path(tmp))
        except DownloadError as exc:
            raise FontError(str(exc)) from exc
        with tarfile.open(tarball, mode="r:gz") as tar:
            for font in NPM_FILES:
                _store(font, tar.extractfile(font.member).read(), directory)
            licence = tar.extractfile("package/LICENSE_FONT").read()
    (directory / LICENSE_FILE).write_bytes(b"Noto Serif SC (" + what.encode() + b")\n\n" + licence)


def deb_members(deb: bytes) -> dict[str, bytes]:
    """The members of a .deb (an ar archive): debian-binary, control.tar.*, data.tar.*."""
    if not deb.startswith(b"!<arch>\n"):
        raise FontError("not a Debian package")
    members, pos = {}, 8
    while pos + 60 <= len(deb):
        header = deb[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = deb[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def fetch_deb_font(directory: Path) -> None:
    """HanaMin B from Debian's fonts-hanazono, downloaded with apt (no root needed for a download)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _run(["apt-get", "download", DEB_PACKAGE], DEB_PACKAGE, cwd=Path(tmp))
        except FontError as exc:
            # A fresh machine (a CI runner, a container) may have no package lists yet: as root, fetch
            # them once and try again; anyone else is told what to run.
            if not hasattr(os, "geteuid") or os.geteuid() != 0:
                raise FontError(f"{exc}; if apt has no package lists yet, run `apt-get update` first") from exc
            _run(["apt-get", "update", "-qq"], "the apt package lists")
            _run(["apt-get", "download", DEB_PACKAGE], DEB_PACKAGE, cwd=Path(tmp))
        deb = next(Path(tmp).glob(f"{DEB_PACKAGE}_*.deb")).read_bytes()
    data_name = next((n for n in deb_members(deb) if n.startswith("data.tar")), None)
    if data_name is None:
        raise FontError(f"{DEB_PACKAGE}: no data archive in the package")
    with tarfile.open(fileobj=io.BytesIO(deb_members(deb)[data_name]), mode="r:*") as tar:
        wanted = {m.name.lstrip("./"): m for m in tar.getmembers()}
        member = wanted.get(FALLBACK.member)
        if member is None:
            raise FontError(f"{DEB_PACKAGE} has no {FALLBACK.member}")
        _store(FALLBACK, tar.extractfile(member).read(), directory)
        copyright_ = wanted.get(f"usr/share/doc/{DEB_PACKAGE}/copyright")
        if copyright_ is not None:
            with (directory / LICENSE_FILE).open("ab") as out:
                out.write(b"\n\nHanaMin B (Debian " + DEB_PACKAGE.encode() + b")\n\n")
                out.write(tar.extractfile(copyright_).read())


def fetch_fonts(directory: Path | None = None) -> Path:
    """Fetch whatever card font is missing into the fonts dir; a no-op when all are there."""
    directory = directory or font_dir()
    directory.mkdir(parents=True, exist_ok=True)
    need = missing(directory)
    if any(f in NPM_FILES for f in need):
        fetch_npm_fonts(directory)
    if FALLBACK in need:
        fetch_deb_font(directory)
    return directory
