"""Customer commands: init, install, remove, upgrade, order, list, history, rollback, gc, lock, sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from llmpatch import ui
from llmpatch.commands.options import dry_run_option, env_option, json_option, timeout_option

_env_option, _timeout_option, _json_option = env_option, timeout_option, json_option()

REGISTRY_HELP = "Registry URL or path to use instead of the environment's."


def _registry_option(help: str = REGISTRY_HELP) -> Callable:
    return click.option("--registry", "-r", "registry", default=None, metavar="URL", help=help)


def _say(msg: str) -> None:
    ui.info(msg)


def _open(env_dir: Path | None):
    from llmpatch.env import Environment, find_env

    return Environment(find_env(env_dir))


class _Registries:
    """Opens each registry once, on first use (rollback and locked installs from the store need none)."""

    def __init__(self, env, override: str | None) -> None:
        self.env, self.override, self._open = env, override, {}

    @property
    def default_url(self) -> str:
        return self.env.registry_url(self.override)

    def __call__(self, url: str | None = None) -> Any:
        from llmpatch.env.operations import open_registry

        key = self.override or url or self.default_url
        if key not in self._open:
            self._open[key] = open_registry(key)
        return self._open[key]


def _gen_dict(env, gen) -> dict[str, Any]:
    return {
        "number": gen.number, "created": gen.created, "action": gen.action, "command": gen.command,
        "parent": gen.parent, "restores": gen.restores, "stack_id": gen.stack_id,
        "current": gen.number == env.current_number(),
        "patches": [{"position": i, **p.to_dict(), "path": str(env.store.path(p.manifest_sha256))}
                    for i, p in enumerate(gen.patches, start=1)],
    }


def _show_plan(plan, *, dry_run: bool) -> None:
    changes = plan.changes()
    if not changes:
        ui.out("nothing to change: the environment already has " + (" -> ".join(i.id for i in plan.after) or "no patches"),
               markup=False)
        return
    rows = []
    for c in changes:
        if c["op"] == "add":
            rows.append(("+ add", c["name"], c["version"], str(c["position"])))
        elif c["op"] == "remove":
            rows.append(("- remove", c["name"], c["version"], ""))
        elif c["op"] == "change":
            rows.append(("~ change", c["name"], f"{c['from']} -> {c['to']}", str(c["position"])))
        else:
            rows.append(("~ reorder", " -> ".join(c["to"]), "", ""))
    ui.table("plan (dry run: nothing changed)" if dry_run else "changes", ["op", "patch", "version", "position"], rows)
    ui.out("stack after: " + (" -> ".join(i.id for i in plan.after) or "(no patches)"), markup=False)


def _finish(env, plan, gen, *, as_json: bool, dry_run: bool = False, guidance=None,
            verified: dict | None = None) -> None:
    if as_json:
        extra = {} if guidance is None else {"stack_evidence": guidance.to_dict()}
        if verified is not None:
            extra["verified"] = verified
        ui.print_json({"plan": plan.to_dict(), "dry_run": dry_run,
                       "generation": _gen_dict(env, gen) if gen is not None else None, **extra})
        return
    for note in plan.notes:
        _say(note if note.startswith("note: ") else f"warning: {note}")
    _show_plan(plan, dry_run=dry_run)
    if gen is not None:
        ui.out(f"[green]generation {gen.number}[/green] is now current: {ui.escape(gen.describe())}")


def _env_policy(env) -> Path | None:
    """The environment's policy file (``llmpatch policy set``), checked now: a broken one fails before any change."""
    path = env.policy_path
    if path is None:
        return None
    from llmpatch.errors import LlmpatchError
    from llmpatch.verify.policy import load_policy

    try:
        load_policy(path)
    except LlmpatchError as exc:
        raise type(exc)(f"the environment's policy ({env.config.policy}): {exc.message}",
                        hint="fix the file, or point the environment at another one with `llmpatch policy set FILE` "
                             "(`llmpatch policy unset` to drop it); nothing was changed") from None
    return path


def _verify_check(policy: Path | None, limit: int | None) -> Callable[[Path], tuple[bool, list[str]]]:
    """The eval gate of ``install --verify``: verify the environment's new stack (and its policy)."""
    from llmpatch.verify.gate import verify_environment

    def check(env_path: Path) -> tuple[bool, list[str]]:
        result = verify_environment(env_path, policy=policy, **({"limit": limit} if limit else {}))
        return result.passed, list(result.failures)

    return check


