"""Versions and version ranges.

Versions are semantic versions (``semver``). Ranges use npm's grammar through ``node-semver``
(a port of npm's own implementation), so they mean exactly what npm users expect:

==================  ==========================================
spec                selects
==================  ==========================================
``1.2.3``           exactly 1.2.3
``1.2``             newest 1.2.x  (``>=1.2.0 <1.3.0``)
``1``               newest 1.x.x
``^1.2.0``          ``>=1.2.0 <2.0.0`` (``^0.2.1``: ``<0.3.0``)
``~1.2.3``          ``>=1.2.3 <1.3.0``
``>=1.0 <2.0``      comparator set (space means AND)
``<1 || >=3``       union of sets
``latest`` / ``*``  newest release (the default)
==================  ==========================================

Prereleases (``2.0.0-rc.1``) are only selected when asked for (``include_prerelease=True``)
or when the range itself names a prerelease of the same ``major.minor.patch``.

>>> VersionRange.parse("1.2").best(["1.1.0", "1.2.0", "1.2.1", "1.3.0"])
'1.2.1'
>>> PatchSpec.parse("tox-fix@^1.0")
PatchSpec(name='tox-fix', range=VersionRange('^1.0'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import nodesemver
import semver

from llmpatch.errors import InvalidSpecError

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
_LATEST = {"", "*", "latest", "x"}


def parse_version(text: str) -> semver.Version:
    """Parse a full semantic version, with a clear error."""
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        raise InvalidSpecError(
            f"invalid version {text!r}: expected a semantic version MAJOR.MINOR.PATCH "
            "such as 1.2.3 or 2.0.0-rc.1"
        ) from None


def is_version(text: str) -> bool:
    """True when ``text`` is a full semantic version."""
    return semver.Version.is_valid(text)


def version_key(text: str) -> semver.Version:
    """Sort key for version strings."""
    return semver.Version.parse(text)


def check_name(name: str) -> str:
    """Validate a patch name and return it."""
    if not NAME_RE.fullmatch(name):
        raise InvalidSpecError(
            f"invalid patch name {name!r}: use 1-64 lower-case letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit (e.g. tox-fix)"
        )
    return name


@dataclass(frozen=True)
class VersionRange:
    """An npm-style version range; ``latest`` matches every release."""

    text: str

    @classmethod
    def parse(cls, text: str | None) -> "VersionRange":
        """Parse and validate a range; ``None``/empty means ``latest``."""
        raw = (text or "").strip()
        if raw.lower() in _LATEST:
            return cls("latest")
        try:
            nodesemver.make_range(raw, loose=False)
        except (ValueError, TypeError) as exc:
            raise InvalidSpecError(
                f"invalid version range {raw!r} ({exc}): expected e.g. 1.2.3, 1.2, ^1.2, ~1.2.3, "
                "'>=1.0 <2.0', '<1 || >=3' or latest"
            ) from None
        return cls(raw)

    @property
    def is_exact(self) -> bool:
        """True when the range names one full version (``1.2.3`` or ``=1.2.3``)."""
        return is_version(self.text.lstrip("=").strip())

    def _node_range(self) -> str:
        return "*" if self.text == "latest" else self.text

    def contains(self, version: str, *, include_prerelease: bool = False) -> bool:
        """True when ``version`` is in the range."""
        if self.is_exact:
            return parse_version(version) == parse_version(self.text.lstrip("=").strip())
        return bool(
            nodesemver.satisfies(
                version, self._node_range(), loose=False, include_prerelease=include_prerelease
            )
        )

    def filter(self, versions: Iterable[str], *, include_prerelease: bool = False) -> list[str]:
        """The versions in range, newest first."""
        hits = [v for v in versions if self.contains(v, include_prerelease=include_prerelease)]
        return sorted(hits, key=version_key, reverse=True)

    def best(self, versions: Iterable[str], *, include_prerelease: bool = False) -> str | None:
        """The newest version in range, or None."""
        hits = self.filter(versions, include_prerelease=include_prerelease)
        return hits[0] if hits else None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"VersionRange({self.text!r})"


@dataclass(frozen=True)
class PatchSpec:
    """``name`` or ``name@range``, as typed on the command line."""

    name: str
    range: VersionRange

    @classmethod
    def parse(cls, text: str) -> "PatchSpec":
        """Parse ``name[@range]``."""
        raw = text.strip()
        name, sep, rng = raw.partition("@")
        if not name:
            raise InvalidSpecError(f"invalid patch spec {text!r}: expected NAME or NAME@RANGE, e.g. tox-fix@1.2")
        if sep and not rng.strip():
            raise InvalidSpecError(f"invalid patch spec {text!r}: nothing after '@'; use NAME or NAME@RANGE")
        check_name(name)
        return cls(name, VersionRange.parse(rng if sep else None))

    def __str__(self) -> str:
        return self.name if self.range.text == "latest" else f"{self.name}@{self.range.text}"
