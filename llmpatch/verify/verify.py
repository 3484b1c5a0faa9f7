"""``llmpatch verify``: run the suites (``llmpatch.evaluate.run``), then check the vendors'
claims (each manifest's ``evals``) and a policy against what was measured.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Sequence

from llmpatch import atomic, schemas
from llmpatch.errors import EvaluationError
from llmpatch.evaluate.prompts import canonical_suite
from llmpatch.evaluate.results import ClaimCheck, SuiteResult, VerifyReport, find_measured
from llmpatch.evaluate.suites import default_form
from llmpatch.evaluate.run import DEFAULT_SAFETY_PROMPT, VerifyOptions, run_suites
from llmpatch.util import ProgressFactory
from llmpatch.verify.policy import Policy, check_policy

__all__ = ["DEFAULT_SAFETY_PROMPT", "ProgressFactory", "VerifyOptions", "VerifyReport", "check_claims", "check_policy",
           "run_verify", "write_json"]


def run_verify(
    base: str,
    patches: Sequence[str | Path] = (),
    *,
    reference: str | None = None,
    system_prompt: str | None = None,
    options: VerifyOptions | None = None,
    policy: Policy | None = None,
    progress: ProgressFactory | None = None,
    env_dir: str | Path | None = None,
) -> VerifyReport:
    """Run the suites on base, baseline, patched stack and reference; check claims and policy."""
    started = time.monotonic()
    report, stack = run_suites(base, patches, reference=reference, system_prompt=system_prompt, options=options,
                               default_suites=policy.suites if policy else (), progress=progress, env_dir=env_dir)
    claims = tuple(check_claims(report.suites, stack, policy))
    policy_result = check_policy(report.suites, policy) if policy else None
    failures = [c.message for c in claims if c.status == "not met" and (policy is None or policy.check_claims)]
    if policy_result:
        failures += [c.message for c in policy_result.checks if c.status == "fail"]
    timing = {**report.timing, "total_s": round(time.monotonic() - started, 2)}
    report = dataclasses.replace(report, claims=claims, policy=policy_result, failures=tuple(failures), timing=timing)
    schemas.validate(report.to_dict(), "verify_report", what="verify report", error=EvaluationError)
    return report


def _claim_sets(patches: Sequence[Any]) -> list[tuple[str, Sequence[Any]]]:
    """Whose claims to check: a vendor's claims for exactly this stack when a composition-aware
    build evaluated it (names, versions, payload sha256 and order; see ``compose.find_evidence``),
    else each patch's own claims (measured alone, checked against the whole stack)."""
    from llmpatch.compose import find_evidence

    found = find_evidence([p.manifest for p in patches]) if len(patches) > 1 else None
    if found is not None:
        m, st = found
        return [(f"{m.name}@{m.version} (for the stack {st.label(m.name, m.version)})", st.evals)]
    return [(f"{p.manifest.name}@{p.manifest.version}", p.manifest.evals) for p in patches]


def claim_source(prompts: str | None) -> str | None:
    """The prompt source a claim was measured on (its ``prompts`` without the digest).

    >>> claim_source("examples/recipes/../prompts/tox-prompts.jsonl sha256:85ab"), claim_source(None)
    ('examples/recipes/../prompts/tox-prompts.jsonl', None)
    """
    if not prompts:
        return None
    return prompts.rsplit(" sha256:", 1)[0] if " sha256:" in prompts else prompts


_FORM_WORDS = {"chat": "as chat messages", "plain": "as plain text", "per-prompt": "each in its own form"}


def same_prompts(claim_prompts: str | None, measured: Any) -> bool:
    """Was the claim measured on the prompts this run used (``measured``: the suite's PromptSet)?

    The same digest, or the same source: a built-in split by name, a file by its name (a vendor's
    relative path and a customer's absolute one name the same file; ``--limit`` takes a subset of
    it, which is still a sample of that set). A claim without a recorded source (older manifests)
    counts as the same. Anything else (the built-in toxicity starts against the vendor's own
    prompt file) measures another distribution, and comparing the numbers would be meaningless.

    >>> from types import SimpleNamespace as NS
    >>> same_prompts("built-in:toxicity:eval sha256:aa", NS(source="built-in:toxicity:eval", digest="sha256:bb"))
    True
    >>> same_prompts("examples/recipes/../prompts/tox-prompts.jsonl sha256:aa", NS(source="/x/examples/prompts/tox-prompts.jsonl", digest="sha256:bb"))
    True
    >>> same_prompts("examples/recipes/../prompts/tox-prompts.jsonl sha256:aa", NS(source="built-in:toxicity:eval", digest="sha256:bb"))
    False
    """
    src = claim_source(claim_prompts)
    if src is None or measured is None:
        return True
    if claim_prompts and claim_prompts.endswith(" " + measured.digest):
        return True
    if src.startswith("built-in:") or measured.source.startswith("built-in:"):
        return src == measured.source

    def name(source: str) -> str:
        return Path(source.split("?", 1)[0].removeprefix("hf:")).name

    return name(src) == name(measured.source)


