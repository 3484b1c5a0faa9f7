"""Training the prefix with trl: ``SFTTrainer`` then ``DPOTrainer`` on a peft ``PromptTuningConfig``.

Only the ``num_virtual_tokens x hidden_size`` prompt embedding is trainable; the base is frozen
(peft freezes it, and the tests check its weights stay bit-identical). Each stage checkpoints
into the build's work directory every ``training.save_steps`` steps, and writes its final prefix
to ``<stage>/final.safetensors``, so an interrupted build resumes where it stopped.

Under ``accelerate launch`` the same code trains on several GPUs (trl/transformers handle the
distribution; see docs/build.md).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from llmpatch import atomic
from llmpatch.builder.recipe import Recipe
from llmpatch.errors import LlmpatchError
from llmpatch.util import ProgressFactory, no_progress

log = logging.getLogger(__name__)
TENSOR = "prompt_embeddings"
#: Metrics kept from trl's logs for the curves.
SFT_KEYS = ("loss", "mean_token_accuracy", "learning_rate", "abs_gld")
DPO_KEYS = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected", "learning_rate",
            "abs_gld")
#: Prompts per micro-batch in the gender logits difference penalty (``<stage>.gld_weight``).
GLD_BATCH = 8
#: The penalty's form, part of the key of every stage trained with it (so a changed form retrains).
GLD_PENALTY = "d2/2"
#: A trained stage: its prefix, curve rows, seconds, and the checkpoint it resumed from (or "final").
StageOutput = tuple[torch.Tensor, list[dict[str, float]], float, str | None]


@dataclass
class TrainResult:
    """The trained prefix and what happened on the way."""

    embeddings: torch.Tensor
    sft_embeddings: torch.Tensor
    init_embeddings: torch.Tensor
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    resumed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: ``(stage, step, file)`` of the prefix snapshots taken for checkpoint selection, in step order.
    snapshots: list[tuple[str, int, Path]] = field(default_factory=list)
    #: The candidate checkpoint selection chose (``{"stage", "step", ...}``), when it ran.
    selected: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """Compact numbers for the manifest: first/last loss, final reward margin, steps."""
        out: dict[str, Any] = {}
        for stage, rows in self.curves.items():
            if not rows:
                out[stage] = {"steps": 0}
                continue
            s: dict[str, Any] = {"steps": int(rows[-1]["step"]), "examples": int(rows[0].get("examples", 0)), "first_loss": rows[0].get("loss"),
                                 "last_loss": rows[-1].get("loss"), "seconds": round(self.seconds.get(stage, 0.0), 1)}
            s.update({k: int(v) for k, v in rows[0].items() if k.startswith("forwards_")})  # composition-aware
            if stage == "dpo":
                margins = [r["rewards/margins"] for r in rows if "rewards/margins" in r]
                acc = [r["rewards/accuracies"] for r in rows if "rewards/accuracies" in r]
                tail = margins[-max(1, len(margins) // 4):]
                s.update(first_margin=margins[0] if margins else None, last_margin=margins[-1] if margins else None,
                         final_margin_mean=sum(tail) / len(tail) if tail else None,
                         final_accuracy=acc[-1] if acc else None)
            if stage in self.resumed:
                s["resumed_from"] = self.resumed[stage]
            out[stage] = s
        out["prefix_change_norm"] = round(float((self.embeddings - self.init_embeddings).norm()), 4)
        if self.selected is not None:
            out["selected"] = {k: self.selected[k] for k in ("name", "stage", "step")}
        return out


def _quiet() -> None:
    import datasets
    from transformers.utils import logging as tlog

    datasets.disable_progress_bars()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    for name in ("trl", "peft", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def peft_config(recipe: Recipe, model_path: str, *, for_loading: bool = False) -> Any:
    """The PromptTuningConfig a recipe asks for (text init from its safety instruction, or random)."""
    from peft import PromptTuningConfig

    p = recipe.prefix
    if p.init == "text" and not for_loading:
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=p.num_virtual_tokens,
                                  prompt_tuning_init="TEXT", prompt_tuning_init_text=p.init_text,
                                  tokenizer_name_or_path=model_path)
    return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=p.num_virtual_tokens, prompt_tuning_init="RANDOM")


def fresh_model(model_path: str) -> Any:
    """A private fp32 copy of the base for training (the memoised inference copy stays untouched)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, use_safetensors=True)
    model.requires_grad_(False)
    return model


