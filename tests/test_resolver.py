"""The resolver: newest fitting versions under ranges, base, prereleases, yanks, requires, conflicts."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmpatch.errors import NotFoundError, ResolutionError
from llmpatch.resolver import Entry, resolve
from llmpatch.versions import PatchSpec

FP = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


class Index(dict):
    """name -> entries, newest first; also answers names() like a registry index."""

    def __call__(self, name):
        return self.get(name, [])

    def names(self):
        return list(self)


def index(*entries: Entry) -> Index:
    from llmpatch.versions import version_key

    idx = Index()
    for e in entries:
        idx.setdefault(e.name, []).append(e)
    for name in idx:
        idx[name].sort(key=lambda e: version_key(e.version), reverse=True)
    return idx


def E(name, version, **kw) -> Entry:
    kw.setdefault("base_fingerprint", FP)
    return Entry(name, version, **kw)


def pick(idx, *specs, pre=False, base=FP):
    return {e.name: e.version for e in resolve([PatchSpec.parse(s) for s in specs], idx, base_fingerprint=base, pre=pre)}


TOX = index(*(E("tox-fix", v) for v in ["1.0.0", "1.1.0", "1.2.0", "1.2.1", "2.0.0", "2.1.0-rc.1"]))


@pytest.mark.parametrize("spec, expected", [
    ("tox-fix", "2.0.0"),
    ("tox-fix@latest", "2.0.0"),
    ("tox-fix@1.2", "1.2.1"),
    ("tox-fix@1", "1.2.1"),
    ("tox-fix@1.1.0", "1.1.0"),
    ("tox-fix@^1.0", "1.2.1"),
    ("tox-fix@~1.2.0", "1.2.1"),
    ("tox-fix@>=1.0 <1.2", "1.1.0"),
    ("tox-fix@<1.1 || >=2", "2.0.0"),
    ("tox-fix@2.1.0-rc.1", "2.1.0-rc.1"),
])
def test_resolution_picks_the_newest_version_that_fits_the_spec(spec, expected):
    assert pick(TOX, spec) == {"tox-fix": expected}


def test_prereleases_are_chosen_only_when_asked_for():
    assert pick(TOX, "tox-fix@^2.0")["tox-fix"] == "2.0.0"
    assert pick(TOX, "tox-fix@^2.0", pre=True)["tox-fix"] == "2.1.0-rc.1"


def test_yanked_versions_are_skipped_unless_pinned_exactly():
    idx = index(E("tox-fix", "1.2.0"), E("tox-fix", "1.2.1", yanked=True, yank_reason="leaks prompts"))
    assert pick(idx, "tox-fix@1.2")["tox-fix"] == "1.2.0"
    assert pick(idx, "tox-fix@1.2.1")["tox-fix"] == "1.2.1"


def test_candidates_built_for_another_base_are_never_chosen():
    idx = index(E("tox-fix", "1.2.0"), E("tox-fix", "1.3.0", base_fingerprint=OTHER))
    assert pick(idx, "tox-fix")["tox-fix"] == "1.2.0"
    with pytest.raises(ResolutionError, match=r"1\.3\.0: built for base"):
        pick(idx, "tox-fix@1.3")


def test_requires_pull_in_a_dependency_within_its_range():
    idx = index(*TOX["tox-fix"], E("bias-fix", "2.0.0", requires={"tox-fix": "~1.1.0"}))
    assert pick(idx, "bias-fix") == {"bias-fix": "2.0.0", "tox-fix": "1.1.0"}


def test_a_conflict_makes_the_resolver_backtrack_to_an_older_version():
    idx = index(*TOX["tox-fix"], E("bias-fix", "2.1.0", conflicts={"tox-fix": ">=1.2"}), E("bias-fix", "2.0.0"))
    assert pick(idx, "tox-fix@1.2", "bias-fix") == {"tox-fix": "1.2.1", "bias-fix": "2.0.0"}


def test_a_conflict_alone_does_not_install_the_conflicting_patch():
    idx = index(*TOX["tox-fix"], E("bias-fix", "2.0.0", conflicts={"tox-fix": "<1.2"}))
    assert pick(idx, "bias-fix") == {"bias-fix": "2.0.0"}


def test_unknown_names_get_a_did_you_mean_hint():
    with pytest.raises(NotFoundError, match="no patch named 'tox-fx'") as exc:
        pick(TOX, "tox-fx")
    assert "tox-fix" in exc.value.hint


def test_an_impossible_request_lists_every_candidate_and_why_it_was_rejected():
    idx = index(
        E("tox-fix", "1.2.0"), E("tox-fix", "1.2.1", yanked=True, yank_reason="bad"),
        E("tox-fix", "1.2.2", base_fingerprint=OTHER), E("tox-fix", "1.3.0-rc.1"), E("tox-fix", "2.0.0"),
        E("bias-fix", "1.0.0", conflicts={"tox-fix": "1.2.0"}),
    )
    with pytest.raises(ResolutionError) as exc:
        pick(idx, "tox-fix@1", "bias-fix")
    msg = exc.value.message
    assert "tox-fix: needed as tox-fix@1 (requested); bias-fix 1.0.0 conflicts with tox-fix 1.2.0" in msg
    assert "2.0.0: outside 1" in msg
    assert "1.3.0-rc.1: prerelease (pass --pre to allow)" in msg
    assert "1.2.2: built for base" in msg
    assert "1.2.1: yanked: bad" in msg
    assert "1.2.0: excluded: bias-fix 1.0.0 conflicts with tox-fix 1.2.0" in msg


def test_resolving_among_ten_thousand_versions_picks_the_newest_unyanked_match():
    # how fast is benchmarks/' business; this checks the answer on a large index
    versions = [f"{a}.{b}.{c}" for a in range(10) for b in range(10) for c in range(100)]
    idx = index(*(E("tox-fix", v, yanked=(v == "3.4.99")) for v in versions))
    assert pick(idx, "tox-fix@3.4")["tox-fix"] == "3.4.98"


# ---- properties ---------------------------------------------------------------------------

releases = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))


def oracle(kind: str, a: tuple[int, int, int], v: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Independent meaning of each range form, over release versions."""
    if kind == "exact":
        return v == a
    if kind == "minor":
        return v[:2] == a[:2]
    if kind == "major":
        return v[0] == a[0]
    if kind == "caret":
        if a[0] > 0:
            return v >= a and v[0] == a[0]
        if a[1] > 0:
            return v >= a and v[:2] == a[:2]
        return v == a
    if kind == "tilde":
        return v >= a and v[:2] == a[:2]
    if kind == "between":
        return a <= v < b
    raise AssertionError(kind)


