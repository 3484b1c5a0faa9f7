"""``provides``: a merged patch stands in for the patches it was distilled from (Debian's Provides/Replaces).

The manifest declares it, the stack checks it, the resolver treats a provided name as satisfied,
and ``install`` chooses a merged patch instead of the separate ones only when asked
(``--prefer-merged``) or when the registry marks it as their replacement.
"""

from __future__ import annotations

import json

import pytest

from clihelp import refused, run, run_json
from llmpatch.compose import check_constraints
from llmpatch.env import Environment, LockFile
from llmpatch.errors import CompositionError, ManifestError, RegistryError, ResolutionError
from llmpatch.manifest import Manifest, Provided
from llmpatch.resolver import KEPT, Entry, Requirement, resolve_stack
from llmpatch.versions import PatchSpec

FP = "sha256:" + "a" * 64
TOX_SHA, HARM_SHA = "1" * 64, "2" * 64
PROVIDES = [{"name": "tox-fix", "version": "1.1.0", "payload_sha256": TOX_SHA},
            {"name": "harm-fix", "version": "1.2.0", "payload_sha256": HARM_SHA}]


# -- the resolver (pure) -----------------------------------------------------------------------


class Index(dict):
    """name -> entries (newest first); ``providers`` like a registry index."""

    def __call__(self, name):
        return self.get(name, [])

    def names(self):
        return list(self)

    def providers(self, name):
        return [e for es in self.values() for e in es if any(p["name"] == name for p in e.provides)]


def index(*entries: Entry) -> Index:
    idx = Index()
    for e in entries:
        idx.setdefault(e.name, []).append(e)
    return idx


def E(name, version, **kw) -> Entry:
    return Entry(name, version, base_fingerprint=FP, **kw)


SEPARATE = [E("tox-fix", "1.2.0"), E("tox-fix", "1.1.0"), E("harm-fix", "1.2.0")]


def resolved(idx, *specs, kept=(), prefer_merged=False):
    reqs = [PatchSpec.parse(s) for s in specs] + [Requirement(n, v, parent=KEPT) for n, v in kept]
    r = resolve_stack(reqs, idx, base_fingerprint=FP, prefer_merged=prefer_merged)
    return [e.id if hasattr(e, "id") else f"{e.name}@{e.version}" for e in r.entries], \
        {name: f"{v} by {m.name}" for name, (v, m) in r.provided.items()}


def test_a_merged_patch_is_not_chosen_for_the_separate_patches_by_default():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES))
    assert resolved(idx, "tox-fix@1.1", "harm-fix@1.2") == (["tox-fix@1.1.0", "harm-fix@1.2.0"], {})


def test_prefer_merged_chooses_the_merged_patch_that_provides_every_request():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES))
    entries, provided = resolved(idx, "tox-fix@1.1", "harm-fix@1.2", prefer_merged=True)
    assert entries == ["safety@1.0.0"]
    assert provided == {"tox-fix": "1.1.0 by safety", "harm-fix": "1.2.0 by safety"}


def test_prefer_merged_does_not_bring_in_an_effect_nobody_asked_for():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES))
    assert resolved(idx, "tox-fix@1.1", prefer_merged=True) == (["tox-fix@1.1.0"], {})


def test_prefer_merged_keeps_the_separate_patches_when_the_merged_versions_do_not_fit():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES))
    assert resolved(idx, "tox-fix@1.2", "harm-fix@1.2", prefer_merged=True)[0] == ["tox-fix@1.2.0", "harm-fix@1.2.0"]


def test_a_registry_replacement_mark_chooses_the_merged_patch_without_the_flag():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES, replaces=True))
    assert resolved(idx, "tox-fix@1.1", "harm-fix@1.2")[0] == ["safety@1.0.0"]


def test_a_provided_name_satisfies_requests_and_requires_when_the_merged_patch_is_named():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES), E("bias-fix", "2.0.0", requires={"tox-fix": "^1.1"}))
    entries, provided = resolved(idx, "safety", "tox-fix@1.1", "bias-fix")
    assert entries == ["safety@1.0.0", "bias-fix@2.0.0"]
    assert provided == {"tox-fix": "1.1.0 by safety"}


def test_an_installed_merged_patch_satisfies_a_request_for_what_it_provides():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES))
    assert resolved(idx, "harm-fix@1.2", kept=[("safety", "1.0.0")]) == (["safety@1.0.0"], {"harm-fix": "1.2.0 by safety"})


