"""The patch artifact: a directory plain ``peft`` loads as a prompt-tuning adapter, plus a manifest.

Layout::

    tox-fix-1.2.1/
      adapter_config.json          peft PromptTuningConfig
      adapter_model.safetensors    one tensor, ``prompt_embeddings`` (num_virtual_tokens x hidden)
      README.md                    model card (Hub conventions: base_model, tags, eval results)
      llmpatch.json                manifest: identity, base fingerprint, sha256 of every file above

Reading verifies everything before any tensor is used: the manifest's schema, that no pickle
file is present, that every listed file exists with the recorded size and sha256 and that no
unlisted file is present, that the safetensors file parses, and that the tensor and the
adapter config agree with the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from llmpatch.errors import IntegrityError, LlmpatchError, UnsafeFormatError
from llmpatch.manifest import MANIFEST_NAME, BaseRef, EvalClaim, FileEntry, Manifest, Provided, StackEvidence
from llmpatch.util import PICKLE_SUFFIXES, now_iso, sha256_file
from llmpatch.versions import check_name, parse_version

if TYPE_CHECKING:  # torch and safetensors are imported where tensors are read or written (fast list/history)
    import torch

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_CARD = "README.md"
TENSOR_NAME = "prompt_embeddings"


@dataclass(frozen=True)
class Patch:
    """A verified patch: its manifest and its prefix embeddings (num_virtual_tokens x hidden)."""

    path: Path
    manifest: Manifest
    embeddings: torch.Tensor

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def payload_sha256(self) -> str:
        return self.manifest.files[ADAPTER_WEIGHTS].sha256


#: Leading bytes of pickle streams (protocol 2-5), zip archives (torch.save) and .npy files (may hold pickles).
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04", b"\x93NUMPY")


def refuse_links(root: Path) -> list[str]:
    """Every regular file under ``root`` (relative paths); raise IntegrityError on any symbolic link or special file."""
    root = Path(root)
    if root.is_symlink():
        raise IntegrityError(f"patch directory {root} is a symbolic link", hint="give the real directory")
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if p.is_symlink():
                raise IntegrityError(
                    f"{root}: {rel} is a symbolic link (to {os.readlink(p)!r}); a patch holds regular files only",
                    hint="replace the link by the file's content; links can point outside the patch",
                )
            if n in filenames:
                if not p.is_file():
                    raise IntegrityError(f"{root}: {rel} is not a regular file", hint="a patch holds regular files only")
                files.append(rel)
    return files


def refuse_pickles(root: Path, names: Iterable[str] | None = None) -> None:
    """Raise UnsafeFormatError if any pickle-format file (by name or by content) is under ``root`` (or in ``names``)."""
    candidates = list(names) if names is not None else refuse_links(root)
    bad = sorted(n for n in candidates if n.lower().endswith(PICKLE_SUFFIXES))
    for n in candidates:
        if n not in bad and (Path(root) / n).is_file():
            with open(Path(root) / n, "rb") as f:
                head = f.read(8)
            if head.startswith(_PICKLE_MAGIC):
                bad.append(n)
    if bad:
        raise UnsafeFormatError(
            f"{root} contains pickle-format files ({', '.join(bad)}); llmpatch accepts safetensors only, "
            "because unpickling can run arbitrary code",
            hint="re-export the patch with `llmpatch build` (it writes adapter_model.safetensors) and delete the pickle files",
        )


def verify_files(root: Path, manifest: Manifest) -> None:
    """Check presence, size and sha256 of every file the manifest lists, and that nothing else is there."""
    root = Path(root)
    present = set(refuse_links(root))
    refuse_pickles(root, present)
    for rel, entry in sorted(manifest.files.items()):
        f = root / rel
        if rel not in present:
            raise IntegrityError(
                f"{manifest.id}: file {rel} listed in the manifest is missing from {root}",
                hint="the download or copy is incomplete; fetch the patch again",
            )
        size = f.stat().st_size
        if size != entry.size:
            raise IntegrityError(
                f"{manifest.id}: {rel} is {size} bytes, the manifest says {entry.size} (truncated or modified)",
                hint="fetch the patch again from its registry; do not use this copy",
            )
        actual = sha256_file(f)
        if actual != entry.sha256:
            raise IntegrityError(
                f"{manifest.id}: sha256 of {rel} is {actual}, the manifest says {entry.sha256} (modified or corrupt)",
                hint="fetch the patch again from its registry; do not use this copy",
            )
    extra = sorted(present - set(manifest.files) - {MANIFEST_NAME})
    if extra:
        raise IntegrityError(
            f"{manifest.id}: {root} holds files the manifest does not cover: {', '.join(extra)}",
            hint="remove them; every file of a patch must be listed (with its sha256) in llmpatch.json",
        )


def _load_embeddings(root: Path, manifest: Manifest) -> torch.Tensor:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    f = root / ADAPTER_WEIGHTS
    try:
        tensors = load_file(str(f))
    except (SafetensorError, OSError, ValueError) as exc:
        raise IntegrityError(
            f"{manifest.id}: {ADAPTER_WEIGHTS} is not a readable safetensors file ({exc})",
            hint="the file is corrupt or truncated; fetch the patch again",
        ) from None
    if set(tensors) != {TENSOR_NAME}:
        raise IntegrityError(
            f"{manifest.id}: {ADAPTER_WEIGHTS} must hold exactly one tensor named {TENSOR_NAME!r}, found {sorted(tensors)}",
        )
    emb = tensors[TENSOR_NAME]
    want = (manifest.num_virtual_tokens, manifest.base.hidden_size)
    if tuple(emb.shape) != want:
        raise IntegrityError(
            f"{manifest.id}: prompt_embeddings has shape {tuple(emb.shape)}, the manifest says {want} "
            "(num_virtual_tokens x base hidden_size)",
        )
    if emb.dtype != torch_dtype(manifest.dtype):
        raise IntegrityError(
            f"{manifest.id}: prompt_embeddings is {str(emb.dtype).removeprefix('torch.')}, the manifest says {manifest.dtype!r}",
            hint="the payload does not match its manifest; rebuild the patch or fetch it again",
        )
    if not torch.isfinite(emb).all():
        raise IntegrityError(f"{manifest.id}: prompt_embeddings contains NaN or infinite values")
    return emb


def _check_adapter_config(root: Path, manifest: Manifest) -> None:
    from llmpatch import schemas

    cfg = schemas.read_json(root / ADAPTER_CONFIG, what=f"{manifest.id}: {ADAPTER_CONFIG}", error=IntegrityError)
    if not isinstance(cfg, dict):
        raise IntegrityError(f"{manifest.id}: {ADAPTER_CONFIG} is a {type(cfg).__name__}, expected an object")
    problems = []
    if cfg.get("peft_type") != "PROMPT_TUNING":
        problems.append(f"peft_type is {cfg.get('peft_type')!r}, expected 'PROMPT_TUNING'")
    if cfg.get("num_virtual_tokens") != manifest.num_virtual_tokens:
        problems.append(f"num_virtual_tokens is {cfg.get('num_virtual_tokens')}, manifest says {manifest.num_virtual_tokens}")
    if cfg.get("token_dim") != manifest.base.hidden_size:
        problems.append(f"token_dim is {cfg.get('token_dim')}, base hidden_size is {manifest.base.hidden_size}")
    if problems:
        raise IntegrityError(f"{manifest.id}: {ADAPTER_CONFIG} disagrees with the manifest: " + "; ".join(problems))


def torch_dtype(name: str) -> Any:
    """The torch dtype a manifest's ``dtype`` names (torch is imported here, not at start-up)."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def read_patch(path: str | Path) -> Patch:
    """Read and fully verify a patch directory."""
    root = Path(path)
    if not root.exists():
        raise LlmpatchError(f"patch directory {root} does not exist", hint="give the path of a directory made by `llmpatch build`")
    if not root.is_dir():
        raise LlmpatchError(f"{root} is not a directory: a patch is a directory holding {MANIFEST_NAME}")
    refuse_links(root)
    refuse_pickles(root)
    manifest = Manifest.read(root / MANIFEST_NAME)
    verify_files(root, manifest)
    _check_adapter_config(root, manifest)
    return Patch(path=root, manifest=manifest, embeddings=_load_embeddings(root, manifest))