def tokenizer_for(model_path: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def initial_prefix(recipe: Recipe, model_path: str) -> torch.Tensor:
    """The prefix before training (from the init text's token embeddings, or random)."""
    from peft import get_peft_model

    torch.manual_seed(recipe.seeds.train)
    model = get_peft_model(fresh_model(model_path), peft_config(recipe, model_path))
    return model.get_prompt_embedding_to_save("default").detach().clone()


def _rows(history: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, float]]:
    rows = []
    for h in history:
        if "loss" in h and "step" in h:
            rows.append({"step": int(h["step"]), **{k: float(h[k]) for k in keys if k in h}})
    return rows


def _stage_args(recipe: Recipe, stage: str, out_dir: Path, n_rows: int) -> dict[str, Any]:
    s = recipe.stage(stage)
    tr = recipe.training
    args: dict[str, Any] = dict(
        output_dir=str(out_dir), per_device_train_batch_size=s.batch_size, gradient_accumulation_steps=s.grad_accum,
        learning_rate=s.lr, num_train_epochs=s.epochs, max_steps=s.max_steps if s.max_steps > 0 else -1,
        warmup_steps=float(s.warmup_ratio) if s.warmup_ratio < 1 else 0.0, weight_decay=s.weight_decay, lr_scheduler_type="linear",
        logging_steps=1, save_strategy="steps", save_steps=tr.save_steps, save_total_limit=2,
        report_to=[], disable_tqdm=True, seed=recipe.seeds.train, data_seed=recipe.seeds.train,
        max_length=s.max_length, dataloader_num_workers=0,
    )
    from transformers import TrainingArguments

    # transformers 5.2x renamed gradient_checkpointing (the old name still works, with a warning)
    # trl turns gradient checkpointing on by default; a short prefix on a small base does not need it
    # (it costs ~20-30% speed). Both names are set, since trl reads the old one.
    on = bool(tr.gradient_checkpointing)
    args["gradient_checkpointing"] = on
    if "activation_checkpointing" in TrainingArguments.__dataclass_fields__:
        args["activation_checkpointing"] = on
    if not torch.cuda.is_available():
        args.update(use_cpu=True, bf16=False)  # trl defaults to bf16, which needs a GPU
    return args


def _expected_steps(recipe: Recipe, stage: str, n_rows: int) -> int:
    s = recipe.stage(stage)
    if s.max_steps > 0:
        return int(s.max_steps)
    per_epoch = max(1, math.ceil(n_rows / (s.batch_size * s.grad_accum)))
    return max(1, math.ceil(per_epoch * s.epochs))