def render(kind: str, a, b) -> str:
    s = ".".join(map(str, a))
    return {"exact": s, "minor": f"{a[0]}.{a[1]}", "major": f"{a[0]}", "caret": f"^{s}", "tilde": f"~{s}",
            "between": f">={s} <{'.'.join(map(str, b))}"}[kind]


@settings(max_examples=150, deadline=None)
@given(st.sets(releases, min_size=1, max_size=25),
       st.sampled_from(["exact", "minor", "major", "caret", "tilde", "between"]), releases, releases)
def test_a_parsed_spec_selects_exactly_the_matching_versions_and_the_newest_is_chosen(vs, kind, a, b):
    idx = index(*(E("p", ".".join(map(str, v))) for v in vs))
    spec = f"p@{render(kind, a, b)}"
    matching = sorted(v for v in vs if oracle(kind, a, v, b))
    rng = PatchSpec.parse(spec).range
    assert sorted(tuple(map(int, x.split("."))) for x in rng.filter(".".join(map(str, v)) for v in vs)) == matching
    if matching:
        assert pick(idx, spec) == {"p": ".".join(map(str, matching[-1]))}
    else:
        with pytest.raises(ResolutionError, match="no set of patch versions"):
            pick(idx, spec)


@settings(max_examples=60, deadline=None)
@given(st.sets(releases, min_size=1, max_size=12), st.sets(releases, min_size=1, max_size=12), st.booleans())
def test_a_dependency_is_always_satisfied_by_the_chosen_stack(app_vs, dep_vs, caret):
    """Whatever the resolver chooses, every chosen requires range contains the chosen dependency."""
    def vs(v):
        return ".".join(map(str, v))
    dep_entries = [E("dep", vs(v)) for v in dep_vs]
    app_entries = [E("app", vs(v), requires={"dep": (f"^{vs(v)}" if caret else f"~{vs(v)}")}) for v in app_vs]
    idx = index(*dep_entries, *app_entries)
    from llmpatch.versions import VersionRange

    try:
        got = pick(idx, "app")
    except ResolutionError:
        # Then no app version has any dep version in range.
        assert not any(VersionRange.parse(a.requires["dep"]).contains(d.version) for a in app_entries for d in dep_entries)
        return
    chosen = next(a for a in app_entries if a.version == got["app"])
    assert VersionRange.parse(chosen.requires["dep"]).contains(got["dep"])
    # The newest app version that has any satisfiable dep is chosen.
    viable = [a for a in app_entries if any(VersionRange.parse(a.requires["dep"]).contains(d.version) for d in dep_entries)]
    from llmpatch.versions import version_key

    assert got["app"] == max((a.version for a in viable), key=version_key)


versions_any = st.builds(
    lambda t, pre: ".".join(map(str, t)) + pre, releases, st.sampled_from(["", "", "-rc.1", "-alpha.2", "-0"]))
ranges_any = st.builds(render, st.sampled_from(["minor", "major", "caret", "tilde", "between"]), releases, releases) | \
    st.sampled_from(["*", "<1 || >=2.1", ">=1.0.0-rc.1 <2", "1.x", "1.2.3 - 2.3", "^0.0.3", ">1.0.0 <=2.0.0"])


@settings(max_examples=300, deadline=None)
@given(versions_any, ranges_any, st.booleans())
def test_the_fast_tuple_matcher_agrees_with_node_semver(version, rng, pre):
    import nodesemver

    from llmpatch.resolver import _matcher

    assert _matcher(rng)(version, pre) == bool(nodesemver.satisfies(version, rng, loose=False, include_prerelease=pre))