def adapter_config(num_virtual_tokens: int, base: BaseRef, *, num_layers: int | None = None,
                   num_attention_heads: int | None = None, init: str | None = None) -> dict[str, Any]:
    """The peft ``adapter_config.json`` for a patch.

    ``init`` is the manifest's (``text:TEXT`` or ``random``): a text initialisation is recorded as
    peft itself records it (``TEXT``, the text, the base's tokenizer). peft only uses these fields
    when it creates a new, trainable prompt embedding; ``PeftModel.from_pretrained`` always loads a
    prompt-tuning adapter in inference mode, takes the weights from the file and never loads that
    tokenizer.
    """
    from peft import PromptTuningConfig

    text = init[len("text:"):] if init and init.startswith("text:") and len(init) > len("text:") else None
    cfg = PromptTuningConfig(
        task_type="CAUSAL_LM",
        prompt_tuning_init="TEXT" if text else "RANDOM",
        prompt_tuning_init_text=text,
        tokenizer_name_or_path=base.id if text else None,
        num_virtual_tokens=num_virtual_tokens,
        token_dim=base.hidden_size,
        num_transformer_submodules=1,
        num_layers=num_layers,
        num_attention_heads=num_attention_heads,
        base_model_name_or_path=base.id,
        revision=base.revision if base.revision and len(base.revision) == 40 else None,
        inference_mode=True,
    )
    d = cfg.to_dict()
    return json.loads(json.dumps(d, default=str))


