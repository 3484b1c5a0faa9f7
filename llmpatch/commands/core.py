"""Core commands: ``base show``, ``inspect``, ``run``."""

from __future__ import annotations

from pathlib import Path

import click

from llmpatch import ui
from llmpatch.commands.options import json_option


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
    if m.provides:
        rows.append(("provides", ", ".join(f"{p.name} {p.version} (payload sha256:{p.payload_sha256[:12]}…)"
                                           for p in m.provides)))
    rows += [(f"file {k}", f"sha256:{v.sha256[:16]}… ({v.size} B)") for k, v in sorted(m.files.items())]
    for e in m.evals:
        extra = f" (unpatched {e.base_value:.4g})" if isinstance(e.base_value, (int, float)) else ""
        rows.append((f"eval {e.label}", f"{e.value:.4g}{extra}"))
    for st in m.stacks:  # composition-aware builds: the stacks the vendor evaluated it in
        rows.append((f"stack {st.label(m.name, m.version)}", st.describe() + (" (trained in this order)" if st.trained else "")))
        for e in st.evals:
            extra = f" (unpatched {e.base_value:.4g})" if isinstance(e.base_value, (int, float)) else ""
            rows.append((f"  in stack: eval {e.id}", f"{e.value:.4g}{extra}"))
    return rows


