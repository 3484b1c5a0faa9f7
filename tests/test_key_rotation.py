"""Issue #16: key rotation and revocation.

A vendor whose key leaks publishes a new root of trust (``llmpatch key rotate OLD NEW``) that
customers accept (``llmpatch key accept``) only when it is signed by the key they already trust;
the old key is then revoked, and everything signed by it is refused from then on, on every
registry. Every refusal leaves the trust store byte for byte as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clihelp import refused, run, run_json

from llmpatch import paths, signing
from llmpatch.errors import SchemaError, SignatureError
from llmpatch.registry import RegistryConfig, open_registry
from llmpatch.registry.cache import forget_parsed


def trust_snapshot() -> dict[str, bytes]:
    """Every file under the trust directory, with its bytes."""
    root = paths.trust_dir()
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def keys():
    """The vendor's leaked key ``acme`` and its replacement ``acme-2027``."""
    return signing.generate_key("acme"), signing.generate_key("acme-2027")


@pytest.fixture
def signed_registry(tmp_path, make_patch, keys):
    """A registry with tox-fix 1.0.0 signed by ``acme``, which the customer trusts."""
    old, _ = keys
    forget_parsed()
    root = tmp_path / "reg"
    reg = open_registry(str(root))
    reg.init(RegistryConfig(require_signatures=True))
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=old)
    signing.TrustStore(str(root)).trust(old.public)
    return root


@pytest.fixture
def rotation_file(tmp_path, keys) -> Path:
    run("key", "rotate", "acme", "acme-2027", "-o", tmp_path / "rotation.json", "--reason", "leaked in CI logs")
    return tmp_path / "rotation.json"


def test_a_rotation_signed_by_the_trusted_old_key_is_accepted_and_revokes_it(signed_registry, rotation_file, keys):
    old, new = keys
    out = run_json("key", "accept", rotation_file, "--registry", signed_registry)
    assert out == {"registry": str(signed_registry), "trusted": new.keyid, "revoked": old.keyid, "changed": True,
                   "dry_run": False, "reason": "leaked in CI logs"}
    trust = signing.TrustStore(str(signed_registry))
    assert set(trust.keys()) == {new.keyid}
    rev = trust.revoked()[old.keyid]
    assert rev.replaced_by == new.keyid and rev.reason == "leaked in CI logs"
    assert rev.rotation_sha256 == signing.KeyRotation.read(rotation_file).sha256
    listing = run_json("key", "list", "--registry", signed_registry)
    assert [r["keyid"] for r in listing["revoked"]] == [old.keyid]
    assert listing["trusted"] == [{"keyid": new.keyid}]


def test_accepting_the_same_rotation_again_changes_nothing(signed_registry, rotation_file):
    run("key", "accept", rotation_file, "--registry", signed_registry)
    before = trust_snapshot()
    assert run_json("key", "accept", rotation_file, "--registry", signed_registry)["changed"] is False
    assert trust_snapshot() == before


def test_a_dry_run_accept_reports_and_writes_nothing(signed_registry, rotation_file, keys):
    before = trust_snapshot()
    out = run_json("key", "accept", rotation_file, "--registry", signed_registry, "--dry-run")
    assert out["changed"] is True and out["dry_run"] is True and out["trusted"] == keys[1].keyid
    assert trust_snapshot() == before


def test_a_rotation_endorsed_by_a_key_not_trusted_here_is_refused_and_changes_nothing(signed_registry, tmp_path):
    signing.generate_key("mallory")
    signing.generate_key("mallory-2")
    run("key", "rotate", "mallory", "mallory-2", "-o", tmp_path / "evil.json")
    before = trust_snapshot()
    res = refused("key", "accept", tmp_path / "evil.json", "--registry", signed_registry)
    assert "not trusted for registry" in res.output and "endorses it" in res.output
    assert trust_snapshot() == before


def test_a_rotation_whose_old_signature_is_forged_is_refused_and_changes_nothing(signed_registry, keys, tmp_path):
    """The attacker names the trusted key as the old one but cannot sign with it."""
    old, _ = keys
    attacker = signing.SigningKey.generate("attacker")
    forged = signing.KeyRotation.create(signing.SigningKey.generate("x"), attacker)
    d = forged.to_dict()
    d["statement"]["old_keyid"] = old.keyid
    body = signing.canonical_json(d["statement"])
    d["signed_by_new"] = attacker.sign(signing.ROTATION_PAYLOAD, body)
    d["signed_by_old"] = {**attacker.sign(signing.ROTATION_PAYLOAD, body), "keyid": old.keyid}
    (tmp_path / "forged.json").write_text(json.dumps(d))
    before = trust_snapshot()
    res = refused("key", "accept", tmp_path / "forged.json", "--registry", signed_registry)
    assert "does not verify" in res.output
    assert trust_snapshot() == before


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["statement"].update(revoke_old=False), "does not verify"),  # the new key's signature breaks
    (lambda d: d["statement"].update(new_keyid="0" * 64), "is not the id of new_public_key"),
    (lambda d: d.pop("signed_by_old"), "signed_by_old"),
    (lambda d: d.update(signed_by_old=d["signed_by_new"]), "not by the key being replaced"),
    (lambda d: d.update(schema_version=2), "newer than this llmpatch"),
], ids=["edited-statement", "wrong-new-keyid", "no-old-signature", "self-signed-only", "future-version"])
def test_an_edited_rotation_file_is_refused_and_changes_nothing(signed_registry, rotation_file, edit, message):
    d = json.loads(rotation_file.read_text())
    edit(d)
    rotation_file.write_text(json.dumps(d))
    before = trust_snapshot()
    res = refused("key", "accept", rotation_file, "--registry", signed_registry)
    assert message in res.output
    assert trust_snapshot() == before