def _claim_dataset(claim: EvalClaim) -> tuple[str, str, str | None]:
    """(dataset type, dataset name, split) of a claim's prompts for the card's model-index.

    ``prompts`` reads ``SOURCE sha256:...``; an ``hf:ID[@config][:split][:column]`` source is a Hub
    data set (listed under ``datasets`` too); a built-in set is named after the suite.
    """
    source = (claim.prompts or "").split(" ")[0]
    if source.startswith("hf:"):
        ds_id, _, rest = source[3:].partition(":")
        ds_id = ds_id.split("@")[0]
        return ds_id, ds_id, rest.split(":")[0] or None
    if source.startswith("built-in:"):
        parts = source.split(":")
        return f"llmpatch-builtin-{claim.suite}", f"llmpatch built-in {claim.suite} prompts", parts[2] if len(parts) > 2 else None
    return f"llmpatch-{claim.suite}", f"{claim.suite} prompts ({source or 'unspecified'})", None


def model_card(manifest: Manifest) -> str:
    """A Hub model card (YAML front matter + markdown) describing the patch.

    The front matter carries what the Hub renders: ``pipeline_tag``, ``library_name``,
    ``base_model``, ``language``, ``datasets`` (Hub data sets the evals used) and a
    ``model-index`` with every eval claim (the patched value; ``SUITE.METRIC`` as metric type).
    """
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for e in manifest.evals:
        ds_type, ds_name, split = _claim_dataset(e)
        results.append(EvalResult(
            task_type="text-generation", task_name="Text Generation", dataset_type=ds_type, dataset_name=ds_name,
            dataset_split=split, metric_type=e.id, metric_value=e.value, metric_name=f"{e.label} (patched)",
            verified=False,
        ))
    datasets = sorted({_claim_dataset(e)[0] for e in manifest.evals if (e.prompts or "").startswith("hf:")})
    data = ModelCardData(
        base_model=manifest.base.id,
        library_name="peft",
        pipeline_tag="text-generation",
        language=["en"],
        datasets=datasets or None,
        license=manifest.license if manifest.license.islower() else manifest.license.lower(),
        tags=["llmpatch", "safety-patch", "prompt-tuning", *manifest.domains],
        model_name=manifest.name if results else None,
        eval_results=results or None,
    )
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {manifest.name} {manifest.version}", "", manifest.summary, "",
        "A policy patch built with [llmpatch](https://pypi.org/project/llmpatch/): a learned soft prompt of "
        f"{manifest.num_virtual_tokens} virtual tokens prepended to the frozen base model's input embeddings.", "",
        "| field | value |", "|---|---|",
        f"| base model | `{manifest.base.id}` |",
        f"| base revision | `{manifest.base.revision}` |",
        f"| base fingerprint | `{manifest.base.fingerprint}` |",
        f"| domains | {', '.join(manifest.domains)} |",
        f"| virtual tokens | {manifest.num_virtual_tokens} |", "",
    ]
    if manifest.provides:
        lines += ["## Provides", "",
                  "A merged patch (`llmpatch merge`): one prefix distilled from these patches, which it replaces. "
                  "Do not stack it with any of them.", "",
                  "| patch | version | payload sha256 |", "|---|---|---|"]
        lines += [f"| {p.name} | {p.version} | `{p.payload_sha256[:16]}…` |" for p in manifest.provides]
        lines.append("")
    if manifest.evals:
        lines += ["## Evaluation (at build time, held-out prompts)", "", "| suite | metric | patched | unpatched |", "|---|---|---|---|"]
        for e in manifest.evals:
            base_v = e.base_value
            lines.append(f"| {e.suite} | {e.label.partition('.')[2]} | {e.value:.4g} | {'' if base_v is None else f'{base_v:.4g}'} |")
        lines.append("")
    for st in manifest.stacks:
        lines += [f"## In a stack: {st.label(manifest.name, manifest.version)}", "",
                  f"{st.describe()[0].upper()}{st.describe()[1:]}"
                  f"{' (trained in this order)' if st.trained else ''}; held-out evaluation of the whole stack:", ""]
        if st.evals:
            lines += ["| suite | metric | stack | unpatched |", "|---|---|---|---|"]
            lines += [f"| {e.suite} | {e.metric} | {e.value:.4g} | {'' if e.base_value is None else f'{e.base_value:.4g}'} |"
                      for e in st.evals]
        lines.append("")
    lines += [
        "## Use", "", "```bash", f"llmpatch install {manifest.name}@{manifest.version}", "```", "",
        "or with plain peft (same base model only: check the fingerprint above). Load with",
        "`PeftModel.from_pretrained`, but with transformers >= 5.2 and peft <= 0.21 do not call",
        "`PeftModel.generate` (peft looks for the cache under its old name and inserts the soft prompt",
        "again at every step); put the soft prompt in front of the token embeddings and let the base",
        "model generate (token for token llmpatch's greedy output):", "", "```python",
        "import torch",
        "from peft import PeftModel",
        "model = PeftModel.from_pretrained(base_model, path_to_this_directory).eval()",
        "enc = tokenizer(texts, return_tensors=\"pt\", padding=True)  # tokenizer.padding_side = \"left\"",
        "soft = model.get_prompt(batch_size=enc.input_ids.shape[0]).to(base_model.dtype)",
        "embeds = torch.cat([soft, base_model.get_input_embeddings()(enc.input_ids)], dim=1)",
        "mask = torch.cat([enc.attention_mask.new_ones(soft.shape[:2]), enc.attention_mask], dim=1)",
        "out = model.get_base_model().generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=64, do_sample=False)",
        "```", "",
    ]
    return "\n".join(lines)


