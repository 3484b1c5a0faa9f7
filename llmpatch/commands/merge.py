"""``llmpatch merge``: distil a stack of patches into one patch that ``provides`` them."""

from __future__ import annotations

from pathlib import Path

import click

from llmpatch import ui
from llmpatch.commands.build import _fmt, _progress
from llmpatch.commands.options import json_option


def _prompt_option(values: tuple[str, ...]) -> dict[str, str]:
    from llmpatch.errors import InvalidSpecError

    out: dict[str, str] = {}
    for v in values:
        domain, sep, source = v.partition("=")
        if not sep or not domain.strip() or not source.strip():
            raise InvalidSpecError(f"--prompts {v!r}: expected DOMAIN=FILE, e.g. --prompts toxicity=prompts.jsonl",
                                   hint="DOMAIN is a domain one of the patches addresses; FILE a prompt file or 'builtin'")
        out[domain.strip()] = source.strip()
    return out


def _show_plan(d: dict, *, checked_only: bool) -> None:
    ui.kv_table(f"merge plan: {d['name']} {d['version']} -> {d['out']}" + (" (nothing trained or written)" if checked_only else ""), [
        ("base", f"{d['base']['id']} ({d['base']['fingerprint'][:19]}…)"),
        ("inputs", ", ".join(f"{i['name']} {i['version']}" for i in d["inputs"])),
        ("provides", ", ".join(f"{p['name']} {p['version']}" for p in d["provides"])),
        ("virtual tokens", d["num_virtual_tokens"]),
        ("utility anchor", f"{d['utility_anchor']['prompts']} everyday prompts" if d["utility_anchor"]["enabled"] else "off"),
        ("training", f"SFT {d['training']['sft_epochs']} epoch(s), DPO {d['training']['dpo_epochs']} epoch(s) "
                     f"(reference {d['training']['dpo_reference']}), at most {d['training']['sft_rows_at_most']} SFT rows"),
        ("evaluation", ", ".join(d["eval"]["suites"]) if d["eval"]["enabled"] else "off"),
    ])
    ui.table("domains (each learned from its owner's own answers)", ["domain", "owner", "prompts", "benign", "chat", "judge", "from"],
             [(x["domain"], f"{x['owner']['name']} {x['owner']['version']}", x["prompts"], x["benign_prompts"],
               str(x["chat"]), x["judge"], x["origin"]) for x in d["domains"]])


def register(cli: click.Group) -> None:
    """Add ``merge`` to the root group."""

    @cli.command("merge")
    @click.argument("patch_dirs", nargs=-1, required=True, metavar="PATCH_DIR...", type=click.Path(path_type=Path))
    @click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Merged patch directory to write.")
    @click.option("--name", default=None, help="Name of the merged patch (default: the inputs' names joined, + '-merged').")
    @click.option("--version", "version", default="1.0.0", show_default=True, help="Version of the merged patch.")
    @click.option("--summary", default=None, help="One-line summary (default: names the inputs and the base).")
    @click.option("--base", "base_spec", default=None,
                  help="Base model spec (default: the one the inputs' recipes recorded); every input must be built for it.")
    @click.option("--prompts", "prompts", multiple=True, metavar="DOMAIN=FILE",
                  help="Training prompts of a domain (repeatable), instead of those its owner's recipe names; FILE may be 'builtin'.")
    @click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
                  help="Override a setting, as in a recipe: prompts.limit, prefix.*, sft.*, dpo.*, generation.*, utility.*, eval.*.")
    @click.option("--report", "report_dir", type=click.Path(path_type=Path),
                  help="Also write merge.json, verify.json and the training curves (curves.png/json) here.")
    @click.option("--force", is_flag=True, help="Replace an existing output directory.")
    @click.option("--no-cache", is_flag=True, help="Generate the owners' answers again even if cached.")
    @click.option("--check", "check_only", is_flag=True, help="Only check the inputs, base, prompts and settings (no model is loaded).")
    @click.option("--dry-run", is_flag=True, help="Show the plan (same checks as --check), train and write nothing.")
    @json_option("Print the plan or the result as JSON.")
    def merge_cmd(patch_dirs, out_dir, name, version, summary, base_spec, prompts, overrides, report_dir, force, no_cache,
                  check_only, dry_run, as_json):
        """Distil a stack of patches into one patch for the same base, which `provides` them.

        Each domain is learned from its owner: the patch that addresses it answers its own
        prompts alone (SFT targets, plus the unpatched model's answers to everyday prompts),
        then DPO prefers the owner's answer over the unpatched model's. The result is a normal
        patch (evaluated on every domain, signed and published like any other); its manifest
        lists the inputs under `provides`, so it stands in for them and is never stacked with them.

        \b
        Examples:
          llmpatch merge examples/patches/tox-fix examples/patches/harm-fix -o safety --name safety-merged
          llmpatch merge tox-fix harm-fix -o out --prompts toxicity=tox.jsonl --set prompts.limit=40 --dry-run
        """
        from llmpatch.builder.merge import merge, plan_merge

        plan = plan_merge(patch_dirs, out_dir, name=name, version=version, summary=summary, base_spec=base_spec,
                          prompts=_prompt_option(prompts), overrides=overrides, force=force)
        if check_only or dry_run:
            d = plan.to_dict()
            if as_json:
                ui.print_json({"plan": d, "dry_run": True})
            else:
                _show_plan(d, checked_only=True)
            return

        def stage(name: str, info: dict) -> None:
            if as_json:
                return
            if name == "data":
                s = info["stats"]
                per = "; ".join(f"{k}: {v['sft_rows']} SFT rows, {v['pairs']} pairs ({v['same_answer']} same as unpatched, "
                                f"{v['owner_worse']} owner judged worse, {v['owner_degenerate']} looping)"
                                for k, v in s["domains"].items())
                a = s["utility_anchor"]
                ui.err_console.print(f"targets ({'cached' if info['cached'] else 'generated'}): {per}; utility anchor: "
                                     f"{a['sft_rows']} SFT rows, {a['degenerate_pairs']} loop pairs")

        if not as_json:
            _show_plan(plan.to_dict(), checked_only=False)
        result = merge(plan, progress=_progress, use_cache=not no_cache, on_stage=stage, report_dir=report_dir)
        d = result.to_dict()
        if as_json:
            ui.print_json(d)
            return
        tr = d["training"]
        ui.table("training", ["stage", "steps", "first loss", "last loss", "last reward margin"],
                 [[st, s.get("steps"), _fmt(s.get("first_loss")), _fmt(s.get("last_loss")),
                   _fmt(s.get("last_margin")) if st == "dpo" else ""] for st, s in tr.items() if isinstance(s, dict) and "steps" in s])
        if result.evals:
            ui.table("held-out evaluation of the merged patch", ["suite", "metric", "better", "unpatched", "merged"],
                     [[e.suite, e.metric, e.direction, _fmt(e.base_value), _fmt(e.value)] for e in result.evals])
        ui.out(f"wrote {d['patch']['path']} ({d['patch']['name']} {d['patch']['version']}, provides "
               + ", ".join(f"{p['name']} {p['version']}" for p in d["patch"]["provides"])
               + f") in {d['timing'].get('total_s', 0):.0f} s", markup=False)
