"""Vendor signing keys, signature envelopes, and per-registry trust (keys + index freshness).

Keys are Ed25519 (``cryptography``); nothing here implements a primitive. Signatures are
detached envelopes (``registry_schema/signature.schema.json``) over DSSE's pre-authentication
encoding, ``DSSEv1 <len(type)> <type> <len(body)> <body>``, so a signature made for one payload
type (a patch statement) can never be replayed as another (an index).

What a patch signature covers is the *statement* built by :func:`patch_statement`: the patch's
name, version, manifest sha256 and every file digest. A verifier rebuilds the statement from
the name and version it asked for and the files it downloaded, so a correctly signed file set
served under another label fails.

Trust is per registry: ``<trust_dir>/<registry slug>/keys/<keyid>.pub`` and ``state.json``
holding the highest index version seen (rollback protection, after TUF).

Key rotation follows TUF's root rotation with a threshold of one: a :class:`KeyRotation` names
the key it replaces and the new key, and is signed by both. A client accepts it for a registry
only when the old key is one it already trusts there (:meth:`TrustStore.accept`); the old key is
then revoked (``<trust_dir>/revoked.json``) and refused on every registry from then on.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from llmpatch import atomic, paths, schemas
from llmpatch.errors import (
    FreshnessError,
    LlmpatchError,
    NotFoundError,
    SchemaError,
    SignatureError,
)
from llmpatch.util import canonical_json, now_iso

_log = logging.getLogger("llmpatch.signing")

SCHEMA_VERSION = 1
PATCH_PAYLOAD = "application/vnd.llmpatch.patch-statement+json"
INDEX_PAYLOAD = "application/vnd.llmpatch.index+json"
ROTATION_PAYLOAD = "application/vnd.llmpatch.key-rotation+json"
ROTATION_TYPE = "llmpatch/key-rotation/v1"
DEFAULT_KEY = "default"
_KEY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding: binds the payload type to the signed bytes."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def patch_statement(name: str, version: str, manifest_sha256: str, files: dict[str, dict]) -> bytes:
    """The bytes a patch signature covers: label + manifest digest + every file digest."""
    return canonical_json({
        "_type": "llmpatch/patch-statement/v1",
        "name": name,
        "version": version,
        "manifest_sha256": manifest_sha256,
        "files": {k: {"sha256": v["sha256"], "size": int(v["size"])} for k, v in sorted(files.items())},
    })


def key_id(public_key: Ed25519PublicKey) -> str:
    """Hex sha256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, data, mode=mode)


@dataclass(frozen=True)
class PublicKey:
    """A trusted (or own) Ed25519 public key."""

    key: Ed25519PublicKey
    name: str = ""

    @property
    def keyid(self) -> str:
        return key_id(self.key)

    def pem(self) -> str:
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @classmethod
    def from_pem(cls, text: str | bytes, *, name: str = "", source: str = "public key") -> "PublicKey":
        """Parse a PEM SubjectPublicKeyInfo Ed25519 key."""
        data = text.encode() if isinstance(text, str) else text
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SignatureError(f"{source} is not a PEM public key ({exc})",
                                 hint="give the .pub file printed by `llmpatch key generate`") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SignatureError(f"{source} is a {type(key).__name__}, expected an Ed25519 public key",
                                 hint="llmpatch signs with Ed25519 keys made by `llmpatch key generate`")
        return cls(key, name)


@dataclass(frozen=True)
class SigningKey:
    """A vendor's Ed25519 private key."""

    key: Ed25519PrivateKey
    name: str = DEFAULT_KEY

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key(), self.name)

    @property
    def keyid(self) -> str:
        return self.public.keyid

    def sign(self, payload_type: str, body: bytes) -> dict[str, Any]:
        """A detached signature envelope over ``body`` (validated against the signature schema)."""
        env = {
            "schema_version": SCHEMA_VERSION,
            "algorithm": "ed25519",
            "payload_type": payload_type,
            "keyid": self.keyid,
            "payload_sha256": hashlib.sha256(body).hexdigest(),
            "signature": base64.b64encode(self.key.sign(pae(payload_type, body))).decode("ascii"),
            "signed_at": now_iso(),
        }
        schemas.validate(env, "signature", what="signature envelope")
        return env

    @classmethod
    def generate(cls, name: str = DEFAULT_KEY) -> "SigningKey":
        """A fresh key (not saved)."""
        return cls(Ed25519PrivateKey.generate(), name)


