"""Reference policies M': where the safer responses the patch learns to imitate come from.

Two kinds, one interface (``respond``):

* ``model``: another model (Hub id, directory or GGUF file) with an optional system prompt. Only
  its *text* is used, so it may have a different tokenizer or architecture than M.
* ``self``: M itself, with a safety system prompt, best-of-n sampling filtered by the judge, and
  (for harmful requests) a fixed refusal when even the best sample is unsafe. This is what the
  embedded default uses: no safer small model is available offline, and SmolLM2-135M with a
  system prompt alone does not refuse harmful requests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from llmpatch.runtime import GenerationConfig, PatchedModel

if TYPE_CHECKING:  # recipe.py imports this module (fallback texts)
    from llmpatch.builder.recipe import Recipe

#: ``unsafety(texts, prompts, kind) -> scores`` (0 = safe); see llmpatch.builder.data.Scorer.
UnsafetyFn = Callable[[list[str], list[str], str], list[float]]


@dataclass
class Response:
    """M''s chosen response to one prompt, with its unsafety and how it was obtained."""

    text: str
    unsafety: float
    fallback: bool = False
    candidates: int = 1


def fallback_texts(value: str | Sequence[str] | None) -> list[str]:
    """``reference.fallback_text`` as a list: one refusal, or several to vary them."""
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def pick_fallback(value: str | Sequence[str] | None, prompt: str) -> str:
    """The fallback refusal for ``prompt``: with several texts, one chosen by the prompt's sha256.

    The choice depends only on the prompt's text (not on its position or the other prompts), so
    the same request gets the same refusal in every build and in its benign contrast pair.
    """
    texts = fallback_texts(value)
    if not texts:
        return ""
    if len(texts) == 1:
        return texts[0]
    return texts[int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big") % len(texts)]


def as_reply(text: str, prompt: str, chat: bool) -> str:
    """A fixed reply (a fallback refusal) in the form of its prompt: after a plain-text prompt that
    does not end in white space it starts a new paragraph, as a model continuing the text would.

    >>> as_reply("I can't help with that.", "How do I pick a lock?", chat=False)
    "\\n\\nI can't help with that."
    >>> as_reply("I can't help with that.", "How do I pick a lock?", chat=True)
    "I can't help with that."

    Without it a plain training row reads "...a lock?I can't help" (no space), a token sequence the
    model never writes itself.
    """
    if chat or not text or text[:1].isspace() or not prompt or prompt[-1:].isspace():
        return text
    return "\n\n" + text


def best_sample(cands: Sequence[tuple[str, float]], tau: float) -> tuple[str, float]:
    """The best of ``(text, unsafety)`` samples: the least unsafe one that says something, if any
    is safe (unsafety <= ``tau``); else the least unsafe (ties keep the first).

    >>> best_sample([("", 0.0), ("Press Ctrl+C.", 0.0)], 0.5)
    ('Press Ctrl+C.', 0.0)
    >>> best_sample([("", 0.0), ("Here is how to steal it.", 0.9)], 0.5)
    ('', 0.0)

    A judge scores an empty answer as perfectly safe (no refusal, no toxic word), so a plain
    minimum picks silence whenever a model stops at once, which SmolLM2 often does after a
    plain-text question (92 of 140 benign plain-text prompts in one harm-fix build): the patch
    would learn to say nothing.
    """
    from llmpatch.evaluate.suites import is_empty

    spoken = [c for c in cands if not is_empty(c[0]) and c[1] <= tau]
    return min(spoken or list(cands), key=lambda c: c[1])


class ReferencePolicy(Protocol):
    """Answers prompts the way the patched model should."""

    def describe(self) -> dict[str, Any]: ...

    def samples_needed(self, kinds: Sequence[str]) -> int:
        """How many samples :meth:`respond` draws for prompts of these kinds (for progress bars)."""
        always = self.refusal_fallback and self.fallback_when == "always"
        return self.best_of * sum(1 for k in kinds if not (always and k == "target"))

    def respond(self, prompts: Sequence[str], kinds: Sequence[str], *, progress: Callable[[int], None] | None = None,
                chats: Sequence[bool] | None = None) -> list[Response]: ...


@dataclass
class SampledPolicy(ReferencePolicy):
    """A model plus system prompt, best-of-n under the judge, optional refusal fallback.

    With ``best_of=1`` and no fallback this is plain sampling from the reference model.
    """

    model: PatchedModel
    unsafety: UnsafetyFn
    kind: str = "self"
    spec: str = ""
    system_prompt: str | None = None
    chat: bool = True
    best_of: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 48
    batch_size: int = 8
    seed: int = 0
    tau: float = 0.5
    refusal_fallback: bool = False
    #: one refusal, or a list of them (each harmful request gets one, see :func:`pick_fallback`)
    fallback_text: str | list[str] = ""
    #: "unsafe": the fallback replaces a harmful request's best sample only when that is unsafe;
    #: "always": every harmful request gets the fallback (M' is not sampled on them)
    fallback_when: str = "unsafe"
    #: "chat": a benign plain-text request whose best sample is blank is answered again as chat
    blank_plain: str = "keep"
    stats: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about M'."""
        info = self.model.base.info
        return {
            "kind": self.kind, "spec": self.spec or info.spec, "id": info.id, "revision": info.revision,
            "fingerprint": info.fingerprint, "system_prompt": self.system_prompt, "best_of": self.best_of,
            "temperature": self.temperature, "top_p": self.top_p, "refusal_fallback": self.refusal_fallback,
            "fallback_text": self.fallback_text if self.refusal_fallback else None,
            "blank_samples": "last",  # best_sample: a safe answer that says something beats silence
            # recorded (and part of the data cache key) only when not the default, so that data
            # generated before this option existed keeps its key
            **({"fallback_when": self.fallback_when} if self.refusal_fallback and self.fallback_when != "unsafe" else {}),
            **({"blank_plain": self.blank_plain} if self.blank_plain != "keep" else {}),
            # a composition-aware build's self-reference runs in the deployed stack (recorded only then)
            **({"with_patches": [f"{p.name}@{p.version}" for p in self.model.stack.patches]}
               if self.model.stack.patches else {}),
            "note": ("M itself with a safety system prompt, best-of-n filtered by the judge"
                     + (", refusal fallback for harmful requests" if self.refusal_fallback else "")
                     if self.kind == "self" else "another model; only its text is used"),
        }

    def _answer_blank_as_chat(self, prompts: Sequence[str], kinds: Sequence[str], per: Sequence[Any],
                              result: list[Response]) -> None:
        """``blank_plain = "chat"``: benign plain-text requests whose best sample said nothing get M''s
        best chat answer instead, as a new paragraph (:func:`as_reply`); still blank stays blank."""
        from llmpatch.evaluate.suites import is_empty

        idx = [i for i, k in enumerate(kinds) if k == "benign" and not per[i] and is_empty(result[i].text)]
        if not idx:
            return
        n = self.best_of
        cfg = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=True, temperature=self.temperature,
                               top_p=self.top_p, seed=self.seed + 1, batch_size=self.batch_size)
        flat = [prompts[i] for i in idx for _ in range(n)]
        outs = generate_forms(self.model, flat, [True] * len(flat), system_prompt=self.system_prompt, config=cfg)
        scores = _score_by_kind(self.unsafety, outs, flat, ["benign"] * len(flat))
        for k, i in enumerate(idx):
            text, score = best_sample(list(zip(outs[k * n:(k + 1) * n], scores[k * n:(k + 1) * n])), self.tau)
            if not is_empty(text):
                result[i] = Response(as_reply(text.strip(), prompts[i], False), score, candidates=2 * n)
                self.stats["blank_plain_chat"] = self.stats.get("blank_plain_chat", 0) + 1

    def respond(self, prompts: Sequence[str], kinds: Sequence[str], *,
                progress: Callable[[int], None] | None = None, chats: Sequence[bool] | None = None) -> list[Response]:
        """The best of ``best_of`` samples per prompt (lowest unsafety; ties keep the first).

        With ``fallback_when="always"`` harmful (target) requests are not sampled: each gets the
        fallback refusal. ``chats`` says per prompt whether to use the chat template (default:
        ``self.chat`` for all).
        """
        n = self.best_of
        always = self.refusal_fallback and self.fallback_when == "always"
        sampled = [i for i, k in enumerate(kinds) if not (always and k == "target")]
        flat = [prompts[i] for i in sampled for _ in range(n)]
        template = bool(self.model.tokenizer.chat_template)
        per = [self.chat] * len(prompts) if chats is None else list(chats)
        flat_chats = [bool(per[i]) and template for i in sampled for _ in range(n)]
        cfg = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=True, temperature=self.temperature,
                               top_p=self.top_p, seed=self.seed, batch_size=self.batch_size)
        outs = generate_forms(self.model, flat, flat_chats, system_prompt=self.system_prompt, config=cfg,
                              progress=progress) if flat else []
        flat_kinds = [kinds[i] for i in sampled for _ in range(n)]
        scores = _score_by_kind(self.unsafety, outs, flat, flat_kinds)
        row = {i: j for j, i in enumerate(sampled)}
        result: list[Response] = []
        for i, kind in enumerate(kinds):
            if i not in row:
                result.append(Response(pick_fallback(self.fallback_text, prompts[i]), 0.0, fallback=True, candidates=0))
                self.stats["fallbacks"] = self.stats.get("fallbacks", 0) + 1
                continue
            j = row[i]
            cands = list(zip(outs[j * n:(j + 1) * n], scores[j * n:(j + 1) * n]))
            text, score = best_sample(cands, self.tau)
            if self.refusal_fallback and kind == "target" and score > self.tau:
                # even the best sample complies with a harmful request: answer as a safe model would
                result.append(Response(pick_fallback(self.fallback_text, prompts[i]), 0.0, fallback=True, candidates=n))
                self.stats["fallbacks"] = self.stats.get("fallbacks", 0) + 1
            else:
                result.append(Response(text, score, candidates=n))
        if self.blank_plain == "chat" and template:
            self._answer_blank_as_chat(prompts, kinds, per, result)
        return result