def _progress_callback(advance: Callable[[int], None]) -> Any:
    from transformers import TrainerCallback

    class _Advance(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: D401
            advance(1)

    return _Advance()


def snapshot_steps(total: int, n: int) -> list[int]:
    """``n`` steps evenly spaced over ``1..total``, the last being ``total``: (18, 4) -> [5, 9, 14, 18]."""
    total = max(1, int(total))
    n = max(1, min(int(n), total))
    return sorted({max(1, math.ceil(total * (i + 1) / n)) for i in range(n)})


def _snapshot_callback(out_dir: Path, n: int) -> Any:
    """Saves the prefix at ``n`` evenly spaced steps to ``out_dir/step-NNNNN.safetensors``."""
    from transformers import TrainerCallback

    class _Snapshot(TrainerCallback):
        steps: set[int] = set()

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: D401
            self.steps = set(snapshot_steps(state.max_steps, n))

        def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: D401
            if state.global_step in self.steps and state.is_world_process_zero and model is not None:
                emb = model.get_prompt_embedding_to_save("default")
                _save_tensor(out_dir / f"step-{state.global_step:05d}.safetensors", emb)

    return _Snapshot()


def read_snapshots(out_dir: Path, stage: str) -> list[tuple[str, int, Path]]:
    """The snapshots a stage saved, in step order."""
    if not out_dir.is_dir():
        return []
    found = [(stage, int(f.stem.split("-")[1]), f) for f in out_dir.glob("step-*.safetensors")]
    return sorted(found, key=lambda s: s[1])


def _prepare_trainer(trainer: Any, advance: Callable[[int], None]) -> None:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # trl prints every log dict when tqdm is off; llmpatch shows its own progress bar instead
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_progress_callback(advance))


def _last_checkpoint(out_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out_dir)) if out_dir.is_dir() else None


def _load_prefix(path: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(path))[TENSOR]


def _save_tensor(path: Path, emb: torch.Tensor) -> None:
    """Write one prefix atomically."""
    from safetensors.torch import save

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, save({TENSOR: emb.detach().cpu().contiguous()}), durable=False)


def _save_stage(out_dir: Path, emb: torch.Tensor, rows: list[dict[str, float]], seconds: float) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "curve.json").write_text(json.dumps({"rows": rows, "seconds": seconds}, indent=1))
    _save_tensor(out_dir / "final.safetensors", emb)  # written last: its presence means the stage is complete


def _read_stage(out_dir: Path) -> tuple[torch.Tensor, list[dict[str, float]], float] | None:
    final = out_dir / "final.safetensors"
    if not final.is_file():
        return None
    meta = json.loads((out_dir / "curve.json").read_text())
    return _load_prefix(final), meta["rows"], float(meta.get("seconds", 0.0))


def _peft_with(recipe: Recipe, model_path: str, emb: torch.Tensor) -> Any:
    from peft import get_peft_model, set_peft_model_state_dict

    # PeftModel.from_pretrained(is_trainable=True) refuses prompt-learning adapters: build, then load
    model = get_peft_model(fresh_model(model_path), peft_config(recipe, model_path, for_loading=True))
    set_peft_model_state_dict(model, {TENSOR: emb})
    return model


def _dataset(rows: list[dict[str, Any]], chat: bool | None, keys: tuple[str, ...], tokenizer: Any = None) -> Any:
    """The trl data set: plain prompt/completion text, or conversations when ``chat``.

    ``chat=None`` (rows of both forms, each with its ``chat`` flag): one data set cannot mix
    conversations and plain text, so chat rows get the chat template here, exactly as the
    runtime writes it at inference (``apply_chat_template(..., add_generation_prompt=True)``),
    and every row is plain text (trl ends each completion with the EOS token, ``<|im_end|>``
    for ChatML models, as the template would).
    """
    from datasets import Dataset

    if chat is None:
        out = []
        for r in rows:
            prompt = r["prompt"]
            if r.get("chat"):
                prompt = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                       add_generation_prompt=True)
            out.append({"prompt": prompt, **{k: r[k] for k in keys}})
        return Dataset.from_list(out)
    if not chat:
        return Dataset.from_list([{k: r[k] for k in ("prompt", *keys)} for r in rows])
    conv = []
    for r in rows:
        d = {"prompt": [{"role": "user", "content": r["prompt"]}]}
        for k in keys:
            d[k] = [{"role": "assistant", "content": r[k]}]
        conv.append(d)
    return Dataset.from_list(conv)


