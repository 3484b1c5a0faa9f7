"""The registry CLI end to end: the same publish -> search -> show -> fetch scenario on both backends,
concurrent publishers, signing keys and tampering, all through `llmpatch`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import clihelp


def run(*args, ok: bool = True):
    return clihelp.run(*args, ok=ok, catch_exceptions=False)


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def run_json(*args):
    return json.loads(run(*args, "--json").stdout)


@pytest.fixture(params=["local", "hub"])
def registry_url(request, tmp_path, monkeypatch):
    """A fresh registry of each backend."""
    if request.param == "local":
        yield str(tmp_path / "registry")
        return
    hub = request.getfixturevalue("hub")
    yield f"hf://acme/llmpatch-index?endpoint={hub.url}"


def test_publish_search_show_fetch_scenario(registry_url, make_patch, tmp_path):
    from llmpatch.artifact import read_patch

    run("key", "generate")
    pub = tmp_path / "llmpatch-home" / "keys" / "default.pub"
    run("key", "trust", pub, "--registry", registry_url)
    tox = [make_patch("tox-fix", v, summary="Lowers toxicity of completions", domains=["toxicity"],
                      evals=[{"suite": "rtp-mini", "metric": "toxicity", "value": 0.05, "base_value": 0.3}])
           for v in ("1.0.0", "1.1.0", "2.0.0-rc.1")]
    bias = make_patch("bias-fix", "0.3.0", summary="Gender-neutral pronouns", domains=["gender_bias"])
    for p in (*tox, bias):
        out = run("publish", p.path, "--registry", registry_url)
        assert "signed by key" in flat(out.stdout)
    again = run("publish", tox[0].path, "--registry", registry_url, ok=False)
    assert again.exit_code == 1 and "tox-fix@1.0.0 is already in registry" in flat(again.stderr)

    hits = run_json("search", "toxicity", "--registry", registry_url)
    assert [(h["name"], h["version"]) for h in hits] == [("tox-fix", "2.0.0-rc.1")]
    assert [h["name"] for h in run_json("search", "--domain", "gender_bias", "--registry", registry_url)] == ["bias-fix"]
    assert "tox-fix" in run("search", "--registry", registry_url).stdout

    run("yank", "tox-fix@1.1.0", "--reason", "regressed", "--registry", registry_url)
    shown = run_json("show", "tox-fix@^1", "--registry", registry_url)
    assert shown["selected"]["version"] == "1.0.0"  # 1.1.0 is yanked: hidden from ranges
    assert [v["version"] for v in shown["versions"]] == ["2.0.0-rc.1", "1.1.0", "1.0.0"]
    assert shown["selected"]["evals"][0]["suite"] == "rtp-mini"
    text = flat(run("show", "tox-fix", "--registry", registry_url).stdout)
    assert "yanked" in text and "rtp-mini" in text
    assert [v["yank_reason"] for v in shown["versions"]] == [None, "regressed", None]

    dest = tmp_path / "fetched"
    run("fetch", "tox-fix@1.1.0", dest, "--registry", registry_url)  # an exact pin still gets a yanked version
    assert read_patch(dest).payload_sha256 == tox[1].payload_sha256


def test_two_processes_publishing_to_one_local_registry_both_land(make_patch, tmp_path, llmpatch_home):
    reg = tmp_path / "registry"
    patches = [make_patch(f"fix-{i}", "1.0.0") for i in range(2)]
    script = textwrap.dedent("""
        import sys, time
        from llmpatch.registry import open_registry
        start = float(sys.argv[3])
        while time.time() < start:
            time.sleep(0.001)
        open_registry(sys.argv[1]).publish(sys.argv[2])
    """)
    import time

    start = time.time() + 4.0  # both past their imports, then go together
    procs = [subprocess.Popen([sys.executable, "-c", script, str(reg), str(p.path), str(start)]) for p in patches]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    from llmpatch.registry import open_registry

    idx = open_registry(str(reg)).index()
    assert idx.names() == ["fix-0", "fix-1"] and idx.index_version == 2


def test_tampering_is_refused_with_a_clear_message_and_nothing_is_fetched(make_patch, tmp_path):
    reg = tmp_path / "registry"
    run("key", "generate", "acme")
    run("key", "trust", tmp_path / "llmpatch-home" / "keys" / "acme.pub", "--registry", reg)
    run("publish", make_patch("tox-fix", "1.0.0").path, "--registry", reg, "--key", "acme")
    f = reg / "patches/tox-fix/1.0.0/adapter_model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    res = run("fetch", "tox-fix@1.0.0", tmp_path / "out", "--registry", reg, ok=False)
    assert res.exit_code == 1 and "error: tox-fix@1.0.0" in res.stderr and "the index says" in res.stderr
    assert "hint:" in res.stderr and not (tmp_path / "out").exists()


def test_an_untrusted_signer_is_refused_with_a_trust_hint(make_patch, tmp_path):
    reg = tmp_path / "registry"
    run("key", "generate", "mallory")
    run("publish", make_patch("tox-fix", "1.0.0").path, "--registry", reg, "--key", "mallory")
    run("key", "generate", "acme")
    run("key", "trust", tmp_path / "llmpatch-home" / "keys" / "acme.pub", "--registry", reg)
    res = run("search", "--registry", reg, ok=False)
    assert "not trusted for this registry" in res.stderr and "llmpatch key trust" in res.stderr


def test_key_list_shows_own_and_trusted_keys(tmp_path):
    run("key", "generate", "acme")
    run("key", "trust", tmp_path / "llmpatch-home" / "keys" / "acme.pub", "--registry", tmp_path / "r")
    out = run_json("key", "list", "--registry", tmp_path / "r")
    assert [k["name"] for k in out["own"]] == ["acme"] and out["trusted"][0]["keyid"] == out["own"][0]["keyid"]


def test_registry_init_can_require_signatures(make_patch, tmp_path):
    reg = tmp_path / "registry"
    run("registry", "init", reg, "--require-signatures")
    res = run("publish", make_patch("tox-fix", "1.0.0").path, "--registry", reg, ok=False)
    assert "requires signed patches" in res.stderr and not (reg / "index.json").exists()


def test_yank_needs_an_exact_version(tmp_path):
    res = run("yank", "tox-fix@^1", "--registry", tmp_path / "r", ok=False)
    assert res.exit_code == 2 and "exact version" in res.stderr
