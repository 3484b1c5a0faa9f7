"""The result contracts of an evaluation: what a run measured, and how claims and rules fared.

A vendor's ``llmpatch build`` and a customer's ``llmpatch verify`` run the same suites and
produce the same types; the JSON report (``registry_schema/verify_report.schema.json``) is their
``to_dict`` form, and :meth:`MetricResult.claim` is the one converter from a measurement to the
:class:`~llmpatch.manifest.EvalClaim` a manifest records. Pure values: no I/O, no models.

>>> m = MetricResult("toxicity", "mean", "lower", "mean toxicity",
...                  values={"base": Measured(0.4, (0.3, 0.5), 24), "patched": Measured(0.1, (0.05, 0.2), 24)})
>>> m.id, m.claim("built-in:toxicity:eval sha256:ab").to_dict()["base_value"]
('toxicity.mean', 0.4)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from llmpatch.errors import PolicyViolation
from llmpatch.manifest import EvalClaim

Direction = Literal["lower", "higher", "none"]
ClaimStatus = Literal["met", "within CI", "not met", "not measured", "other prompts", "other form"]
#: Report columns: the unpatched base, the base with a safety system prompt, the stack, another model.
COLUMNS = ("base", "baseline", "patched", "reference")
#: A suite measured on fewer prompts gives no verdict: its intervals are too wide to pass anything.
MIN_PROMPTS_FOR_VERDICT = 30


@dataclass(frozen=True)
class Measured:
    """One column's value of one metric with its 95% bootstrap interval (None where undefined)."""

    value: float | None
    ci: tuple[float | None, float | None]
    n: int

    @property
    def has_ci(self) -> bool:
        return self.ci[0] is not None and self.ci[1] is not None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Measured":
        lo, hi = d.get("ci") or (None, None)
        return cls(d["value"], (lo, hi), int(d.get("n", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": list(self.ci), "n": self.n}


@dataclass(frozen=True)
class MetricResult:
    """One metric of one suite in every column, with paired differences from ``base``."""

    suite: str
    name: str
    direction: Direction
    description: str = ""
    values: Mapping[str, Measured] = field(default_factory=dict)
    delta: Mapping[str, Measured] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``suite.metric``, as policies and claims name it."""
        return f"{self.suite}.{self.name}"

    def value(self, column: str = "patched") -> float | None:
        v = self.values.get(column)
        return None if v is None else v.value

    def claim(self, prompts: str, column: str = "patched", form: str | None = None) -> EvalClaim | None:
        """What a vendor records for this metric: ``column`` against the unpatched base (and the
        system-prompt baseline or reference model when measured), on ``prompts`` sent in ``form``.
        None for a metric without a better direction or without a value."""
        v = self.values.get(column)
        if self.direction == "none" or v is None or v.value is None:
            return None
        others = {f"{c}_value": self.value(c) for c in ("base", "baseline", "reference") if c in self.values}
        return EvalClaim(
            suite=self.suite, metric=self.name, value=v.value, base_value=others.get("base_value"),
            baseline_value=others.get("baseline_value"), reference_value=others.get("reference_value"),
            ci=(v.ci[0], v.ci[1]) if v.has_ci else None, n=v.n, direction=self.direction, prompts=prompts,  # type: ignore[arg-type]
            form=form,
            nulls=tuple(k for k, x in others.items() if x is None),  # measured but undefined: recorded as null
        )

    @classmethod
    def from_dict(cls, suite: str, d: Mapping[str, Any]) -> "MetricResult":
        return cls(suite, d["name"], d["direction"], d.get("description", ""),
                   {c: Measured.from_dict(e) for c, e in d["values"].items()},
                   {c: Measured.from_dict(e) for c, e in d.get("delta", {}).items()})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "direction": self.direction, "description": self.description,
                "values": {c: e.to_dict() for c, e in self.values.items()},
                "delta": {c: e.to_dict() for c, e in self.delta.items()}}


@dataclass(frozen=True)
class PromptSet:
    """Where a suite's prompts came from, how many, and their digest."""

    source: str
    n: int
    digest: str

    def describe(self) -> str:
        """``source digest``: what a claim records as its prompts."""
        return f"{self.source} {self.digest}"


@dataclass(frozen=True)
class SuiteResult:
    """One suite's measurements: its prompts, judges, metrics and per-prompt samples."""

    name: str
    prompts: PromptSet
    metrics: tuple[MetricResult, ...]
    description: str = ""
    judges: Mapping[str, str] = field(default_factory=dict)
    chat: bool = False
    max_new_tokens: int = 0
    samples: tuple[Mapping[str, Any], ...] = ()
    #: how the prompts were sent: ``chat``, ``plain`` or ``per-prompt`` (None: a report from before forms were recorded)
    form: str | None = None

    def metric(self, name: str) -> MetricResult | None:
        return next((m for m in self.metrics if m.name == name), None)

    def claims(self, column: str = "patched") -> list[EvalClaim]:
        """Every claim a vendor records for this suite (see :meth:`MetricResult.claim`)."""
        found = (m.claim(self.prompts.describe(), column, self.form) for m in self.metrics)
        return [c for c in found if c is not None]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SuiteResult":
        p = d["prompts"]
        return cls(d["name"], PromptSet(p["source"], int(p["n"]), p["digest"]),
                   tuple(MetricResult.from_dict(d["name"], m) for m in d["metrics"]), d.get("description", ""),
                   dict(d.get("judges", {})), bool(d.get("chat", False)), int(d.get("max_new_tokens", 0)),
                   tuple(d.get("samples", ())), d.get("form"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "prompts": {"source": self.prompts.source, "n": self.prompts.n, "digest": self.prompts.digest},
                "judges": dict(self.judges), "chat": self.chat, "max_new_tokens": self.max_new_tokens,
                "metrics": [m.to_dict() for m in self.metrics], "samples": [dict(s) for s in self.samples],
                **({"form": self.form} if self.form else {})}


def find_measured(suites: Sequence[SuiteResult], metric_id: str) -> MetricResult | None:
    """The measured ``suite.metric`` (None when its suite was not run)."""
    suite_name, _, name = metric_id.partition(".")
    for s in suites:
        if s.name == suite_name:
            return s.metric(name)
    return None


@dataclass(frozen=True)
class ClaimCheck:
    """A vendor's claim (a manifest's :class:`EvalClaim`) against what this run measured."""

    patch: str
    metric: str
    claimed: float
    measured: float | None
    direction: str | None
    status: ClaimStatus
    message: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ClaimCheck":
        return cls(d["patch"], d["metric"], d["claimed"], d["measured"], d.get("direction"), d["status"], d["message"])

    def to_dict(self) -> dict[str, Any]:
        return {"patch": self.patch, "metric": self.metric, "claimed": self.claimed, "measured": self.measured,
                "direction": self.direction, "status": self.status, "message": self.message}


@dataclass(frozen=True)
class RuleCheck:
    """One policy threshold on the measured stack: the rule as the policy states it, and the verdict."""

    rule: Mapping[str, Any]
    status: Literal["pass", "fail", "not run"]
    message: str
    value: float | None = None

    @property
    def metric(self) -> str:
        return str(self.rule["metric"])

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RuleCheck":
        rule = {k: v for k, v in d.items() if k not in ("status", "message", "value")}
        return cls(rule, d["status"], d["message"], d.get("value"))

    def to_dict(self) -> dict[str, Any]:
        out = {**self.rule, "status": self.status, "message": self.message}
        if self.status != "not run":
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class PolicyResult:
    """Every threshold of a policy, checked."""

    source: str
    checks: tuple[RuleCheck, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolicyResult":
        return cls(d["source"], tuple(RuleCheck.from_dict(c) for c in d["checks"]))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of an evaluation run; ``to_dict`` is the JSON report (schema ``verify_report``).

    ``run`` holds the description of the run (base, stack, columns, settings, ...) in report
    order; ``suites`` the measurements; ``claims`` and ``policy`` what the verify step checked.
    """

    run: Mapping[str, Any]
    suites: tuple[SuiteResult, ...]
    claims: tuple[ClaimCheck, ...] = ()
    policy: PolicyResult | None = None
    failures: tuple[str, ...] = ()
    timing: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def warnings(self) -> list[str]:
        """Why a run that failed nothing still cannot pass: suites with too few prompts."""
        return [f"{s.name}: only {s.prompts.n} prompt(s), too few for a verdict (at least {MIN_PROMPTS_FOR_VERDICT}); "
                "its intervals are too wide to tell a working patch from a broken one"
                for s in self.suites if s.prompts.n < MIN_PROMPTS_FOR_VERDICT]

    @property
    def verdict(self) -> Literal["passed", "failed", "no verdict"]:
        """``failed`` on any failure; ``no verdict`` when nothing failed but a suite had too few
        prompts (never a bare pass on a handful of prompts); else ``passed``."""
        if self.failures:
            return "failed"
        return "no verdict" if self.warnings else "passed"

    @property
    def columns(self) -> list[str]:
        return list(self.run["columns"])

    def metric(self, metric_id: str, column: str = "patched") -> float | None:
        """The value of ``suite.metric`` in ``column`` (None when not measured)."""
        from llmpatch.evaluate.prompts import canonical_suite

        suite_name, _, name = metric_id.partition(".")
        m = find_measured(self.suites, f"{canonical_suite(suite_name)}.{name}")
        return None if m is None else m.value(column)

    def eval_claims(self, column: str = "patched") -> list[EvalClaim]:
        """Every directed metric measured in ``column`` as the claims a manifest records."""
        return [c for s in self.suites for c in s.claims(column)]

    def to_manifest_evals(self, column: str = "patched") -> list[dict[str, Any]]:
        """:meth:`eval_claims` in the manifest's ``evals`` form."""
        return [c.to_dict() for c in self.eval_claims(column)]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VerifyReport":
        run = {k: v for k, v in d.items()
               if k not in ("suites", "claims", "policy", "failures", "passed", "timing", "verdict", "warnings")}
        return cls(run, tuple(SuiteResult.from_dict(s) for s in d["suites"]),
                   tuple(ClaimCheck.from_dict(c) for c in d["claims"]),
                   PolicyResult.from_dict(d["policy"]) if d.get("policy") else None, tuple(d["failures"]),
                   dict(d.get("timing") or {}))

    def to_dict(self) -> dict[str, Any]:
        out = {**self.run, "suites": [s.to_dict() for s in self.suites], "claims": [c.to_dict() for c in self.claims],
               "policy": self.policy.to_dict() if self.policy else None, "failures": list(self.failures),
               "passed": self.passed, "verdict": self.verdict, "warnings": self.warnings}
        if self.timing:
            out["timing"] = dict(self.timing)
        return out

    def raise_for_policy(self) -> None:
        """Raise PolicyViolation (exit code 3) when a threshold or claim failed."""
        if not self.passed:
            lines = "\n".join(f"  - {f}" for f in self.failures)
            raise PolicyViolation(f"verify failed {len(self.failures)} check(s):\n{lines}",
                                  hint="see the report for every metric with its interval; do not deploy this stack as is")