def write_patch(
    out_dir: str | Path,
    embeddings: torch.Tensor,
    *,
    name: str,
    version: str,
    summary: str,
    domains: Iterable[str],
    base: BaseRef,
    build: dict[str, Any] | None = None,
    evals: Iterable[EvalClaim | dict[str, Any]] = (),
    requires: dict[str, str] | None = None,
    conflicts: dict[str, str] | None = None,
    license: str = "apache-2.0",
    init: str | None = None,
    description: str | None = None,
    authors: Iterable[str] = (),
    dtype: str = "float32",
    num_layers: int | None = None,
    num_attention_heads: int | None = None,
    overwrite: bool = False,
    provides: Iterable[Provided | dict[str, Any]] = (),
    stacks: Iterable[StackEvidence | dict[str, Any]] = (),
) -> Patch:
    """Write a patch directory atomically (temp dir + rename) and return it, verified."""
    check_name(name)
    parse_version(version)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise LlmpatchError(f"{out} already exists and is not empty", hint="choose another output directory or pass overwrite=True (--force)")
    import torch
    from safetensors.torch import save_file

    emb = embeddings.detach().to("cpu", torch_dtype(dtype)).contiguous()
    if emb.ndim != 2 or emb.shape[1] != base.hidden_size:
        raise LlmpatchError(f"embeddings must be (num_virtual_tokens, {base.hidden_size}), got {tuple(emb.shape)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_file({TENSOR_NAME: emb}, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        cfg = adapter_config(emb.shape[0], base, num_layers=num_layers, num_attention_heads=num_attention_heads,
                             init=init)
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        common = dict(
            name=name, version=version, summary=summary, domains=tuple(domains), base=base,
            num_virtual_tokens=int(emb.shape[0]), license=license, created=now_iso(), dtype=dtype, init=init,
            description=description, authors=tuple(authors), build=dict(build or {}),
            evals=tuple(e if isinstance(e, EvalClaim) else EvalClaim.from_dict(e) for e in evals),
            requires=dict(requires or {}), conflicts=dict(conflicts or {}),
            provides=tuple(p if isinstance(p, Provided) else Provided.from_dict(p) for p in provides),
            stacks=tuple(st if isinstance(st, StackEvidence) else StackEvidence.from_dict(st) for st in stacks),
        )
        draft = Manifest(files={}, **common)
        (tmp / MODEL_CARD).write_text(model_card(draft))
        files = {
            rel: FileEntry(sha256_file(tmp / rel), (tmp / rel).stat().st_size)
            for rel in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, MODEL_CARD)
        }
        manifest = Manifest(files=files, **common)
        (tmp / MANIFEST_NAME).write_text(manifest.to_json())
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_patch(out)
