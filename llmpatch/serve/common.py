"""Values shared by the server and its backends: decoding parameters, prompts, API errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Params:
    """Validated decoding parameters of one request (OpenAI semantics: temperature 0 = greedy)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    min_tokens: int = 0  # vLLM's extension: suppress EOS for the first min_tokens tokens


@dataclass(frozen=True)
class PromptText:
    """A prompt ready to tokenize: chat-templated text (no extra special tokens) or raw text."""

    text: str
    add_special_tokens: bool


class APIError(Exception):
    """An OpenAI-style error: HTTP status, ``type``, ``code``, ``param`` and a message."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def context_length(config: Any) -> int:
    """The model's context window (positions), from its config."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        v = getattr(config, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return 2048


def message_text(content: Any) -> str:
    """A chat message's text: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise APIError(400, "only text content parts are supported", param="messages")
        return "".join(parts)
    raise APIError(400, "message content must be a string or a list of text parts", param="messages")


def format_chat(tokenizer: Any, messages: Sequence[dict]) -> str:
    """Apply the base's chat template (what ``llmpatch run`` does), or join the texts without one."""
    msgs = [{"role": m["role"], "content": message_text(m.get("content"))} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in msgs)
