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
    assert details["model"] == {"cell": "lstm", "layers": 2, "hidden": 32, "embed": 16,
                                "parameters": details["model"]["parameters"]}
    assert details["training"]["steps"] == 30 and details["training"]["best_val_loss"] > 0
    assert details["format_version"] == 1


def test_info_table_for_people_goes_to_stderr(sine_checkpoint):
    result = runner.invoke(app, ["info", str(sine_checkpoint)])
    assert result.exit_code == 0 and result.stdout == ""
    for words in ("sine waves", "LSTM, 1 x 16", "parameters", "20 steps", "best validation", "version 1"):
        assert words in result.stderr, words
    assert checkpoint_info(sine_checkpoint)["model"]["parameters"] == 16 * 4 * (1 + 16 + 2) + 17
