"""Registry commands: publish, search, show, fetch, yank; signing keys and trust; registry init."""

from __future__ import annotations

from pathlib import Path

import click

from llmpatch import ui
from llmpatch.commands.options import dry_run_option, json_option, registry_option

_registry_option = registry_option()


def _open(url: str | None):
    from llmpatch.registry import open_registry

    return open_registry(url)


def _signing_key(key_name: str | None, no_sign: bool):
    """--key NAME|PATH, else the key named 'default' when one exists, else unsigned."""
    from llmpatch import signing

    if no_sign:
        return None
    if key_name:
        return signing.load_key(key_name)
    return signing.default_key()


def _pick(index, spec_text: str):
    """Resolve NAME[@SPEC] to one entry: newest non-yanked match; an exact pin may pick a yanked version."""
    from llmpatch.errors import NotFoundError
    from llmpatch.versions import PatchSpec

    spec = PatchSpec.parse(spec_text)
    entries = index.versions(spec.name)
    if not entries:
        index.get(spec.name, "0.0.0")  # raises NotFoundError naming similar patches
    if spec.range.is_exact:
        exact = [e for e in entries if spec.range.contains(e.version, include_prerelease=True)]
        if exact:
            return exact[0]
    live = [e.version for e in entries if not e.yanked]
    best = spec.range.best(live)
    if best is None:
        raise NotFoundError(
            f"no unyanked version of {spec.name} matches {str(spec.range)!r} (versions: "
            f"{', '.join(e.version + (' (yanked)' if e.yanked else '') for e in entries)})",
            hint=f"pin an exact version ({spec.name}@X.Y.Z) to get a yanked one",
        )
    return index.get(spec.name, best)


def _fmt_evals(evals) -> str:
    parts = []
    for e in evals:
        extra = f" (base {e.base_value:.3g})" if isinstance(e.base_value, (int, float)) else ""
        parts.append(f"{e.label}={e.value:.3g}{extra}")  # id: SUITE.METRIC, as verify and policies name it
    return "; ".join(parts)