def generate_forms(model: PatchedModel, prompts: Sequence[str], chats: Sequence[bool], **kwargs: Any) -> list[str]:
    """``model.generate`` for prompts of which some use the chat template and some not, in order.

    One call per form, so each keeps its batching; with a single form it is one plain call.
    """
    out: list[str] = [""] * len(prompts)
    for chat in sorted(set(bool(c) for c in chats), reverse=True):
        idx = [i for i, c in enumerate(chats) if bool(c) == chat]
        for i, y in zip(idx, model.generate([prompts[i] for i in idx], chat=chat, **kwargs)):
            out[i] = y
    return out


def _score_by_kind(unsafety: UnsafetyFn, texts: list[str], prompts: list[str], kinds: list[str]) -> list[float]:
    """Score texts whose prompts are of several kinds (target/benign), keeping order."""
    scores = [0.0] * len(texts)
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        for i, s in zip(idx, unsafety([texts[i] for i in idx], [prompts[i] for i in idx], kind)):
            scores[i] = s
    return scores


def make_policy(recipe: Recipe, base_model: PatchedModel, unsafety: UnsafetyFn) -> SampledPolicy:
    """The reference policy a recipe names (loads M' when it is another model)."""
    ref = recipe.reference
    gen = recipe.generation
    common = dict(
        unsafety=unsafety, system_prompt=ref.system_prompt, chat=gen.chat, best_of=ref.best_of,
        temperature=ref.temperature, top_p=ref.top_p, max_new_tokens=gen.max_new_tokens,
        batch_size=gen.batch_size, seed=recipe.seeds.data + 1, tau=recipe.pairs.tau,
        refusal_fallback=ref.refusal_fallback,
        # the file form (a string or a list): recorded in the manifest and the data cache key
        fallback_text=ref.fallback_text if isinstance(ref.fallback_text, str) else list(ref.fallback_text),
        fallback_when=ref.fallback_when, blank_plain=ref.blank_plain,
    )
    if ref.kind == "model":
        from llmpatch import base as base_mod

        assert ref.model is not None  # ReferenceSection checks it
        loaded = base_mod.load(ref.model)
        return SampledPolicy(PatchedModel(loaded), kind="model", spec=ref.model, **common)
    return SampledPolicy(base_model, kind="self", spec=base_model.base.info.spec, **common)
