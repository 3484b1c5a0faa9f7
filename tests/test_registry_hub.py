"""The Hub backend against a local HTTP server speaking the Hub API, driven by the real huggingface_hub client."""

from __future__ import annotations

import threading

import pytest
from huggingface_hub import HfApi, hf_hub_download

from llmpatch import signing
from llmpatch.errors import AlreadyPublishedError, FreshnessError, RegistryError, SignatureError
from llmpatch.registry import RegistryConfig, open_registry

@pytest.fixture
def reg(hub):
    return open_registry(f"hf://acme/llmpatch-index?endpoint={hub.url}")


def test_publish_creates_the_patch_repo_tags_the_version_and_records_its_commit_id(hub, reg, make_patch):
    patch = make_patch("tox-fix", "1.2.0", domains=["toxicity"],
                       evals=[{"suite": "rtp", "metric": "toxicity", "value": 0.1, "base_value": 0.4}])
    entry = reg.publish(patch.path)
    assert entry.location["repo_id"] == "acme/tox-fix" and entry.location["tag"] == "v1.2.0"
    api = HfApi(endpoint=hub.url)
    refs = api.list_repo_refs("acme/tox-fix")
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.2.0", entry.location["revision"])]
    card = open(hf_hub_download("acme/tox-fix", "README.md", revision=entry.location["revision"], endpoint=hub.url)).read()
    assert "base_model:" in card and "toxicity" in card and "rtp" in card
    index_files = {s.rfilename for s in api.model_info("acme/llmpatch-index").siblings}
    assert "index.json" in index_files
    assert reg.index().get("tox-fix", "1.2.0") == entry


def test_fetch_downloads_by_commit_id_even_after_the_tag_moves(hub, reg, make_patch, tmp_path):
    from llmpatch.artifact import read_patch

    p1 = make_patch("tox-fix", "1.0.0")
    e1 = reg.publish(p1.path)
    reg.publish(make_patch("tox-fix", "1.1.0").path)
    hub.repos["acme/tox-fix"].tags["v1.0.0"] = hub.repos["acme/tox-fix"].branches["main"]  # a moved tag
    out = reg.fetch("tox-fix", "1.0.0", tmp_path / "got")
    assert read_patch(out).payload_sha256 == p1.payload_sha256
    assert any(path.endswith(f"/resolve/{e1.location['revision']}/adapter_model.safetensors") for _, path in hub.requests)


def test_an_index_update_racing_another_publisher_retries_and_keeps_both(hub, reg, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    other = open_registry(reg.url)
    bias = make_patch("bias-fix", "1.0.0")
    fired = []

    def sneak_in(repo_id: str) -> None:
        # Between our read of the index and our commit, another publisher lands its own.
        if repo_id == "acme/llmpatch-index" and not fired:
            fired.append(repo_id)
            hub.before_commit = None
            other.publish(bias.path)

    hub.before_commit = sneak_in
    reg.publish(make_patch("tox-fix", "1.1.0").path)
    idx = reg.index()
    assert fired and idx.index_version == 3
    assert {e.id for e in idx.entries()} == {"tox-fix@1.0.0", "tox-fix@1.1.0", "bias-fix@1.0.0"}
    # first publish, our refused attempt (HTTP 412), the other publisher's, our retry
    assert [p for m, p in hub.requests if m == "POST"].count("/api/models/acme/llmpatch-index/commit/main") == 4


def test_two_threads_publishing_at_once_both_land(hub, reg, make_patch):
    patches = [make_patch(f"fix-{i}", "1.0.0") for i in range(2)]
    errors = []

    def go(p):
        try:
            open_registry(reg.url).publish(p.path)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(p,)) for p in patches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and reg.index().names() == ["fix-0", "fix-1"]


def test_a_bad_token_is_refused_with_a_login_hint_and_nothing_is_indexed(hub, reg, make_patch, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(RegistryError, match="rejected the credentials") as info:
        reg.publish(make_patch("tox-fix", "1.0.0").path)
    assert "hf auth login" in info.value.hint
    assert "acme/llmpatch-index" not in hub.repos


def test_a_network_failure_mid_upload_leaves_the_index_without_that_version(hub, reg, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    hub.drop_commits_to.add("acme/tox-fix")
    patch = make_patch("tox-fix", "1.1.0")
    with pytest.raises(RegistryError, match="could not reach the Hub"):
        reg.publish(patch.path)
    assert [e.version for e in reg.index().versions("tox-fix")] == ["1.0.0"]
    hub.drop_commits_to.clear()
    reg.publish(patch.path)  # a retry succeeds
    assert [e.version for e in reg.index().versions("tox-fix")] == ["1.1.0", "1.0.0"]


def test_a_version_already_on_the_hub_is_refused(reg, make_patch, tmp_path):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    with pytest.raises(AlreadyPublishedError):
        reg.publish(make_patch("tox-fix", "1.0.0", seed=3, out=tmp_path / "again").path)


def test_signed_hub_registry_verifies_and_refuses_a_rolled_back_index(hub, reg, make_patch, tmp_path):
    key = signing.generate_key("acme")
    reg.init(RegistryConfig(require_signatures=True))
    patch = make_patch("tox-fix", "1.0.0")
    with pytest.raises(SignatureError, match="requires signed patches"):
        reg.publish(patch.path)
    reg.publish(patch.path, key=key)
    reg.trust.trust(key.public)
    assert reg.index().index_version == 1
    old_head = hub.repos["acme/llmpatch-index"].branches["main"]
    reg.yank("tox-fix", "1.0.0", reason="bad", key=key)
    assert reg.index().get("tox-fix", "1.0.0").yanked
    hub.repos["acme/llmpatch-index"].branches["main"] = old_head  # a replayed old index
    with pytest.raises(FreshnessError, match="older than version 2"):
        reg.index()


def test_registry_urls_are_checked():
    with pytest.raises(RegistryError, match="expected hf://ORG/INDEX-REPO"):
        open_registry("hf://just-an-org")
