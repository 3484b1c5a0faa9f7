"""Issue #16, critical: trust and freshness hold under every spelling of a registry, and untrusting is explicit.

The attack: with the vendor key trusted for ``DIR/reg``, someone who can write the registry puts
harm-fix's payload into ``patches/tox-fix/1.0.0``, fixes the digests, drops the signatures, and
asks the customer to install through another spelling of the same registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from clihelp import refused, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmpatch import signing
from llmpatch.errors import FreshnessError, SignatureError
from llmpatch.registry import RegistryConfig, open_registry


def cli_run(*args, ok: bool | None = True):
    """Run the CLI; ``ok=False`` asserts a clean refusal (non-zero exit, no traceback)."""
    return refused(*args) if ok is False else run(*args, ok=bool(ok))


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def swap_payload_unsigned(root: Path, name: str, version: str, donor: str) -> None:
    """The attacker: serve ``donor``'s payload as ``name@version`` with consistent digests and no signatures."""
    target, source = root / "patches" / name / version, root / "patches" / donor / "1.0.0"
    shutil.copyfile(source / "adapter_model.safetensors", target / "adapter_model.safetensors")
    manifest = json.loads((target / "llmpatch.json").read_text())
    payload = target / "adapter_model.safetensors"
    manifest["files"]["adapter_model.safetensors"] = {"sha256": _sha(payload), "size": payload.stat().st_size}
    (target / "llmpatch.json").write_text(json.dumps(manifest, indent=2))
    index = json.loads((root / "index.json").read_text())
    entry = index["patches"][name]["versions"][version]
    entry["files"]["adapter_model.safetensors"] = manifest["files"]["adapter_model.safetensors"]
    entry["files"]["llmpatch.json"] = {"sha256": _sha(target / "llmpatch.json"), "size": (target / "llmpatch.json").stat().st_size}
    entry["manifest_sha256"] = _sha(target / "llmpatch.json")
    entry["signature"] = None
    index["index_version"] += 1
    (root / "index.json").write_text(json.dumps(index))
    (root / "index.sig.json").unlink()


@pytest.fixture
def vendor_registry(tmp_path, make_patch):
    """DIR/reg: tox-fix 1.0.0 and harm-fix 1.0.0, signed by the vendor, whose key the customer trusts for DIR/reg."""
    vendor = signing.generate_key("acme")
    root = tmp_path / "DIR" / "reg"
    reg = open_registry(str(root))
    reg.init(RegistryConfig(require_signatures=True))
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    reg.publish(make_patch("harm-fix", "1.0.0").path, key=vendor)
    signing.TrustStore(str(root)).trust(vendor.public)
    return root


def spellings(root: Path) -> list[str]:
    return [str(root), f"{root.parent}/./{root.name}", f"{root}/", f"file://{root}", f"{root}//",
            f"{root.parent}/../{root.parent.name}/{root.name}", f"file://localhost{root}"]


@pytest.fixture
def customer(tmp_path, monkeypatch, tiny_model_dir):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


@pytest.mark.parametrize("spelling", [lambda r: str(r), lambda r: f"{r.parent}/./{r.name}", lambda r: f"{r}/",
                                      lambda r: f"file://{r}"], ids=["plain", "dot", "slash", "file-url"])
def test_an_unsigned_swapped_payload_is_refused_under_every_spelling_of_a_trusted_registry(
        vendor_registry, customer, tiny_model_dir, spelling):
    cli_run("init", "--base", tiny_model_dir)
    swap_payload_unsigned(vendor_registry, "tox-fix", "1.0.0", "harm-fix")
    res = cli_run("install", "tox-fix@1.0.0", "--registry", spelling(vendor_registry), ok=False)
    assert "unsigned" in res.output
    assert not any((customer / ".llmpatch" / "store").iterdir())


def test_init_with_another_spelling_then_a_plain_install_is_refused(vendor_registry, customer, tiny_model_dir):
    cli_run("init", "--base", tiny_model_dir, "--registry", f"{vendor_registry}/")
    swap_payload_unsigned(vendor_registry, "tox-fix", "1.0.0", "harm-fix")
    assert "unsigned" in cli_run("install", "tox-fix@1.0.0", ok=False).output


def test_a_relative_registry_means_the_same_registry_from_any_directory(vendor_registry, customer, tiny_model_dir):
    rel = os.path.relpath(vendor_registry, customer)
    cli_run("init", "--base", tiny_model_dir, "--registry", rel)
    env_cfg = json.loads((customer / ".llmpatch" / "environment.json").read_text())
    assert env_cfg["registry"] == str(vendor_registry.resolve())