def check_claims(suites: Sequence[SuiteResult], patches: Sequence[Any], policy: Policy | None) -> list[ClaimCheck]:
    """Compare each manifest claim (``Manifest.evals``) with the stack's measured value.

    A claim measured on other prompts than this run's (:func:`same_prompts`) is listed as
    ``other prompts`` with both sources, and neither passes nor fails anything."""
    tol = policy.claim_tolerance if policy else 0.05
    out = []
    whole = len(patches) > 1
    for who, claims in _claim_sets(patches):
        for claim in claims:
            metric_id = f"{canonical_suite(claim.suite)}.{claim.metric}"
            m = find_measured(suites, metric_id)
            claimed = float(claim.value)
            measured = None if m is None else m.value("patched")
            if m is None or measured is None:
                out.append(ClaimCheck(who, metric_id, claimed, None, claim.direction, "not measured",
                                      f"{who} claims {metric_id} = {claim.value:.3g}; not measured in this run"))
                continue
            suite = next((x for x in suites if x.name == metric_id.partition(".")[0]), None)
            claim_form = claim.form or default_form(claim.suite)
            if suite is not None and suite.form is not None and claim_form is not None and suite.form != claim_form:
                out.append(ClaimCheck(who, metric_id, claimed, measured, claim.direction, "other form",
                                      f"{who} claims {metric_id} = {claimed:.3g} with the prompts sent {_FORM_WORDS[claim_form]}; "
                                      f"this run sent them {_FORM_WORDS.get(suite.form, suite.form)} and measured {measured:.3g}: "
                                      f"another setting, not compared (run without --chat to check the claim)"))
                continue
            if suite is not None and not same_prompts(claim.prompts, suite.prompts):
                out.append(ClaimCheck(who, metric_id, claimed, measured, claim.direction, "other prompts",
                                      f"{who} claims {metric_id} = {claimed:.3g} on {claim_source(claim.prompts)}; this run "
                                      f"measured {measured:.3g} on {suite.prompts.source}: other prompts, not compared "
                                      f"(--prompts {canonical_suite(claim.suite)}=FILE with the vendor's prompt file checks it)"))
                continue
            lo, hi = m.values["patched"].ci
            direction = m.direction if m.direction != "none" else (claim.direction or "none")
            # A claim is refuted only when the whole confidence interval is worse than it: a
            # small verify run (--limit) has wide intervals and must not fail a true claim.
            if direction == "lower":
                ok, refuted = measured <= claimed + tol, lo is not None and lo > claimed + tol
            elif direction == "higher":
                ok, refuted = measured >= claimed - tol, hi is not None and hi < claimed - tol
            else:
                ok = abs(measured - claimed) <= tol
                refuted = lo is not None and not (lo - tol <= claimed <= hi + tol)
            status = "met" if ok else ("not met" if refuted or lo is None else "within CI")
            scope = " (measured on the whole stack)" if whole else ""
            ci_text = f" (95% CI {lo:.3g}..{hi:.3g})" if lo is not None else ""
            verdict = {"met": "met", "within CI": "not refuted: the claim lies within the interval", "not met": "NOT met"}[status]
            out.append(ClaimCheck(who, metric_id, claimed, measured, direction, status,  # type: ignore[arg-type]
                                  f"{who} claims {metric_id} = {claimed:.3g} ({direction} is better); measured "
                                  f"{measured:.3g}{ci_text}{scope}, tolerance {tol:g}: {verdict}"))
    return out


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write a verify report as JSON atomically (validated first)."""
    schemas.validate(data, "verify_report", what="verify report", error=EvaluationError)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, json.dumps(data, indent=2, ensure_ascii=False), mode=0o644)
    return target
