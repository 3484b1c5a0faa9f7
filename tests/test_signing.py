"""Signing: vendor keys, signed publishes, trust per registry, tampering and rollback/freeze refusals."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import pytest

from llmpatch import signing
from llmpatch.errors import FreshnessError, IntegrityError, SignatureError
from llmpatch.registry import RegistryConfig


@pytest.fixture
def vendor():
    return signing.generate_key("acme")


def test_generated_keys_are_saved_private_half_owner_only_and_reload_identically():
    key = signing.generate_key("acme")
    priv, pub = signing.key_paths("acme")
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    assert signing.load_key("acme").keyid == key.keyid == signing.PublicKey.from_pem(pub.read_bytes()).keyid
    assert [k.name for k in signing.list_keys()] == ["acme"]
    with pytest.raises(Exception, match="already exists"):
        signing.generate_key("acme")


def test_a_signature_binds_payload_type_and_bytes(vendor):
    body = signing.patch_statement("tox-fix", "1.0.0", "a" * 64, {"llmpatch.json": {"sha256": "a" * 64, "size": 3}})
    env = vendor.sign(signing.PATCH_PAYLOAD, body)
    keys = {vendor.keyid: vendor.public}
    assert signing.verify(env, signing.PATCH_PAYLOAD, body, keys, what="x").keyid == vendor.keyid
    relabelled = signing.patch_statement("tox-fix", "2.0.0", "a" * 64, {"llmpatch.json": {"sha256": "a" * 64, "size": 3}})
    with pytest.raises(SignatureError, match="does not verify"):
        signing.verify(env, signing.PATCH_PAYLOAD, relabelled, keys, what="x")
    with pytest.raises(SignatureError, match="is for a"):
        signing.verify(env, signing.INDEX_PAYLOAD, body, keys, what="x")


def test_a_signed_publish_fetches_with_the_vendor_key_trusted(reg, vendor, make_patch, tmp_path):
    reg.init(RegistryConfig(require_signatures=True))
    entry = reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    assert entry.signature["keyid"] == vendor.keyid and (reg.root / "index.sig.json").exists()
    reg.trust.trust(vendor.public)
    assert reg.index().get("tox-fix", "1.0.0").signature == entry.signature
    assert (reg.fetch("tox-fix", "1.0.0", tmp_path / "out") / "llmpatch.json").exists()


def test_an_index_signed_by_an_untrusted_key_is_refused(reg, vendor, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    reg.trust.trust(signing.SigningKey.generate("other").public)
    with pytest.raises(SignatureError, match=r"signed by key .* not trusted for this registry"):
        reg.index()


def test_an_unsigned_index_is_refused_once_keys_are_trusted(reg, vendor, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    reg.trust.trust(vendor.public)
    with pytest.raises(SignatureError, match="is unsigned"):
        reg.index()


def test_a_changed_index_byte_breaks_its_signature(reg, vendor, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    reg.trust.trust(vendor.public)
    p = reg.root / "index.json"
    p.write_bytes(p.read_bytes().replace(b"tox-fix test patch", b"tox-fix evil patch"))
    sig = json.loads((reg.root / "index.sig.json").read_text())
    sig["payload_sha256"] = __import__("hashlib").sha256(p.read_bytes()).hexdigest()  # even a consistent-looking envelope
    (reg.root / "index.sig.json").write_text(json.dumps(sig))
    with pytest.raises(SignatureError, match="does not verify"):
        reg.index()


def test_a_payload_changed_in_the_registry_is_refused_at_fetch_and_nothing_is_written(reg, vendor, make_patch, tmp_path):
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    reg.trust.trust(vendor.public)
    f = reg.root / "patches/tox-fix/1.0.0/adapter_model.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x40
    f.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="the index says"):
        reg.fetch("tox-fix", "1.0.0", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_an_index_older_than_one_already_seen_is_refused(reg, vendor, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    reg.trust.trust(vendor.public)
    old = (reg.root / "index.json").read_bytes(), (reg.root / "index.sig.json").read_bytes()
    reg.publish(make_patch("tox-fix", "1.0.1").path, key=vendor)
    assert reg.index().index_version == 2
    (reg.root / "index.json").write_bytes(old[0])
    (reg.root / "index.sig.json").write_bytes(old[1])
    with pytest.raises(FreshnessError, match="served index version 1, older than version 2 already seen"):
        reg.index()
    assert reg.trust.highest_index_version == 2


def test_an_expired_index_is_refused(reg, vendor, make_patch):
    reg.init(RegistryConfig(expires_days=1))
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    idx = reg.index()
    expires = dt.datetime.fromisoformat(idx.expires.replace("Z", "+00:00"))
    later = expires + dt.timedelta(seconds=1)
    with pytest.raises(FreshnessError, match="expired"):
        reg.trust.check_fresh(idx.index_version, idx.expires, now=later)
    reg.trust.check_fresh(idx.index_version, idx.expires, now=expires - dt.timedelta(hours=1))


def test_publishing_unsigned_onto_a_signed_index_is_refused(reg, vendor, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    with pytest.raises(SignatureError, match="would leave it unsigned"):
        reg.publish(make_patch("tox-fix", "1.0.1").path)
    with pytest.raises(SignatureError, match="would leave it unsigned"):
        reg.yank("tox-fix", "1.0.0")
    reg.yank("tox-fix", "1.0.0", key=vendor)
    assert reg.index().get("tox-fix", "1.0.0").yanked


def test_reading_an_index_past_its_expiry_is_refused(reg, vendor, make_patch):
    reg.init(RegistryConfig(expires_days=1e-9))  # expires the moment it is written
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    with pytest.raises(FreshnessError, match=r"index version 1 expired at"):
        reg.index()
