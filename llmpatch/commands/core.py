"""Core commands: ``base show``, ``inspect``, ``run``."""

from __future__ import annotations

from pathlib import Path

import click

from llmpatch import ui


def _base_info_rows(info) -> list[tuple[str, str]]:
    return [
        ("id", info.id),
        ("revision", str(info.revision)),
        ("fingerprint", info.fingerprint),
        ("architecture", info.architecture),
        ("hidden size", str(info.hidden_size)),
        ("vocab size", str(info.vocab_size)),
        ("path", info.path),
        *[(f"  {k} component", v) for k, v in sorted(info.components.items())],
    ]


def _manifest_rows(m) -> list[tuple[str, str]]:
    rows = [
        ("name", m.name), ("version", m.version), ("summary", m.summary),
        ("domains", ", ".join(m.domains)), ("license", m.license), ("created", m.created),
        ("virtual tokens", str(m.num_virtual_tokens)), ("dtype", m.dtype), ("init", str(m.init)),
        ("base", m.base.describe()), ("base fingerprint", m.base.fingerprint),
        ("base hidden/vocab", f"{m.base.hidden_size} / {m.base.vocab_size}"),
        ("requires", ", ".join(f"{k} {v}" for k, v in m.requires.items()) or "-"),
        ("conflicts", ", ".join(f"{k} {v}" for k, v in m.conflicts.items()) or "-"),
    ]
    rows += [(f"file {k}", f"sha256:{v.sha256[:16]}… ({v.size} B)") for k, v in sorted(m.files.items())]
    for e in m.evals:
        extra = f" (unpatched {e.base_value:.4g})" if isinstance(e.base_value, (int, float)) else ""
        rows.append((f"eval {e.id}", f"{e.value:.4g}{extra}"))
    return rows


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""

    @cli.group("base")
    def base_group() -> None:
        """Base models: resolve, fingerprint and describe them."""

    @base_group.command("show")
    @click.argument("spec", default="default")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def base_show(spec: str, as_json: bool) -> None:
        """Show a base model's id, revision, fingerprint and sizes.

        SPEC is 'default' (the embedded SmolLM2-135M-Instruct), ORG/NAME[@REVISION], a directory
        or a .gguf file. Example: llmpatch base show default
        """
        from llmpatch import base

        info = base.identify(spec)
        if as_json:
            ui.print_json(info.to_dict())
        else:
            ui.kv_table(f"base {spec}", _base_info_rows(info))

    @cli.command("inspect")
    @click.argument("path", type=click.Path(path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
    def inspect(path: Path, as_json: bool) -> None:
        """Verify a patch directory and show its manifest. Example: llmpatch inspect ./tox-fix"""
        from llmpatch.artifact import read_patch

        patch = read_patch(path)
        if as_json:
            ui.print_json({"verified": True, "manifest": patch.manifest.to_dict()})
        else:
            ui.kv_table(f"{patch.manifest.id} (verified: every sha256 matches)", _manifest_rows(patch.manifest))

    @cli.command("run")
    @click.argument("prompts", nargs=-1, required=True)
    @click.option("--base", "base_spec", help="Base model spec (default: the environment's base, else 'default').")
    @click.option("--patch", "patch_dirs", multiple=True, type=click.Path(path_type=Path),
                  help="Patch directory, repeatable; applied in the order given.")
    @click.option("--env", "env_dir", type=click.Path(path_type=Path), help="Use this environment's current generation.")
    @click.option("--max-new-tokens", default=64, show_default=True)
    @click.option("--sample", is_flag=True, help="Sample instead of greedy decoding.")
    @click.option("--temperature", default=1.0, show_default=True)
    @click.option("--top-p", default=1.0, show_default=True)
    @click.option("--seed", default=0, show_default=True)
    @click.option("--chat/--no-chat", default=None, help="Apply the chat template (default: when the tokenizer has one).")
    @click.option("--system-prompt", default=None, help="A system prompt (the 'safe prompt' baseline).")
    @click.option("--compare", is_flag=True, help="Also generate with the unpatched base, side by side.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    def run(prompts, base_spec, patch_dirs, env_dir, max_new_tokens, sample, temperature, top_p, seed,
            chat, system_prompt, compare, as_json) -> None:
        """Generate with the patched model. Example: llmpatch run --patch ./tox-fix "Tell me about my boss"."""
        import llmpatch
        from llmpatch.runtime import GenerationConfig, PatchedModel

        patches: list = list(patch_dirs)
        env = _find_env(env_dir) if base_spec is None and not patches else None
        model = llmpatch.load(env=env) if env is not None else llmpatch.load(base_spec or "default", patches)
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature,
                               top_p=top_p, seed=seed)
        outs = model.generate(list(prompts), chat=chat, system_prompt=system_prompt, config=cfg)
        plain = None
        if compare:
            plain = PatchedModel(model.base).generate(list(prompts), chat=chat, system_prompt=system_prompt, config=cfg)
        if as_json:
            ui.print_json({
                "base": model.info.to_dict(), "stack": model.stack.describe(), "stack_id": model.stack.id,
                "results": [
                    {"prompt": p, "output": o, **({"unpatched": plain[i]} if plain else {})}
                    for i, (p, o) in enumerate(zip(prompts, outs))
                ],
            })
            return
        ui.console.print(f"[dim]base {model.info.id} ({model.info.fingerprint[:19]}…), stack: {model.stack.describe()}[/dim]")
        for i, (p, o) in enumerate(zip(prompts, outs)):
            ui.console.print(f"[bold]> {p}[/bold]")
            if plain is not None:
                ui.console.print(f"[yellow]unpatched:[/yellow] {plain[i]}")
                ui.console.print(f"[green]patched:[/green]   {o}")
            else:
                ui.console.print(o)


def _find_env(env_dir: Path | None) -> Path | None:
    """The environment to run: ``--env``, else one found from the cwd, else None (plain base)."""
    from llmpatch.env import find_env
    from llmpatch.errors import LlmpatchError

    try:
        return find_env(env_dir)
    except LlmpatchError:
        if env_dir is not None:
            raise
        return None
