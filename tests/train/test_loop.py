"""The training loop and ``tim train`` (tim/train/loop.py, recipe.py, cli.py)."""

from __future__ import annotations

import json

import pytest
import torch

from tim.models import tiny_model, tiny_tokenizer
from tim.train.families import make_example
from tim.train.gold import GoldConfig, GoldWriter
from tim.train.loop import TrainConfig, step_rows, train
from tim.train.pack import pack_views
from tim.train.views import record_views


@pytest.fixture(scope="module")
def rows():
    writer = GoldWriter(tiny_tokenizer(), GoldConfig(pruning="buffer:0"))
    views = []
    for seed in range(3):
        views += record_views(writer.record(make_example("chain", 1, seed)))
    return pack_views(views, 1024)


def _model():
    return tiny_model("llama", vocab_size=len(tiny_tokenizer()),
                      max_position_embeddings=4096).model


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_killed_run_resumes_to_the_same_weights(rows, tmp_path, method):
    torch.set_num_threads(1)
    config = TrainConfig(method=method, steps=6, rows_per_step=2, checkpoint_every=2,
                         warmup_steps=1, dtype="fp32")
    straight, result = train(_model(), rows, config, tmp_path / "straight")
    assert len(result.losses) == 6 and result.losses[-1] < result.losses[0]
    # killed after step 3 (a checkpoint written at 3 by stop_after), then rerun
    _, cut = train(_model(), rows, config, tmp_path / "killed", stop_after=3)
    assert len(cut.losses) == 3
    resumed, again = train(_model(), rows, config, tmp_path / "killed")
    assert again.resumed_from == 3 and again.losses == result.losses
    a, b = _params(straight), _params(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def test_a_checkpoint_of_other_data_is_refused(rows, tmp_path):
    config = TrainConfig(steps=2, rows_per_step=1, dtype="fp32", warmup_steps=0)
    train(_model(), rows, config, tmp_path, stop_after=1)
    with pytest.raises(ValueError, match="other the rows"):
        train(_model(), rows[:1], config, tmp_path)


def test_rows_of_a_step_depend_on_the_step_alone():
    config = TrainConfig(rows_per_step=3, seed=4)
    assert step_rows(config, 7, 5) == step_rows(config, 7, 5)
    covered = [i for s in range(7) for i in step_rows(config, 7, s)]
    assert sorted(covered) == sorted(list(range(7)) * 3)  # three whole epochs


def test_tim_train_quick_writes_adapter_card_and_plot(tmp_path):
    from tim.train.cli import main_train

    out = tmp_path / "quick"
    assert main_train(["--quick", "--out", str(out)]) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["steps"] == 4 and card["tokens"] > 0 and card["labels"] > 0
    assert len(card["data"]["rows_sha256"]) == 64 and card["machine"]["cores"] >= 1
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_reads_its_views_back_instead_of_new_gold_runs(tmp_path, monkeypatch):
    import tim.train.recipe as recipe
    from tim.train.cli import main_train

    out = tmp_path / "quick"
    assert main_train(["--quick", "--out", str(out)]) == 0
    first = json.loads((out / "card.json").read_text())

    def no_gold_runs(*args, **kwargs):
        raise AssertionError("the rerun wrote the gold trees again")

    monkeypatch.setattr(recipe, "build_views", no_gold_runs)
    assert main_train(["--quick", "--out", str(out)]) == 0
    again = json.loads((out / "card.json").read_text())
    assert again["data"]["rows_sha256"] == first["data"]["rows_sha256"]
    assert again["resumed_from"] == 4 and again["final_loss"] == first["final_loss"]


def test_tim_train_names_a_bad_family(tmp_path, capsys):
    from tim.train.cli import main_train

    assert main_train(["--families", "recrods", "--out", str(tmp_path)]) == 1
    assert "unknown task family 'recrods'" in capsys.readouterr().err
