"""Environments without a registry: init, discovery, generations, lock file format, the writer lock."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from clihelp import run
from llmpatch.env import Environment, current_stack, find_env
from llmpatch.env.locking import EnvLock
from llmpatch.env.records import LockFile
from llmpatch.errors import EnvironmentStateError, LockTimeoutError, SchemaError


def test_init_pins_the_base_and_starts_at_an_empty_generation_1(project, tiny_model_dir):
    res = run("init", "--base", tiny_model_dir, "--json")
    data = json.loads(res.stdout)
    env = Environment(project / ".llmpatch")
    assert data["base"]["fingerprint"] == env.base_ref.fingerprint
    assert env.base_ref.fingerprint.startswith("sha256:")
    assert env.current_number() == 1 and env.current().patches == ()
    assert LockFile.read(project / "llmpatch.lock").patches == ()
    assert (project / ".llmpatch" / ".gitignore").read_text().strip().endswith("*")


def test_init_refuses_to_overwrite_an_environment_without_force(project, tiny_model_dir, other_tiny_model_dir):
    run("init", "--base", tiny_model_dir)
    res = run("init", "--base", other_tiny_model_dir, ok=False)
    assert res.exit_code == 1 and "already an environment" in res.output and "--force" in res.output
    run("init", "--base", other_tiny_model_dir, "--force")
    assert Environment(project / ".llmpatch").base.spec == str(other_tiny_model_dir.resolve())


def test_the_environment_is_found_from_a_subdirectory_and_via_llmpatch_env(project, tiny_model_dir, tmp_path, monkeypatch):
    run("init", "--base", tiny_model_dir)
    sub = project / "a" / "b"
    sub.mkdir(parents=True)
    assert find_env(sub) == (project / ".llmpatch").resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EnvironmentStateError, match="no llmpatch environment") as exc:
        find_env()
    assert "llmpatch init --base" in exc.value.hint
    monkeypatch.setenv("LLMPATCH_ENV", str(project))
    spec, dirs = current_stack()
    assert spec == str(tiny_model_dir.resolve()) and dirs == []


def test_commands_outside_an_environment_say_how_to_create_one(project):
    res = run("list", ok=False)
    assert res.exit_code == 1
    assert "no llmpatch environment" in res.output and "llmpatch init --base" in res.output


def test_list_and_history_have_json_output(project, tiny_model_dir):
    run("init", "--base", tiny_model_dir)
    listing = json.loads(run("list", "--json").stdout)
    assert listing["generation"]["number"] == 1 and listing["generation"]["patches"] == []
    hist = json.loads(run("history", "--json").stdout)
    assert [g["action"] for g in hist["generations"]] == ["init"] and hist["current"] == 1


def test_rollback_from_the_first_generation_explains_there_is_nothing_earlier(project, tiny_model_dir):
    run("init", "--base", tiny_model_dir)
    res = run("rollback", ok=False)
    assert res.exit_code == 1 and "no earlier state" in res.output


def test_a_newer_lock_file_schema_fails_loudly(project, tiny_model_dir):
    run("init", "--base", tiny_model_dir)
    data = json.loads((project / "llmpatch.lock").read_text())
    data["schema_version"] = 2
    with pytest.raises(SchemaError, match="newer than this llmpatch understands"):
        LockFile.from_dict(data)


def test_an_edited_lock_file_is_rejected(project, tiny_model_dir):
    run("init", "--base", tiny_model_dir)
    data = json.loads((project / "llmpatch.lock").read_text())
    data["stack_id"] = "sha256:" + "0" * 64
    with pytest.raises(SchemaError, match="does not match its patches"):
        LockFile.from_dict(data)
    data.pop("stack_id")
    with pytest.raises(SchemaError, match="stack_id"):
        LockFile.from_dict(data)


def test_a_second_writer_waits_with_a_message_naming_the_holder_then_times_out(project, tiny_model_dir):
    run("init", "--base", tiny_model_dir)
    env_dir = project / ".llmpatch"
    messages: list[str] = []
    held = threading.Event()
    release = threading.Event()

    def holder():
        with EnvLock(env_dir, command="llmpatch install slow-fix"):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(LockTimeoutError, match=f"held by pid {os.getpid()}") as exc:
            with EnvLock(env_dir, timeout=0.6, on_wait=messages.append):
                pass
        assert "--lock-timeout" in exc.value.hint
        assert messages and messages[0].startswith(f"waiting for lock on {env_dir} held by pid {os.getpid()}")
        assert "llmpatch install slow-fix" in messages[0]
    finally:
        release.set()
        t.join()
    with EnvLock(env_dir, timeout=1):  # released: acquired at once
        pass


def test_a_lock_left_by_a_killed_process_is_detected_and_does_not_block(project, tiny_model_dir):
    import socket

    run("init", "--base", tiny_model_dir)
    env_dir = project / ".llmpatch"
    pid = os.fork()
    if pid == 0:  # child: take the lock and die holding it
        lock = EnvLock(env_dir, command="llmpatch install doomed")
        lock.__enter__()
        os.kill(os.getpid(), 9)
    os.waitpid(pid, 0)
    owner = json.loads((env_dir / "lock.owner").read_text())
    assert owner["pid"] == pid and owner["host"] == socket.gethostname()
    notes: list[str] = []
    start = time.monotonic()
    env = Environment(env_dir)
    with env.transaction("llmpatch list", timeout=5, on_recover=notes.append):
        pass
    assert time.monotonic() - start < 2
    assert any(f"pid {pid}" in n and "interrupted" in n for n in notes)
    assert not (env_dir / "lock.owner").exists()


def test_init_never_replaces_a_directory_that_is_not_an_environment(project, tiny_model_dir):
    precious = project / "data"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    res = run("init", "--base", tiny_model_dir, "--path", precious, "--force", ok=False)
    assert "is not a llmpatch environment" in res.output
    assert (precious / "keep.txt").read_text() == "mine"
