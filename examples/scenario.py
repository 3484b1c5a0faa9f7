"""The customer scenario, end to end, on a tiny model (seconds, no network).

A vendor publishes tox-fix 1.0.0, 1.1.0, 1.2.0, 1.2.1, bias-fix 2.0.3 and bias-fix 2.1.0-rc.1 (a
pre-release: 2.0.3's weights re-packaged unchanged by examples/prerelease.py) to a local registry.
A customer pins a base, installs ``tox-fix@1.2`` (gets 1.2.1), adds bias-fix (gets 2.0.3: a
pre-release is never picked unasked), rolls back to tox-fix alone, rolls back to generation 1 (the
empty stack), returns to the two-patch stack, tries the pre-release with ``upgrade --pre`` and rolls
it back, and reproduces the stack from ``llmpatch.lock`` in a second environment: the composed
prefixes are byte-identical.

On the tiny random base the patches are random demo prefixes; with ``--base default`` bias-fix
2.0.3 is the committed examples/patches/bias-fix (built for that base).

    python examples/scenario.py                   # tiny random base in a temp dir
    python examples/scenario.py --base default    # the embedded SmolLM2-135M-Instruct
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path


EXAMPLES = Path(__file__).resolve().parent
EXAMPLE_BIAS = EXAMPLES / "patches" / "bias-fix"


def prerelease_module():
    """examples/prerelease.py, loaded by path (this file also runs without examples/ on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("llmpatch_example_prerelease", EXAMPLES / "prerelease.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_tiny_base(path: Path) -> Path:
    """A tiny random Llama and a BPE tokenizer trained in-process (no download)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(["a tiny corpus for a tiny model that says kind things"] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    tok.save_pretrained(path)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=256,
                      bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def llmpatch(*args: str) -> None:
    """Run one CLI command in-process, echoing it like a shell session; stop on failure."""
    from llmpatch.cli import cli

    print(f"\n$ llmpatch {' '.join(shlex.quote(a) for a in args)}", flush=True)
    try:
        rv = cli.main(list(args), prog_name="llmpatch", standalone_mode=False)
    except SystemExit as exc:
        rv = exc.code
    if rv not in (None, 0):
        raise SystemExit(f"scenario failed: `llmpatch {' '.join(args)}` exited with {rv}")


def stack(project: Path) -> list[str]:
    from llmpatch.env import Environment

    return [p.id for p in Environment(project / ".llmpatch").current().patches]


def expect(project: Path, want: list[str]) -> None:
    got = stack(project)
    if got != want:
        raise SystemExit(f"scenario failed: expected stack {want}, got {got}")
    print(f"  ok: stack is {' -> '.join(want) or '(empty)'}")


def main(workdir: Path | None = None, base: str | None = None) -> None:
    """Run the scenario in ``workdir`` (a temp dir by default)."""
    import torch

    from llmpatch import artifact
    from llmpatch import base as base_mod
    from llmpatch.env import Environment
    from llmpatch.registry import open_registry

    own_tmp = workdir is None
    work = Path(workdir or tempfile.mkdtemp(prefix="llmpatch-scenario-")).resolve()
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    try:
        os.environ["LLMPATCH_HOME"] = str(work / "home")
        os.environ["LLMPATCH_REGISTRY"] = str(work / "registry")
        os.environ.pop("LLMPATCH_ENV", None)
        base_spec = base or str(make_tiny_base(work / "tiny-base"))

        print("# vendor: build and publish six patch versions")
        info = base_mod.identify(base_spec)
        registry = open_registry(os.environ["LLMPATCH_REGISTRY"])
        for seed, (name, version, domain) in enumerate([
            ("tox-fix", "1.0.0", "toxicity"), ("tox-fix", "1.1.0", "toxicity"), ("tox-fix", "1.2.0", "toxicity"),
            ("tox-fix", "1.2.1", "toxicity"), ("bias-fix", "2.0.3", "gender_bias"),
        ]):
            if name == "bias-fix" and EXAMPLE_BIAS.is_dir() \
                    and artifact.read_patch(EXAMPLE_BIAS).manifest.base.fingerprint == info.fingerprint:
                registry.publish(EXAMPLE_BIAS)
                bias = EXAMPLE_BIAS
                print(f"  published {name} {version} (examples/patches/bias-fix)")
                continue
            emb = torch.randn(5, info.hidden_size, generator=torch.Generator().manual_seed(seed)) * 0.5
            patch = artifact.write_patch(work / "build" / f"{name}-{version}", emb, name=name, version=version,
                                         summary=f"{name} demo patch", domains=[domain], base=info.to_ref())
            registry.publish(patch.path)
            bias = patch.path
            print(f"  published {name} {version}")
        rc = prerelease_module().make_prerelease(bias, "2.1.0-rc.1", work / "build" / "bias-fix-2.1.0-rc.1")
        registry.publish(rc.path)
        print(f"  published bias-fix 2.1.0-rc.1 (a pre-release: {rc.manifest.summary.split(';')[0]})")

        app = work / "app"
        app.mkdir()
        os.chdir(app)
        print("\n# customer: pin the base, install, roll back")
        llmpatch("init", "--base", base_spec)
        llmpatch("install", "tox-fix@1.2")
        expect(app, ["tox-fix@1.2.1"])
        llmpatch("install", "bias-fix")
        expect(app, ["tox-fix@1.2.1", "bias-fix@2.0.3"])
        llmpatch("list")
        llmpatch("rollback")
        expect(app, ["tox-fix@1.2.1"])
        llmpatch("rollback", "--to", "1")
        expect(app, [])
        llmpatch("rollback", "--to", "3")
        expect(app, ["tox-fix@1.2.1", "bias-fix@2.0.3"])

        print("\n# a pre-release: only with --pre")
        llmpatch("upgrade", "bias-fix")
        expect(app, ["tox-fix@1.2.1", "bias-fix@2.0.3"])
        llmpatch("upgrade", "bias-fix", "--pre")
        expect(app, ["tox-fix@1.2.1", "bias-fix@2.1.0-rc.1"])
        llmpatch("rollback")
        expect(app, ["tox-fix@1.2.1", "bias-fix@2.0.3"])
        llmpatch("history")

        print("\n# a second machine: reproduce from llmpatch.lock")
        second = work / "second"
        second.mkdir()
        shutil.copy(app / "llmpatch.lock", second / "llmpatch.lock")
        os.chdir(second)
        llmpatch("install", "--locked")
        expect(second, ["tox-fix@1.2.1", "bias-fix@2.0.3"])
        a = Environment(app / ".llmpatch").load_stack().prefix()
        b = Environment(second / ".llmpatch").load_stack().prefix()
        if a.numpy().tobytes() != b.numpy().tobytes():
            raise SystemExit("scenario failed: the composed prefixes differ")
        print(f"  ok: composed prefixes are byte-identical ({tuple(a.shape)}, {a.numel() * a.element_size()} bytes)")
        print("\nscenario OK")
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="Keep everything here (default: a temp dir, removed afterwards).")
    parser.add_argument("--base", help="Base spec (default: a tiny random model built on the fly).")
    ns = parser.parse_args()
    main(ns.workdir, ns.base)
    sys.exit(0)
