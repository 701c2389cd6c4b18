"""`seqgen info`: what a checkpoint holds, for people (stderr) and for scripts (--json on stdout)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from seqgen.cli import app
from seqgen.info import checkpoint_info

runner = CliRunner()


def test_info_json_describes_a_text_checkpoint(text_checkpoint):
    result = runner.invoke(app, ["info", str(text_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert details["data"]["kind"] == "text"
    assert details["data"]["vocab_size"] == len(details["data"]["vocab_preview"])  # a small vocabulary is shown whole
    assert "🙂" in details["data"]["vocab_preview"]
    assert details["model"] == {
        "cell": "lstm",
        "layers": 2,
        "hidden": 32,
        "embed": 16,
        "parameters": details["model"]["parameters"],
    }
    assert details["training"]["steps"] == 30 and details["training"]["best_val_loss"] > 0
    assert details["training"]["threads"] == 1  # the tests run with OMP_NUM_THREADS=1: the count asked for, stored
    assert details["format_version"] == 1


def test_info_table_for_people_goes_to_stderr(sine_checkpoint):
    result = runner.invoke(app, ["info", str(sine_checkpoint)])
    assert result.exit_code == 0 and result.stdout == ""
    for words in ("sine waves", "LSTM, 1 x 16", "parameters", "20 steps", "best validation", "version 1"):
        assert words in result.stderr, words
    assert checkpoint_info(sine_checkpoint)["model"]["parameters"] == 16 * 4 * (1 + 16 + 2) + 17


def test_info_shows_each_series_own_scaling(tmp_path):
    import math

    from seqgen import ModelConfig, TrainConfig, Trainer, load_data

    months = [f"{2000 + m // 12}-{m % 12 + 1:02d}" for m in range(60)]
    rows = [f"{d},{50 + 10 * math.sin(m / 2):.3f},{2000 + 300 * math.cos(m / 2):.3f}" for m, d in enumerate(months)]
    (tmp_path / "sales.csv").write_text("month,shop,web\n" + "\n".join(rows) + "\n")
    model = tmp_path / "sales.safetensors"
    data = load_data(str(tmp_path / "sales.csv"))
    Trainer(
        data, ModelConfig(hidden=8, layers=1), TrainConfig(batch_size=4, window=20, steps=5, eval_every=5), model
    ).run()
    shown = runner.invoke(app, ["info", str(model)]).stderr
    assert "per series, each by its own training part:" in shown and "mean 0, std 1" not in shown
    for entry in data.series:
        assert f"{entry['name']!r}: mean {entry['mean']:.6g}, std {entry['std']:.6g}" in shown
    details = json.loads(runner.invoke(app, ["info", str(model), "--json"]).stdout)["data"]
    assert [(e["name"], e["std"]) for e in details["series"]] == [(e["name"], e["std"]) for e in data.series]
    assert "mean" not in details and details["series"][1]["std"] > 100