def _read_prompts(prompts: tuple[str, ...], prompts_file: str | None) -> list[str]:
    """PROMPTS, plus one prompt per line of FILE (``-``: stdin); stdin too when piped and nothing else is given.

    A ``.jsonl`` file holds one object per line with a ``prompt`` (or ``text``) field.
    """
    import json
    import sys

    from llmpatch.errors import InvalidSpecError

    out = list(prompts)
    source = prompts_file
    if source is None and not out and not sys.stdin.isatty():
        source = "-"
    if source is not None:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if source.endswith(".jsonl"):
                try:
                    obj = json.loads(line)
                    out.append(str(obj.get("prompt", obj.get("text"))) if isinstance(obj, dict) else str(obj))
                except json.JSONDecodeError as exc:
                    raise InvalidSpecError(f"{source}:{n}: not a JSON object ({exc.msg})") from None
            else:
                out.append(line)
    if not out:
        raise InvalidSpecError("no prompts: give PROMPTS, --prompts-file FILE, or pipe prompts on stdin (one a line)",
                               hint='e.g. llmpatch run "Tell me about my boss"  or  llmpatch run -f prompts.txt')
    return out


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""

    @cli.group("base")
    def base_group() -> None:
        """Base models: resolve, fingerprint and describe them."""

    @base_group.command("show")
    @click.argument("spec", default="default")
    @json_option()
    def base_show(spec: str, as_json: bool) -> None:
        """Show a base model's id, revision, fingerprint and sizes.

        SPEC is 'default' (the embedded SmolLM2-135M-Instruct), ORG/NAME[@REVISION], a directory
        or a .gguf file. Example: llmpatch base show default

        The first use of a GGUF base converts it once (about a minute); later runs read the cache.
        """
        from llmpatch import base

        with ui.activity(f"resolving and fingerprinting base {spec} (a GGUF base is converted once)", enabled=not as_json):
            info = base.identify(spec)
        if as_json:
            ui.print_json(info.to_dict())
        else:
            ui.kv_table(f"base {spec}", _base_info_rows(info))

    @cli.command("inspect")
    @click.argument("path", type=click.Path(path_type=Path))
    @json_option("Print the manifest as JSON.")
    def inspect(path: Path, as_json: bool) -> None:
        """Verify a patch directory and show its manifest. Example: llmpatch inspect ./tox-fix"""
        from llmpatch.artifact import read_patch

        patch = read_patch(path)
        if as_json:
            ui.print_json({"verified": True, "manifest": patch.manifest.to_dict()})
        else:
            ui.kv_table(f"{patch.manifest.id} (verified: every sha256 matches)", _manifest_rows(patch.manifest))

    @cli.command("run")
    @click.argument("prompts", nargs=-1)
    @click.option("-f", "--prompts-file", metavar="FILE",
                  help="Read prompts from FILE, one a line ('-' = stdin; .jsonl: a 'prompt' field). "
                       "Piped stdin is read when no PROMPTS are given.")
    @click.option("--base", "base_spec", help="Base model spec (default: the environment's base, else 'default').")
    @click.option("--patch", "patch_dirs", multiple=True, type=click.Path(path_type=Path),
                  help="Patch directory, repeatable; applied in the order given.")
    @click.option("--env", "env_dir", type=click.Path(path_type=Path), help="Use this environment's current generation.")
    @click.option("--max-new-tokens", default=64, show_default=True, type=click.IntRange(min=1),
                  help="Tokens to generate per prompt, at most.")
    @click.option("--sample", is_flag=True, help="Sample instead of greedy decoding.")
    @click.option("--temperature", default=1.0, show_default=True, help="Sampling temperature (with --sample).")
    @click.option("--top-p", default=1.0, show_default=True, help="Nucleus sampling: keep this much probability mass (with --sample).")
    @click.option("--seed", default=0, show_default=True, help="Random seed (with --sample).")
    @click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
                  help="Prompts per generation batch when not streaming.")
    @click.option("--chat/--no-chat", default=None, help="Apply the chat template (default: when the tokenizer has one).")
    @click.option("--system-prompt", default=None, help="A system prompt (the 'safe prompt' baseline).")
    @click.option("--compare", is_flag=True, help="Also generate with the unpatched base, shown before each patched text.")
    @click.option("--stream/--no-stream", default=None,
                  help="Print tokens as they are generated (default: on a terminal, without --json).")
    @json_option()
    def run(prompts, prompts_file, base_spec, patch_dirs, env_dir, max_new_tokens, sample, temperature, top_p, seed,
            batch_size, chat, system_prompt, compare, stream, as_json) -> None:
        """Generate with the patched model.

        \b
        Examples:
          llmpatch run --patch ./tox-fix "Tell me about my boss"
          llmpatch run --compare -f prompts.txt --json > out.json
          cat prompts.txt | llmpatch run
        """
        texts = _read_prompts(prompts, prompts_file)
        import llmpatch
        from llmpatch.runtime import GenerationConfig, PatchedModel

        patches: list = list(patch_dirs)
        env = _find_env(env_dir) if base_spec is None and not patches else None
        with ui.activity("loading the base model and patches", enabled=not as_json):
            model = llmpatch.load(env=env) if env is not None else llmpatch.load(base_spec or "default", patches)
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature,
                               top_p=top_p, seed=seed, batch_size=batch_size)
        models = ([("unpatched", PatchedModel(model.base))] if compare else []) + [("patched", model)]
        # the same shape as verify's report: one object per patch, in composition order
        stack = [{"name": p.manifest.name, "version": p.manifest.version, "virtual_tokens": p.manifest.num_virtual_tokens,
                  "path": str(p.path)} for p in model.stack.patches]
        if stream is None:
            stream = ui.console.is_terminal and not as_json
        if not as_json:
            ui.info(f"base {model.info.id} ({model.info.fingerprint}), stack: {model.stack.describe()}", style="dim")
        results: list[dict] = [{"prompt": p} for p in texts]
        if stream and not as_json:
            for i, p in enumerate(texts):
                ui.out(f"[bold]> {ui.escape(p)}[/bold]")
                for label, m in models:
                    if compare:
                        ui.out(f"[{'yellow' if label == 'unpatched' else 'green'}]{label}:[/] ", end="")
                    tokens = ui.TextStream(lambda ids, m=m: m.tokenizer.decode(ids, skip_special_tokens=True))
                    text = m.generate([p], chat=chat, system_prompt=system_prompt, config=cfg,
                                      on_token=lambda _i, t, tokens=tokens: tokens(t))[0]
                    tokens.end(text)
                    results[i][label] = text
            return
        for label, m in models:
            with ui.progress(f"generating ({label})" if compare else "generating", len(texts), enabled=not as_json) as advance:
                outs = m.generate(texts, chat=chat, system_prompt=system_prompt, config=cfg, progress=advance)
            for r, o in zip(results, outs):
                r[label] = o
        if as_json:
            ui.print_json({
                "base": model.info.to_dict(), "stack": stack, "stack_id": model.stack.id,
                "results": [{"prompt": r["prompt"], "output": r["patched"],
                             **({"unpatched": r["unpatched"]} if compare else {})} for r in results],
            })
            return
        for n, r in enumerate(results, start=1):
            if n > 1:
                ui.out()
            if len(results) > 1 or compare:
                ui.out(f"### prompt {n}: {r['prompt']}", markup=False)
            for label, _m in models:
                if compare:
                    ui.out(f"--- {label}", markup=False)
                ui.out(r[label], markup=False)


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
