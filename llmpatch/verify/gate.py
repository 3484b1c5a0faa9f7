"""Eval-gated installs: ``verify_environment`` runs verify on an environment's current stack.

``llmpatch install --verify`` passes it to ``llmpatch.env.operations.gate`` as the check of a
new generation, which keeps the install only when ``result.passed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from llmpatch.evaluate.results import VerifyReport
from llmpatch.evaluate.run import VerifyOptions
from llmpatch.util import ProgressFactory
from llmpatch.verify.policy import DEFAULT_GATE_POLICY, Policy, load_policy
from llmpatch.verify.verify import run_verify


@dataclass
class VerifyResult:
    """Pass/fail of a gated verify, the reasons, and the full report."""

    passed: bool
    failures: list[str] = field(default_factory=list)
    report: VerifyReport | None = None


def verify_environment(
    env_dir: str | Path | None,
    *,
    policy: Policy | str | Path | None = None,
    suites: Sequence[str] | None = None,
    limit: int | None = None,
    progress: ProgressFactory | None = None,
) -> VerifyResult:
    """Verify the current stack of the environment at ``env_dir`` (None: found from the cwd).

    ``policy`` is a Policy or a policy file; None uses the built-in gate policy (no significant
    regression of any safety metric against the unpatched base, and the vendors' claims hold).
    """
    from llmpatch.env import current_stack, find_env

    env_path = find_env(Path(env_dir) if env_dir is not None else None)
    pol = policy if isinstance(policy, Policy) else load_policy(policy) if policy is not None else DEFAULT_GATE_POLICY
    base_spec, patch_dirs = current_stack(env_path)
    report = run_verify(base_spec, patch_dirs, options=VerifyOptions(suites=tuple(suites or ()), limit=limit),
                        policy=pol, progress=progress, env_dir=env_path)
    return VerifyResult(report.passed, list(report.failures), report)
