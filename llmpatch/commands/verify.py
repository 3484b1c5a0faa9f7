"""``llmpatch verify``: safety suites on the base, the patched stack and comparisons; claims; policy."""

from __future__ import annotations

from pathlib import Path

import click

from llmpatch import ui
from llmpatch.commands.options import json_option
from llmpatch.errors import EvaluationError


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``SUITE=VALUE`` options into a dict, with a clear error for anything else."""
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise EvaluationError(f"{option} {v!r}: expected SUITE=VALUE, e.g. {option} toxicity=prompts.jsonl")
        out[key.strip()] = val.strip()
    return out


def _print_tables(data: dict) -> None:
    from llmpatch.verify.report import fmt_estimate

    cols = data["columns"]
    for suite in data["suites"]:
        rows = []
        for m in suite["metrics"]:
            arrow = {"lower": " ↓", "higher": " ↑"}.get(m["direction"], "")
            rows.append([m["name"] + arrow] + [fmt_estimate(m["values"].get(c)) for c in cols]
                        + [fmt_estimate(m["delta"].get(c), True) for c in cols if c != "base"])
        ui.table(f"{suite['name']} ({suite['prompts']['n']} prompts, {suite['prompts']['source']})",
                 ["metric"] + cols + [f"Δ {c}" for c in cols if c != "base"], rows,
                 caption="value [95% bootstrap CI]; Δ = column - base, paired; ↓/↑ = lower/higher is better")
    if data["claims"]:
        ui.table("vendor claims", ["patch", "metric", "claimed", "measured", "status"],
                 [[c["patch"], c["metric"], f"{c['claimed']:.3g}", "" if c["measured"] is None else f"{c['measured']:.3g}",
                   c["status"]] for c in data["claims"]])
    if data.get("policy"):
        ui.table(f"policy {data['policy']['source']}", ["metric", "status", "detail"],
                 [[c["metric"], c["status"], c["message"]] for c in data["policy"]["checks"]])
    for w in data.get("warnings", []):
        ui.console.print(f"[yellow]warning:[/yellow] {w}")
    flagged = {s["name"]: sum(1 for smp in s["samples"] if (smp.get("flags") or {}).get("patched")) for s in data["suites"]}
    if any(flagged.values()):
        ui.console.print("flagged patched outputs (loop / masked word / empty / verdict changed): "
                         + ", ".join(f"{k} {v}" for k, v in flagged.items() if v) + " (see the HTML or JSON report)")
    verdict = {"passed": "[green]passed[/green]", "failed": "[red]FAILED[/red]",
               "no verdict": "[yellow]NO VERDICT[/yellow] (too few prompts)"}[data.get("verdict") or
                                                                           ("passed" if data["passed"] else "failed")]
    t = data.get("timing", {})
    generated = ", ".join(f"{col} {n}" for col, n in (t.get("generated") or {}).items())
    ui.out(f"verify {verdict} in {t.get('total_s', 0):.0f} s" + (f" (outputs generated: {generated})" if generated else ""))


def register(cli: click.Group) -> None:
    """Add ``verify`` to the root group."""

    @cli.command("verify")
    @click.option("--env", "env_dir", type=click.Path(path_type=Path), help="Environment to verify (default: found from the cwd).")
    @click.option("--base", "base_spec", help="Verify without an environment: the base model (default, ORG/NAME[@REV], dir, .gguf).")
    @click.option("--patch", "patches", multiple=True, type=click.Path(path_type=Path),
                  help="A patch directory, in stack order (repeatable). Implies --base default if --base is not given.")
    @click.option("--reference", help="A reference model (e.g. the vendor's safer release) to compare with.")
    @click.option("--system-prompt", help="Add a 'baseline' column: the base with this system prompt ('default' = a built-in safety prompt).")
    @click.option("--suite", "suites", multiple=True, help="Suite to run (repeatable): toxicity, gender, harmfulness, over_refusal, fluency, utility. Default: all.")
    @click.option("--prompts", "prompt_opts", multiple=True, metavar="SUITE=SOURCE",
                  help="Prompts for a suite: a .jsonl/.csv/.txt file (FILE#COLUMN) or hf:<dataset>[@config][:split][:column].")
    @click.option("--judge", "judge_opts", multiple=True, metavar="SUITE=JUDGE",
                  help="Judge for a suite: toxicity, refusal, gender or hf:<classifier-id-or-dir>[#label].")
    @click.option("--split", type=click.Choice(["eval", "validation", "train", "all"]), default="eval", show_default=True,
                  help="Which part of a prompt set (built-in sets are split into train, validation and held-out eval).")
    @click.option("--limit", type=click.IntRange(min=1), help="At most N prompts per suite.")
    @click.option("--max-new-tokens", type=click.IntRange(min=1), help="Tokens to generate per prompt (default: toxicity 20, others 32).")
    @click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Prompts per generation batch.")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--chat", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
                  help="Chat template: auto = per suite (toxicity continues text, the others chat).")
    @click.option("--bootstrap", "n_boot", type=click.IntRange(min=100), default=1000, show_default=True, help="Bootstrap resamples.")
    @click.option("--policy", "policy_path", type=click.Path(path_type=Path), help="Policy file (TOML/JSON) with thresholds; exit 3 when one fails.")
    @click.option("--html", "html_path", type=click.Path(path_type=Path), help="Write a self-contained HTML report here.")
    @click.option("--report-json", "json_path", type=click.Path(path_type=Path), help="Also write the JSON report here.")
    @click.option("--no-cache", is_flag=True, help="Regenerate base/baseline/reference outputs instead of reusing cached ones.")
    @click.option("--list", "list_suites", is_flag=True, help="List suites and their metrics, then exit.")
    @json_option("Print the report as JSON.")
    def verify_cmd(env_dir, base_spec, patches, reference, system_prompt, suites, prompt_opts, judge_opts, split, limit,
                   max_new_tokens, batch_size, seed, chat, n_boot, policy_path, html_path, json_path, no_cache,
                   list_suites, as_json):
        """Measure a patch stack's safety against its unpatched base; check claims and a policy.

        \b
        llmpatch verify                                  # the environment's current stack
        llmpatch verify --base default --patch ./tox-fix --system-prompt default --html report.html
        llmpatch verify --suite toxicity --prompts toxicity=my_prompts.jsonl --policy policy.toml
        """
        from llmpatch.evaluate.suites import SUITES
        from llmpatch.verify.policy import load_policy
        from llmpatch.verify.report import write_html
        from llmpatch.verify.verify import VerifyOptions, run_verify

        if list_suites:
            rows = [{"suite": s.name, "metric": m.name, "id": f"{s.name}.{m.name}", "better": m.direction,
                     "description": m.description, "chat": s.chat, "judges": {k: v for k, v in s.judges.items() if v}}
                    for s in SUITES.values() for m in s.metrics]
            if as_json:
                ui.print_json(rows)
            else:
                ui.table("verify suites", ["metric", "better", "description"], [[r["id"], r["better"], r["description"]] for r in rows])
            return
        policy = load_policy(policy_path) if policy_path else None
        options = VerifyOptions(
            suites=tuple(suites), sources=_pairs(prompt_opts, "--prompts"), judges=_pairs(judge_opts, "--judge"),
            split=split, limit=limit, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
            chat={"auto": None, "on": True, "off": False}[chat], n_boot=n_boot, use_cache=not no_cache,
        )
        env_path = None
        if base_spec is None and not patches:
            from llmpatch.env import current_stack, find_env

            env_path = find_env(env_dir)
            base_spec, patch_list = current_stack(env_path)
        else:
            if env_dir is not None:
                raise EvaluationError("--env cannot be combined with --base/--patch", hint="verify either an environment or a base and patches")
            base_spec = base_spec or "default"
            patch_list = list(patches)
        with ui.activity(f"verify {base_spec}" + "".join(f" + {Path(p).name}" for p in patch_list), enabled=not as_json):
            report = run_verify(base_spec, patch_list, reference=reference, system_prompt=system_prompt, options=options,
                                policy=policy, progress=lambda d, n: ui.progress(d, n, enabled=not as_json), env_dir=env_path)
        data = report.to_dict()
        if html_path:
            write_html(data, html_path)
        if json_path:
            from llmpatch.verify.verify import write_json

            write_json(data, json_path)
        if as_json:
            ui.print_json(data)
        else:
            _print_tables(data)
            if html_path:
                ui.out(f"HTML report: {html_path}", markup=False)
        report.raise_for_policy()