def test_a_rotation_file_that_is_not_json_is_a_clear_error(signed_registry, tmp_path):
    (tmp_path / "r.json").write_bytes(b"\xff\xfe not json")
    res = refused("key", "accept", tmp_path / "r.json", "--registry", signed_registry)
    assert "not valid UTF-8" in res.output


def test_an_index_signed_by_a_revoked_key_is_refused_with_the_revocation_and_a_hint(signed_registry, rotation_file,
                                                                                  project, tiny_model_dir):
    run("key", "accept", rotation_file, "--registry", signed_registry)
    run("init", "--base", tiny_model_dir, "--registry", signed_registry)
    before = trust_snapshot()
    res = refused("install", "tox-fix@1.0.0")
    assert "signed by key" in res.output and "which was revoked on" in res.output and "leaked in CI logs" in res.output
    assert "registry resign" in res.output
    assert not any((project / ".llmpatch" / "store").iterdir())
    assert trust_snapshot() == before


def test_after_resign_with_the_new_key_installs_work_again(signed_registry, rotation_file, keys, project, tiny_model_dir):
    old, new = keys
    run("key", "accept", rotation_file, "--registry", signed_registry)
    dry = run_json("registry", "resign", "--registry", signed_registry, "--key", "acme-2027", "--dry-run")
    assert dry["resigned"] == ["tox-fix@1.0.0"]
    assert json.loads((signed_registry / "index.sig.json").read_text())["keyid"] == old.keyid  # dry run: unchanged
    out = run_json("registry", "resign", "--registry", signed_registry, "--key", "acme-2027")
    assert out["resigned"] == ["tox-fix@1.0.0"] and out["key"] == new.keyid
    index = json.loads((signed_registry / "index.json").read_text())
    assert index["patches"]["tox-fix"]["versions"]["1.0.0"]["signature"]["keyid"] == new.keyid
    run("init", "--base", tiny_model_dir, "--registry", signed_registry)
    run("install", "tox-fix@1.0.0")
    assert [p["name"] for p in run_json("list")["generation"]["patches"]] == ["tox-fix"]