# ---------------------------------------------------------------------------------------------
# The vendor's own keys


def _check_key_name(name: str) -> str:
    if not _KEY_NAME_RE.fullmatch(name):
        raise LlmpatchError(f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (e.g. acme-release)")
    return name


def key_paths(name: str) -> tuple[Path, Path]:
    """``(private, public)`` file paths of a named key in the keys directory."""
    d = paths.keys_dir()
    return d / f"{_check_key_name(name)}.key", d / f"{name}.pub"


def generate_key(name: str = DEFAULT_KEY, *, overwrite: bool = False) -> SigningKey:
    """Create and save a named key pair (private key file readable by the owner only)."""
    priv, pub = key_paths(name)
    if priv.exists() and not overwrite:
        raise LlmpatchError(f"a key named {name!r} already exists at {priv}",
                            hint="pick another name, or pass --force to replace it (old signatures stay verifiable only with the old .pub)")
    key = SigningKey.generate(name)
    pem = key.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    priv.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(priv.parent, 0o700)
    _atomic_write(priv, pem, mode=0o600)
    _atomic_write(pub, key.public.pem().encode())
    return key


def load_key(name_or_path: str | Path = DEFAULT_KEY) -> SigningKey:
    """Load a signing key by name (from the keys directory) or by file path."""
    p = Path(name_or_path)
    if not (p.suffix == ".key" or os.sep in str(name_or_path)) or not p.exists():
        p = key_paths(str(name_or_path))[0]
    if not p.exists():
        raise NotFoundError(f"no signing key {str(name_or_path)!r} (looked for {p})",
                            hint="create one with `llmpatch key generate` or pass --key PATH")
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        _log.warning("private key %s is readable by other users (mode %o); anyone who can read it can sign as you. "
                     "Run `chmod 600 %s`, and rotate the key if others may have copied it", p, mode, p)
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{p} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{p} holds a {type(key).__name__}, expected an Ed25519 private key")
    return SigningKey(key, p.stem)


def default_key() -> SigningKey | None:
    """The key named ``default`` when it exists."""
    priv, _ = key_paths(DEFAULT_KEY)
    return load_key(DEFAULT_KEY) if priv.exists() else None


def list_keys() -> list[PublicKey]:
    """The vendor's own keys (public halves)."""
    d = paths.keys_dir()
    if not d.is_dir():
        return []
    return [PublicKey.from_pem(p.read_bytes(), name=p.stem, source=str(p)) for p in sorted(d.glob("*.pub"))]


# ---------------------------------------------------------------------------------------------
# Verification and per-registry trust


def verify(envelope: Any, payload_type: str, body: bytes, keys: dict[str, PublicKey], *, what: str,
           revoked: dict[str, "Revocation"] | None = None) -> PublicKey:
    """Check ``envelope`` signs ``body`` as ``payload_type`` with one of ``keys``; return that key.

    A signature by a key in ``revoked`` is refused, saying when and why the key was revoked.
    """
    try:
        schemas.validate(envelope, "signature", what=f"signature of {what}", error=SchemaError)
    except SchemaError as exc:
        raise SignatureError(exc.message) from None
    if envelope["payload_type"] != payload_type:
        raise SignatureError(f"signature of {what} is for a {envelope['payload_type']!r}, expected {payload_type!r}",
                             hint="a signature was copied from another document; do not use this registry copy")
    gone = (revoked or {}).get(envelope["keyid"])
    if gone is not None:
        raise SignatureError(
            f"{what} is signed by key {gone.keyid[:16]}…, which was {gone.describe()}; "
            "nothing signed by a revoked key is accepted",
            hint="the vendor must re-sign with its new key (`llmpatch registry resign --key NEW --registry URL`); "
                 "if the vendor rotated keys and you have not accepted it here yet: "
                 "`llmpatch key accept ROTATION.json --registry URL`",
        )
    key = keys.get(envelope["keyid"])
    if key is None:
        raise SignatureError(
            f"{what} is signed by key {envelope['keyid'][:16]}…, which is not trusted for this registry "
            f"(trusted: {', '.join(k[:16] + '…' for k in sorted(keys)) or 'none'})",
            hint="if you trust that vendor, add its public key: `llmpatch key trust VENDOR.pub --registry URL`",
        )
    try:
        key.key.verify(base64.b64decode(envelope["signature"], validate=True), pae(payload_type, body))
    except (InvalidSignature, ValueError):
        raise SignatureError(
            f"signature of {what} by key {key.keyid[:16]}… does not verify: the signed content was changed",
            hint="the registry copy was tampered with or corrupted; do not install it and tell the vendor",
        ) from None
    return key


# ---------------------------------------------------------------------------------------------
# Revocation and key rotation


_KEYID_RE = re.compile(r"[0-9a-f]{64}")
REVOKED_FILE = "revoked.json"


def _check_keyid(keyid: str, *, what: str = "key id") -> str:
    keyid = keyid.strip().lower()
    if not _KEYID_RE.fullmatch(keyid):
        raise NotFoundError(f"{keyid!r} is not a full {what} (64 hex digits)",
                            hint="copy the id from `llmpatch key list --registry URL`")
    return keyid


@dataclass(frozen=True)
class Revocation:
    """A key the client refuses on every registry, and why.

    >>> r = Revocation("ab" * 32, "2026-01-02T03:04:05Z", "leaked", None, None)
    >>> r.describe()
    'revoked on 2026-01-02T03:04:05Z by you (leaked)'
    """

    keyid: str
    revoked_at: str
    reason: str | None
    rotation_sha256: str | None  # the accepted rotation that revoked it; None: revoked by the user
    replaced_by: str | None

    def describe(self) -> str:
        """'revoked on DATE by ... (reason)', for messages."""
        by = (f"by the vendor's key rotation to {self.replaced_by[:16]}…" if self.rotation_sha256 and self.replaced_by
              else "by you")
        return f"revoked on {self.revoked_at} {by}" + (f" ({self.reason})" if self.reason else "")

    def to_dict(self) -> dict[str, Any]:
        return {"revoked_at": self.revoked_at, "reason": self.reason, "rotation_sha256": self.rotation_sha256,
                "replaced_by": self.replaced_by}

    @classmethod
    def from_dict(cls, keyid: str, d: dict[str, Any]) -> "Revocation":
        return cls(keyid, d["revoked_at"], d.get("reason"), d.get("rotation_sha256"), d.get("replaced_by"))


def _revoked_path() -> Path:
    return paths.trust_dir() / REVOKED_FILE


def revocations() -> dict[str, Revocation]:
    """Every revoked key, by key id (``<trust_dir>/revoked.json``; empty when there is none)."""
    p = _revoked_path()
    if not p.exists():
        return {}
    data = schemas.read_json(p, hint="restore it from a backup: deleting it would trust revoked keys again")
    schemas.validate(data, "revocations", what=str(p), known_version=SCHEMA_VERSION)
    return {k: Revocation.from_dict(k, v) for k, v in data["revoked"].items()}


def _write_revocations(revs: dict[str, Revocation]) -> None:
    data = {"schema_version": SCHEMA_VERSION, "revoked": {k: revs[k].to_dict() for k in sorted(revs)}}
    schemas.validate(data, "revocations", what="revoked keys")
    _atomic_write(_revoked_path(), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def revoke(keyid: str, *, reason: str | None = None, dry_run: bool = False) -> Revocation:
    """Revoke a key on this machine for every registry (the user's own decision, e.g. after an advisory).

    Revocations are permanent: a revoked key cannot be trusted again; the vendor rotates to a new one.
    """
    keyid = _check_keyid(keyid)
    _check_reason(reason)
    revs = revocations()
    if keyid in revs:
        return revs[keyid]
    rev = Revocation(keyid, now_iso(), reason, None, None)
    if not dry_run:
        _write_revocations({**revs, keyid: rev})
    return rev


def _check_reason(reason: str | None) -> None:
    if reason is not None and (len(reason) > 500 or any(ord(c) < 32 for c in reason)):
        raise LlmpatchError(f"the reason {reason[:40]!r}… must be one line of at most 500 characters",
                            hint="say briefly why, e.g. --reason 'key leaked in CI logs'")


@dataclass(frozen=True)
class KeyRotation:
    """A new root of trust: ``new_key`` replaces ``old_keyid``, signed by both keys.

    Made by the vendor with :meth:`create` (``llmpatch key rotate``); accepted by a customer with
    :meth:`TrustStore.accept` (``llmpatch key accept``) only where ``old_keyid`` is trusted.
    """

    old_keyid: str
    new_key: PublicKey
    revoke_old: bool
    reason: str | None
    created: str
    signed_by_old: dict[str, Any]
    signed_by_new: dict[str, Any]

    @property
    def new_keyid(self) -> str:
        return self.new_key.keyid

    def statement(self) -> dict[str, Any]:
        """What both signatures cover."""
        return {"_type": ROTATION_TYPE, "old_keyid": self.old_keyid, "new_keyid": self.new_keyid,
                "new_public_key": self.new_key.pem(), "revoke_old": self.revoke_old, "reason": self.reason,
                "created": self.created}

    def body(self) -> bytes:
        return canonical_json(self.statement())

    @property
    def sha256(self) -> str:
        """Identifies this rotation (its statement), e.g. in ``revoked.json``."""
        return hashlib.sha256(self.body()).hexdigest()

    @classmethod
    def create(cls, old: SigningKey, new: SigningKey, *, revoke_old: bool = True,
               reason: str | None = None) -> "KeyRotation":
        """The vendor's side: ``old`` endorses ``new`` (and ``new`` proves it is held)."""
        if old.keyid == new.keyid:
            raise LlmpatchError(f"the old and the new key are the same key ({old.keyid[:16]}…)",
                                hint="create a new key first: `llmpatch key generate NEW-NAME`")
        _check_reason(reason)
        draft = cls(old.keyid, new.public, revoke_old, reason, now_iso(), {}, {})
        body = draft.body()
        return cls(old.keyid, new.public, revoke_old, reason, draft.created,
                   old.sign(ROTATION_PAYLOAD, body), new.sign(ROTATION_PAYLOAD, body))

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "statement": self.statement(),
                "signed_by_old": self.signed_by_old, "signed_by_new": self.signed_by_new}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "key rotation") -> "KeyRotation":
        """Parse and check what the file can show by itself: format, new key id, the new key's signature."""
        schemas.validate(d, "key_rotation", what=source, known_version=SCHEMA_VERSION)
        st = d["statement"]
        new = PublicKey.from_pem(st["new_public_key"], source=f"{source}: new_public_key")
        if new.keyid != st["new_keyid"]:
            raise SignatureError(f"{source}: new_keyid {st['new_keyid'][:16]}… is not the id of new_public_key "
                                 f"({new.keyid[:16]}…)", hint="the file was edited; ask the vendor for the original")
        if st["old_keyid"] == st["new_keyid"]:
            raise SignatureError(f"{source} replaces key {st['old_keyid'][:16]}… with itself")
        rot = cls(st["old_keyid"], new, st["revoke_old"], st["reason"], st["created"],
                  d["signed_by_old"], d["signed_by_new"])
        if canonical_json(st) != rot.body():  # e.g. another PEM spelling of the same key
            raise SignatureError(f"{source}: the statement is not in its canonical form",
                                 hint="the file was edited; ask the vendor for the original")
        if d["signed_by_old"].get("keyid") != st["old_keyid"]:
            raise SignatureError(f"{source}: signed_by_old is by key {str(d['signed_by_old'].get('keyid'))[:16]}…, "
                                 f"not by the key being replaced ({st['old_keyid'][:16]}…)",
                                 hint="a rotation must be signed by the old key; ask the vendor for the original file")
        verify(d["signed_by_new"], ROTATION_PAYLOAD, rot.body(), {new.keyid: new}, what=f"{source} (new key)")
        return rot

    @classmethod
    def read(cls, path: Path) -> "KeyRotation":
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"no key rotation file at {path}",
                                hint="the vendor makes it with `llmpatch key rotate OLD NEW -o FILE`")
        return cls.from_dict(schemas.read_json(path, error=SignatureError), source=str(path))