class GldPenalty:
    """``weight x mean d^2`` over a few training prompts per micro-batch, d the gender logits difference.

    d = log P(male pronoun) - log P(female pronoun) as the next token after a prompt formatted as
    generation writes it (chat template with the generation prompt, or plain text), with the
    prefix being trained in front: the quantity the gender suite's GLD reports
    (:mod:`llmpatch.evaluate.gld`, the same pronoun forms). A gender patch's DPO pushes down M's
    gendered answers, most of which say "he", so it tilts the lean it was meant to remove; this term
    pulls every prompt's lean toward 0 instead. Its gradient lowers the leading side and raises
    the lagging one. Two things measured on bias-fix (examples/results/README.md): with it in SFT
    too, the patch wrote a gender in 15% of held-out answers (3% for 2.0.1, trained without it),
    likely because raising the lagging side raises pronouns overall, so the recipe applies it in
    DPO only; and a one-sided form (the lagging side held fixed) diverged: it
    pushed both sides down in turn, and the difference of two ever smaller log-probabilities grew
    (training |d| 1.6 -> 3.5). Each call draws the next ``batch`` prompts of a seeded shuffle (all
    prompts once per cycle), right-padded so positions match generation's.
    """

    def __init__(self, tokenizer: Any, prompts: list[tuple[str, bool]], weight: float, *, seed: int = 0,
                 batch: int = GLD_BATCH) -> None:
        import random

        from llmpatch.evaluate import gld

        if not prompts:
            raise LlmpatchError("gld_weight is set but the build has no gender prompts to apply it to",
                                hint="check [prompts] train; nothing was trained")
        tokens = gld.pronoun_token_ids(tokenizer)
        self.male = sorted(set(tokens.male.values()))
        self.female = sorted(set(tokens.female.values()))
        self.encoded: list[list[int]] = []
        for text, chat in prompts:
            if chat:
                text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                     add_generation_prompt=True)
            self.encoded.append(list(tokenizer(text, add_special_tokens=not chat)["input_ids"]))
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.weight, self.batch = float(weight), max(1, min(batch, len(self.encoded)))
        self.rng = random.Random(seed)
        self.queue: list[int] = []
        self.seen: list[float] = []

    def _draw(self) -> list[int]:
        while len(self.queue) < self.batch:
            order = list(range(len(self.encoded)))
            self.rng.shuffle(order)
            self.queue.extend(order)
        idx, self.queue = self.queue[: self.batch], self.queue[self.batch :]
        return idx

    def differences(self, model: Any, rows: list[list[int]]) -> torch.Tensor:
        """d for each tokenized prompt in ``rows`` under ``model`` (with gradients)."""
        device = next(p for p in model.parameters()).device
        lengths = torch.tensor([len(r) for r in rows], device=device)
        width = int(lengths.max())
        ids = torch.tensor([r + [self.pad] * (width - len(r)) for r in rows], device=device)
        mask = (torch.arange(width, device=device)[None] < lengths[:, None]).long()
        logits = model(input_ids=ids, attention_mask=mask).logits
        offset = logits.shape[1] - width  # a prompt-tuning model returns logits for its virtual tokens too
        last = logits[torch.arange(len(rows), device=device), offset + lengths - 1].float().log_softmax(-1)
        return torch.logsumexp(last[:, self.male], -1) - torch.logsumexp(last[:, self.female], -1)

    def __call__(self, model: Any) -> torch.Tensor:
        d = self.differences(model, [self.encoded[i] for i in self._draw()])
        self.seen.extend(d.detach().abs().tolist())
        return self.weight * (d**2).mean()

    def take_mean(self) -> float | None:
        """Mean |d| of the prompts drawn since the last call (for the training curve)."""
        if not self.seen:
            return None
        m, self.seen = sum(self.seen) / len(self.seen), []
        return m


