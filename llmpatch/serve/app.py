"""The OpenAI-compatible HTTP API (FastAPI): chat and text completions, streaming or not.

``create_app(backend)`` builds the ASGI app; :func:`llmpatch.serve.serve` runs it with uvicorn.
Every answer names the stack that produced it: the ``x-llmpatch-stack``, ``x-llmpatch-stack-id``
and ``x-llmpatch-generation`` headers, ``system_fingerprint`` (``llmpatch-g<N>-<stack id>``) and an
``llmpatch`` object in the body. Errors are OpenAI error objects (``{"error": {...}}``) with 4xx
codes for bad requests and a bare 500 message, never a traceback, for anything else.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmpatch.serve.common import APIError, Params, PromptText

log = logging.getLogger(__name__)

UNPATCHED_SUFFIX = ":unpatched"
ROLES = {"system", "developer", "user", "assistant", "tool"}


def create_app(backend: Any, *, model_name: str | None = None, api_key: str | None = None,
               default_max_tokens: int = 256, max_tokens_limit: int | None = None) -> Any:
    """The ASGI app serving ``backend`` (a :class:`~llmpatch.serve.local.LocalBackend` or vLLM one).

    ``model_name`` (default: the base's id) is the patched model; ``<model_name>:unpatched``
    answers with the bare base. Requests must send ``Authorization: Bearer <api_key>`` when one
    is set. ``max_tokens`` defaults to ``default_max_tokens`` (capped by the context left).
    """
    name = model_name or backend.model_id
    limit = max_tokens_limit or backend.context_length
    app = FastAPI(title="llmpatch serve", version="1", docs_url=None, redoc_url=None)
    app.state.backend = backend

    def error_response(exc: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = "not_found" if exc.status_code == 404 else None
        return error_response(APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("internal error")
        return error_response(APIError(500, f"internal server error ({type(exc).__name__})", type="server_error"))

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1/"):
            if request.headers.get("authorization", "") != f"Bearer {api_key}":
                return error_response(APIError(401, "invalid or missing API key (send 'Authorization: Bearer <key>')",
                                               code="invalid_api_key"))
        return await call_next(request)

    async def current():
        return await run_in_threadpool(backend.current)

    def stack_info(served, patched: bool) -> dict[str, Any]:
        return {"engine": backend.engine_name, "patched": patched, "generation": served.generation,
                "stack": served.describe if patched else "(no patches)", "stack_id": served.stack_id,
                "patches": [{"name": p.name, "version": p.version} for p in served.stack.patches] if patched else []}

    @app.get("/health")
    async def health():
        served = await current()
        return {"status": "ok", **stack_info(served, True)}

    @app.get("/v1/models")
    async def models():
        served = await current()
        created = int(time.time())
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "llmpatch", "llmpatch": stack_info(served, True)},
            {"id": name + UNPATCHED_SUFFIX, "object": "model", "created": created, "owned_by": "llmpatch",
             "llmpatch": stack_info(served, False)},
        ]}

    async def read_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise APIError(400, f"the request body is not valid JSON ({exc})", code="invalid_json") from None
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object", code="invalid_json")
        return body

    def which_model(body: dict[str, Any]) -> bool:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise APIError(400, "'model' is required", param="model")
        if model == name:
            return True
        if model == name + UNPATCHED_SUFFIX:
            return False
        raise APIError(404, f"the model {model!r} does not exist; this server has {name!r} and {name + UNPATCHED_SUFFIX!r}",
                       param="model", code="model_not_found")

    def params(body: dict[str, Any], served, prompt: PromptText) -> Params:
        n = body.get("n", 1)
        if n is not None and (not _is_int(n) or n != 1):
            raise APIError(400, f"only n=1 is supported, got {n!r}", param="n")
        for key in ("logprobs", "top_logprobs", "echo", "tools", "functions", "logit_bias"):
            if body.get(key):
                raise APIError(400, f"{key!r} is not supported by llmpatch serve", param=key)
        if body.get("best_of") not in (None, 1):
            raise APIError(400, "only best_of=1 is supported", param="best_of")
        key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        prompt_tokens = backend.count_tokens(served, prompt)
        room = backend.context_length - prompt_tokens
        if room < 1:
            raise APIError(400, f"the prompt is {prompt_tokens} tokens (patch prefix included), over the model's "
                                f"context of {backend.context_length}", param="messages", code="context_length_exceeded")
        mt = body.get(key)
        if mt is None:
            mt = min(default_max_tokens, room, limit)
        elif not _is_int(mt) or mt < 1 or mt > limit:
            raise APIError(400, f"{key} must be an integer from 1 to {limit}, got {mt!r}", param=key)
        elif mt > room:
            raise APIError(400, f"{key}={mt} plus the prompt's {prompt_tokens} tokens exceed the model's context of "
                                f"{backend.context_length}", param=key, code="context_length_exceeded")
        temperature = _number(body, "temperature", 1.0, 0.0, 2.0)
        top_p = _number(body, "top_p", 1.0, 0.0, 1.0)
        if top_p == 0.0:
            raise APIError(400, "top_p must be greater than 0", param="top_p")
        seed = body.get("seed")
        if seed is not None and not _is_int(seed):
            raise APIError(400, f"seed must be an integer, got {seed!r}", param="seed")
        stop = body.get("stop")
        if stop is None:
            stops: tuple[str, ...] = ()
        elif isinstance(stop, str):
            stops = (stop,) if stop else ()
        elif isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop):
            stops = tuple(s for s in stop if s)
        else:
            raise APIError(400, "stop must be a string or a list of up to 4 strings", param="stop")
        stream = body.get("stream", False)
        if not isinstance(stream, bool) and stream is not None:
            raise APIError(400, "stream must be a boolean", param="stream")
        min_tokens = body.get("min_tokens") or 0
        if not _is_int(min_tokens) or not 0 <= min_tokens <= mt:
            raise APIError(400, f"min_tokens must be an integer from 0 to max_tokens ({mt}), got {min_tokens!r}",
                           param="min_tokens")
        return Params(max_tokens=int(mt), temperature=temperature, top_p=top_p, stop=stops,
                      seed=None if seed is None else int(seed), min_tokens=int(min_tokens))

    async def complete(request: Request, chat: bool):
        body = await read_body(request)
        patched = which_model(body)
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(
                    isinstance(m, dict) and m.get("role") in ROLES for m in messages):
                raise APIError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages")
            prompt = backend.prompt(messages=messages)
        else:
            raw = body.get("prompt")
            if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
                raw = raw[0]
            if not isinstance(raw, str):
                raise APIError(400, "'prompt' must be a string (one prompt per request)", param="prompt")
            prompt = backend.prompt(text=raw)
        served = await current()  # this request's stack, kept to the end whatever happens meanwhile
        p = params(body, served, prompt)
        prompt_tokens = backend.count_tokens(served, prompt) - (served.stack.num_virtual_tokens if patched else 0)
        headers = served.headers() if patched else {**served.headers(), "x-llmpatch-stack": "(no patches)"}
        headers["x-llmpatch-patched"] = "true" if patched else "false"
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        info = stack_info(served, patched)
        fingerprint = served.fingerprint if patched else "llmpatch-unpatched"
        events = backend.generate(served, patched, prompt, p)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _sse(events, chat=chat, rid=rid, created=created, model=body["model"], fingerprint=fingerprint,
                     info=info, prompt_tokens=prompt_tokens, include_usage=include_usage),
                media_type="text/event-stream", headers=headers)
        text, finish, n_tokens = "", "stop", 0
        async for ev in events:
            if ev[0] == "done":
                _, finish, n_tokens, text = ev
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return JSONResponse({
            "id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": body["model"], "system_fingerprint": fingerprint, "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens,
                      "total_tokens": prompt_tokens + n_tokens},
            "llmpatch": info,
        }, headers=headers)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await complete(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete(request, chat=False)

    return app


async def _sse(events: AsyncIterator[tuple], *, chat: bool, rid: str, created: int, model: str, fingerprint: str,
               info: dict[str, Any], prompt_tokens: int, include_usage: bool) -> AsyncIterator[bytes]:
    """Server-sent events in OpenAI's chunk format, ending with ``data: [DONE]``."""
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: str | None, finish: str | None, *, first: bool = False, usage: dict | None = None) -> bytes:
        if chat:
            d: dict[str, Any] = {"role": "assistant", "content": ""} if first else ({} if delta is None else {"content": delta})
            choices = [{"index": 0, "delta": d, "finish_reason": finish, "logprobs": None}]
        else:
            choices = [{"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}]
        payload = {"id": rid, "object": obj, "created": created, "model": model, "system_fingerprint": fingerprint,
                   "choices": [] if usage is not None else choices, "llmpatch": info}
        if usage is not None:
            payload["usage"] = usage
        return f"data: {json.dumps(payload)}\n\n".encode()

    try:
        if chat:
            yield chunk(None, None, first=True)
        async for ev in events:
            if ev[0] == "delta":
                yield chunk(ev[1], None)
            elif ev[0] == "done":
                yield chunk(None, ev[1])
                if include_usage:
                    yield chunk(None, None, usage={"prompt_tokens": prompt_tokens, "completion_tokens": ev[2],
                                                   "total_tokens": prompt_tokens + ev[2]})
    except Exception as exc:  # noqa: BLE001 - the status line is sent: report in the stream, no traceback
        log.exception("generation failed mid-stream")
        err = exc if isinstance(exc, APIError) else APIError(500, f"internal server error ({type(exc).__name__})",
                                                             type="server_error")
        yield f"data: {json.dumps(err.body())}\n\n".encode()
    yield b"data: [DONE]\n\n"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or not lo <= v <= hi:
        raise APIError(400, f"{key} must be a number from {lo:g} to {hi:g}, got {v!r}", param=key)
    return float(v)