def test_a_merged_patch_next_to_an_installed_patch_it_provides_is_refused_clearly():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES))
    with pytest.raises(ResolutionError) as err:
        resolved(idx, "safety", kept=[("tox-fix", "1.1.0")])
    assert "safety 1.0.0 provides tox-fix 1.1.0" in err.value.message and "tox-fix is installed" in err.value.message
    assert "llmpatch remove tox-fix" in err.value.hint


def test_asking_for_a_merged_patch_and_another_version_of_what_it_provides_is_refused():
    idx = index(*SEPARATE, E("safety", "1.0.0", provides=PROVIDES))
    with pytest.raises(ResolutionError) as err:
        resolved(idx, "safety", "tox-fix@1.2")
    assert "provides tox-fix 1.1.0" in err.value.message and "tox-fix@1.2 (requested)" in err.value.message


def test_a_merged_patch_built_for_another_base_never_stands_in():
    idx = index(*SEPARATE, Entry("safety", "1.0.0", base_fingerprint="sha256:" + "b" * 64, provides=PROVIDES))
    assert resolved(idx, "tox-fix@1.1", "harm-fix@1.2", prefer_merged=True)[0] == ["tox-fix@1.1.0", "harm-fix@1.2.0"]


# -- manifests and stacks ----------------------------------------------------------------------


def test_provides_round_trips_through_the_manifest_and_is_absent_when_empty(make_patch):
    merged = make_patch("safety", "1.0.0", provides=PROVIDES, domains=["toxicity", "harmfulness"])
    m = Manifest.read(merged.path / "llmpatch.json")
    assert m.provides == (Provided("tox-fix", "1.1.0", TOX_SHA), Provided("harm-fix", "1.2.0", HARM_SHA))
    assert json.loads((merged.path / "llmpatch.json").read_text())["provides"] == PROVIDES
    plain = make_patch("tox-fix", "1.1.0")
    assert "provides" not in json.loads((plain.path / "llmpatch.json").read_text())
    assert "## Provides" in (merged.path / "README.md").read_text()


@pytest.mark.parametrize("provides, why", [
    ([{"name": "safety", "version": "1.0.0", "payload_sha256": TOX_SHA}], "lists itself in provides"),
    ([PROVIDES[0], dict(PROVIDES[0], version="1.2.0")], "more than once"),
    ([{"name": "tox-fix", "version": "1.1", "payload_sha256": TOX_SHA}], "does not match"),
    ([{"name": "tox-fix", "version": "1.1.0"}], "payload_sha256"),
])
def test_a_malformed_provides_is_refused(make_patch, provides, why):
    d = json.loads((make_patch("safety", "1.0.0").path / "llmpatch.json").read_text())
    d["provides"] = provides
    with pytest.raises(ManifestError, match=why):
        Manifest.from_dict(d)


def test_a_stack_with_a_merged_patch_and_one_it_provides_is_refused(make_patch):
    merged = make_patch("safety", "1.0.0", provides=PROVIDES).manifest
    tox = make_patch("tox-fix", "1.1.0").manifest
    with pytest.raises(CompositionError, match="safety 1.0.0 provides tox-fix 1.1.0.*apply twice"):
        check_constraints([merged, tox])


def test_requires_and_conflicts_see_the_versions_a_merged_patch_provides(make_patch):
    merged = make_patch("safety", "1.0.0", provides=PROVIDES).manifest
    check_constraints([merged, make_patch("bias-fix", "2.0.0", requires={"tox-fix": "^1.1"}).manifest])
    with pytest.raises(CompositionError, match="provides tox-fix 1.1.0"):
        check_constraints([merged, make_patch("bias-fix", "2.1.0", requires={"tox-fix": "^1.2"}).manifest])
    with pytest.raises(CompositionError, match="conflicts with harm-fix"):
        check_constraints([merged, make_patch("bias-fix", "2.2.0", conflicts={"harm-fix": "*"}).manifest])


def test_two_merged_patches_providing_the_same_patch_cannot_be_stacked(make_patch):
    a = make_patch("safety", "1.0.0", provides=PROVIDES).manifest
    b = make_patch("tox-bias", "1.0.0", provides=PROVIDES[:1]).manifest
    with pytest.raises(CompositionError, match="both provide tox-fix"):
        check_constraints([a, b])


# -- install, show, lock against a real local registry -----------------------------------------


@pytest.fixture
def merged_registry(registry):
    """tox-fix 1.1.0 and harm-fix 1.2.0, and safety 1.0.0 that provides both (with their real payload digests)."""
    tox = registry.publish_patch("tox-fix", "1.1.0")
    harm = registry.publish_patch("harm-fix", "1.2.0", domains=["harmfulness"])
    registry.publish_patch("safety", "1.0.0", domains=["toxicity", "harmfulness"], provides=[
        {"name": "tox-fix", "version": "1.1.0", "payload_sha256": tox.payload_sha256},
        {"name": "harm-fix", "version": "1.2.0", "payload_sha256": harm.payload_sha256}])
    return registry


