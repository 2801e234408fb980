"""Trained adapters: tim's own LoRA merge against peft's, and the size and hash checks that
refuse a damaged adapter file before anything is merged."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tim.errors import TimError
from tim.models import tiny_model
from tim.models.trained import (
    ADAPTER_FILE,
    TRAINED_MODELS,
    adapter_problem,
    merge_lora,
    package_adapter,
)

peft = pytest.importorskip("peft")


def _random_adapter(model, folder, *, r=4, alpha=8, rslora=False, targets=("q_proj", "v_proj",
                                                                             "down_proj")):
    """A peft LoRA adapter with random (non-zero) A and B, saved to ``folder``."""
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets),
                             use_rslora=rslora, lora_dropout=0.0)
    wrapped = peft.get_peft_model(model, config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in wrapped.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    wrapped.save_pretrained(folder)
    return wrapped


@pytest.mark.parametrize("rslora", [False, True])
def test_merge_matches_peft(tmp_path, rslora):
    """Oracle: peft's merge_and_unload of the same adapter; the logits must agree."""
    ids = torch.tensor([[5, 17, 3, 40, 9, 22, 31]])
    theirs = _random_adapter(tiny_model("llama").model, tmp_path, rslora=rslora)
    with torch.no_grad():
        expected = theirs.merge_and_unload()(ids).logits
    mine = tiny_model("llama").model  # the same seed: the same base weights
    with torch.no_grad():
        base_logits = mine(ids).logits
    assert merge_lora(mine, tmp_path) == 3 * 2  # three targets in each of two layers
    with torch.no_grad():
        got = mine(ids).logits
    assert not torch.allclose(base_logits, expected, atol=1e-3)  # the adapter matters
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_merge_refuses_an_adapter_for_another_model(tmp_path):
    _random_adapter(tiny_model("llama", num_layers=3).model, tmp_path)
    with pytest.raises(TimError, match="does not fit this model"):
        merge_lora(tiny_model("llama", num_layers=2).model, tmp_path)


def test_merge_refuses_what_it_does_not_implement(tmp_path):
    _random_adapter(tiny_model("llama").model, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    config["use_dora"] = True
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(TimError, match="use_dora"):
        merge_lora(tiny_model("llama").model, tmp_path)


def test_adapter_problem_names_a_missing_truncated_or_corrupt_file(tmp_path):
    _random_adapter(tiny_model("llama").model, tmp_path)
    path = tmp_path / ADAPTER_FILE
    size = path.stat().st_size
    from tim.models.parts import file_sha256

    digest = file_sha256(path)
    assert adapter_problem(tmp_path, size=size, sha256=digest) is None
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit-pattern in the last weight
    path.write_bytes(bytes(data))
    assert "SHA-256" in adapter_problem(tmp_path, size=size, sha256=digest)
    path.write_bytes(bytes(data[:-8]))
    assert "expected" in adapter_problem(tmp_path, size=size, sha256=digest)
    path.unlink()
    assert "missing" in adapter_problem(tmp_path, size=size, sha256=digest)


def test_load_trained_dir_merges_without_peft(tmp_path, monkeypatch):
    """``tim.train.load_trained`` on a ``tim train`` folder gives the merged model."""
    from tim.train.recipe import load_trained

    tiny = tiny_model("llama")
    _random_adapter(tiny_model("llama").model, tmp_path / "adapter")
    (tmp_path / "card.json").write_text(json.dumps({"method": "lora", "base_model": "tiny-llama"}))
    model, tokenizer = load_trained(tmp_path)
    ids = torch.tensor([[1, 2, 3]])
    merge_lora(tiny.model, tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, tiny.model(ids).logits)
    shutil.rmtree(tmp_path / "adapter")
    (tmp_path / "adapter").mkdir()
    with pytest.raises(TimError, match="missing"):
        load_trained(tmp_path)


def test_package_adapter_ships_no_local_path_and_records_the_hash(tmp_path):
    from tim.models.parts import file_sha256

    out = tmp_path / "run"
    _random_adapter(tiny_model("llama").model, out / "adapter")
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "some" / "cache" / "hf")
    (out / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    (out / "card.json").write_text(json.dumps({"method": "lora", "base_model": "tiny-llama"}))
    size, digest = package_adapter(out, tmp_path / "shipped")
    shipped = tmp_path / "shipped"
    assert sorted(p.name for p in shipped.iterdir()) == ["adapter_config.json", ADAPTER_FILE,
                                                         "card.json"]
    assert str(tmp_path) not in (shipped / "adapter_config.json").read_text()
    assert (size, digest) == ((shipped / ADAPTER_FILE).stat().st_size,
                              file_sha256(out / "adapter" / ADAPTER_FILE))
    assert adapter_problem(shipped, size=size, sha256=digest) is None


# SmolLM2-135M's shape (its config.json), so the shipped adapter's fit is checked offline
SMOLLM2_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                     tie_word_embeddings=True)


@pytest.mark.parametrize("name", sorted(TRAINED_MODELS))
def test_shipped_adapter_is_intact_small_and_fits_its_base(name):
    """The file in the package has its recorded size and SHA-256, ships no local path, and
    merges into every linear layer of a model of its base's shape (random weights: no
    download)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    entry = TRAINED_MODELS[name]
    assert adapter_problem(entry.folder, size=entry.size, sha256=entry.sha256) is None
    assert entry.size <= 20_000_000
    config = json.loads((entry.folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == entry.base
    card = entry.card()
    assert card["base_model"] == entry.base and card["method"] == "lora"
    assert tuple(card["data"]["families"]) == entry.families
    assert card["data"]["gold"]["pruning"] == entry.pruning
    assert card["data"]["gold"]["positions"] == entry.positions
    assert entry.base == "smollm2-135m"
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE))
    q_before = model.model.layers[0].self_attn.q_proj.weight.clone()
    assert merge_lora(model, entry.folder) == 30 * 7  # q k v o gate up down in 30 layers
    assert not torch.equal(q_before, model.model.layers[0].self_attn.q_proj.weight)