def _with_gld(trainer_cls: type, penalty: GldPenalty | None) -> type:
    """``trainer_cls`` whose loss also has ``penalty``'s term, and whose logs its mean |d| (``abs_gld``)."""
    if penalty is None:
        return trainer_cls

    class _GldTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D401
            res = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            if not model.training:
                return res
            if return_outputs:
                return res[0] + penalty(model), res[1]
            return res + penalty(model)

        def log(self, logs, *args, **kwargs):  # noqa: D401
            if "loss" in logs:
                m = penalty.take_mean()
                if m is not None:
                    logs["abs_gld"] = round(m, 4)
            super().log(logs, *args, **kwargs)

    return _GldTrainer


def _penalty(recipe: Recipe, stage: str, prompts: list[tuple[str, bool]] | None, tokenizer: Any) -> GldPenalty | None:
    weight = recipe.stage(stage).gld_weight
    if not weight:
        return None
    return GldPenalty(tokenizer, list(prompts or []), weight, seed=recipe.seeds.train)


def _check_rows(trainer: Any, given: int, stage: str) -> int:
    """trl drops examples whose completion does not fit max_length: say so, and fail if none is left."""
    used = len(trainer.train_dataset)
    if used == 0:
        raise LlmpatchError(f"{stage}: all {given} examples are longer than {stage}.max_length (prompt + completion tokens)",
                            hint=f"raise {stage}.max_length or lower generation.max_new_tokens")
    if used < given:
        log.warning("%s: %d of %d examples did not fit %s.max_length and were dropped", stage, given - used, given, stage)
    return used


def _run_stage(trainer: Any, stage: str, given: int, title: str, steps: int, out: Path, resume: str | None,
               progress: ProgressFactory, snapshots: int, keys: tuple[str, ...], costack: Any = None,
               recipe: Recipe | None = None) -> StageOutput:
    """Train one stage with a progress bar (and prefix snapshots); save its prefix and curve in ``out``.

    With ``costack`` (a composition-aware build) the co-patches' frozen prefix is in every forward
    pass of the stage, the DPO reference's included (see ``builder/costack.py``).
    """
    used = _check_rows(trainer, given, stage)
    hook = None
    if costack is not None:
        from llmpatch.builder import costack as costack_mod

        hook = costack_mod.attach(trainer, costack, recipe)
        title += f" in the stack ({'/'.join(costack.trained_orders)} {', '.join(p.name for p in costack.patches)})"
    t0 = time.monotonic()
    try:
        with progress(title, steps) as advance:
            _prepare_trainer(trainer, advance)
            if snapshots:
                trainer.add_callback(_snapshot_callback(out / "snapshots", snapshots))
            trainer.train(resume_from_checkpoint=resume)
    finally:
        if hook is not None:
            hook.remove()
    seconds = time.monotonic() - t0
    emb = trainer.model.get_prompt_embedding_to_save("default").detach().cpu().clone()
    rows_out = _rows(trainer.state.log_history, keys)
    if rows_out:
        rows_out[0]["examples"] = float(used)
        if hook is not None:
            from llmpatch.builder import costack as costack_mod

            costack_mod.check_untouched(hook, costack)
            # forward passes per order (policy and reference each count): what ``position = "both"`` drew
            rows_out[0].update({f"forwards_{k}": float(v) for k, v in sorted(hook.counts.items())})
    _save_stage(out, emb, rows_out, seconds)
    return emb, rows_out, seconds, (Path(resume).name if resume else None)


def _stage_start(recipe: Recipe, model_path: str, out: Path) -> tuple[StageOutput | None, Any, str | None]:
    """``(finished output, None, None)`` for a stage already done in ``out``; else ``(None, tokenizer, checkpoint to resume)``."""
    done = _read_stage(out)
    if done is not None:
        return (done[0], done[1], done[2], "final"), None, None
    torch.manual_seed(recipe.seeds.train)
    return None, tokenizer_for(model_path), _last_checkpoint(out)


