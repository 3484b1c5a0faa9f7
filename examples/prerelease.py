"""Re-package a built patch's weights, unchanged, as a pre-release version (e.g. 2.1.0-rc.1).

The quickstart and examples/scenario.py publish bias-fix 2.1.0-rc.1 made this way, to show that
pre-releases are only installed with ``--pre``. Nothing is trained: the pre-release holds the very
same prompt embeddings as its source, for the same base, with the source's domains, recipe record
and eval claims (they were measured on these weights). Its manifest says so: the summary begins
"Pre-release ...: the weights of NAME SOURCE_VERSION, re-packaged unchanged", the description
explains why, and ``build.repackaged_from`` records the source's name, version, manifest sha256
and weights sha256. It is an ordinary patch directory: ``llmpatch publish`` verifies and signs it
like any other.

    python examples/prerelease.py examples/patches/bias-fix 2.1.0-rc.1 -o out/bias-fix-2.1.0-rc.1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def make_prerelease(source: str | Path, version: str, out: str | Path, *, force: bool = False):
    """Write ``source``'s weights as pre-release ``version`` to ``out``; return the new verified Patch."""
    from llmpatch import artifact
    from llmpatch.errors import InvalidSpecError
    from llmpatch.manifest import MANIFEST_NAME
    from llmpatch.util import sha256_file
    from llmpatch.versions import parse_version

    src = artifact.read_patch(source)  # verifies every file against the manifest first
    m = src.manifest
    v = parse_version(version)
    if not v.prerelease:
        raise InvalidSpecError(
            f"{version!r} is not a pre-release version",
            hint="give a version with a pre-release part, e.g. 2.1.0-rc.1 (a final release is built and measured, not re-packaged)",
        )
    if v <= parse_version(m.version):
        raise InvalidSpecError(
            f"pre-release {version} does not sort after {m.name} {m.version}, the version it re-packages",
            hint=f"choose a pre-release of a later version, e.g. {parse_version(m.version).bump_minor()}-rc.1",
        )
    summary = (f"Pre-release {version}: the weights of {m.name} {m.version}, re-packaged unchanged; "
               f"its evals are {m.version}'s. {m.summary}")
    if len(summary) > 300:
        summary = summary[:299] + "…"
    description = (
        f"{m.name} {version} is a pre-release made by examples/prerelease.py: no training, the prompt "
        f"embeddings of {m.name} {m.version} re-packaged under a pre-release version so that it can be "
        f"published, signed and installed with --pre. Its base, domains, recipe record (build) and eval "
        f"claims are {m.version}'s, measured on these same weights."
    )
    build = dict(m.build)
    build["repackaged_from"] = {
        "name": m.name,
        "version": m.version,
        "manifest_sha256": "sha256:" + sha256_file(src.path / MANIFEST_NAME),
        "weights_sha256": "sha256:" + m.files[artifact.ADAPTER_WEIGHTS].sha256,
    }
    return artifact.write_patch(
        out, src.embeddings, name=m.name, version=version, summary=summary, domains=m.domains, base=m.base,
        build=build, evals=m.evals, requires=m.requires, conflicts=m.conflicts, license=m.license, init=m.init,
        description=description, authors=m.authors, dtype=m.dtype, overwrite=force, provides=m.provides,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="A patch directory (e.g. examples/patches/bias-fix).")
    parser.add_argument("version", help="The pre-release version to write (e.g. 2.1.0-rc.1).")
    parser.add_argument("-o", "--out", required=True, help="Directory to write (must not exist, or be empty).")
    parser.add_argument("--force", action="store_true", help="Replace an existing output directory.")
    ns = parser.parse_args(argv)
    from llmpatch.errors import LlmpatchError

    try:
        patch = make_prerelease(ns.source, ns.version, ns.out, force=ns.force)
    except LlmpatchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    print(f"wrote {patch.manifest.id} to {patch.path} (the weights of {ns.source}, unchanged)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
