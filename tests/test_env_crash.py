"""Crash safety and concurrency: SIGKILL the CLI at every named step; run installs side by side.

Each run is a real child process (forked from the test process, so the CLI's imports are
already warm) that executes the CLI and, with ``LLMPATCH_TEST_KILL_AT=n``, SIGKILLs itself at
the n-th crash point. After each kill the environment must be consistent (the current
generation fully verifies and composes), hold either the old or the new stack, recover on the
next command, and let the interrupted command succeed when re-run.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path


from llmpatch.env import Environment, LockFile
from clihelp import run


def run_child(args: list[str], env_dir: Path, kill_at: int | None = None) -> tuple[bool, int]:
    """Run the CLI in a forked child; return (killed by SIGKILL, exit code)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 70
        try:
            import torch

            torch.set_num_threads(1)  # no OpenMP pool to spin up in a short-lived child
            if kill_at is not None:
                os.environ["LLMPATCH_TEST_KILL_AT"] = str(kill_at)
            os.environ["LLMPATCH_ENV"] = str(env_dir)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            from llmpatch.cli import cli

            try:
                rv = cli.main(args, standalone_mode=False)
                code = rv if isinstance(rv, int) else 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            code = 71
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True, -1
    return False, os.WEXITSTATUS(status)


def stack(env: Environment) -> list[str]:
    return [p.id for p in env.current().patches]


def leftovers(env_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(env_dir)) for p in env_dir.rglob("*") if ".tmp-" in p.name or p.name.startswith(".gc-"))


def sweep(template: Path, workdir: Path, args: list[str], before: list[str], after: list[str]) -> int:
    """Kill ``args`` at crash point 1, 2, ... until it completes; check the environment after each kill."""
    kills = 0
    for n in range(1, 500):
        proj = workdir / f"{args[0]}-{n}"
        shutil.copytree(template, proj, symlinks=True)
        env_dir = proj / ".llmpatch"
        killed, code = run_child(args, env_dir, kill_at=n)
        env = Environment(env_dir)
        if not killed:
            assert code == 0, f"{args} failed without a kill (exit {code})"
            assert stack(env) == after
            shutil.rmtree(proj)
            return kills
        kills += 1
        # Consistent and usable right after the kill: the current generation verifies and composes.
        assert env.check() == [], f"kill point {n} of {args}"
        assert stack(env) in (before, after), f"kill point {n}: unexpected stack {stack(env)}"
        # The next writer recovers (temp files, unactivated generations, stale lock file) ...
        _, code = run_child(["gc"], env_dir)
        assert code == 0
        assert leftovers(env_dir) == [], f"kill point {n}: leftovers after recovery"
        assert max(int(p.stem) for p in (env_dir / "generations").glob("*.json")) == env.current_number()
        assert LockFile.read(proj / "llmpatch.lock").stack_id == env.current().stack_id
        # ... and if the kill came before the switch, the command succeeds when simply run again.
        if stack(env) == before:
            _, code = run_child(args, env_dir)
            assert code == 0
        assert stack(env) == after and env.check() == []
        shutil.rmtree(proj)
    raise AssertionError("the command never completed")


def test_sigkill_at_every_step_of_install_remove_and_rollback_leaves_a_usable_environment(
        project, tiny_model_dir, scenario_registry, tmp_path):
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.1")
    template_a = tmp_path / "template-a"
    shutil.copytree(project, template_a)
    run("install", "tox-fix@1.2", "bias-fix")
    template_b = tmp_path / "template-b"
    shutil.copytree(project, template_b)
    work = tmp_path / "work"
    work.mkdir()
    old, new = ["tox-fix@1.1.0"], ["tox-fix@1.2.1", "bias-fix@2.0.0"]
    kills = 0
    kills += sweep(template_a, work, ["install", "tox-fix@1.2", "bias-fix"], old, new)
    kills += sweep(template_b, work, ["rollback"], new, old)
    kills += sweep(template_b, work, ["rollback", "--to", "1"], new, [])
    kills += sweep(template_b, work, ["remove", "bias-fix"], new, ["tox-fix@1.2.1"])
    print(f"{kills} kill points")
    assert kills >= 50


def test_several_simultaneous_installs_into_one_environment_all_land(project, tiny_model_dir, registry):
    names = [f"fix-{i}" for i in range(5)]
    for n in names:
        registry.publish_patch(n, "1.0.0")
    run("init", "--base", tiny_model_dir)
    env_dir = project / ".llmpatch"
    pids = []
    for n in names:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 70
            try:
                os.environ["LLMPATCH_ENV"] = str(env_dir)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                from llmpatch.cli import cli

                try:
                    cli.main(["install", n, "--lock-timeout", "60"], standalone_mode=False)
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                code = 71
            finally:
                os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
    assert codes == [0] * len(names)
    env = Environment(env_dir)
    assert sorted(p.name for p in env.current().patches) == names
    gens = env.generations()
    assert [g.number for g in gens] == list(range(1, len(names) + 2))
    # Each install built on the one before: no update was lost.
    for prev, nxt in zip(gens, gens[1:]):
        assert [p.name for p in prev.patches] == [p.name for p in nxt.patches][: len(prev.patches)]
        assert nxt.parent == prev.number
    assert env.check() == []
    assert leftovers(env_dir) == []