def stack(project):
    return [f"{p['name']}@{p['version']}" for p in run_json("list")["generation"]["patches"]]


def test_install_of_the_separate_patches_does_not_pick_the_merged_one_by_default(project, tiny_model_dir, merged_registry):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.1", "harm-fix@1.2")
    assert stack(project) == ["tox-fix@1.1.0", "harm-fix@1.2.0"]


def test_install_prefer_merged_installs_only_the_merged_patch_and_says_so(project, tiny_model_dir, merged_registry):
    run("init", "--base", tiny_model_dir)
    out = run_json("install", "tox-fix@1.1", "harm-fix@1.2", "--prefer-merged")
    assert out["plan"]["after"] == ["safety@1.0.0"]
    assert any("safety 1.0.0 (a merged patch, --prefer-merged) provides tox-fix@1.1" in n for n in out["plan"]["notes"])
    human = run("install", "tox-fix@1.1", "--prefer-merged", "--dry-run").output  # already provided: nothing to do
    assert "nothing to change" in human
    env = Environment(project / ".llmpatch")
    (p,) = env.current().patches
    assert p.requested == "safety@1.0.0"
    lock = LockFile.read(project / "llmpatch.lock")  # schema-valid, and sync reproduces it
    assert [(q.name, q.version) for q in lock.patches] == [("safety", "1.0.0")]
    assert run_json("upgrade")["plan"]["unchanged"] is True  # the stand-in is kept, not dropped as a stray dependency


def test_installing_a_merged_patch_next_to_one_it_provides_is_refused_and_changes_nothing(project, tiny_model_dir,
                                                                                          merged_registry):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.1")
    res = refused("install", "safety")
    assert "safety 1.0.0 provides tox-fix 1.1.0" in res.output and "llmpatch remove tox-fix" in res.output
    assert stack(project) == ["tox-fix@1.1.0"]
    assert Environment(project / ".llmpatch").current_number() == 2


def test_the_registry_mark_makes_install_pick_the_replacement_and_show_says_so(project, tiny_model_dir, merged_registry):
    run("init", "--base", tiny_model_dir)
    shown = run("show", "safety").output
    assert "provides" in shown and "tox-fix 1.1.0" in shown and "--prefer-merged" in shown
    run("mark-replacement", "safety@1.0.0")
    entry = run_json("show", "safety")["selected"]
    assert entry["replaces"] is True and [p["name"] for p in entry["provides"]] == ["tox-fix", "harm-fix"]
    out = run_json("install", "tox-fix@1.1", "harm-fix@1.2")
    assert out["plan"]["after"] == ["safety@1.0.0"]
    assert any("marked by the registry" in n for n in out["plan"]["notes"])
    run("mark-replacement", "safety@1.0.0", "--undo")
    assert "replaces" not in run_json("show", "safety")["selected"]


def test_only_a_merged_patch_can_be_marked_as_a_replacement(merged_registry):
    with pytest.raises(RegistryError, match="provides no other patch"):
        merged_registry.mark_replacement("tox-fix", "1.1.0")
    res = refused("mark-replacement", "safety@1")
    assert "exact version" in res.output


def test_the_provided_map_survives_the_index_view_cache(merged_registry):
    from llmpatch.registry import open_registry
    from llmpatch.registry.cache import forget_parsed

    forget_parsed()
    fresh = open_registry(merged_registry.url).index()  # read back through the view written at publish
    assert fresh._view is not None
    assert [e.id for e in fresh.providers("harm-fix")] == ["safety@1.0.0"]
    assert fresh.providers("safety") == []


def test_inspect_shows_what_a_merged_patch_provides(make_patch):
    merged = make_patch("safety", "1.0.0", provides=PROVIDES)
    out = run("inspect", merged.path).output
    assert "provides" in out and "harm-fix 1.2.0" in out


def test_a_hub_registry_indexes_provides_and_keeps_the_replacement_mark(hub, make_patch):
    from llmpatch.registry import open_registry

    reg = open_registry(f"hf://acme/llmpatch-index?endpoint={hub.url}")
    entry = reg.publish(make_patch("safety", "1.0.0", provides=PROVIDES).path)
    assert [p["name"] for p in entry.provides] == ["tox-fix", "harm-fix"] and entry.replaces is False
    reg.mark_replacement("safety", "1.0.0")
    got = reg.index().get("safety", "1.0.0")
    assert got.replaces is True and got.provides == entry.provides
    assert [e.id for e in reg.index().providers("tox-fix")] == ["safety@1.0.0"]
