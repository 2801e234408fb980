"""``tim demo``: the trained-model path end to end on a tiny base with a random adapter
(registered as a trained model in a temporary folder), and its refusals."""

from __future__ import annotations

import hashlib
import json

import pytest

import tim.models.trained as trained
from tim.cli import main
from tim.models import tiny_model
from tim.models.trained import ADAPTER_FILE, TrainedModel

peft = pytest.importorskip("peft")


@pytest.fixture
def fake_trained(tmp_path, monkeypatch):
    """A trained model named ``tiny-tree``: tiny-llama plus a random LoRA adapter."""
    folder = tmp_path / "tiny-tree"
    wrapped = peft.get_peft_model(tiny_model("llama").model,
                                  peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
    wrapped.save_pretrained(folder)
    (folder / "card.json").write_text(json.dumps({
        "steps": 3, "tokens": 1000, "final_loss": 1.5, "train_wall_time_s": 60,
        "machine": {"cpu": "test CPU", "cores": 2}}))
    data = (folder / ADAPTER_FILE).read_bytes()
    entry = TrainedModel(name="tiny-tree", title="tiny test model", base="tiny-llama",
                         size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                         families=("records", "chain"), window=4096,
                         pruning="buffer:0@conclusion", positions="shift", max_depth=3,
                         max_fanout=2)
    monkeypatch.setattr(trained, "_SHIPPED", tmp_path)
    monkeypatch.setitem(trained.TRAINED_MODELS, "tiny-tree", entry)
    return entry


def test_demo_runs_a_held_out_question_and_saves_the_run(fake_trained, tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(["demo", "--model", "tiny-tree", "--family", "chain", "--size", "1",
                 "--json", str(out), "--max-new-tokens", "60", "--positions", "reencode"])
    err = capsys.readouterr().err
    assert code == 1  # random weights: a wrong answer, said so in the exit code
    assert "held-out chain question, size 1, seed 1000000" in err
    assert "positions reencode" in err
    assert "expected" in err and "answered" in err and "x its window of 4096" in err
    saved = json.loads(out.read_text())
    assert saved["model"] == "tiny-tree"


def test_tim_models_lists_a_trained_model_and_notices_a_corrupt_adapter(fake_trained, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-tree: tiny test model" in out
    assert "(verified), over tiny-llama" in out
    assert "trained  on records, chain: 3 steps, 1,000 tokens, final loss 1.500" in out
    path = fake_trained.folder / ADAPTER_FILE
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    assert main(["models"]) == 0
    assert "is corrupt: its SHA-256 does not match" in capsys.readouterr().out
    assert main(["demo", "--model", "tiny-tree"]) == 1  # refused before any merge
    assert "reinstall tim" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["demo", "--model", "tiny-tree", "why is the sky blue?"], "answers the questions of"),
    (["demo", "--model", "tiny-tree", "--family", "search"], "--family 'search' is not one"),
])
def test_demo_refuses_what_the_trained_model_cannot_do(fake_trained, capsys, argv, message):
    assert main(argv) == 1
    assert message in capsys.readouterr().err