def run_sft(recipe: Recipe, model_path: str, rows: list[dict[str, str]], chat: bool, out: Path,
            progress: ProgressFactory, snapshots: int = 0, costack: Any = None,
            gld_prompts: list[tuple[str, bool]] | None = None) -> StageOutput:
    """SFT: imitate M' (maximise log p(y' | [P; x])) with only the prefix trainable."""
    from trl import SFTConfig, SFTTrainer

    done, tok, resume = _stage_start(recipe, model_path, out)
    if done is not None:
        return done
    args = SFTConfig(**_stage_args(recipe, "sft", out, len(rows)), packing=False, completion_only_loss=True)
    trainer = _with_gld(SFTTrainer, _penalty(recipe, "sft", gld_prompts, tok))(model=fresh_model(model_path), args=args, train_dataset=_dataset(rows, chat, ("completion",), tok),
                         processing_class=tok, peft_config=peft_config(recipe, model_path))
    return _run_stage(trainer, "sft", len(rows), "SFT (imitate the reference)", _expected_steps(recipe, "sft", len(rows)),
                      out, resume, progress, snapshots, SFT_KEYS, costack, recipe)


def run_dpo(recipe: Recipe, model_path: str, pairs: list[dict[str, str]], chat: bool, start: torch.Tensor, out: Path,
            progress: ProgressFactory, snapshots: int = 0, costack: Any = None,
            gld_prompts: list[tuple[str, bool]] | None = None) -> StageOutput:
    """DPO from the SFT prefix on (chosen M', rejected M); reference = SFT prefix or the unpatched base."""
    from peft import set_peft_model_state_dict
    from trl import DPOConfig, DPOTrainer

    done, tok, resume = _stage_start(recipe, model_path, out)
    if done is not None:
        return done
    sft_weight = float(recipe.dpo.sft_weight or 0.0)
    # dpo.sft_weight > 0: DPO + NLL on the chosen responses (RPO, Pang et al. 2024), through trl's loss mixing
    mix = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, sft_weight]) if sft_weight > 0 else {}
    args = DPOConfig(**_stage_args(recipe, "dpo", out, len(pairs)), beta=recipe.dpo.beta, **mix)
    ds = _dataset(pairs, chat, ("chosen", "rejected"), tok)
    DPOTrainer = _with_gld(DPOTrainer, _penalty(recipe, "dpo", gld_prompts, tok))  # noqa: N806
    if recipe.dpo.reference == "sft":
        # an already-trained PeftModel: trl adds a frozen copy "ref" of it as the DPO reference
        trainer = DPOTrainer(model=_peft_with(recipe, model_path, start), args=args, train_dataset=ds, processing_class=tok)
    else:
        # a fresh adapter: trl's reference is the adapter-disabled base; then start from the SFT prefix
        trainer = DPOTrainer(model=fresh_model(model_path), args=args, train_dataset=ds, processing_class=tok,
                             peft_config=peft_config(recipe, model_path, for_loading=True))
        set_peft_model_state_dict(trainer.model, {TENSOR: start})
    return _run_stage(trainer, "dpo", len(pairs), f"DPO (beta {recipe.dpo.beta}, reference {recipe.dpo.reference})",
                      _expected_steps(recipe, "dpo", len(pairs)), out, resume, progress, snapshots, DPO_KEYS, costack,
                      recipe)


