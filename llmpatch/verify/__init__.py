"""The verify step: a customer's check of a patch stack against its vendors' claims and a policy.

Modules: ``verify`` (``run_verify``: the suites of ``llmpatch.evaluate.run`` plus claim and
policy checks), ``policy`` (thresholds on ``SUITE.METRIC`` values), ``report`` (the
self-contained HTML report) and ``gate`` (``verify_environment`` for ``llmpatch install --verify``).
This layer sits above ``evaluate`` (what build and verify share) and ``env``.
"""
