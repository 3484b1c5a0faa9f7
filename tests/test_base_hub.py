"""Hub base specs resolve through the real huggingface_hub client (against a local Hub server)."""

from __future__ import annotations

import re

import pytest
from huggingface_hub import HfApi

from hub_server import TOKEN
from llmpatch import base
from llmpatch.errors import BaseModelError, UnsafeFormatError

def _upload(hub, repo, folder, tag=None):
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo(repo, exist_ok=True)
    info = api.upload_folder(repo_id=repo, folder_path=str(folder))
    if tag:
        api.create_tag(repo, tag=tag, revision=info.oid)
    return info.oid


def test_hub_base_resolves_a_tag_to_its_commit_id_and_fingerprints_like_the_local_copy(hub, tiny_model_dir):
    commit = _upload(hub, "acme/tiny-base", tiny_model_dir, tag="v1")
    info = base.identify("acme/tiny-base@v1")
    assert re.fullmatch(r"[0-9a-f]{40}", info.revision) and info.revision == commit
    assert info.id == "acme/tiny-base"
    assert info.fingerprint == base.identify(str(tiny_model_dir)).fingerprint
    # pinning the commit id gives the same base; the branch name resolves to the same commit
    assert base.identify(f"acme/tiny-base@{commit}").fingerprint == info.fingerprint
    assert base.identify("acme/tiny-base").revision == commit


def test_a_moved_tag_resolves_to_the_new_commit_and_a_new_fingerprint(hub, tiny_model_dir, other_tiny_model_dir):
    first = _upload(hub, "acme/moving", tiny_model_dir, tag="stable")
    before = base.identify("acme/moving@stable")
    api = HfApi(endpoint=hub.url, token=TOKEN)
    second = api.upload_folder(repo_id="acme/moving", folder_path=str(other_tiny_model_dir)).oid
    api.delete_tag("acme/moving", tag="stable")
    api.create_tag("acme/moving", tag="stable", revision=second)
    after = base.identify("acme/moving@stable")
    assert (before.revision, after.revision) == (first, second)
    assert before.fingerprint != after.fingerprint


def test_unknown_hub_revision_is_a_clear_error(hub, tiny_model_dir):
    _upload(hub, "acme/tiny-base", tiny_model_dir)
    with pytest.raises(BaseModelError, match="revision 'no-such-tag' of acme/tiny-base not found"):
        base.identify("acme/tiny-base@no-such-tag")


def test_unknown_hub_model_is_a_clear_error(hub):
    with pytest.raises(BaseModelError, match="'acme/nothing' not found or not accessible") as ei:
        base.identify("acme/nothing")
    assert "hf auth login" in ei.value.hint


def test_a_hub_base_with_only_pickle_weights_is_refused(hub, tiny_model_dir, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "pickled")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    _upload(hub, "acme/pickled", folder)
    with pytest.raises(UnsafeFormatError, match="pickle"):
        base.identify("acme/pickled")
