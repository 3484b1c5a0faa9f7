"""A local stand-in for vLLM's OpenAI server, as far as llmpatch's vLLM engine uses it.

``/v1/models`` (with ``root``, the model directory, and ``max_model_len``) and ``/v1/completions``
with ``prompt_embeds`` (a base64 ``torch.save``d tensor, sequence x hidden), streaming or not,
greedy or seeded sampling, ``max_tokens`` and ``stop``. It decodes by recomputing the whole
sequence from embeddings at every step: slow and independent of llmpatch's runtime, which is the
point. The real vLLM check is benchmarks/vllm_check.py (docs/serving.md).
"""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def create_standin(model_dir: Path, *, served_name: str = "standin") -> Any:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos if eos is not None else tok.eos_token_id])
    app = FastAPI()
    app.state.requests = []

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served_name, "object": "model", "root": str(model_dir),
                                            "max_model_len": 512}]}

    def decode_steps(embeds: torch.Tensor, max_tokens: int, temperature: float, seed: int | None):
        gen = torch.Generator().manual_seed(seed or 0)
        out: list[int] = []
        emb_table = model.get_input_embeddings()
        for _ in range(max_tokens):
            seq = embeds if not out else torch.cat([embeds, emb_table(torch.tensor(out))], dim=0)
            with torch.no_grad():
                logits = model(inputs_embeds=seq[None]).logits[0, -1]
            if temperature > 0:
                nxt = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen))
            else:
                nxt = int(logits.argmax())
            if nxt in eos_ids:
                return out, "stop"
            out.append(nxt)
            yield out
        return out, "length"

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await request.json()
        app.state.requests.append(body)
        if "prompt_embeds" not in body or body.get("prompt"):
            return JSONResponse({"error": {"message": "expected prompt_embeds only"}}, status_code=400)
        embeds = torch.load(io.BytesIO(base64.b64decode(body["prompt_embeds"])), weights_only=True)
        if embeds.ndim != 2 or embeds.shape[1] != model.config.hidden_size:
            return JSONResponse({"error": {"message": f"bad shape {tuple(embeds.shape)}"}}, status_code=400)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops

        def run():
            sent, text, finish = "", "", "length"
            steps = decode_steps(embeds.float(), body.get("max_tokens", 16), body.get("temperature", 1.0), body.get("seed"))
            while True:
                try:
                    toks = next(steps)
                except StopIteration as done:
                    finish = done.value[1]
                    break
                text = tok.decode(toks, skip_special_tokens=True)
                hit = [text.find(s) for s in stops if s in text]
                if hit:
                    text, finish = text[:min(hit)], "stop"
                if not text.endswith("\ufffd") and text[len(sent):]:
                    yield text[len(sent):], None, len(toks)
                    sent = text
                if hit:
                    break
            yield text[len(sent):], finish, None  # flush what was held back (an incomplete character)

        if body.get("stream"):
            def sse():
                n = 0
                for piece, finish, count in run():
                    n = count or n
                    chunk = {"id": "cmpl-x", "object": "text_completion", "created": int(time.time()),
                             "model": served_name, "choices": [{"index": 0, "text": piece, "finish_reason": finish}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                usage = {"prompt_tokens": embeds.shape[0], "completion_tokens": n, "total_tokens": embeds.shape[0] + n}
                yield f"data: {json.dumps({'id': 'cmpl-x', 'choices': [], 'usage': usage})}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(sse(), media_type="text/event-stream")
        text, finish = "", "length"
        for piece, f, _ in run():
            text += piece
            finish = f or finish
        return {"id": "cmpl-x", "object": "text_completion", "model": served_name,
                "choices": [{"index": 0, "text": text, "finish_reason": finish}]}

    return app
