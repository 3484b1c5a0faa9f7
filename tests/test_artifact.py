"""The patch artifact: peft-compatible, pinned by sha256, refusing anything unverifiable."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from llmpatch import artifact
from llmpatch.cli import cli
from llmpatch.errors import IntegrityError, LlmpatchError, ManifestError, UnsafeFormatError
from llmpatch.manifest import Manifest


def _rehash(patch_dir, rel):
    """Update the manifest so that ``rel`` matches its (tampered) content: tests the next check."""
    m = json.loads((patch_dir / "llmpatch.json").read_text())
    f = patch_dir / rel
    m["files"][rel] = {"sha256": artifact.sha256_file(f), "size": f.stat().st_size}
    (patch_dir / "llmpatch.json").write_text(json.dumps(m))


def test_written_patch_reads_back_with_the_same_embeddings_and_manifest(make_patch):
    p = make_patch("tox-fix", "1.2.1", tokens=7, requires={}, evals=[{"suite": "toxicity", "metric": "mean", "value": 0.1}])
    again = artifact.read_patch(p.path)
    assert torch.equal(again.embeddings, p.embeddings)
    assert again.manifest == p.manifest
    assert sorted(x.name for x in p.path.iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors", "llmpatch.json"]
    assert p.manifest.num_virtual_tokens == 7 and p.embeddings.shape == (7, 64)


def test_plain_peft_loads_the_patch_and_its_prompt_embeddings_match(make_patch, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    p = make_patch()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(p.path))
    loaded = model.get_prompt_embedding_to_save("default")
    assert torch.allclose(loaded, p.embeddings)


def test_adapter_config_records_the_text_init_and_plain_peft_loads_it_without_the_tokenizer(
        make_patch, tiny_model_dir, monkeypatch):
    import transformers
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    text = "Continue the text politely."
    p = make_patch(init=f"text:{text}")
    cfg = json.loads((p.path / "adapter_config.json").read_text())
    assert cfg["prompt_tuning_init"] == "TEXT" and cfg["prompt_tuning_init_text"] == text
    assert cfg["tokenizer_name_or_path"] == p.manifest.base.id
    assert p.manifest.init == f"text:{text}"

    def no_tokenizer(*args, **kwargs):
        raise AssertionError("loading a patch must not load the init tokenizer")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_tokenizer)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(p.path))
    assert torch.equal(model.get_prompt_embedding_to_save("default"), p.embeddings)

    for init in (None, "random"):
        cfg = json.loads((make_patch(version="1.0.1" if init else "1.0.2", init=init).path / "adapter_config.json").read_text())
        assert cfg["prompt_tuning_init"] == "RANDOM" and cfg["tokenizer_name_or_path"] is None


def test_model_card_has_hub_metadata(make_patch):
    p = make_patch(domains=["toxicity", "gender_bias"])
    card = (p.path / "README.md").read_text()
    assert card.startswith("---\n")
    assert "library_name: peft" in card and "base_model:" in card
    assert "gender_bias" in card and p.manifest.base.fingerprint in card


def test_changed_payload_byte_is_refused_naming_the_file(make_patch):
    p = make_patch()
    f = p.path / "adapter_model.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"sha256 of adapter_model.safetensors is .* the manifest says") as ei:
        artifact.read_patch(p.path)
    assert "fetch the patch again" in ei.value.hint


def test_truncated_safetensors_is_refused_by_size(make_patch):
    p = make_patch()
    f = p.path / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(IntegrityError, match="truncated or modified"):
        artifact.read_patch(p.path)


def test_corrupt_safetensors_with_a_matching_digest_is_refused_as_unreadable(make_patch):
    p = make_patch()
    f = p.path / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:60])
    _rehash(p.path, "adapter_model.safetensors")
    with pytest.raises(IntegrityError, match="not a readable safetensors file"):
        artifact.read_patch(p.path)


def test_wrong_tensor_shape_is_refused(make_patch):
    p = make_patch(tokens=5)
    save_file({"prompt_embeddings": torch.zeros(4, 64)}, str(p.path / "adapter_model.safetensors"))
    _rehash(p.path, "adapter_model.safetensors")
    with pytest.raises(IntegrityError, match=r"shape \(4, 64\), the manifest says \(5, 64\)"):
        artifact.read_patch(p.path)


@pytest.mark.parametrize("name", ["adapter_model.bin", "weights.pt", "extra.pkl"])
def test_pickle_payload_is_refused_before_anything_is_loaded(make_patch, name):
    p = make_patch()
    (p.path / name).write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UnsafeFormatError, match="pickle") as ei:
        artifact.read_patch(p.path)
    assert name in str(ei.value) and "safetensors" in str(ei.value)


def test_unlisted_file_is_refused(make_patch):
    p = make_patch()
    (p.path / "notes.txt").write_text("hello")
    with pytest.raises(IntegrityError, match="does not cover: notes.txt"):
        artifact.read_patch(p.path)


def test_missing_listed_file_is_refused(make_patch):
    p = make_patch()
    (p.path / "README.md").unlink()
    with pytest.raises(IntegrityError, match="README.md listed in the manifest is missing"):
        artifact.read_patch(p.path)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda m: m.pop("base"), "'base' is a required property"),
        (lambda m: m.update(version="1.2"), "at version"),
        (lambda m: m.update(name="Tox Fix"), "at name"),
        (lambda m: m["base"].update(fingerprint="md5:abc"), "at base/fingerprint"),
        (lambda m: m.update(schema_version=1, extra_field=1), "Additional properties"),
        (lambda m: m["requires"].update({"bias-fix": "^^2"}), "not a valid version range"),
    ],
)
def test_manifest_failing_the_schema_is_refused_with_the_offending_field(make_patch, mutate, expected):
    p = make_patch()
    m = json.loads((p.path / "llmpatch.json").read_text())
    mutate(m)
    (p.path / "llmpatch.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match=expected):
        artifact.read_patch(p.path)


def test_manifest_from_the_future_fails_loudly(make_patch):
    p = make_patch()
    m = json.loads((p.path / "llmpatch.json").read_text())
    m["schema_version"] = 99
    with pytest.raises(ManifestError, match="newer than this llmpatch understands"):
        Manifest.from_dict(m)


def test_manifest_that_is_not_json_is_refused(make_patch):
    p = make_patch()
    (p.path / "llmpatch.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        artifact.read_patch(p.path)


def test_write_patch_with_bad_input_writes_nothing(make_patch, tmp_path, tiny_model_dir):
    from llmpatch import base

    ref = base.identify(str(tiny_model_dir)).to_ref()
    out = tmp_path / "out" / "p"
    with pytest.raises(LlmpatchError, match="invalid patch name"):
        artifact.write_patch(out, torch.zeros(3, 64), name="Bad Name", version="1.0.0", summary="s", domains=["toxicity"], base=ref)
    with pytest.raises(LlmpatchError, match="invalid version"):
        artifact.write_patch(out, torch.zeros(3, 64), name="ok", version="v1", summary="s", domains=["toxicity"], base=ref)
    with pytest.raises(LlmpatchError, match=r"embeddings must be \(num_virtual_tokens, 64\)"):
        artifact.write_patch(out, torch.zeros(3, 65), name="ok", version="1.0.0", summary="s", domains=["toxicity"], base=ref)
    assert not out.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_write_patch_refuses_to_overwrite_an_existing_patch(make_patch):
    p = make_patch()
    before = (p.path / "llmpatch.json").read_text()
    with pytest.raises(LlmpatchError, match="already exists"):
        make_patch(out=p.path)
    assert (p.path / "llmpatch.json").read_text() == before


def test_inspect_shows_a_verified_patch_and_json(make_patch):
    p = make_patch("bias-fix", "2.0.0")
    r = CliRunner().invoke(cli, ["inspect", str(p.path), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["verified"] is True and data["manifest"]["name"] == "bias-fix"
    r = CliRunner().invoke(cli, ["inspect", str(p.path)])
    assert r.exit_code == 0 and "bias-fix@2.0.0" in r.output


def test_inspect_of_a_tampered_patch_exits_nonzero_with_a_hint(make_patch):
    p = make_patch()
    shutil.copy(p.path / "README.md", p.path / "adapter_config.json")
    r = CliRunner().invoke(cli, ["inspect", str(p.path)])
    assert r.exit_code == 1
    assert "error:" in r.output and "adapter_config.json" in r.output and "modified" in r.output and "hint:" in r.output
