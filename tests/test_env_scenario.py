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
    # bias-fix 2.1.0-rc.1 is published, ignored by `upgrade`, installed by `upgrade --pre`, then rolled back
    assert "published bias-fix 2.1.0-rc.1 (a pre-release: Pre-release 2.1.0-rc.1: the weights of bias-fix 2.0.3" in out
    assert out.count("ok: stack is tox-fix@1.2.1 -> bias-fix@2.0.3\n") == 5
    assert "ok: stack is tox-fix@1.2.1 -> bias-fix@2.1.0-rc.1\n" in out
    assert "composed prefixes are byte-identical" in out
    assert out.rstrip().endswith("scenario OK")