def test_a_patch_signed_by_a_revoked_key_is_refused_even_in_an_index_signed_by_the_new_key(
        signed_registry, rotation_file, keys, tmp_path):
    """An attacker with the leaked key signs a version; the index is then signed by the new key."""
    old, new = keys
    run("key", "accept", rotation_file, "--registry", signed_registry)
    reg = open_registry(str(signed_registry))
    raw = (signed_registry / "index.json").read_bytes()
    (signed_registry / "index.sig.json").write_bytes(reg._sign_index(raw, new))  # the index alone, re-signed
    with pytest.raises(SignatureError, match="tox-fix@1.0.0 .* signed by key .* which was revoked"):
        reg.fetch("tox-fix", "1.0.0", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_revoked_key_cannot_be_trusted_again_and_nothing_changes(signed_registry, rotation_file, keys, tmp_path):
    old, _ = keys
    run("key", "accept", rotation_file, "--registry", signed_registry)
    before = trust_snapshot()
    _, pub = signing.key_paths("acme")
    res = refused("key", "trust", pub, "--registry", tmp_path / "other-registry")
    assert "revoked key cannot be trusted again" in res.output
    assert trust_snapshot() == before


def test_a_second_rotation_from_a_revoked_key_is_refused(signed_registry, rotation_file, tmp_path):
    """Whoever holds the leaked key signs a rotation to their own key after the vendor's was accepted."""
    run("key", "accept", rotation_file, "--registry", signed_registry)
    signing.generate_key("mallory")
    run("key", "rotate", "acme", "mallory", "-o", tmp_path / "evil.json")
    before = trust_snapshot()
    res = refused("key", "accept", tmp_path / "evil.json", "--registry", signed_registry)
    assert "a rotation signed by a revoked key is refused" in res.output
    assert trust_snapshot() == before


def test_revocation_holds_on_every_registry_and_the_same_rotation_is_accepted_there(
        signed_registry, rotation_file, keys, tmp_path, make_patch):
    old, new = keys
    mirror = tmp_path / "mirror"
    reg = open_registry(str(mirror))
    reg.publish(make_patch("bias-fix", "1.0.0").path, key=old)
    signing.TrustStore(str(mirror)).trust(old.public)
    run("key", "accept", rotation_file, "--registry", signed_registry)
    with pytest.raises(SignatureError, match="every key trusted for registry .* is revoked"):
        open_registry(str(mirror)).index()
    run("key", "accept", rotation_file, "--registry", mirror)  # the old key is revoked by this very rotation
    assert set(signing.TrustStore(str(mirror)).keys()) == {new.keyid}


def test_a_rotation_that_keeps_the_old_key_trusts_both(signed_registry, keys, tmp_path):
    old, new = keys
    run("key", "rotate", "acme", "acme-2027", "-o", tmp_path / "planned.json", "--keep-old")
    out = run_json("key", "accept", tmp_path / "planned.json", "--registry", signed_registry)
    assert out["revoked"] is None
    assert set(signing.TrustStore(str(signed_registry)).keys()) == {old.keyid, new.keyid}
    assert signing.revocations() == {}


def test_a_local_revocation_refuses_the_key_and_needs_a_full_id(signed_registry, keys):
    old, _ = keys
    before = trust_snapshot()
    res = refused("key", "revoke", old.keyid[:16])
    assert "not a full key id" in res.output
    dry = run_json("key", "revoke", old.keyid, "--dry-run")
    assert dry["keyid"] == old.keyid and trust_snapshot() == before
    run("key", "revoke", old.keyid, "--reason", "vendor advisory 2026-12")
    with pytest.raises(SignatureError, match="is revoked .*vendor advisory 2026-12"):
        open_registry(str(signed_registry)).index()


def test_rotate_refuses_an_existing_output_and_a_missing_new_key(keys, tmp_path):
    (tmp_path / "rotation.json").write_text("keep me")
    res = refused("key", "rotate", "acme", "acme-2027", "-o", tmp_path / "rotation.json")
    assert "already exists" in res.output and (tmp_path / "rotation.json").read_text() == "keep me"
    res = refused("key", "rotate", "acme", "nope", "-o", tmp_path / "r2.json")
    assert "no signing key 'nope'" in res.output and not (tmp_path / "r2.json").exists()
    res = refused("key", "rotate", "acme", "acme", "-o", tmp_path / "r3.json")
    assert "the same key" in res.output and not (tmp_path / "r3.json").exists()


def test_resign_refuses_versions_not_signed_by_the_vendor_and_changes_nothing(signed_registry, keys, make_patch):
    stranger = signing.SigningKey.generate("stranger")
    reg = open_registry(str(signed_registry))
    signing.TrustStore(str(signed_registry)).trust(stranger.public)
    reg.publish(make_patch("harm-fix", "1.0.0").path, key=stranger)  # also re-signs the index with that key
    index_before = (signed_registry / "index.json").read_bytes()
    with pytest.raises(SignatureError, match=r"index of registry .* not trusted"):
        reg.resign(keys[1])  # the index itself is signed by a key that is not the vendor's
    (signed_registry / "index.sig.json").write_bytes(reg._sign_index(index_before, keys[0]))
    with pytest.raises(SignatureError, match=r"1 version\(s\) are not signed by one of your keys.*harm-fix@1.0.0"):
        reg.resign(keys[1])
    assert (signed_registry / "index.json").read_bytes() == index_before


def test_the_rotation_file_matches_its_schema_and_round_trips(rotation_file):
    from llmpatch import schemas

    d = json.loads(rotation_file.read_text())
    schemas.validate(d, "key_rotation")
    assert signing.KeyRotation.from_dict(d).to_dict() == d
    with pytest.raises(SchemaError):
        schemas.validate({**d, "extra": 1}, "key_rotation")


def test_resign_on_the_hub_backend_re_signs_every_version(hub, make_patch, keys):
    old, new = keys
    url = f"hf://acme/llmpatch-index?endpoint={hub.url}"
    reg = open_registry(url)
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=old)
    assert [e.id for e in reg.resign(new, dry_run=True)] == ["tox-fix@1.0.0"]
    assert reg.index().get("tox-fix", "1.0.0").signature["keyid"] == old.keyid
    assert [e.id for e in reg.resign(new)] == ["tox-fix@1.0.0"]
    signing.TrustStore(url).trust(new.public)
    assert open_registry(url).index().get("tox-fix", "1.0.0").signature["keyid"] == new.keyid


def test_a_public_key_of_an_unknown_algorithm_is_a_clear_error(tmp_path):
    """An SPKI whose algorithm OID cryptography does not know raises UnsupportedAlgorithm, not ValueError."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed448

    der = bytearray(ed448.Ed448PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    der[6] = 0x70  # an algorithm OID nobody defines
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(bytes(der)) + b"-----END PUBLIC KEY-----\n"
    (tmp_path / "odd.pub").write_bytes(pem)
    res = refused("key", "trust", tmp_path / "odd.pub", "--registry", tmp_path / "reg")
    assert "is not a PEM public key" in res.output
    assert trust_snapshot() == {}