def train(recipe: Recipe, model_path: str, sft_rows: list[dict[str, str]], pairs: list[dict[str, str]], chat: bool,
          work: Path, *, progress: ProgressFactory | None = None, dpo_dir: str = "dpo", snapshots: int = 0,
          more_pairs: Callable[[torch.Tensor], list[dict[str, str]]] | None = None, costack: Any = None,
          gld_prompts: list[tuple[str, bool]] | None = None) -> TrainResult:
    """SFT then (unless ``dpo.enabled`` is false) DPO; returns the final prefix and the curves.

    The SFT stage lives in ``work/sft`` and DPO in ``work/<dpo_dir>``, so builds that differ only
    in DPO settings share one SFT stage. With ``snapshots``, the last stage saves that many prefix
    snapshots (evenly spaced) for checkpoint selection. ``more_pairs(sft_prefix)``, when given,
    returns DPO pairs that depend on the SFT result (on-policy pairs); they join ``pairs``.
    ``costack`` (a composition-aware build): both stages train with the co-patches' frozen prefixes.
    ``gld_prompts`` (``(text, chat)``): the prompts of the ``<stage>.gld_weight`` penalty (:class:`GldPenalty`).
    """
    progress = progress or no_progress
    _quiet()
    work.mkdir(parents=True, exist_ok=True)
    init = initial_prefix(recipe, model_path)
    curves: dict[str, list[dict[str, float]]] = {}
    resumed: dict[str, str] = {}
    seconds: dict[str, float] = {}
    dpo = bool(recipe.dpo.enabled)
    try:
        sft_emb, curves["sft"], seconds["sft"], r = run_sft(recipe, model_path, sft_rows, chat, work / "sft", progress,
                                                            snapshots=0 if dpo else snapshots, costack=costack,
                                                            gld_prompts=gld_prompts)
        if r:
            resumed["sft"] = r
        emb = sft_emb
        if dpo:
            if more_pairs is not None:
                pairs = [*pairs, *more_pairs(sft_emb)]
            emb, curves["dpo"], seconds["dpo"], r = run_dpo(recipe, model_path, pairs, chat, sft_emb, work / dpo_dir,
                                                            progress, snapshots=snapshots, costack=costack,
                                                            gld_prompts=gld_prompts)
            if r:
                resumed["dpo"] = r
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        # trl/transformers raise plain exceptions for bad data or settings: one clear typed error
        raise LlmpatchError(f"training failed: {type(exc).__name__}: {str(exc).splitlines()[0][:400] if str(exc) else ''}",
                            hint=f"the work directory {work} keeps checkpoints; rerun the same command to resume") from exc
    if not torch.isfinite(emb).all():
        raise LlmpatchError("training diverged: the prefix holds NaN or infinite values",
                            hint="lower sft.lr / dpo.lr and rebuild (delete the work directory to start over)")
    last = "dpo" if dpo else "sft"
    shots = read_snapshots((work / (dpo_dir if dpo else "sft")) / "snapshots", last) if snapshots else []
    return TrainResult(emb, sft_emb, init, curves, resumed, seconds, shots)


def save_curves(result: TrainResult, out_dir: Path, title: str = "") -> dict[str, str]:
    """Write ``curves.json`` and ``curves.png`` (SFT loss; DPO loss and reward margin) to ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "curves.json").write_text(json.dumps({"curves": result.curves, "summary": result.summary()}, indent=1) + "\n")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    sft = result.curves.get("sft", [])
    dpo = result.curves.get("dpo", [])
    axes[0].plot([r["step"] for r in sft], [r["loss"] for r in sft], marker=".")
    axes[0].set(title="SFT loss", xlabel="step")
    axes[1].plot([r["step"] for r in dpo], [r["loss"] for r in dpo], marker=".", color="tab:red")
    axes[1].set(title="DPO loss", xlabel="step")
    axes[2].plot([r["step"] for r in dpo], [r.get("rewards/margins", float("nan")) for r in dpo], marker=".", color="tab:green")
    axes[2].axhline(0.0, color="grey", lw=0.8)
    axes[2].set(title="DPO reward margin (chosen - rejected)", xlabel="step")
    sel = result.selected
    if sel is not None and sel.get("step"):
        ax_list = axes[1:] if sel["stage"] == "dpo" else axes[:1]
        for ax in ax_list:
            ax.axvline(sel["step"], color="black", ls="--", lw=0.9, label=f"selected ({sel['name']})")
        ax_list[0].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=90)
    plt.close(fig)
    return {"json": str(out_dir / "curves.json"), "png": str(out_dir / "curves.png")}