def _fmt_provides(provides) -> str:
    """``tox-fix 1.1.0 (sha256:ab12…), ...`` for manifests (objects) and index entries (dicts)."""
    rows = [(p["name"], p["version"], p["payload_sha256"]) if isinstance(p, dict) else (p.name, p.version, p.payload_sha256)
            for p in provides]
    return ", ".join(f"{n} {v} (payload sha256:{d[:12]}…)" for n, v, d in rows) or "-"


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""

    @cli.command("publish")
    @click.argument("patch_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @_registry_option
    @click.option("--key", "key_name", default=None, metavar="NAME|PATH",
                  help="Signing key (default: the key named 'default', when it exists).")
    @click.option("--no-sign", is_flag=True, help="Publish unsigned even if a default key exists.")
    @json_option("Print the index entry as JSON.")
    def publish(patch_dir: Path, registry_url: str | None, key_name: str | None, no_sign: bool, as_json: bool) -> None:
        """Verify, sign and publish a built patch directory.

        Refuses a version that already exists, a manifest failing the schema, payloads whose
        sha256 differ from the manifest, and unsigned patches when the registry requires
        signatures. Example: llmpatch publish build/tox-fix --registry hf://acme/llmpatch-index
        """
        reg = _open(registry_url)
        key = _signing_key(key_name, no_sign)
        entry = reg.publish(patch_dir, key=key)
        if as_json:
            ui.print_json(entry.to_json_dict())
            return
        signed = f"signed by key {key.keyid[:16]}…" if key else "unsigned"
        ui.out(f"published {entry.id} to {reg.url} ({signed}, {entry.size} bytes, "
               f"manifest sha256:{entry.manifest_sha256[:16]}…)", markup=False)

    @cli.command("search")
    @click.argument("query", required=False, default="")
    @_registry_option
    @click.option("--domain", default=None, help="Only patches for this safety domain (toxicity, gender_bias, ...).")
    @click.option("--base", "base_fp", default=None, metavar="FINGERPRINT|SPEC",
                  help="Only patches built for this base (a sha256:... fingerprint or a base spec).")
    @click.option("--all-versions", is_flag=True, help="One row per version instead of per patch.")
    @click.option("--yanked", is_flag=True, help="Include yanked versions.")
    @json_option()
    def search(query: str, registry_url: str | None, domain: str | None, base_fp: str | None,
               all_versions: bool, yanked: bool, as_json: bool) -> None:
        """Find patches whose name, summary or domains contain every word of QUERY.

        Example: llmpatch search toxicity --domain toxicity
        """
        if base_fp and not base_fp.startswith("sha256:"):
            from llmpatch import base

            base_fp = base.identify(base_fp).fingerprint
        idx = _open(registry_url).index()
        hits = idx.search(query, domain=domain, base_fingerprint=base_fp, include_yanked=yanked)
        if not all_versions:
            seen: dict[str, object] = {}
            for e in hits:  # newest first within each name
                seen.setdefault(e.name, e)
            hits = list(seen.values())
        if as_json:
            ui.print_json([e.to_json_dict() for e in hits])
            return
        ui.table(None, ["name", "version", "domains", "base", "summary"],
                 [(e.name, e.version + (" (yanked)" if e.yanked else ""), ", ".join(e.domains),
                   f"{e.base_id} ({e.base_fingerprint[:19]}…)", e.summary) for e in hits],
                 caption=f"{len(hits)} result(s) in index version {idx.index_version}", no_wrap=["name", "version", "base"])

    @cli.command("show")
    @click.argument("spec")
    @_registry_option
    @json_option()
    def show(spec: str, registry_url: str | None, as_json: bool) -> None:
        """Show a patch's versions, bases, domains and evals: NAME or NAME@SPEC.

        Example: llmpatch show tox-fix@^1.2
        """
        from llmpatch.versions import PatchSpec

        idx = _open(registry_url).index()
        ps = PatchSpec.parse(spec)
        chosen = _pick(idx, spec)
        versions = idx.versions(ps.name)
        if as_json:
            ui.print_json({"name": ps.name, "selected": chosen.to_json_dict(),
                           "versions": [e.to_json_dict() for e in versions]})
            return
        ui.kv_table(f"{chosen.id}", [
            ("summary", chosen.summary), ("domains", ", ".join(chosen.domains)),
            ("base", f"{chosen.base_id} ({chosen.base_fingerprint})"),
            ("virtual tokens", chosen.num_virtual_tokens),
            ("requires", ", ".join(f"{k} {v}" for k, v in chosen.requires.items()) or "-"),
            ("conflicts", ", ".join(f"{k} {v}" for k, v in chosen.conflicts.items()) or "-"),
            *([("provides", _fmt_provides(chosen.provides)),
               ("replacement", "yes: install picks it for a request of everything it provides" if chosen.replaces
                else "no: install picks it only when named, or with --prefer-merged")] if chosen.provides else []),
            ("published", chosen.published), ("location", ", ".join(f"{k}={v}" for k, v in chosen.location.items())),
            ("manifest sha256", chosen.manifest_sha256),
            ("signed by", chosen.signature["keyid"][:16] + "…" if chosen.signature else "unsigned"),
            ("evals", _fmt_evals(chosen.claims) or "-"),
            *[(f"tested in {st.label(chosen.name, chosen.version)}", f"{st.describe()}: {_fmt_evals(st.evals) or '-'}")
              for st in chosen.evidence],
        ])
        ui.table(f"{ps.name}: {len(versions)} version(s)", ["version", "published", "base", "domains", "evals", "status"],
                 [(e.version, e.published, e.base_fingerprint[:19] + "…", ", ".join(e.domains), _fmt_evals(e.claims),
                   f"yanked: {e.yank_reason}" if e.yanked and e.yank_reason else ("yanked" if e.yanked else ""))
                  for e in versions], no_wrap=["version", "base"])

    @cli.command("fetch")
    @click.argument("spec")
    @click.argument("dest", type=click.Path(path_type=Path))
    @_registry_option
    @json_option()
    def fetch(spec: str, dest: Path, registry_url: str | None, as_json: bool) -> None:
        """Download and verify one version into a new directory DEST: NAME[@SPEC].

        Example: llmpatch fetch tox-fix@1.2.1 ./tox-fix
        """
        reg = _open(registry_url)
        entry = _pick(reg.index(), spec)
        out = reg.fetch(entry.name, entry.version, dest)
        signed = bool(reg.trust.configured)
        if as_json:
            ui.print_json({"name": entry.name, "version": entry.version, "path": str(out), "verified": True,
                           "signature_checked": signed, "manifest_sha256": entry.manifest_sha256,
                           "registry": reg.url})
            return
        ui.out(f"fetched {entry.id} from registry {reg.url} into {out} "
               f"(verified{' and signature checked' if signed else ', unsigned registry'})", markup=False)

    @cli.command("yank")
    @click.argument("spec")
    @_registry_option
    @click.option("--undo", is_flag=True, help="Un-yank the version.")
    @click.option("--reason", default=None, help="Why (shown to users).")
    @click.option("--key", "key_name", default=None, metavar="NAME|PATH", help="Key to re-sign the index with (default: 'default').")
    @json_option()
    def yank(spec: str, registry_url: str | None, undo: bool, reason: str | None, key_name: str | None, as_json: bool) -> None:
        """Hide NAME@VERSION from resolution; exact pins still install it (like cargo yank).

        Example: llmpatch yank tox-fix@1.2.0 --reason "regressed on XSTest"
        """
        from llmpatch.errors import InvalidSpecError
        from llmpatch.versions import PatchSpec

        ps = PatchSpec.parse(spec)
        if not ps.range.is_exact:
            raise InvalidSpecError(f"yank needs an exact version, got {spec!r}", hint=f"e.g. llmpatch yank {ps.name}@1.2.0")
        reg = _open(registry_url)
        version = str(ps.range)
        reg.yank(ps.name, version, undo=undo, reason=reason, key=_signing_key(key_name, False))
        if as_json:
            ui.print_json({"name": ps.name, "version": version, "yanked": not undo, "reason": None if undo else reason,
                           "registry": reg.url})
            return
        ui.out(f"{'un-yanked' if undo else 'yanked'} {ps.name}@{version} in {reg.url}", markup=False)

    @cli.command("mark-replacement")
    @click.argument("spec")
    @_registry_option
    @click.option("--undo", is_flag=True, help="Remove the mark.")
    @click.option("--key", "key_name", default=None, metavar="NAME|PATH", help="Key to re-sign the index with (default: 'default').")
    @json_option()
    def mark_replacement(spec: str, registry_url: str | None, undo: bool, key_name: str | None, as_json: bool) -> None:
        """Mark a merged patch NAME@VERSION as the replacement of the patches it provides (registry owners).

        `llmpatch install` then picks it for a request that names every patch it provides, without
        --prefer-merged. The mark lives in the signed index, not in the patch.
        Example: llmpatch mark-replacement safety-merged@1.0.0
        """
        from llmpatch.errors import InvalidSpecError
        from llmpatch.versions import PatchSpec

        ps = PatchSpec.parse(spec)
        if not ps.range.is_exact:
            raise InvalidSpecError(f"mark-replacement needs an exact version, got {spec!r}",
                                   hint=f"e.g. llmpatch mark-replacement {ps.name}@1.0.0")
        reg = _open(registry_url)
        version = str(ps.range)
        reg.mark_replacement(ps.name, version, undo=undo, key=_signing_key(key_name, False))
        if as_json:
            ui.print_json({"name": ps.name, "version": version, "replaces": not undo, "registry": reg.url})
            return
        ui.out(f"{'unmarked' if undo else 'marked'} {ps.name}@{version} as {'no longer ' if undo else ''}the replacement "
               f"of the patches it provides in {reg.url}", markup=False)

    @cli.group("registry")
    def registry_group() -> None:
        """Create and configure registries."""

    @registry_group.command("init")
    @click.argument("url")
    @click.option("--require-signatures", is_flag=True, help="Refuse unsigned publishes.")
    @click.option("--expires-days", type=float, default=None,
                  help="Each index write expires after this many days (clients refuse a stale index).")
    @json_option()
    def registry_init(url: str, require_signatures: bool, expires_days: float | None, as_json: bool) -> None:
        """Create a registry (directory or Hub index repo) and write its policy."""
        from llmpatch.registry import RegistryConfig

        reg = _open(url)
        reg.init(RegistryConfig(require_signatures=require_signatures, expires_days=expires_days))
        if as_json:
            ui.print_json({"registry": reg.url, "require_signatures": require_signatures, "expires_days": expires_days})
            return
        ui.out(f"registry {reg.url} ready (require_signatures={require_signatures}, expires_days={expires_days})",
               markup=False)

    @registry_group.command("resign")
    @_registry_option
    @click.option("--key", "key_name", required=True, metavar="NAME|PATH", help="The new key to sign with.")
    @dry_run_option
    @json_option()
    def registry_resign(registry_url: str | None, key_name: str, dry_run: bool, as_json: bool) -> None:
        """Vendors: re-sign the index and every version with a new key (after `llmpatch key rotate`).

        Only versions already signed by one of your own keys are re-signed; review the list it prints.
        """
        from llmpatch import signing

        reg = _open(registry_url)
        key = signing.load_key(key_name)
        done = reg.resign(key, dry_run=dry_run)
        if as_json:
            ui.print_json({"registry": reg.url, "key": key.keyid, "resigned": [e.id for e in done], "dry_run": dry_run})
            return
        ui.out(f"{'would re-sign' if dry_run else 're-signed'} {len(done)} version(s) of {reg.url} with key {key.keyid}"
               + "".join(f"\n  {e.id}  manifest sha256:{e.manifest_sha256[:16]}…  published {e.published}" for e in done)
               + ("" if dry_run else "\n  and the index"), markup=False)

    @cli.group("key")
    def key_group() -> None:
        """Signing keys (vendors) and trusted keys per registry (customers)."""

    @key_group.command("generate")
    @click.argument("name", default="default")
    @click.option("--force", is_flag=True, help="Replace an existing key of that name.")
    @json_option()
    def key_generate(name: str, force: bool, as_json: bool) -> None:
        """Create an Ed25519 signing key; share the printed .pub file with customers."""
        from llmpatch import signing

        key = signing.generate_key(name, overwrite=force)
        priv, pub = signing.key_paths(name)
        if as_json:
            ui.print_json({"name": name, "keyid": key.keyid, "private": str(priv), "public": str(pub)})
            return
        ui.out(f"key {name} {key.keyid}\n  private: {priv} (keep secret)\n  public:  {pub} "
               "(customers run `llmpatch key trust` on it)", markup=False)

    @key_group.command("list")
    @_registry_option
    @json_option()
    def key_list(registry_url: str | None, as_json: bool) -> None:
        """List your signing keys and the keys trusted for a registry."""
        from llmpatch import paths, signing

        trust = signing.TrustStore(registry_url or paths.default_registry_url())
        url = trust.url
        own = [{"name": k.name, "keyid": k.keyid} for k in signing.list_keys()]
        trusted = [{"keyid": k} for k in sorted(trust.keys())]
        revoked = [{"keyid": r.keyid, **r.to_dict()} for r in sorted(trust.revoked().values(), key=lambda r: r.revoked_at)]
        if as_json:
            ui.print_json({"own": own, "registry": url, "trusted": trusted, "revoked": revoked,
                           "highest_index_version": trust.highest_index_version})
            return
        ui.table("your signing keys", ["name", "key id"], [(k["name"], k["keyid"]) for k in own], no_wrap=["key id"])
        ui.table(f"trusted for {url}", ["key id"], [(k["keyid"],) for k in trusted],
                 caption=f"highest index version seen: {trust.highest_index_version}", no_wrap=["key id"])
        if revoked:
            ui.table("revoked (refused on every registry)", ["key id", "revoked", "replaced by", "reason"],
                     [(r["keyid"], r["revoked_at"], r["replaced_by"] or "-", r["reason"] or "-") for r in revoked],
                     no_wrap=["key id"])

    @key_group.command("trust")
    @click.argument("public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @_registry_option
    @json_option()
    def key_trust(public_key: Path, registry_url: str | None, as_json: bool) -> None:
        """Trust a vendor's public key for a registry: signatures are then required and verified."""
        from llmpatch import paths, signing

        key = signing.PublicKey.from_pem(public_key.read_bytes(), source=str(public_key))
        trust = signing.TrustStore(registry_url or paths.default_registry_url())
        trust.trust(key)
        if as_json:
            ui.print_json({"registry": trust.url, "trusted": key.keyid})
            return
        ui.out(f"trusting key {key.keyid} for {trust.url}", markup=False)

    @key_group.command("untrust")
    @click.argument("keyid", required=False)
    @_registry_option
    @click.option("--all", "untrust_all", is_flag=True,
                  help="Stop trusting every key: the registry is then no longer verified.")
    @json_option()
    def key_untrust(keyid: str | None, registry_url: str | None, untrust_all: bool, as_json: bool) -> None:
        """Stop trusting a key (its full id) for a registry; --all stops verifying the registry."""
        from llmpatch import paths, signing
        from llmpatch.errors import InvalidSpecError

        trust = signing.TrustStore(registry_url or paths.default_registry_url())
        if untrust_all:
            if keyid:
                raise InvalidSpecError(f"give a key id or --all, not both (got {keyid!r})")
            removed = trust.untrust_all()
            ui.err_console.print(f"[yellow]warning: registry {trust.url} is now unverified: unsigned or re-signed "
                                 f"indexes and patches will be accepted ({len(removed)} key(s) removed)[/yellow]")
            if as_json:
                ui.print_json({"registry": trust.url, "untrusted": list(removed), "verified": False})
            return
        if keyid is None:
            raise InvalidSpecError("name the key to stop trusting (its full id), or pass --all",
                                   hint="see `llmpatch key list --registry URL`")
        trust.untrust(keyid)
        left = len(trust.keys())
        if as_json:
            ui.print_json({"registry": trust.url, "untrusted": keyid, "keys_left": left})
            return
        ui.out(f"no longer trusting {keyid} for {trust.url}"
               + ("" if left else " (no key left: signatures are still required; trust the vendor's new key)"), markup=False)

    @key_group.command("rotate")
    @click.argument("old")
    @click.argument("new")
    @click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("key-rotation.json"),
                  show_default=True, help="Where to write the rotation file (given to customers).")
    @click.option("--keep-old", is_flag=True, help="Do not revoke the old key (a planned rotation, not a leak).")
    @click.option("--reason", default=None, help="Why (shown to customers), e.g. 'key leaked in CI logs'.")
    @click.option("--force", is_flag=True, help="Overwrite an existing output file.")
    @json_option()
    def key_rotate(old: str, new: str, output: Path, keep_old: bool, reason: str | None, force: bool, as_json: bool) -> None:
        """Vendors: endorse key NEW with key OLD (both NAME|PATH); customers accept it with `key accept`.

        Example: llmpatch key generate acme-2027 && llmpatch key rotate acme acme-2027 -o rotation.json
        """
        from llmpatch import atomic, signing
        from llmpatch.errors import LlmpatchError

        if output.exists() and not force:
            raise LlmpatchError(f"{output} already exists", hint="pick another --output, or pass --force to replace it")
        rotation = signing.KeyRotation.create(signing.load_key(old), signing.load_key(new), revoke_old=not keep_old,
                                              reason=reason)
        atomic.write_text(output, rotation.to_json())
        if as_json:
            ui.print_json({"rotation": str(output), "old": rotation.old_keyid, "new": rotation.new_keyid,
                           "revoke_old": rotation.revoke_old, "sha256": rotation.sha256})
            return
        ui.out(f"wrote {output}: key {rotation.new_keyid} endorsed by {rotation.old_keyid}"
               + (" (the old key is revoked where it is accepted)" if rotation.revoke_old else "")
               + "\n  customers: llmpatch key accept " + str(output) + " --registry URL"
               + "\n  you: llmpatch registry resign --key " + new + " --registry URL (re-signs every version)",
               markup=False)

    @key_group.command("accept")
    @click.argument("rotation_file", type=click.Path(dir_okay=False, path_type=Path))
    @_registry_option
    @dry_run_option
    @json_option()
    def key_accept(rotation_file: Path, registry_url: str | None, dry_run: bool, as_json: bool) -> None:
        """Accept a vendor's key rotation: trust its new key, revoke the old one (only if the old one is trusted here)."""
        from llmpatch import paths, signing

        rotation = signing.KeyRotation.read(rotation_file)
        trust = signing.TrustStore(registry_url or paths.default_registry_url())
        done = trust.accept(rotation, dry_run=dry_run)
        if as_json:
            ui.print_json({**done.to_dict(), "dry_run": dry_run, "reason": rotation.reason})
            return
        if not done.changed:
            ui.out(f"nothing to change: key {done.trusted} is already trusted for {done.registry}", markup=False)
            return
        verb = "would trust" if dry_run else "trusting"
        ui.out(f"{verb} key {done.trusted} for {done.registry}"
               + (f"\n{'would revoke' if dry_run else 'revoked'} key {done.revoked} on every registry" if done.revoked else "")
               + (f" ({rotation.reason})" if rotation.reason and done.revoked else ""), markup=False)

    @key_group.command("revoke")
    @click.argument("keyid")
    @click.option("--reason", default=None, help="Why (shown when the key is refused).")
    @dry_run_option
    @json_option()
    def key_revoke(keyid: str, reason: str | None, dry_run: bool, as_json: bool) -> None:
        """Refuse a key (its full id) on every registry from now on; revocations are permanent."""
        from llmpatch import signing

        rev = signing.revoke(keyid, reason=reason, dry_run=dry_run)
        if as_json:
            ui.print_json({"keyid": rev.keyid, **rev.to_dict(), "dry_run": dry_run})
            return
        ui.out(f"{'would revoke' if dry_run else 'revoked'} key {rev.keyid}: {rev.describe()}"
               "\n  anything signed by it is refused; trust the vendor's new key (`llmpatch key accept` "
               "or `llmpatch key trust`)", markup=False)

    @key_group.command("forget-index")
    @_registry_option
    @json_option()
    def key_forget_index(registry_url: str | None, as_json: bool) -> None:
        """Forget the highest index version seen (only after a registry was deliberately recreated)."""
        from llmpatch import paths, signing

        trust = signing.TrustStore(registry_url or paths.default_registry_url())
        trust.forget_index()
        if as_json:
            ui.print_json({"registry": trust.url, "highest_index_version": trust.highest_index_version})
            return
        ui.out(f"forgot the index version seen for {trust.url}", markup=False)
