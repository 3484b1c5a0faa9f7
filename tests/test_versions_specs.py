"""The patch spec grammar: what parses, what it means, and clear errors for what does not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmpatch.errors import InvalidSpecError
from llmpatch.versions import PatchSpec, VersionRange


@pytest.mark.parametrize("text, name, rng", [
    ("tox-fix", "tox-fix", "latest"),
    ("tox-fix@1.2", "tox-fix", "1.2"),
    ("tox-fix@^2.0", "tox-fix", "^2.0"),
    ("tox-fix@~1.2.3", "tox-fix", "~1.2.3"),
    ("tox-fix@>=1.0 <2.0", "tox-fix", ">=1.0 <2.0"),
    ("bias_fix.v2@1.2.3-rc.1", "bias_fix.v2", "1.2.3-rc.1"),
    ("tox-fix@*", "tox-fix", "latest"),
])
def test_valid_specs_parse_to_a_name_and_a_range(text, name, rng):
    spec = PatchSpec.parse(text)
    assert (spec.name, spec.range.text) == (name, rng)


@pytest.mark.parametrize("text, fragment", [
    ("", "expected NAME or NAME@RANGE"),
    ("@1.2", "expected NAME or NAME@RANGE"),
    ("tox-fix@", "nothing after '@'"),
    ("Tox-Fix@1.2", "invalid patch name 'Tox-Fix'"),
    ("tox-fix@^^1", "invalid version range '^^1'"),
    ("tox-fix@1.2.3.4", "invalid version range '1.2.3.4'"),
    ("tox-fix@>=banana", "invalid version range '>=banana'"),
])
def test_malformed_specs_get_a_clear_error_quoting_the_bad_part(text, fragment):
    with pytest.raises(InvalidSpecError) as exc:
        PatchSpec.parse(text)
    assert fragment in exc.value.message


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="^~<>=!@#$%&*abcxyz. |-0123456789", min_size=1, max_size=12))
def test_any_text_either_parses_to_a_usable_range_or_raises_invalid_spec(text):
    """No input crashes the parser with anything but InvalidSpecError, and parsed ranges can be used."""
    try:
        spec = PatchSpec.parse("p@" + text)
    except InvalidSpecError as exc:
        assert exc.message and exc.exit_code == 2
        return
    # A parsed range must answer membership for real versions without raising.
    for v in ("0.0.1", "1.2.3", "2.0.0-rc.1"):
        spec.range.contains(v)
        spec.range.contains(v, include_prerelease=True)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50), st.sampled_from(["", "-rc.1", "-alpha"]))
def test_an_exact_version_matches_only_itself(a, b, c, pre):
    v = f"{a}.{b}.{c}{pre}"
    rng = VersionRange.parse(v)
    assert rng.is_exact
    assert rng.contains(v)
    assert not rng.contains(f"{a}.{b}.{c + 1}")
