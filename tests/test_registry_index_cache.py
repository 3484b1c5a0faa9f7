"""Index reuse: one parse per index content in a process, the on-disk view, fast version order; checks still run every read."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmpatch import paths, signing
from llmpatch.errors import LlmpatchError, SignatureError
from llmpatch.registry import open_registry
from llmpatch.registry.cache import forget_parsed, raw_digest
from llmpatch.registry.index import IndexEntry, newest_first
from llmpatch.versions import version_key


_num = st.integers(min_value=0, max_value=30).map(str)
_release = st.builds(lambda a, b, c: f"{a}.{b}.{c}", _num, _num, _num)
_pre = st.builds(lambda r, tag, n: f"{r}-{tag}.{n}", _release, st.sampled_from(["alpha", "beta", "rc"]), _num)


@settings(max_examples=200, deadline=None)
@given(st.lists(_release, unique=True, max_size=40), st.lists(_pre, unique=True, max_size=3))
def test_versions_sort_newest_first_exactly_as_semver_orders_them(releases, pres):
    versions = releases + pres
    assert newest_first(versions) == sorted(versions, key=version_key, reverse=True)


def test_reading_unchanged_index_bytes_again_reuses_one_parse_that_cannot_be_changed(reg, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0").path)
    first = reg.index()
    assert open_registry(reg.url).index() is first
    with pytest.raises(LlmpatchError, match="cannot change index version 1"):
        first.put(first.get("tox-fix", "1.0.0"))
    copy = first.next(expires=None)
    copy.put(IndexEntry.from_dict("tox-fix", "1.0.1", first.get("tox-fix", "1.0.0").to_dict()))
    assert [e.version for e in copy.versions("tox-fix")] == ["1.0.1", "1.0.0"]
    assert [e.version for e in first.versions("tox-fix")] == ["1.0.0"]
    reg.publish(make_patch("tox-fix", "1.0.2").path)
    assert [e.version for e in reg.index().versions("tox-fix")] == ["1.0.2", "1.0.0"]  # new bytes, new parse


def test_a_forged_signature_over_index_bytes_already_read_is_still_refused(reg, make_patch):
    vendor = signing.generate_key("acme")
    reg.publish(make_patch("tox-fix", "1.0.0").path, key=vendor)
    reg.trust.trust(vendor.public)
    assert reg.index().index_version == 1  # parsed and remembered
    sig_path = reg.root / "index.sig.json"
    envelope = json.loads(sig_path.read_text())
    forged = bytearray(base64.b64decode(envelope["signature"]))
    forged[0] ^= 0x01
    envelope["signature"] = base64.b64encode(bytes(forged)).decode()
    sig_path.write_text(json.dumps(envelope))
    with pytest.raises(SignatureError, match="does not verify"):
        reg.index()


def test_a_new_process_reads_the_view_cache_and_falls_back_to_a_full_parse_when_it_is_damaged(reg, make_patch):
    for v in ("1.0.0", "1.10.0", "1.2.0-rc.1"):
        reg.publish(make_patch("tox-fix", v).path)
    reg.publish(make_patch("gender-fix", "0.1.0", domains=["gender_bias"]).path)
    want = [e.to_json_dict() for e in reg.index().entries()]
    view = paths.cache_dir("index-view") / f"{raw_digest((reg.root / 'index.json').read_bytes())}.view"
    assert view.is_file()
    forget_parsed()  # as a new process
    assert [e.to_json_dict() for e in reg.index().entries()] == want
    assert [e.version for e in reg.index().search("gender")] == ["0.1.0"]
    view.write_bytes(view.read_bytes()[:40])  # truncated: unusable
    forget_parsed()
    idx = reg.index()
    assert [e.to_json_dict() for e in idx.entries()] == want and len(idx) == 4


def test_entries_of_a_read_index_equal_those_of_the_copying_constructor(reg, make_patch):
    reg.publish(make_patch("tox-fix", "1.0.0", domains=["toxicity"]).path)
    idx = reg.index()
    entry = idx.versions("tox-fix")[0]
    assert entry == IndexEntry.from_dict("tox-fix", "1.0.0", entry.to_dict()) == idx.get("tox-fix", "1.0.0")
    assert idx.versions("tox-fix") is not idx.versions("tox-fix")  # callers get their own list
