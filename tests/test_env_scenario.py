"""The scripted customer scenario (examples/scenario.py) runs green on the tiny model."""

from __future__ import annotations

import importlib.util
from pathlib import Path


SCENARIO = Path(__file__).resolve().parent.parent / "examples" / "scenario.py"


def test_the_customer_scenario_runs_end_to_end(tmp_path, tiny_model_dir, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("scenario", SCENARIO)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path / "work", str(tiny_model_dir))
    out = capsys.readouterr().out
    assert "ok: stack is tox-fix@1.2.1\n" in out
    assert "ok: stack is (empty)" in out
    assert "composed prefixes are byte-identical" in out
    assert out.rstrip().endswith("scenario OK")
