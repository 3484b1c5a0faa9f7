"""``llmpatch build``: turn a recipe (base M, reference policy M', domain prompts) into a patch."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from llmpatch import ui
from llmpatch.commands.options import json_option


@contextmanager
def _progress(description: str, total: int) -> Iterator:
    """Build steps report through the CLI's one progress system: a bar on a terminal, heartbeats otherwise."""
    with ui.progress(description, total, unit="") as advance:
        yield advance


def _fmt(v, nd: int = 3) -> str:
    return "" if v is None else f"{v:.{nd}g}" if isinstance(v, float) else str(v)



def register(cli: click.Group) -> None:
    """Add ``build`` to the root group."""

    @cli.command("build")
    @click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
    @click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), help="Patch directory to write.")
    @click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
                  help="Override a recipe field (repeatable), e.g. --set sft.lr=0.01 --set dpo.reference=base.")
    @click.option("--report", "report_dir", type=click.Path(path_type=Path),
                  help="Also write build.json, verify.json and the training curves (curves.png/json) here.")
    @click.option("--force", is_flag=True, help="Replace an existing output directory.")
    @click.option("--no-cache", is_flag=True, help="Regenerate the training data even if a cached copy exists.")
    @click.option("--data-only", is_flag=True, help="Only generate (and cache) the data and print pair statistics.")
    @click.option("--check", "check_only", is_flag=True, help="Only validate the recipe (no model is loaded).")
    @json_option("Print the result as JSON.")
    def build_cmd(recipe_path, out_dir, overrides, report_dir, force, no_cache, data_only, check_only, as_json):
        """Build a patch: sample M and M', judge, SFT then DPO the prefix, evaluate, write DIR.

        \b
        Examples:
          llmpatch build examples/recipes/tox-fix.toml -o tox-fix
          llmpatch build recipe.toml -o out --set sft.lr=0.02 --set prefix.num_virtual_tokens=20
          accelerate launch -m llmpatch.cli build recipe.toml -o out     # several GPUs
        """
        from llmpatch.builder import build
        from llmpatch.builder.recipe import Recipe
        from llmpatch.errors import RecipeError

        recipe = Recipe.load(recipe_path, overrides)
        if check_only:
            costack = None
            if recipe.compose is not None:  # co-patches: found, verified and built for this base
                from llmpatch import base as base_mod
                from llmpatch.builder import costack as costack_mod

                costack = costack_mod.resolve(recipe, base_mod.identify(recipe.base.spec).to_ref())
            if as_json:
                ui.print_json(recipe.to_dict())
            else:
                ui.out(f"recipe {recipe_path} is valid ({recipe.domain}, patch "
                       f"{recipe.patch.name} {recipe.patch.version})", markup=False)
                if costack is not None:
                    ui.out(f"co-patches verified for base {costack.patches[0].manifest.base.describe()}: "
                           + ", ".join(f"{p.name} {p.version} ({p.path})" for p in costack.patches)
                           + f"; the new patch goes {' and '.join(costack.trained_orders)} them", markup=False)
            return
        if out_dir is None and not data_only:
            raise RecipeError("no output directory given", hint="pass -o DIR (the patch directory to write)")

        def stage(name, info):
            if as_json:
                return
            if name == "checked":
                ui.err_console.print(f"recipe ok: {info['prompts']} training prompts, base {info['base']}, "
                                     f"memory {info['memory']['need_gb']} of {info['memory']['available_gb']} GB")
                if "compose" in info:
                    c = info["compose"]
                    ui.err_console.print("composition-aware: trains and evaluates "
                                         f"{' and '.join(c['orders'])} " + ", ".join(f"{p['name']} {p['version']}"
                                                                                   for p in c["with"])
                                         + "; M (rejected side, utility anchors, self-reference) runs with them",
                                         markup=False)
            elif name == "data":
                s = info["stats"]
                ui.err_console.print(f"data ({'cached' if info['cached'] else 'generated'}): {s['sft_rows']} SFT rows, "
                                     f"{s['pairs']} pairs ({s['kept']} of {s['candidates']} candidates kept, "
                                     f"{s['contrast_pairs']} benign contrast), mean margin {_fmt(s['mean_margin'])}"
                                     + (f"; utility anchor: {s['anchor_rows']} SFT rows, {s['degenerate_pairs']} loop "
                                        f"pairs, {s['refusal_pairs']} refusal pairs ({s['anchors_dropped']} answers "
                                        "dropped)" if "anchor_rows" in s else ""))

        result = build(recipe, out_dir or Path("."), force=force, progress=_progress, report_dir=report_dir,
                       use_cache=not no_cache, data_only=data_only, on_stage=stage)
        if data_only:
            if as_json:
                ui.print_json(result.to_dict())
            else:
                ui.kv_table("pair statistics", sorted(result.stats.items()))
            return
        if result.stage == "trained":
            return  # a non-main process under accelerate launch: the main one reports
        d = result.to_dict()
        if as_json:
            ui.print_json(d)
            return
        ui.kv_table("pair statistics", sorted((k, _fmt(v)) for k, v in d["pairs"].items()))
        tr = d["training"]
        rows = [[stage, s.get("steps"), _fmt(s.get("first_loss")), _fmt(s.get("last_loss")),
                 _fmt(s.get("last_margin")) if stage == "dpo" else ""] for stage, s in tr.items() if isinstance(s, dict) and "steps" in s]
        ui.table("training", ["stage", "steps", "first loss", "last loss", "last reward margin"], rows)
        if d.get("selection"):
            sel = d["selection"]
            util = "utility" in sel["prompts"]
            cols = ["candidate", "domain unsafety", "benign refusal"]
            cols += ["loops", "similarity", "rejected"] if util else []
            rows = []
            for c in sel["candidates"]:
                row = [("* " if c["name"] == sel["name"] else "") + c["name"], _fmt(c["target_unsafety"]),
                       _fmt(c["benign_refusal"])]
                if util:
                    row += [_fmt(c.get("degenerate_rate")), _fmt(c.get("similarity")), c.get("rejected") or ""]
                rows.append(row + [_fmt(c["score"])])
            extra = f" + {sel['prompts']['utility']} everyday" if util else ""
            unp = sel.get("unpatched") or {}
            ui.table(f"checkpoint selection on {sel['prompts']['target']} + {sel['prompts']['benign']}{extra} validation "
                     f"prompts (chosen: {sel['name']})" + (f"; unpatched loops {_fmt(unp['degenerate_rate'])}"
                                                           if "degenerate_rate" in unp else "")
                     + (f"; similarity over the everyday prompts the unpatched model answers ({unp['blank_everyday']} "
                        "left blank)" if unp.get("blank_everyday") else ""),
                     cols + ["score (lower is better)"], rows)
        if result.evals:
            ui.table("held-out evaluation", ["suite", "metric", "better", "unpatched", "system prompt", "patched"],
                     [[e.suite, e.metric, e.direction, _fmt(e.base_value), _fmt(e.baseline_value), _fmt(e.value)]
                      for e in result.evals if e.default_form])  # the other form's claims: the tables below
        for form, rep in result.form_reports.items():
            ui.table(f"held-out evaluation, every suite as {'plain text' if form == 'plain' else 'chat'} "
                     f"(the recipe trains both forms; verify-{form}.json)",
                     ["suite", "metric", "better", "unpatched", "system prompt", "patched"],
                     [[e.suite, e.metric, e.direction, _fmt(e.base_value), _fmt(e.baseline_value), _fmt(e.value)]
                      for e in rep.eval_claims()])
        for st in result.stacks:
            ui.table(f"held-out evaluation of the stack {st.label(recipe.patch.name, recipe.patch.version)} "
                     f"({st.describe()})", ["suite", "metric", "better", "unpatched", "system prompt", "stack"],
                     [[e.suite, e.metric, e.direction, _fmt(e.base_value), _fmt(e.baseline_value), _fmt(e.value)]
                      for e in st.evals])
        ui.out(f"wrote {d['patch']['path']} ({d['patch']['name']} {d['patch']['version']}, "
               f"{d['patch']['num_virtual_tokens']} virtual tokens) in {d['timing'].get('total_s', 0):.0f} s", markup=False)