def _run(env_dir: Path | None, command: str, timeout: float, build_plan: Callable, *, dry_run: bool, as_json: bool,
         registries: Callable | None = None, verify: bool | None = False, policy: Path | None = None,
         verify_limit: int | None = None, env=None, guide: bool = False) -> None:
    """Plan, then (unless ``dry_run``) apply as a new generation, under the environment's lock.

    A plan that changes nothing writes no generation, whatever the command (``rollback --to N``
    to the stack already current included), and says so.

    ``guide`` (install, upgrade, order): say whether a vendor evaluated the new stack together
    (the manifests' stack evidence). A stack nobody evaluated together is verified unasked when
    the environment has a policy (``llmpatch policy set``) and ``verify`` is None (neither
    ``--verify`` nor ``--no-verify``); ``--verify`` without ``--policy`` uses that policy too.
    """
    from llmpatch.env import operations as ops

    env = env or _open(env_dir)
    regs = registries or _Registries(env, None)
    env_policy = _env_policy(env) if guide or verify else None
    if dry_run:
        # A dry run only reads (generation files and `current` are replaced atomically, so an
        # unlocked read is consistent): no lock, no recovery, nothing written, so it also works
        # on a read-only environment.
        plan = build_plan(env, regs)
        guidance = _dry_guidance(env, plan) if guide else None
        if guidance is not None and not as_json:
            for line in guidance.messages():
                _say(line)
        _finish(env, plan, None, as_json=as_json, dry_run=True, guidance=guidance)
        return
    with env.transaction(command, timeout=timeout, on_wait=_say, on_recover=_say):
        plan = build_plan(env, regs)
        previous = env.current_number()
        # an unchanged stack writes no generation, but a damaged store copy of it is still repaired
        gen = None if plan.unchanged and not plan.repair else ops.apply(env, plan, regs,
                                                                         progress=None if as_json else _say)
        guidance = ops.stack_guidance(env, gen.patches) if gen is not None and guide else None
        untested = guidance is not None and not guidance.evaluated
        auto = verify is None and untested and env_policy is not None
        if guidance is not None and not as_json:
            for line in guidance.messages():
                _say(line)
            if untested and not verify and not auto:
                _say("check it before relying on it: `llmpatch verify` measures the stack; `llmpatch install ... "
                     "--verify` (or `llmpatch policy set FILE`, which makes that the default for such stacks) "
                     "rolls back a stack that fails")
        verified = None
        if gen is not None and (verify or auto):
            gate_policy = policy or env_policy
            verified = {"policy": str(gate_policy) if gate_policy else None, "default": bool(auto)}
            if auto and not as_json:
                _say(f"verifying it against the environment's policy {env.config.policy} (--no-verify skips this)")
            ops.gate(env, gen, previous, _verify_check(gate_policy, verify_limit), command=command)
            verified["passed"] = True
    _finish(env, plan, gen, as_json=as_json, guidance=guidance, verified=verified)


