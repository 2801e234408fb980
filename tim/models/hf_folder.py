"""Is a saved Hugging Face model folder whole? A cheap check by sizes and file headers.

tim converts each bundled GGUF once into a plain folder of fp32 safetensors and renames it
into place only when complete, so a broken folder means a disk that filled up, a copy cut
short, or a hand edit. Reading every header costs milliseconds, not a hash of gigabytes.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["check_hf_folder"]


def check_hf_folder(folder: Path) -> str | None:
    """Why a converted folder cannot be loaded (missing or truncated file), or None.

    Each safetensors file must be as long as its header says; an index must name only
    files that exist.

    Examples
    --------
    >>> import tempfile
    >>> check_hf_folder(Path(tempfile.mkdtemp()))
    'config.json is missing'
    """
    for required in ("config.json", "tokenizer_config.json"):
        if not (folder / required).is_file():
            return f"{required} is missing"
    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        return "it holds no .safetensors file"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            named = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError) as exc:
            return f"{index.name} is unreadable ({exc})"
        missing = sorted(n for n in named if not (folder / n).is_file())
        if missing:
            return f"{', '.join(missing)} is missing"
    for shard in shards:
        size = shard.stat().st_size
        try:
            with open(shard, "rb") as f:
                header_len = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(header_len)) if 8 + header_len <= size else None
        except ValueError:
            header = None
        if header is None:
            return f"{shard.name} has a broken header"
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"),
                  default=0)
        if size != 8 + header_len + end:
            return f"{shard.name} is truncated ({size:,} of {8 + header_len + end:,} bytes)"
    return None

