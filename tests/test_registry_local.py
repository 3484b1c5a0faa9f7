"""The local registry: publish, index, search, show, fetch, yank, immutability and refusals."""

from __future__ import annotations

import json
import shutil

import pytest

from llmpatch.errors import AlreadyPublishedError, IntegrityError, ManifestError, NotFoundError, SignatureError
from llmpatch.registry import RegistryConfig, open_registry


def test_publish_records_files_digests_base_and_location_in_the_index(reg, make_patch):
    patch = make_patch("tox-fix", "1.0.0", domains=["toxicity"])
    entry = reg.publish(patch.path)
    idx = reg.index()
    assert idx.index_version == 1 and idx.names() == ["tox-fix"]
    got = idx.get("tox-fix", "1.0.0")
    assert got == entry
    assert got.base_fingerprint == patch.manifest.base.fingerprint
    assert got.files["adapter_model.safetensors"]["sha256"] == patch.payload_sha256
    assert set(got.files) == {"adapter_config.json", "adapter_model.safetensors", "README.md", "llmpatch.json"}
    assert got.location == {"path": "patches/tox-fix/1.0.0"} and not got.yanked and got.signature is None


def test_fetch_returns_a_verified_copy_in_a_new_directory(reg, make_patch, tmp_path):
    from llmpatch.artifact import read_patch

    patch = make_patch("tox-fix", "1.0.0")
    reg.publish(patch.path)
    out = reg.fetch("tox-fix", "1.0.0", tmp_path / "out" / "p")
    assert read_patch(out).payload_sha256 == patch.payload_sha256


def test_publishing_an_existing_version_is_refused_and_changes_nothing(reg, make_patch, tmp_path):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    before = (reg.root / "index.json").read_bytes()
    other = make_patch("tox-fix", "1.0.0", seed=7, out=tmp_path / "again")
    with pytest.raises(AlreadyPublishedError, match="tox-fix@1.0.0 is already in registry"):
        reg.publish(other.path)
    assert (reg.root / "index.json").read_bytes() == before


def test_versions_are_newest_first_and_yanked_ones_are_hidden_from_search_only(reg, make_patch):
    for v in ("1.0.0", "1.10.0", "1.2.0"):
        reg.publish(make_patch("tox-fix", v).path)
    reg.yank("tox-fix", "1.10.0", reason="regression")
    idx = reg.index()
    assert [e.version for e in idx.versions("tox-fix")] == ["1.10.0", "1.2.0", "1.0.0"]
    assert idx.get("tox-fix", "1.10.0").yanked and idx.get("tox-fix", "1.10.0").yank_reason == "regression"
    assert [e.version for e in idx.search("tox")] == ["1.2.0", "1.0.0"]
    reg.yank("tox-fix", "1.10.0", undo=True)
    assert not reg.index().get("tox-fix", "1.10.0").yanked
    assert reg.index().index_version == 5


def test_search_matches_words_in_name_summary_and_domain_filters(reg, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0", summary="Lowers toxicity", domains=["toxicity"]).path)
    reg.publish(make_patch("bias-fix", "2.0.0", summary="Gender neutral answers", domains=["gender_bias"]).path)
    idx = reg.index()
    assert [e.name for e in idx.search("GENDER answers")] == ["bias-fix"]
    assert [e.name for e in idx.search(domain="toxicity")] == ["tox-fix"]
    assert idx.search("nothing-like-this") == []
    assert len(idx.search(base_fingerprint="sha256:" + "0" * 64)) == 0


def test_unknown_names_and_versions_raise_not_found_naming_what_exists(reg, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    with pytest.raises(NotFoundError, match=r"no version '9.9.9'.*versions: 1.0.0"):
        reg.index().get("tox-fix", "9.9.9")
    with pytest.raises(NotFoundError, match="no patch named 'tox'.*similar: tox-fix"):
        reg.index().get("tox", "1.0.0")


def test_a_payload_not_matching_its_manifest_is_refused_at_publish(reg, make_patch):
    patch = make_patch("tox-fix", "1.0.0")
    f = patch.path / "adapter_model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256 of adapter_model.safetensors"):
        reg.publish(patch.path)
    assert not (reg.root / "index.json").exists()


def test_a_manifest_failing_the_schema_is_refused_at_publish(reg, make_patch):
    patch = make_patch("tox-fix", "1.0.0")
    m = json.loads((patch.path / "llmpatch.json").read_text())
    m["domains"] = []
    (patch.path / "llmpatch.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="domains"):
        reg.publish(patch.path)
    assert not (reg.root / "index.json").exists()


def test_a_registry_requiring_signatures_refuses_unsigned_patches(reg, make_patch):
    reg.init(RegistryConfig(require_signatures=True))
    with pytest.raises(SignatureError, match="requires signed patches"):
        reg.publish(make_patch("tox-fix", "1.0.0").path)
    assert not (reg.root / "index.json").exists()


def test_fetch_of_a_tampered_registry_copy_fails_and_leaves_no_directory(reg, make_patch, tmp_path):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    f = reg.root / "patches/tox-fix/1.0.0/adapter_model.safetensors"
    data = bytearray(f.read_bytes())
    data[200] ^= 1
    f.write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError, match="adapter_model.safetensors has sha256 .* the index says"):
        reg.fetch("tox-fix", "1.0.0", dest)
    assert not dest.exists()


def test_a_manifest_swapped_for_another_versions_is_refused_at_fetch(reg, make_patch, tmp_path):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    reg.publish(make_patch("tox-fix", "2.0.0").path)
    shutil.rmtree(reg.root / "patches/tox-fix/1.0.0")
    shutil.copytree(reg.root / "patches/tox-fix/2.0.0", reg.root / "patches/tox-fix/1.0.0")
    dest = tmp_path / "dest"
    with pytest.raises(IntegrityError, match="the index says"):
        reg.fetch("tox-fix", "1.0.0", dest)
    assert not dest.exists()


def test_file_urls_open_the_same_local_registry(reg, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    again = open_registry(reg.root.as_uri())
    assert again.index().names() == ["tox-fix"]


def test_the_default_registry_lives_in_the_llmpatch_home(llmpatch_home):
    assert open_registry().url == str(llmpatch_home / "registry")