@dataclass(frozen=True)
class Accepted:
    """What :meth:`TrustStore.accept` did (or, for a dry run, would do)."""

    registry: str
    trusted: str
    revoked: str | None
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "trusted": self.trusted, "revoked": self.revoked, "changed": self.changed}



def registry_slug(url: str) -> str:
    """A directory name for a registry identity: readable prefix + hash (stable, collision-free)."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", url).strip("-")[-40:]
    return f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


class TrustStore:
    """Trusted keys and the last index version seen, for one registry (under every spelling of it).

    The state is keyed by :func:`llmpatch.paths.registry_identity`, so ``DIR/reg``, ``DIR/./reg/``
    and ``file://DIR/reg`` share one trust store. Once a key has been trusted, the registry keeps
    requiring signatures (``require_signatures`` in ``state.json``) even if every key is later
    removed one by one; only an explicit :meth:`untrust_all` turns verification off.
    """

    def __init__(self, url: str) -> None:
        self.url = paths.canonical_registry(url)
        self.identity = paths.registry_identity(url)
        self.root = paths.trust_dir() / registry_slug(self.identity)
        if not self.root.exists():
            self._adopt_legacy()

    def _adopt_legacy(self) -> None:
        """Merge trust state written by older versions under another spelling of this registry."""
        top = paths.trust_dir()
        if not top.is_dir():
            return
        for state_file in sorted(top.glob("*/state.json")):
            d = state_file.parent
            if d == self.root:
                continue
            try:
                data = json.loads(state_file.read_text(encoding="utf-8"))
                same = paths.registry_identity(str(data.get("url", ""))) == self.identity
            except (OSError, ValueError, LlmpatchError, RecursionError):
                continue
            if not same:
                continue
            for pub in sorted((d / "keys").glob("*.pub")):
                _atomic_write(self.keys_dir / pub.name, pub.read_bytes())
            state = self._state()
            seen = data.get("highest_index_version")
            if isinstance(seen, int) and seen > state["highest_index_version"]:
                state["highest_index_version"] = seen
            if any((d / "keys").glob("*.pub")) or data.get("require_signatures"):
                state["require_signatures"] = True
            self._write_state(state)

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def all_keys(self) -> dict[str, PublicKey]:
        """Keys trusted for this registry by key id, revoked ones included."""
        if not self.keys_dir.is_dir():
            return {}
        out = {}
        for p in sorted(self.keys_dir.glob("*.pub")):
            k = PublicKey.from_pem(p.read_bytes(), name=p.stem, source=str(p))
            out[k.keyid] = k
        return out

    def keys(self) -> dict[str, PublicKey]:
        """Trusted keys by key id (a revoked key is never among them)."""
        revoked = revocations()
        return {k: v for k, v in self.all_keys().items() if k not in revoked}

    def revoked(self) -> dict[str, Revocation]:
        """Every revoked key (revocations hold for all registries)."""
        return revocations()

    @property
    def configured(self) -> bool:
        """True when signatures are required: a key is trusted, or one was and was not untrusted with --all."""
        return bool(self.keys()) or bool(self._state().get("require_signatures"))

    def verification_keys(self, what: str) -> dict[str, PublicKey] | None:
        """The keys to verify ``what`` with, None when this registry is not verified at all."""
        keys = self.keys()
        if keys:
            return keys
        revoked = revocations()
        gone = [revoked[k] for k in self.all_keys() if k in revoked]
        if gone:
            raise SignatureError(
                f"every key trusted for registry {self.url} is revoked ("
                + "; ".join(f"{r.keyid[:16]}… {r.describe()}" for r in gone) + f"), so {what} cannot be verified",
                hint="accept the vendor's key rotation for this registry (`llmpatch key accept ROTATION.json "
                     "--registry URL`), or trust its new key after checking it with the vendor "
                     "(`llmpatch key trust NEW.pub --registry URL`)",
            )
        if self._state().get("require_signatures"):
            raise SignatureError(
                f"registry {self.url} was trusted with a signing key before and now has none, so {what} cannot be verified",
                hint="trust the vendor's current key (`llmpatch key trust VENDOR.pub --registry URL`); "
                     "`llmpatch key untrust --all --registry URL` stops verifying this registry",
            )
        return None

    def trust(self, key: PublicKey) -> Path:
        """Trust ``key`` for this registry (idempotent); from now on signatures are required."""
        gone = revocations().get(key.keyid)
        if gone is not None:
            raise SignatureError(f"key {key.keyid[:16]}… was {gone.describe()}; a revoked key cannot be trusted again",
                                 hint="trust the vendor's new key instead (the vendor's `llmpatch key rotate` file names it)")
        target = self.keys_dir / f"{key.keyid}.pub"
        _atomic_write(target, key.pem().encode())
        self._write_state({**self._state(), "url": self.url, "require_signatures": True})
        return target

    def untrust(self, keyid: str) -> None:
        """Stop trusting one key, named by its full id (signatures stay required)."""
        keyid = keyid.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", keyid):
            raise NotFoundError(
                f"{keyid!r} is not a full key id (64 hex digits)",
                hint="copy the id from `llmpatch key list --registry URL`, or pass --all to stop trusting every key",
            )
        if keyid not in self.all_keys():
            raise NotFoundError(f"key {keyid} is not trusted for registry {self.url}",
                                hint="list them with `llmpatch key list --registry URL`")
        (self.keys_dir / f"{keyid}.pub").unlink()

    def untrust_all(self) -> list[str]:
        """Stop trusting every key and stop requiring signatures; return the removed key ids."""
        removed = sorted(self.all_keys())
        for k in removed:
            (self.keys_dir / f"{k}.pub").unlink(missing_ok=True)
        self._write_state({**self._state(), "url": self.url, "require_signatures": False})
        return removed

    def accept(self, rotation: KeyRotation, *, dry_run: bool = False) -> Accepted:
        """Trust ``rotation.new_key`` here, endorsed by a key already trusted here; revoke the old key.

        Everything is checked before anything is written, so a refused rotation changes nothing.
        The same rotation may be accepted again for another registry that trusted the old key,
        even after the first acceptance revoked it; a different rotation from a revoked key is refused.
        """
        old_id, new_id = rotation.old_keyid, rotation.new_keyid
        what = f"the key rotation {old_id[:16]}… -> {new_id[:16]}…"
        trusted = self.all_keys()
        if old_id not in trusted:
            raise SignatureError(
                f"{what} is signed by key {old_id[:16]}…, which is not trusted for registry {self.url} "
                f"(trusted: {', '.join(k[:16] + '…' for k in sorted(trusted)) or 'none'}); "
                "a new key is accepted only when a key you already trust endorses it",
                hint="accept it for the registry where you trust the vendor's old key (--registry URL); to trust "
                     "a key without endorsement, check its fingerprint with the vendor and run `llmpatch key trust NEW.pub`",
            )
        revoked = revocations()
        gone = revoked.get(old_id)
        if gone is not None and gone.rotation_sha256 != rotation.sha256:
            raise SignatureError(
                f"{what} is signed by key {old_id[:16]}…, which was {gone.describe()}; "
                "a rotation signed by a revoked key is refused",
                hint="whoever holds a leaked key can sign rotations; if you expected this one, confirm the new key "
                     "with the vendor out of band and run `llmpatch key trust NEW.pub --registry URL`",
            )
        if new_id in revoked:
            raise SignatureError(f"{what} trusts key {new_id[:16]}…, which was {revoked[new_id].describe()}",
                                 hint="ask the vendor for a rotation to a key that is not revoked")
        verify(rotation.signed_by_old, ROTATION_PAYLOAD, rotation.body(), {old_id: trusted[old_id]},
               what=f"{what} (old key)")
        verify(rotation.signed_by_new, ROTATION_PAYLOAD, rotation.body(), {new_id: rotation.new_key},
               what=f"{what} (new key)")
        revoke_now = rotation.revoke_old and old_id not in revoked
        changed = revoke_now or new_id not in trusted
        if changed and not dry_run:
            # Revoke first: a crash between the two writes leaves the old key refused and the new
            # one not yet trusted (fail closed); accepting the same file again completes it.
            if revoke_now:
                _write_revocations({**revoked, old_id: Revocation(old_id, now_iso(), rotation.reason,
                                                                  rotation.sha256, new_id)})
            self.trust(rotation.new_key)
        return Accepted(self.url, new_id, old_id if rotation.revoke_old else None, changed)

    def _state(self) -> dict[str, Any]:
        p = self.root / "state.json"
        if not p.exists():
            return {"schema_version": SCHEMA_VERSION, "url": self.url, "highest_index_version": 0}
        data = schemas.read_json(p, hint="delete it to forget the index version seen")
        schemas.validate(data, "trust_state", what=str(p))
        return data

    def _write_state(self, data: dict[str, Any]) -> None:
        schemas.validate(data, "trust_state", what="trust state")
        _atomic_write(self.root / "state.json", (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    @property
    def highest_index_version(self) -> int:
        return int(self._state()["highest_index_version"])

    def check_fresh(self, index_version: int, expires: str | None, *, now: _dt.datetime | None = None) -> None:
        """Refuse an index older than one already seen, or past its expiry (rollback/freeze attacks)."""
        seen = self.highest_index_version
        if index_version < seen:
            raise FreshnessError(
                f"registry {self.url} served index version {index_version}, older than version {seen} already seen: "
                "refusing a rolled-back index",
                hint="a mirror or attacker may be replaying an old index; try again later or another mirror. "
                     "If the registry was deliberately recreated, run `llmpatch key forget-index --registry URL`",
            )
        if expires:
            when = _dt.datetime.fromisoformat(expires.replace("Z", "+00:00"))
            current = now or _dt.datetime.now(_dt.timezone.utc)
            if when <= current:
                raise FreshnessError(
                    f"registry {self.url} index version {index_version} expired at {expires}: refusing a possibly frozen index",
                    hint="the registry owner must republish (any publish or yank re-signs the index with a new expiry)",
                )

    def record(self, index_version: int) -> None:
        """Remember ``index_version`` as seen (only ever raises the mark)."""
        state = self._state()
        if index_version > int(state["highest_index_version"]):
            state["highest_index_version"] = index_version
            state["url"] = self.url
            self._write_state(state)

    def forget_index(self) -> None:
        """Reset the rollback mark (after a registry was deliberately recreated)."""
        state = self._state()
        state["highest_index_version"] = 0
        self._write_state(state)
