"""What a person or a script sees: plain piped output, JSON errors, colour rules, quiet runs, progress,
dry runs, the options that used to surprise, streamed generation and the model card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from llmpatch import ui
from llmpatch.cli import cli
from llmpatch.env import Environment

ROOT = Path(__file__).resolve().parent.parent
LONG_SUMMARY = ("Lowers the toxicity of completions on adversarial prompts while keeping benign answers "
                "fluent, helpful and unchanged in length")


def run(*args, ok: bool = True, **kw):
    res = CliRunner().invoke(cli, [str(a) for a in args], **kw)
    if ok:
        assert res.exit_code == 0, res.output
    return res


@pytest.fixture
def project(tmp_path, monkeypatch, make_patch, tiny_model_dir):
    """A local registry (tox-fix 1.0.0 and 1.1.0) and an initialised environment in the working directory."""
    reg = tmp_path / "registry"
    d = tmp_path / "project"
    d.mkdir()
    monkeypatch.chdir(d)
    run("registry", "init", reg)
    for v in ("1.0.0", "1.1.0"):
        p = make_patch("tox-fix", v, summary=LONG_SUMMARY,
                       evals=[{"suite": "toxicity", "metric": "mean", "value": 0.05, "base_value": 0.3,
                               "prompts": "built-in:toxicity:eval sha256:ab"}])
        run("publish", p.path, "-r", reg)
    run("init", "--base", tiny_model_dir, "-r", reg)
    return {"dir": d, "registry": str(reg), "env": Environment(d / ".llmpatch")}


# --- piped output: plain, identifiers whole -----------------------------------------------------

def test_piped_search_keeps_each_patch_on_one_line_with_its_whole_summary(project):
    out = run("search", "-r", project["registry"]).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["name", "version", "domains", "base", "summary"]
    assert any(line.startswith("tox-fix") and line.endswith(LONG_SUMMARY) for line in lines)
    assert not any(c in out for c in "┏┃│━")  # no table drawing when piped


def test_piped_show_and_init_print_fingerprints_and_digests_whole_on_one_line(project, tiny_model_dir, tmp_path):
    fp = project["env"].base_ref.fingerprint
    shown = run("show", "tox-fix", "-r", project["registry"]).stdout
    assert f"base: {Path(tiny_model_dir).name} ({fp})" in shown.splitlines() or any(
        line.startswith("base: ") and line.endswith(f"({fp})") for line in shown.splitlines())
    assert any(line.startswith("manifest sha256: ") and len(line.split(": ")[1]) == 64 for line in shown.splitlines())
    assert "evals: toxicity.mean=0.05 (base 0.3)" in shown  # SUITE.METRIC, as verify and policies say
    init = run("init", "--base", tiny_model_dir, "--path", tmp_path / "other" / ".llmpatch").stdout
    assert f"fingerprint: {fp}" in init.splitlines()


def test_inspect_names_evals_suite_dot_metric(project, make_patch):
    p = make_patch("x-fix", "1.0.0", evals=[{"suite": "toxicity", "metric": "mean", "value": 0.1}])
    out = run("inspect", p.path).stdout
    assert "eval toxicity.mean: 0.1" in out and "toxicity/mean" not in out


def test_verify_summary_line_names_generated_counts_not_a_dict(capsys):
    from llmpatch.commands.verify import _print_tables

    _print_tables({"columns": ["base", "patched"], "suites": [], "claims": [], "passed": True,
                   "timing": {"total_s": 12.0, "generated": {"base": 16, "patched": 16}}})
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == "verify passed in 12 s (outputs generated: base 16, patched 16)"


# --- errors -----------------------------------------------------------------------------------

def test_json_errors_are_json_on_stdout_and_text_on_stderr(project):
    res = run("install", "tox-fix@9", "--json", ok=False)
    assert res.exit_code == 1
    err = json.loads(res.stdout)
    assert "tox-fix@9" in err["error"] and err["hint"] and err["type"] == "ResolutionError"
    assert res.stderr.startswith("error: ")
    plain = run("install", "tox-fix@9", ok=False)
    assert plain.stdout == "" and "error: " in plain.stderr


@pytest.mark.parametrize("no_color", [False, True])
def test_error_line_is_red_on_a_terminal_unless_no_color(tmp_path, no_color):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FORCE_COLOR": "1", "TERM": "xterm-256color",
           "LLMPATCH_HOME": str(tmp_path)}
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    res = subprocess.run([sys.executable, "-m", "llmpatch.cli", "list", "--env", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode != 0 and "error:" in res.stderr
    assert ("\x1b[" in res.stderr) is (not no_color)


# --- options that used to surprise -------------------------------------------------------------

def test_install_verify_is_a_flag_and_never_swallows_the_patch_name(project, tmp_path):
    out = json.loads(run("install", "--verify", "tox-fix", "--dry-run", "--json").stdout)
    assert out["dry_run"] and out["plan"]["after"] == ["tox-fix@1.1.0"]
    missing = run("install", "tox-fix", "--policy", tmp_path / "none.toml", "--dry-run", ok=False)
    assert missing.exit_code == 2 and "none.toml" in missing.output


def test_short_registry_flag_works_in_install_and_upgrade(project):
    for cmd in (("install", "tox-fix@1.0.0"), ("upgrade",)):
        out = json.loads(run(*cmd, "-r", project["registry"], "--dry-run", "--json").stdout)
        assert out["dry_run"] is True


def test_rollback_dry_run_changes_nothing_and_a_no_op_rollback_writes_no_generation(project):
    run("install", "tox-fix@1.0.0")
    run("install", "tox-fix@1.1.0")
    env = project["env"]
    planned = json.loads(run("rollback", "--dry-run", "--json").stdout)
    assert planned["dry_run"] and planned["plan"]["after"] == ["tox-fix@1.0.0"] and planned["generation"] is None
    assert env.current_number() == 3
    same = run("rollback", "--to", "3")
    assert "nothing to change" in same.stdout and env.current_number() == 3 and len(env.generations()) == 3
    done = json.loads(run("rollback", "--json").stdout)
    assert done["generation"]["number"] == 4 and env.current().patches[0].version == "1.0.0"


def test_quiet_keeps_results_and_drops_messages(project):
    loud = run("install", "tox-fix@1.0.0")
    assert "fetching tox-fix@1.0.0" in loud.stderr
    quiet = run("-q", "install", "tox-fix@1.1.0")
    assert quiet.stderr == "" and "generation 3" in quiet.stdout


def test_json_everywhere_a_script_reads(project, llmpatch_home, tmp_path):
    reg = project["registry"]
    fetched = json.loads(run("fetch", "tox-fix@1.0.0", tmp_path / "fetched", "-r", reg, "--json").stdout)
    assert fetched["version"] == "1.0.0" and fetched["signature_checked"] is False
    assert json.loads(run("yank", "tox-fix@1.0.0", "-r", reg, "--json").stdout)["yanked"] is True
    assert json.loads(run("registry", "init", tmp_path / "r2", "--json").stdout)["require_signatures"] is False
    run("key", "generate")
    pub = llmpatch_home / "keys" / "default.pub"
    assert json.loads(run("key", "trust", pub, "-r", reg, "--json").stdout)["registry"] == reg
    keyid = json.loads(run("key", "list", "-r", reg, "--json").stdout)["trusted"][0]["keyid"]
    assert json.loads(run("key", "untrust", keyid, "-r", reg, "--json").stdout)["untrusted"] == keyid
    assert "highest_index_version" in json.loads(run("key", "forget-index", "-r", reg, "--json").stdout)


# --- progress ---------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def loud(monkeypatch):
    """Each test starts without --quiet (an earlier in-process `llmpatch -q` sets it for the process)."""
    monkeypatch.setattr(ui, "_quiet", False)


def test_progress_prints_heartbeat_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(ui, "HEARTBEAT_S", 0.05)
    monkeypatch.setattr(ui, "SLOW_STEP_S", 0.0)
    with ui.progress("toxicity: patched", 4) as advance:
        advance(1)
        time.sleep(0.3)
        advance(3)
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("[llmpatch] toxicity: patched: 1/4 prompts, ") for line in err)
    assert err[-1].startswith("[llmpatch] toxicity: patched: 4/4 prompts, ") and err[-1].endswith(" done")


def test_quiet_and_json_silence_progress(monkeypatch, capsys):
    monkeypatch.setattr(ui, "HEARTBEAT_S", 0.02)
    monkeypatch.setattr(ui, "SLOW_STEP_S", 0.0)
    with ui.progress("x", 2, enabled=False) as advance:
        advance(2)
        time.sleep(0.1)
    ui.set_quiet(True)
    try:
        with ui.activity("loading"):
            time.sleep(0.1)
    finally:
        ui.set_quiet(False)
    assert capsys.readouterr().err == ""


def test_runtime_reports_progress_per_prompt_and_each_token(tiny_model_dir):
    import llmpatch
    from llmpatch.runtime import GenerationConfig

    model = llmpatch.load(str(tiny_model_dir))
    steps, tokens = [], {}
    outs = model.generate(["hello world", "the nurse", "a"], config=GenerationConfig(max_new_tokens=5, batch_size=8),
                          progress=steps.append, on_token=lambda i, t: tokens.setdefault(i, []).append(t))
    assert sum(steps) == 3
    for i, text in enumerate(outs):
        assert model.tokenizer.decode(tokens.get(i, []), skip_special_tokens=True) == text


# --- run --------------------------------------------------------------------------------------

@pytest.fixture
def patch_dir(make_patch):
    return make_patch("tox-fix", "1.0.0").path


def test_run_json_lists_the_stack_and_reads_prompts_from_a_file_and_stdin(tiny_model_dir, patch_dir, tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("hello world\n\nthe nurse said\n")
    base = ["run", "--base", tiny_model_dir, "--patch", patch_dir, "--max-new-tokens", "3", "--json"]
    data = json.loads(run(*base, "-f", f).stdout)
    assert [(p["name"], p["version"], p["virtual_tokens"]) for p in data["stack"]] == [("tox-fix", "1.0.0", 5)]
    assert [r["prompt"] for r in data["results"]] == ["hello world", "the nurse said"]
    piped = json.loads(run(*base, input="hello world\nthe nurse said\n").stdout)
    assert piped["results"] == data["results"]
    none = run("run", "--base", tiny_model_dir, input="", ok=False)
    assert none.exit_code == 2 and "no prompts" in none.stderr


def test_run_streams_the_same_text_it_prints_at_once_and_labels_compare_output(tiny_model_dir, patch_dir):
    base = ["run", "--base", tiny_model_dir, "--patch", patch_dir, "--max-new-tokens", "6", "--no-chat", "hello world"]
    whole = json.loads(run(*base, "--compare", "--json").stdout)["results"][0]
    streamed = run(*base, "--compare", "--stream").stdout.splitlines()
    assert streamed[0] == "> hello world"
    assert streamed[1] == f"unpatched: {whole['unpatched']}" and streamed[2] == f"patched: {whole['output']}"
    plain = run(*base, "--compare").stdout.splitlines()
    assert plain[:2] == ["### prompt 1: hello world", "--- unpatched"]
    assert plain.index("--- patched") > 1


# --- model card -------------------------------------------------------------------------------

def test_model_card_front_matter_has_what_the_hub_renders(make_patch):
    p = make_patch("tox-fix", "1.0.0", evals=[
        {"suite": "toxicity", "metric": "mean", "value": 0.05, "base_value": 0.3, "prompts": "built-in:toxicity:eval sha256:ab"},
        {"suite": "harmfulness", "metric": "unsafe_rate", "value": 0.1,
         "prompts": "hf:walledai/HarmBench@standard:train:prompt sha256:cd"},
    ])
    front = yaml.safe_load((p.path / "README.md").read_text().split("---\n")[1])
    assert front["pipeline_tag"] == "text-generation" and front["library_name"] == "peft"
    assert front["language"] == ["en"] and front["datasets"] == ["walledai/HarmBench"]
    assert front["base_model"] == p.manifest.base.id
    (index,) = front["model-index"]
    assert index["name"] == "tox-fix"
    metrics = {r["metrics"][0]["type"]: (r["metrics"][0]["value"], r["dataset"]) for r in index["results"]}
    assert metrics["toxicity.mean"][0] == 0.05 and metrics["toxicity.mean"][1]["split"] == "eval"
    assert metrics["harmfulness.unsafe_rate"][1]["type"] == "walledai/HarmBench"


def test_every_command_has_json_and_every_registry_option_has_r():
    import click

    def leaves(group, prefix=()):
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                yield from leaves(cmd, (*prefix, name))
            else:
                yield " ".join((*prefix, name)), cmd

    for name, cmd in leaves(cli):
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert "--json" in opts, name
        assert ("--registry" in opts) <= ("-r" in opts), name
