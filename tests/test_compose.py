"""Composition: exact base, explicit order, budget, requires and conflicts."""

from __future__ import annotations

import pytest
import torch

import llmpatch
from llmpatch import base, compose
from llmpatch.errors import BaseMismatchError, CompositionError


@pytest.fixture
def ref(tiny_model_dir):
    return base.identify(str(tiny_model_dir)).to_ref()


def test_prefix_is_the_concatenation_in_the_given_order(make_patch, ref):
    a, b = make_patch("tox-fix", tokens=3), make_patch("bias-fix", tokens=4)
    ab, ba = compose.compose([a, b], ref), compose.compose([b, a], ref)
    assert torch.equal(ab.prefix(), torch.cat([a.embeddings, b.embeddings]))
    assert ab.num_virtual_tokens == 7
    assert ab.id != ba.id, "order is part of the stack's identity"
    assert compose.compose([], ref).prefix() is None


def test_a_patch_for_another_base_is_refused_naming_both_fingerprints(make_patch, other_tiny_model_dir, ref):
    p = make_patch("tox-fix", "1.2.1", base_dir=other_tiny_model_dir)
    with pytest.raises(BaseMismatchError) as ei:
        compose.compose([p], ref)
    msg = str(ei.value)
    assert "tox-fix 1.2.1 was built for base" in msg
    assert p.manifest.base.fingerprint[:19] in msg and ref.fingerprint[:19] in msg
    assert "differ in weights" in msg and "install a build of tox-fix" in ei.value.hint


def test_a_patch_for_another_hidden_size_is_refused_before_any_forward(make_patch, wide_tiny_model_dir, tiny_model_dir):
    p = make_patch("tox-fix", base_dir=wide_tiny_model_dir)
    with pytest.raises(BaseMismatchError, match="hidden size 96 vs 64"):
        llmpatch.load(str(tiny_model_dir), [p.path])


def test_the_virtual_token_budget_is_enforced(make_patch, ref):
    a, b = make_patch("tox-fix", tokens=30), make_patch("bias-fix", tokens=30)
    with pytest.raises(CompositionError, match=r"needs 60 virtual tokens \(tox-fix 30 \+ bias-fix 30\), over the budget of 50"):
        compose.compose([a, b], ref, max_virtual_tokens=50)
    assert compose.compose([a, b], ref, max_virtual_tokens=60).num_virtual_tokens == 60


def test_the_same_patch_twice_is_refused(make_patch, ref):
    a, a2 = make_patch("tox-fix", "1.0.0"), make_patch("tox-fix", "1.1.0")
    with pytest.raises(CompositionError, match=r"tox-fix appears twice in the stack \(1.0.0 and 1.1.0\)"):
        compose.compose([a, a2], ref)


def test_requires_must_be_satisfied_by_the_stack(make_patch, ref):
    needs = make_patch("tox-fix", "1.0.0", requires={"bias-fix": "^2.0"})
    old = make_patch("bias-fix", "1.5.0")
    new = make_patch("bias-fix", "2.1.0")
    with pytest.raises(CompositionError, match="requires bias-fix \\^2.0, which is not in the stack"):
        compose.compose([needs], ref)
    with pytest.raises(CompositionError, match="requires bias-fix \\^2.0, but the stack has bias-fix 1.5.0"):
        compose.compose([old, needs], ref)
    assert compose.compose([new, needs], ref).num_virtual_tokens == 10


def test_conflicts_are_refused(make_patch, ref):
    a = make_patch("tox-fix", "1.0.0", conflicts={"legacy-fix": "<2"})
    old = make_patch("legacy-fix", "1.9.0")
    ok = make_patch("legacy-fix", "2.0.0")
    with pytest.raises(CompositionError, match="conflicts with legacy-fix <2, and the stack has legacy-fix 1.9.0"):
        compose.compose([a, old], ref)
    assert len(compose.compose([a, ok], ref).patches) == 2
