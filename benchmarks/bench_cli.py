"""Benchmark: wall time of everyday `llmpatch` commands, each a new process, next to anchors.

Builds a scenario in a temp dir (a tiny random base model, a signed local registry with two
versions of a patch, an environment with both installed one after the other), then runs each
command ``--repeat`` times as a whole new process and prints the median, with `python -c pass`
and `pip --version` as anchors. The target is 300 ms per command; numbers are printed, never
asserted. Whether a command imports torch is checked by tests/test_cli_startup.py.

    python benchmarks/bench_cli.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300


def make_tiny_model(path: Path) -> Path:
    """A tiny random Llama and a small BPE tokenizer (as in tests/conftest.py): no download."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(["hello world, a tiny corpus for a benchmark"] * 20, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tok.save_pretrained(path)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      vocab_size=len(tok), max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=3)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def build_scenario(root: Path) -> dict[str, str]:
    """Registry + environment; returns the environment variables the timed commands run with."""
    import torch
    from click.testing import CliRunner

    from llmpatch import artifact, base
    from llmpatch.cli import cli

    def run(*args: object) -> None:
        res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        if res.exit_code != 0:
            raise SystemExit(f"setup failed: llmpatch {' '.join(map(str, args))}\n{res.output}")

    model = make_tiny_model(root / "tiny")
    info = base.identify(str(model))
    reg = root / "registry"
    run("registry", "init", reg)
    run("key", "generate")
    for v in ("1.0.0", "1.1.0"):
        p = artifact.write_patch(root / f"tox-fix-{v}", torch.randn(5, info.hidden_size) * 0.5, name="tox-fix", version=v,
                                 base=info.to_ref(), summary="Lowers toxicity", domains=["toxicity"])
        run("publish", p.path, "-r", reg)
    env_dir = root / "project" / ".llmpatch"
    run("init", "--base", model, "-r", reg, "--path", env_dir)
    run("install", "tox-fix@1.0.0", "--env", env_dir)
    run("install", "tox-fix@1.1.0", "--env", env_dir)
    return {"LLMPATCH_ENV": str(env_dir), "LLMPATCH_REGISTRY": str(reg)}


def median_ms(argv: list[str] | Callable[[int], list[str]], env: dict[str, str], cwd: Path,
              repeat: int) -> tuple[float, int]:
    """Median wall time of ``repeat`` new processes (``argv`` may depend on the run number) and the last exit code."""
    times, code = [], 0
    for i in range(repeat):
        t0 = time.perf_counter()
        code = subprocess.run(argv(i) if callable(argv) else argv, env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="runs per command (the median is printed)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["LLMPATCH_HOME"] = str(root / "home")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        extra = build_scenario(root)
        env = {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        llmpatch = [sys.executable, "-m", "llmpatch.cli"]
        cases: list[tuple[str, list[str] | Callable[[int], list[str]]]] = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("pip --version", [sys.executable, "-m", "pip", "--version"]),
            ("llmpatch --help", [*llmpatch, "--help"]),
            ("llmpatch install --help", [*llmpatch, "install", "--help"]),
            ("llmpatch run --help", [*llmpatch, "run", "--help"]),
            ("llmpatch verify --help", [*llmpatch, "verify", "--help"]),
            ("llmpatch list", [*llmpatch, "list"]),
            ("llmpatch history", [*llmpatch, "history"]),
            ("llmpatch search tox", [*llmpatch, "search", "tox"]),
            ("llmpatch show tox-fix", [*llmpatch, "show", "tox-fix"]),
            ("llmpatch lock", [*llmpatch, "lock", "-o", str(root / "llmpatch.lock")]),
            ("llmpatch install --dry-run", [*llmpatch, "install", "tox-fix@1.0.0", "--dry-run"]),
            # each run writes a new generation, alternating between the stacks of generations 2 and 3
            ("llmpatch rollback --to N", lambda i: [*llmpatch, "rollback", "--to", str(2 + i % 2)]),
            ("llmpatch key list", [*llmpatch, "key", "list"]),
            ("llmpatch registry init", lambda i: [*llmpatch, "registry", "init", str(root / f"registry-{i}")]),
        ]
        print(f"median of {args.repeat} whole-process runs (target: each llmpatch command within {TARGET_MS} ms)")
        print(f"{'command':32} {'median':>9}")
        for label, argv in cases:
            ms, code = median_ms(argv, env, root, args.repeat)
            flag = "" if label.startswith(("python", "pip")) else ("" if ms <= TARGET_MS else "  over target")
            print(f"{label:32} {ms:7.0f} ms{flag}{'' if code == 0 else f'  (exit {code})'}")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
