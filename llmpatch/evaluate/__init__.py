"""Safety evaluation: judges, prompt sets, metrics, suites, reports and the install gate (issue 3).

Modules: ``judges`` (text in, score out), ``prompts`` (built-in sets, files, Hub data sets),
``metrics`` (pure metric code with bootstrap CIs), ``suites`` (what each suite generates and
measures), ``verify`` (base vs stack vs reference, claims, policy), ``report`` (HTML) and
``gate`` (``verify_environment`` for ``llmpatch install --verify``).
"""
