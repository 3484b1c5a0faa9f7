"""Safety evaluation shared by ``llmpatch build`` and ``llmpatch verify``.

Modules: ``judges`` (text in, score out), ``prompts`` (built-in sets, files, Hub data sets),
``metrics`` (pure metric code with bootstrap CIs), ``suites`` (what each suite generates and
measures), ``results`` (the typed result contracts: ``MetricResult``, ``SuiteResult``,
``ClaimCheck``, ``VerifyReport``) and ``run`` (running suites over the base, a baseline, the
patched stack and a reference). Claims, policies, the HTML report and the install gate are the
verify step's, in ``llmpatch.verify``.
"""