def _dry_guidance(env, plan):
    """Stack evidence for a dry run, when every planned patch is already in the store (else: known after download)."""
    from llmpatch.env import operations as ops
    from llmpatch.env.records import Installed

    if not plan.after or any(not env.store.has(i.manifest_sha256) for i in plan.after):
        return None
    return ops.stack_guidance(env, [Installed(i.name, i.version, i.manifest_sha256, "", 0) for i in plan.after])


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""

    @cli.command("init")
    @click.option("--base", "base_spec", default="default", show_default=True,
                  help="Base model: 'default', ORG/NAME[@REVISION], a directory or a .gguf file.")
    @_registry_option("Registry URL or path for this environment (default: $LLMPATCH_REGISTRY or the local one).")
    @click.option("--path", "path", type=click.Path(path_type=Path),
                  help="Where to create the environment (default: ./.llmpatch, or $LLMPATCH_ENV).")
    @click.option("--max-virtual-tokens", default=256, show_default=True, help="Cap on the composed prefix length.")
    @click.option("--policy", "policy", type=click.Path(dir_okay=False, path_type=Path),
                  help="Verify policy of the environment (see `llmpatch policy set`).")
    @click.option("--force", is_flag=True, help="Replace an existing environment here.")
    @_json_option
    def init(base_spec: str, registry: str | None, path: Path | None, max_virtual_tokens: int, policy: Path | None,
             force: bool, as_json: bool) -> None:
        """Create a patch environment pinned to a base. Example: llmpatch init --base default"""
        from llmpatch import paths
        from llmpatch.env import Environment

        if policy is not None:
            from llmpatch.verify.policy import load_policy

            load_policy(policy)  # a missing or invalid policy fails before anything is created
        target = path or paths.new_env_dir()
        env = Environment.create(target, base_spec, registry=registry, force=force, max_virtual_tokens=max_virtual_tokens,
                                 policy=policy)
        if as_json:
            ui.print_json({"path": str(env.path), "base": env.base.to_dict(), "registry": env.config.registry,
                           "policy": env.config.policy, "generation": _gen_dict(env, env.current())})
            return
        ui.out(f"created environment {env.path}", markup=False)
        ui.out(f"pinned base: {env.base_ref.describe()}", markup=False)
        ui.out(f"fingerprint: {env.base_ref.fingerprint}", markup=False)
        if env.config.policy:
            ui.out(f"policy: {env.config.policy} (verifies stacks no vendor evaluated together)", markup=False)

    @cli.group("policy")
    def policy_group() -> None:
        """The environment's verify policy: the gate for stacks no vendor evaluated together."""

    @policy_group.command("show")
    @_env_option
    @_json_option
    def policy_show(env_dir, as_json) -> None:
        """Show the environment's policy file, if any. Example: llmpatch policy show"""
        env = _open(env_dir)
        path = env.policy_path
        if as_json:
            ui.print_json({"policy": env.config.policy, "path": str(path) if path else None,
                           "exists": bool(path and path.is_file())})
            return
        if path is None:
            ui.out("no policy: `install --verify` uses the default gate policy, and untested stacks are not "
                   "verified unless asked (`llmpatch policy set FILE`)", markup=False)
        else:
            ui.out(f"policy: {env.config.policy} ({path}{'' if path.is_file() else ', missing!'})", markup=False)

    @policy_group.command("set")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @dry_run_option
    @_env_option
    @_timeout_option
    @_json_option
    def policy_set(file, dry_run, env_dir, lock_timeout, as_json) -> None:
        """Use FILE as the environment's verify policy. Example: llmpatch policy set policy.toml

        \b
        `install --verify` then checks new stacks against it, and install, upgrade and order
        verify unasked any stack no vendor evaluated together (--no-verify skips that).
        """
        from llmpatch.verify.policy import load_policy

        load_policy(file)  # a policy that does not parse is refused, nothing written
        env = _open(env_dir)
        if dry_run:
            stored = str(file)
        else:
            with env.transaction("llmpatch policy set", timeout=lock_timeout, on_wait=_say, on_recover=_say):
                stored = env.set_policy(file)
        if as_json:
            ui.print_json({"policy": stored, "dry_run": dry_run})
        else:
            ui.out(f"{'would set' if dry_run else 'policy set to'} {stored}" + (" (dry run: nothing changed)" if dry_run else ""),
                   markup=False)

    @policy_group.command("unset")
    @dry_run_option
    @_env_option
    @_timeout_option
    @_json_option
    def policy_unset(dry_run, env_dir, lock_timeout, as_json) -> None:
        """Forget the environment's policy (the policy file itself is left alone)."""
        env = _open(env_dir)
        before = env.config.policy
        if not dry_run and before is not None:
            with env.transaction("llmpatch policy unset", timeout=lock_timeout, on_wait=_say, on_recover=_say):
                env.set_policy(None)
        if as_json:
            ui.print_json({"policy": None if not dry_run else before, "was": before, "dry_run": dry_run})
        else:
            ui.out(("would remove" if dry_run else "removed") + f" the policy {before}" if before else "no policy was set",
                   markup=False)

    @cli.command("install")
    @click.argument("specs", nargs=-1)
    @click.option("--pre", is_flag=True, help="Allow prereleases (e.g. 2.0.0-rc.1).")
    @click.option("--position", type=click.IntRange(min=1), help="Insert the new patches at this stack position (1 = first).")
    @click.option("--prefer-merged", is_flag=True,
                  help="Install a merged patch (from `llmpatch merge`) that provides the requested patches instead of them.")
    @dry_run_option
    @click.option("--locked", is_flag=True, help="Reproduce llmpatch.lock exactly (like `llmpatch sync`).")
    @click.option("--lockfile", type=click.Path(path_type=Path), help="Lock file for --locked (default: the project's llmpatch.lock).")
    @_registry_option()
    @click.option("--verify/--no-verify", "verify", default=None,
                  help="Evaluate the new stack and roll back if it fails (--policy, else the environment's policy, "
                       "else the default gate policy). Default: on for a stack no vendor evaluated together when "
                       "the environment has a policy (`llmpatch policy set`), else off.")
    @click.option("--policy", "policy", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="With --verify (implies it): the policy file (TOML/JSON) the new stack must pass.")
    @click.option("--verify-limit", type=click.IntRange(min=1), help="With --verify: at most this many prompts per suite (a quicker gate).")
    @_env_option
    @_timeout_option
    @_json_option
    def install(specs, pre, position, prefer_merged, dry_run, locked, lockfile, registry, verify, policy, verify_limit,
                env_dir, lock_timeout, as_json) -> None:
        """Install patches. Example: llmpatch install tox-fix@1.2 bias-fix@^2.0 --verify --policy policy.toml

        \b
        Specs: NAME (newest release), NAME@1.2.3 (exact), NAME@1.2 (newest 1.2.x),
        NAME@^1.2 (>=1.2.0 <2.0.0), NAME@~1.2.3 (>=1.2.3 <1.3.0), NAME@'>=1.0 <2.0',
        NAME@'<1 || >=3'. Prereleases need --pre; yanked versions need an exact pin.

        A merged patch that provides every requested patch is chosen instead of them with
        --prefer-merged, or when the registry marks it as their replacement; it is never
        stacked with a patch it provides.
        """
        from llmpatch.env import operations as ops
        from llmpatch.errors import InvalidSpecError
        from llmpatch.versions import PatchSpec

        if locked:
            if specs:
                raise InvalidSpecError(f"--locked installs exactly the lock file; do not also name patches ({' '.join(specs)})")
            _sync(lockfile, registry, env_dir, lock_timeout, dry_run, as_json)
            return
        if not specs:
            raise InvalidSpecError("nothing to install: name at least one patch, e.g. llmpatch install tox-fix@1.2",
                                   hint="or use --locked to install from llmpatch.lock")
        if verify is False and policy is not None:
            raise InvalidSpecError("--no-verify and --policy contradict each other", hint="drop one of them")
        parsed = [PatchSpec.parse(s) for s in specs]
        env = _open(env_dir)
        regs = _Registries(env, registry)
        command = "llmpatch install " + " ".join(specs) + (f" --position {position}" if position else "") \
            + (" --pre" if pre else "") + (" --prefer-merged" if prefer_merged else "")
        _run(env_dir, command, lock_timeout, lambda e, r: ops.plan_install(
            e, r(), parsed, command=command, pre=pre, position=position, registry_url=r.default_url,
            prefer_merged=prefer_merged),
            dry_run=dry_run, as_json=as_json, registries=regs, verify=True if policy is not None else verify,
            policy=policy, verify_limit=verify_limit, env=env, guide=True)

    def _sync(lockfile, registry, env_dir, lock_timeout, dry_run, as_json) -> None:
        from llmpatch import paths
        from llmpatch.env import Environment, LockFile
        from llmpatch.env import operations as ops
        from llmpatch.errors import EnvironmentStateError

        try:
            env = _open(env_dir)
        except EnvironmentStateError:
            env = None
        if env is not None:
            lock = LockFile.read(lockfile or env.lockfile_path)
        else:
            # A fresh checkout: create the environment from the lock file's base.
            lock = LockFile.read(lockfile or Path.cwd() / "llmpatch.lock")
            target = env_dir or paths.new_env_dir()
            if dry_run:  # creating the environment is a change too
                ids = [p.id for p in lock.patches]
                if as_json:
                    ui.print_json({"plan": {"action": "sync", "create": str(target), "base": lock.base.spec,
                                            "after": ids}, "dry_run": True})
                    return
                ui.out(f"would create an environment at {target} pinned to {lock.base.spec} and install "
                       f"{', '.join(ids) or 'nothing'} (dry run: nothing changed)", markup=False)
                return
            env = Environment.create(target, lock.base.spec, registry=registry or lock.registry)
        regs = _Registries(env, registry)
        _run(env_dir, "llmpatch install --locked", lock_timeout,
             lambda e, r: ops.plan_sync(e, lock, r, command="llmpatch install --locked", registry_url=registry),
             dry_run=dry_run, as_json=as_json, registries=regs, env=env)

    @cli.command("sync")
    @click.option("--lockfile", type=click.Path(path_type=Path), help="Lock file (default: the project's llmpatch.lock).")
    @_registry_option("Registry URL or path to use instead of the lock file's.")
    @dry_run_option
    @_env_option
    @_timeout_option
    @_json_option
    def sync(lockfile, registry, dry_run, env_dir, lock_timeout, as_json) -> None:
        """Make the environment exactly what llmpatch.lock says (same as install --locked)."""
        _sync(lockfile, registry, env_dir, lock_timeout, dry_run, as_json)

    @cli.command("remove")
    @click.argument("names", nargs=-1, required=True)
    @dry_run_option
    @_env_option
    @_timeout_option
    @_json_option
    def remove(names, dry_run, env_dir, lock_timeout, as_json) -> None:
        """Remove patches from the stack (payloads stay for rollback). Example: llmpatch remove bias-fix"""
        from llmpatch.env import operations as ops

        command = "llmpatch remove " + " ".join(names)
        _run(env_dir, command, lock_timeout, lambda e, r: ops.plan_remove(e, list(names), command=command),
             dry_run=dry_run, as_json=as_json)

    @cli.command("upgrade")
    @click.argument("specs", nargs=-1)
    @click.option("--pre", is_flag=True, help="Allow prereleases.")
    @click.option("--verify/--no-verify", "verify", default=None,
                  help="Evaluate the new stack against the environment's policy (or the default gate policy) and roll "
                       "back if it fails. Default: on for a stack no vendor evaluated together when the environment "
                       "has a policy.")
    @dry_run_option
    @_registry_option()
    @_env_option
    @_timeout_option
    @_json_option
    def upgrade(specs, pre, verify, dry_run, registry, env_dir, lock_timeout, as_json) -> None:
        """Upgrade patches within their specs (all by default). Example: llmpatch upgrade tox-fix@^2"""
        from llmpatch.env import operations as ops
        from llmpatch.versions import PatchSpec

        parsed = [PatchSpec.parse(s) for s in specs]
        env = _open(env_dir)
        regs = _Registries(env, registry)
        command = ("llmpatch upgrade " + " ".join(specs)).strip() + (" --pre" if pre else "")
        _run(env_dir, command.strip(), lock_timeout, lambda e, r: ops.plan_upgrade(
            e, r(), parsed, command=command.strip(), pre=pre, registry_url=r.default_url),
            dry_run=dry_run, as_json=as_json, registries=regs, env=env, verify=verify, guide=True)

    @cli.command("order")
    @click.argument("names", nargs=-1, required=True)
    @click.option("--verify/--no-verify", "verify", default=None,
                  help="Evaluate the reordered stack and roll back if it fails. Default: on for an order no vendor "
                       "evaluated when the environment has a policy.")
    @_env_option
    @_timeout_option
    @_json_option
    def order(names, verify, env_dir, lock_timeout, as_json) -> None:
        """Set the composition order: named patches first, in this order. Example: llmpatch order tox-fix bias-fix"""
        from llmpatch.env import operations as ops

        command = "llmpatch order " + " ".join(names)
        _run(env_dir, command, lock_timeout, lambda e, r: ops.plan_order(e, list(names), command=command),
             dry_run=False, as_json=as_json, verify=verify, guide=True)

    @cli.command("rollback")
    @click.option("--to", "to", type=int, help="Generation number to return to (default: the previous state).")
    @dry_run_option
    @_env_option
    @_timeout_option
    @_json_option
    def rollback(to, dry_run, env_dir, lock_timeout, as_json) -> None:
        """Return to the previous generation's stack (as a new generation). Works offline.

        Returning to the stack that is already current changes nothing and writes no generation.
        """
        from llmpatch.env import operations as ops

        command = "llmpatch rollback" + (f" --to {to}" if to is not None else "")
        _run(env_dir, command, lock_timeout, lambda e, r: ops.plan_rollback(e, to, command=command),
             dry_run=dry_run, as_json=as_json)

    @cli.command("list")
    @_env_option
    @_json_option
    def list_(env_dir, as_json) -> None:
        """Show the current stack, in composition order."""
        env = _open(env_dir)
        gen = env.current()
        damaged = env.damaged([gen])
        if as_json:
            ui.print_json({"path": str(env.path), "base": env.base.to_dict(), "generation": _gen_dict(env, gen),
                           "total_virtual_tokens": sum(p.num_virtual_tokens for p in gen.patches),
                           "damaged": damaged})
            return
        for why in damaged.values():
            ui.err_console.print(f"[red]damaged store: {why}[/red]")
        if damaged:
            ui.err_console.print("hint: `llmpatch sync` (or `llmpatch install --locked`) fetches and verifies it again")
        rows = [(str(i), p.name, p.version, str(p.num_virtual_tokens), p.requested or "(dependency)", p.manifest_sha256[:12])
                for i, p in enumerate(gen.patches, start=1)]
        ui.table(f"generation {gen.number} on {env.base_ref.describe()}",
                 ["#", "patch", "version", "tokens", "requested", "sha256"], rows,
                 caption="composed in this order: #1's prefix comes first" if rows else "no patches installed")

    @cli.command("check")
    @_env_option
    @_json_option
    def check(env_dir, as_json) -> None:
        """Verify every file of every kept generation (like `pip check`); exit 1 on damage."""
        from llmpatch.errors import IntegrityError

        env = _open(env_dir)
        gens = env.generations()
        damaged = env.damaged(gens, full=True)  # every tensor read too: check is the thorough one
        if as_json:
            ui.print_json({"generations": [g.number for g in gens], "damaged": damaged})
        else:
            for why in damaged.values():
                ui.err_console.print(f"[red]{why}[/red]")
        if damaged:
            needed_now = {p.manifest_sha256 for p in env.current().patches}
            raise IntegrityError(
                f"{len(damaged)} stored patch(es) of {len(gens)} generation(s) are missing or damaged"
                + (" (including the current stack)" if needed_now & set(damaged) else ""),
                hint="`llmpatch sync` repairs the current stack from its registry; `llmpatch gc --keep-last N` "
                     "forgets old generations you do not need",
            )
        if not as_json:
            ui.console.print(f"ok: {len(gens)} generation(s), every stored file verified")

    @cli.command("history")
    @_env_option
    @_json_option
    def history(env_dir, as_json) -> None:
        """Show every generation of the environment."""
        env = _open(env_dir)
        gens = env.generations()
        cur = env.current_number()
        if as_json:
            ui.print_json({"current": cur, "generations": [_gen_dict(env, g) for g in gens]})
            return
        rows = [(("* " if g.number == cur else "  ") + str(g.number), g.created, g.action, g.describe(), g.command)
                for g in gens]
        ui.table(f"history of {env.path}", ["gen", "created", "action", "stack", "command"], rows,
                 caption="* = current; `llmpatch rollback --to N` returns to generation N")

    @cli.command("gc")
    @click.option("--keep-last", type=int, help="Also delete all but the last N generations (the current one is always kept).")
    @click.option("--dry-run", is_flag=True, help="Show what would be deleted, delete nothing.")
    @_env_option
    @_timeout_option
    @_json_option
    def gc(keep_last, dry_run, env_dir, lock_timeout, as_json) -> None:
        """Delete payloads no kept generation needs."""
        from llmpatch.env import operations as ops

        env = _open(env_dir)
        if dry_run:  # reads only: no lock, works on a read-only environment
            removed = ops.gc(env, keep_last=keep_last, dry_run=True)
        else:
            with env.transaction("llmpatch gc", timeout=lock_timeout, on_wait=_say, on_recover=_say):
                removed = ops.gc(env, keep_last=keep_last)
        if as_json:
            ui.print_json({**removed, "dry_run": dry_run})
            return
        verb = "would remove" if dry_run else "removed"
        ui.out(f"{verb} {len(removed['generations'])} generation(s) and {len(removed['payloads'])} payload(s)"
               + (" (dry run: nothing deleted)" if dry_run else ""), markup=False)
        for n in removed["generations"]:
            ui.out(f"  generation {n}", markup=False)
        for digest in removed["payloads"]:
            ui.out(f"  payload sha256:{digest}", markup=False)

    @cli.command("lock")
    @click.option("-o", "--output", type=click.Path(path_type=Path), help="Where to write (default: the project's llmpatch.lock).")
    @_env_option
    @_json_option
    def lock(output, env_dir, as_json) -> None:
        """Write llmpatch.lock for the current generation."""
        env = _open(env_dir)
        path = env.write_lockfile(path=output)
        if as_json:
            ui.print_json({"path": str(path), "lock": env.lockfile().to_dict()})
            return
        ui.out(f"wrote {path} ({len(env.current().patches)} patch(es), stack {env.current().stack_id[:19]}…)", markup=False)
