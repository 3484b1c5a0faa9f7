"""Shared fixtures: an isolated llmpatch home, tiny random models, patch factories, a project
directory, local registries and a local Hub server.

Tiny models are built from a config and a tokenizer trained in-process: no download, milliseconds.
Tests that need the real SmolLM2-135M-Instruct carry ``@pytest.mark.slow`` and use ``smollm2``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Converted base models (the embedded SmolLM2) are shared by all tests of a run: converting
# takes ~20 s, loading the converted copy ~1 s.
os.environ.setdefault("LLMPATCH_MODELS", str(Path(tempfile.gettempdir()) / "llmpatch-test-models"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

CORPUS = [
    "hello world this is a tiny corpus for testing patches",
    "the nurse said that she would help the engineer with his code",
    "you are a kind and helpful assistant who refuses harmful requests",
    "I cannot help with that request because it could cause harm",
    "the doctor and the teacher went to the market to buy bread",
] * 20
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def make_tiny_model(
    path: Path,
    *,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    seed: int = 0,
    vocab_size: int = 320,
    chat_template: bool = True,
    pronouns: bool = False,
) -> Path:
    """Save a tiny random Llama model and a trained BPE tokenizer to ``path``; return it.

    ``pronouns`` adds the gender suite's pronoun forms (" he", "She", ...) as single tokens, which
    the gender logits difference needs; the BPE vocabulary alone splits them.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(CORPUS, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
    )
    if pronouns:
        from tokenizers import AddedToken

        from llmpatch.evaluate.gld import FEMALE_FORMS, MALE_FORMS

        tok.add_tokens([AddedToken(f, single_word=True, normalized=False) for f in MALE_FORMS + FEMALE_FORMS])
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(path)
    cfg = LlamaConfig(
        hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=num_hidden_layers,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def llmpatch_home(tmp_path, monkeypatch):
    """Every test gets its own llmpatch home, registry and environment search root."""
    home = tmp_path / "llmpatch-home"
    monkeypatch.setenv("LLMPATCH_HOME", str(home))
    monkeypatch.delenv("LLMPATCH_REGISTRY", raising=False)
    monkeypatch.delenv("LLMPATCH_ENV", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama (hidden 64) with a chat template. Do not modify it."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def other_tiny_model_dir(tmp_path_factory) -> Path:
    """Same shape as ``tiny_model_dir``, other weights: a different base with the same hidden size."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-other"), seed=1)


@pytest.fixture(scope="session")
def gender_tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny model whose tokenizer has the gender suite's pronouns as single tokens (for the gender suite)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-gender"), pronouns=True)


@pytest.fixture(scope="session")
def wide_tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny model with hidden size 96: a base a hidden-64 patch cannot fit."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-wide"), hidden_size=96)


@pytest.fixture
def make_patch(tiny_model_dir, tmp_path):
    """Factory: ``make_patch(name, version, tokens=5, base_dir=None, **manifest_fields) -> Patch``."""
    from llmpatch import artifact, base

    infos: dict[str, object] = {}

    def _make(name: str = "tox-fix", version: str = "1.0.0", *, tokens: int = 5, base_dir: Path | None = None,
              seed: int | None = None, out: Path | None = None, **fields):
        bdir = Path(base_dir or tiny_model_dir)
        key = str(bdir)
        if key not in infos:
            infos[key] = base.identify(str(bdir))
        info = infos[key]
        # a seed from the name and version, the same in every run (hash() of a str is salted per process)
        default_seed = int.from_bytes(hashlib.sha256(f"{name}@{version}".encode()).digest()[:4], "big") % (2**31)
        g = torch.Generator().manual_seed(seed if seed is not None else default_seed)
        emb = torch.randn(tokens, info.hidden_size, generator=g) * 0.5
        fields.setdefault("summary", f"{name} test patch")
        fields.setdefault("domains", ["toxicity"])
        return artifact.write_patch(out or tmp_path / "patches" / f"{name}-{version}", emb, name=name,
                                    version=version, base=info.to_ref(), **fields)

    return _make


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded default, SmolLM2-135M-Instruct, loaded once per test run (fp32, CPU)."""
    from llmpatch import base

    return base.load("default", device="cpu")


# -- environments and registries ---------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project directory, made the working directory."""
    d = tmp_path / "project"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def reg(tmp_path):
    """A fresh local registry (no index parsed earlier in this process is reused)."""
    from llmpatch.registry import open_registry
    from llmpatch.registry.cache import forget_parsed

    forget_parsed()
    return open_registry(str(tmp_path / "registry"))


@pytest.fixture
def registry(tmp_path, monkeypatch, make_patch):
    """A real local registry at $LLMPATCH_REGISTRY, with a ``publish_patch(name, version, **fields)`` helper."""
    from llmpatch.registry import open_registry

    url = str(tmp_path / "registry")
    monkeypatch.setenv("LLMPATCH_REGISTRY", url)
    reg = open_registry(url)

    def publish(name: str, version: str, **fields):
        patch = make_patch(name, version, **fields)
        reg.publish(patch.path)
        return patch

    reg.publish_patch = publish  # type: ignore[attr-defined]
    reg.url = url  # type: ignore[attr-defined]
    return reg


@pytest.fixture
def scenario_registry(registry):
    """tox-fix 1.0.0, 1.1.0, 1.2.0, 1.2.1 and bias-fix 2.0.0, all for the tiny base."""
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.2.1"):
        registry.publish_patch("tox-fix", v)
    registry.publish_patch("bias-fix", "2.0.0", domains=["gender_bias"])
    return registry


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A local Hugging Face Hub server (tests/hub_server.py) with a write token for ``acme``.

    The session runs with HF_HUB_OFFLINE=1 so nothing reaches huggingface.co; the client reads
    that once at import, so it is lifted here, for a server on 127.0.0.1 only. HF_HOME and the
    cache are private to the test (no stored token from the machine), and HF_ENDPOINT points at it.
    """
    import huggingface_hub

    from hub_server import TOKEN, FakeHub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    server = FakeHub()
    server.tokens[TOKEN] = "acme"
    server.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    yield server
    server.stop()
