"""Issue #16 item 11, the rest: clear errors and nothing written for a fake GGUF base, dry runs on a
read-only environment, a disk that fills up during install, and `build --check` of recipes whose
prompt file is empty or whose base path does not exist.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clihelp import refused, run, run_json

from llmpatch import paths

# -- a read-only file system, simulated with an audit hook ---------------------------------------
#
# chmod does not stop root (CI containers often run as root), and mounting needs privileges, so the
# test refuses every write under a directory the way a read-only mount does: an audit hook raises
# EROFS on each event that creates, changes or removes a file there (open for writing, rename,
# remove, mkdir, rmdir, chmod, truncate, rmtree). Audit hooks cannot be removed: it acts only while
# ``_READ_ONLY`` names a directory.

_READ_ONLY: list[str] = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_WRITE_EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.truncate", "os.symlink",
                 "os.link", "os.utime", "os.chown", "shutil.rmtree"}


def _under_read_only(path) -> bool:
    if isinstance(path, int) or path is None:
        return False
    p = os.path.abspath(os.fsdecode(path))
    return any(p == root or p.startswith(root + os.sep) for root in _READ_ONLY)


def _read_only_hook(event: str, args: tuple) -> None:
    if not _READ_ONLY:
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        targets = [path] if writing else []
    elif event in _WRITE_EVENTS:
        targets = [args[0], args[1]] if event in ("os.rename", "os.link", "os.symlink") else [args[0]]
    else:
        return
    for t in targets:
        if _under_read_only(t):
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(t))


sys.addaudithook(_read_only_hook)


@contextlib.contextmanager
def read_only(path: Path):
    """Refuse every write under ``path`` (EROFS) inside the block."""
    _READ_ONLY.append(str(Path(path).resolve()))
    try:
        yield
    finally:
        _READ_ONLY.pop()


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for directories)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_the_read_only_simulation_refuses_writes_and_allows_reads(tmp_path):
    (tmp_path / "f").write_text("x")
    with read_only(tmp_path):
        assert (tmp_path / "f").read_text() == "x"
        for write in (lambda: (tmp_path / "f").write_text("y"), lambda: (tmp_path / "d").mkdir(),
                      lambda: (tmp_path / "f").unlink(), lambda: os.replace(tmp_path / "f", tmp_path / "g"),
                      lambda: os.open(tmp_path / "h", os.O_RDWR | os.O_CREAT)):
            with pytest.raises(OSError) as info:
                write()
            assert info.value.errno == errno.EROFS
    assert tree(tmp_path) == {"f": b"x"}


# -- init --base with a file that is not a GGUF model ---------------------------------------------


@pytest.mark.parametrize("content, message", [
    (b"not a model at all\n", "is not a GGUF file: it starts with b'not '"),
    (b"", "is not a GGUF file: it is empty"),
    (b"GGUF\x03\x00\x00\x00truncated", "cannot read"),
], ids=["text", "empty", "truncated-header"])
def test_init_with_a_fake_gguf_base_is_a_clear_error_and_writes_nothing(project, content, message):
    (project / "fake.gguf").write_bytes(content)
    models = paths.models_dir()

    def converted() -> set[str]:  # FileLock may leave an empty lock file; nothing else may appear
        return {p.name for p in models.iterdir() if p.suffix != ".lock"} if models.exists() else set()

    before = converted()
    res = refused("init", "--base", "fake.gguf")
    assert message in res.output and "hint:" in res.output
    assert sorted(p.name for p in project.iterdir()) == ["fake.gguf"]
    assert converted() == before


# -- dry runs on a read-only environment ------------------------------------------------------


@pytest.fixture
def installed(scenario_registry, project, tiny_model_dir):
    """A project with tox-fix 1.0.0 then 1.1.0 installed (two changes, so rollback has a target)."""
    run("init", "--base", tiny_model_dir)
    run("install", "tox-fix@1.0.0")
    run("install", "tox-fix@1.1.0")
    return project


@pytest.mark.parametrize("args", [
    ("install", "bias-fix", "--dry-run"),
    ("upgrade", "tox-fix@^1", "--dry-run"),
    ("remove", "tox-fix", "--dry-run"),
    ("rollback", "--dry-run"),
    ("gc", "--keep-last", "1", "--dry-run"),
    ("sync", "--dry-run"),
    ("install", "--locked", "--dry-run"),
], ids=lambda a: " ".join(a))
def test_a_dry_run_works_on_a_read_only_environment_and_writes_nothing(installed, args):
    env_dir = installed / ".llmpatch"
    before = tree(installed)
    with read_only(installed):
        out = run_json(*args)
    assert out["dry_run"] is True
    assert tree(installed) == before


def test_a_dry_run_shows_the_change_it_would_make(installed):
    with read_only(installed):
        plan = run_json("install", "bias-fix", "--dry-run")["plan"]
    assert plan["after"] == ["tox-fix@1.1.0", "bias-fix@2.0.0"] and plan["fetch"] == ["bias-fix@2.0.0"]


def test_a_real_install_on_a_read_only_environment_is_a_clear_error_and_changes_nothing(installed):
    before = tree(installed)
    with read_only(installed):
        res = refused("install", "bias-fix")
    assert "Read-only file system" in res.output and "--dry-run" in res.output
    assert "Traceback" not in res.output
    assert tree(installed) == before


def test_gc_dry_run_keeps_a_generation_that_was_never_activated(installed):
    """gc --dry-run used to delete never-activated generation files while saying it deleted nothing."""
    gen_dir = installed / ".llmpatch" / "generations"
    (gen_dir / "9.json").write_bytes((gen_dir / "2.json").read_bytes().replace(b'"number": 2', b'"number": 9'))
    out = run_json("gc", "--dry-run")
    assert out["generations"] == ["9"] and (gen_dir / "9.json").exists()
    assert run_json("gc")["generations"] == ["9"] and not (gen_dir / "9.json").exists()


def test_sync_dry_run_without_an_environment_creates_none(installed, tmp_path, monkeypatch):
    fresh = tmp_path / "checkout"
    fresh.mkdir()
    shutil.copy(installed / "llmpatch.lock", fresh / "llmpatch.lock")
    monkeypatch.chdir(fresh)
    out = run_json("sync", "--dry-run")
    assert out["dry_run"] is True and out["plan"]["after"] == ["tox-fix@1.1.0"]
    assert sorted(p.name for p in fresh.iterdir()) == ["llmpatch.lock"]


# -- a disk that fills up during install ------------------------------------------------------


def _temp_leftovers(*roots: Path) -> list[str]:
    return sorted(str(p) for r in roots if r.exists() for p in r.rglob("*") if ".tmp-" in p.name)


def test_a_write_that_fails_during_install_leaves_no_temp_files_and_a_clear_error(installed, llmpatch_home):
    """Each run may write only files up to N bytes (RLIMIT_FSIZE: a real failing write(2), EFBIG, like a
    full disk's ENOSPC mid-file); the index view cache is cleared first so its write is exercised too.
    Every failed run must leave no temp file or directory, the environment unchanged, and one message."""
    project = installed
    before = tree(project / ".llmpatch")
    lock_before = (project / "llmpatch.lock").read_bytes()
    failures = 0
    for limit in (64, 700, 1500, 2500):
        shutil.rmtree(llmpatch_home / "cache" / "index-view", ignore_errors=True)

        def small_files(limit=limit):
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        res = subprocess.run([sys.executable, "-m", "llmpatch.cli", "install", "bias-fix"], preexec_fn=small_files,
                             capture_output=True, text=True, cwd=project, timeout=300)
        assert _temp_leftovers(llmpatch_home, project) == [], f"limit {limit}"
        if res.returncode == 0:
            break
        failures += 1
        assert "Traceback" not in res.stderr, res.stderr[-2000:]
        assert "error:" in res.stderr and "hint:" in res.stderr, res.stderr
        assert tree(project / ".llmpatch") == before, f"limit {limit}"
        assert (project / "llmpatch.lock").read_bytes() == lock_before
    assert failures >= 2  # the sweep did hit failing writes
    run("install", "bias-fix")  # and with room again, the same install works
    assert _temp_leftovers(llmpatch_home, project) == []


# -- build --check: empty prompt files, missing model paths ---------------------------------------


RECIPE = """schema_version = 1
[patch]
name = "tox-fix"
version = "1.0.0"
domain = "toxicity"
summary = "s"
[prompts]
train = ["train.jsonl"]
"""


@pytest.fixture
def recipe_dir(tmp_path, monkeypatch):
    d = tmp_path / "recipe"
    d.mkdir()
    (d / "recipe.toml").write_text(RECIPE)
    (d / "train.jsonl").write_text('{"prompt": "You are such a"}\n')
    monkeypatch.chdir(d)
    return d


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank-lines", "comment"])
def test_build_check_refuses_an_empty_prompt_file_and_writes_nothing(recipe_dir, content):
    name = "train.txt" if content.startswith("#") else "train.jsonl"
    (recipe_dir / name).write_text(content)
    before = tree(recipe_dir)
    res = refused("build", "recipe.toml", "--check", "--set", f'prompts.train=["{name}"]')
    assert "prompts.train" in res.output and "is empty" in res.output and "nothing was generated" in res.output
    assert tree(recipe_dir) == before and not paths.home().exists()


@pytest.mark.parametrize("override, key", [
    ("base.spec=/nonexistent/model-dir", "base.spec"),
    ("base.spec=./missing.gguf", "base.spec"),
    ('reference.kind="model"', None),
], ids=["missing-dir", "missing-gguf", "missing-reference"])
def test_build_check_refuses_a_model_path_that_does_not_exist_and_writes_nothing(recipe_dir, override, key):
    extra = ["--set", "reference.model=../nowhere/safer-model"] if key is None else []
    before = tree(recipe_dir)
    res = refused("build", "recipe.toml", "--check", "--set", override, *extra)
    assert f"{key or 'reference.model'}:" in res.output and "does not exist" in res.output
    assert tree(recipe_dir) == before and not paths.home().exists()


def test_build_check_still_accepts_a_valid_recipe(recipe_dir, tiny_model_dir):
    out = run_json("build", "recipe.toml", "--check", "--set", f"base.spec={tiny_model_dir}")
    assert out["base"]["spec"] == str(tiny_model_dir)