def test_a_replayed_older_signed_index_is_refused_under_another_spelling(vendor_registry, make_patch):
    old_index, old_sig = (vendor_registry / "index.json").read_bytes(), (vendor_registry / "index.sig.json").read_bytes()
    reg = open_registry(str(vendor_registry))
    reg.publish(make_patch("tox-fix", "1.1.0").path, key=signing.load_key("acme"))
    reg.index()  # the client sees the newer index
    (vendor_registry / "index.json").write_bytes(old_index)
    (vendor_registry / "index.sig.json").write_bytes(old_sig)
    for url in spellings(vendor_registry):
        with pytest.raises(FreshnessError, match="older than version"):
            open_registry(url).index()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_trust_and_freshness_state_is_shared_by_every_spelling_of_a_registry(tmp_path, data):
    root = tmp_path / "DIR" / "reg"
    root.mkdir(parents=True, exist_ok=True)
    link = tmp_path / "link-to-reg"
    if not link.exists():
        link.symlink_to(root)
    parts = [str(root), str(link)]
    base = data.draw(st.sampled_from(parts))
    extra_slashes = data.draw(st.integers(0, 3))
    dots = data.draw(st.integers(0, 2))
    spelled = base.replace("/reg", "/" + "./" * dots + "reg") if "/reg" in base else base
    spelled = spelled.replace("/DIR/", "/DIR" + "/" * (1 + extra_slashes)) + "/" * data.draw(st.integers(0, 2))
    if data.draw(st.booleans()):
        spelled = "file://" + spelled.replace(" ", "%20")
    cwd = data.draw(st.sampled_from([tmp_path, root.parent]))
    old = os.getcwd()
    os.chdir(cwd)
    try:
        if data.draw(st.booleans()) and not spelled.startswith("file://"):
            spelled = os.path.relpath(spelled, cwd)
        assert signing.TrustStore(spelled).root == signing.TrustStore(str(root)).root
        assert open_registry(spelled).url == str(root.resolve())
    finally:
        os.chdir(old)


def test_a_registry_once_trusted_keeps_requiring_signatures_after_its_last_key_is_untrusted(vendor_registry):
    trust = signing.TrustStore(str(vendor_registry))
    (keyid,) = trust.keys()
    trust.untrust(keyid)
    swap_payload_unsigned(vendor_registry, "tox-fix", "1.0.0", "harm-fix")
    with pytest.raises(SignatureError, match="now has none"):
        open_registry(f"{vendor_registry}/").index()


def test_trust_written_by_an_older_version_under_another_spelling_is_adopted(tmp_path, vendor_registry):
    trust_root = signing.TrustStore(str(vendor_registry)).root
    legacy = trust_root.parent / signing.registry_slug(f"{vendor_registry.parent}/./reg")
    trust_root.rename(legacy)
    state = json.loads((legacy / "state.json").read_text())
    state["url"] = f"{vendor_registry.parent}/./reg"
    state.pop("require_signatures")
    (legacy / "state.json").write_text(json.dumps(state))
    swap_payload_unsigned(vendor_registry, "tox-fix", "1.0.0", "harm-fix")
    with pytest.raises(SignatureError, match="unsigned"):
        open_registry(str(vendor_registry)).index()


def test_untrust_with_an_empty_or_partial_key_id_removes_nothing(vendor_registry):
    for bad in ("", "a", signing.load_key("acme").keyid[:16]):
        res = cli_run("key", "untrust", bad, "--registry", vendor_registry, ok=False)
        assert "full key id" in res.output
    assert len(signing.TrustStore(str(vendor_registry)).keys()) == 1


def test_untrust_all_is_explicit_and_warns_that_the_registry_becomes_unverified(vendor_registry):
    res = cli_run("key", "untrust", "--all", "--registry", vendor_registry)
    assert "unverified" in res.output
    trust = signing.TrustStore(str(vendor_registry))
    assert trust.keys() == {} and not trust.configured


def test_untrust_by_full_id_removes_that_key(vendor_registry):
    keyid = signing.load_key("acme").keyid
    assert "signatures are still required" in cli_run("key", "untrust", keyid, "--registry", vendor_registry).output


def test_fetch_names_the_registry_it_used(vendor_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPATCH_REGISTRY", str(vendor_registry))
    out = " ".join(cli_run("fetch", "tox-fix@1.0.0", tmp_path / "out").output.split())
    assert f"from registry {vendor_registry}" in out


@pytest.mark.parametrize("where,message", [("/nonexistent-llmpatch-reg", "does not exist"),
                                           ("/etc/hostname", "not a directory"),
                                           ("ftp://x", "unsupported registry scheme")])
def test_a_registry_that_is_not_there_is_an_error_not_an_empty_registry(where, message):
    res = cli_run("search", "tox", "--registry", where, ok=False)
    assert message in res.output and "Traceback" not in res.output
