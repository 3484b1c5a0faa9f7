"""``llmpatch serve``: the OpenAI-compatible server for an environment's current generation."""

from __future__ import annotations

from pathlib import Path

import click

from llmpatch.commands.options import json_option


def register(cli: click.Group) -> None:
    """Add ``serve`` to the root group."""

    @cli.command("serve")
    @click.option("--env", "env_dir", type=click.Path(path_type=Path),
                  help="Environment to serve (default: the one found from the current directory).")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (localhost only by default).")
    @click.option("--port", default=8000, show_default=True, type=int)
    @click.option("--api-key", envvar="LLMPATCH_SERVE_API_KEY", default=None,
                  help="Require 'Authorization: Bearer KEY' on /v1/* (or set $LLMPATCH_SERVE_API_KEY).")
    @click.option("--model-name", default=None, help="Model id clients send (default: the base's id).")
    @click.option("--engine", type=click.Choice(["local", "vllm"]), default="local", show_default=True,
                  help="local: llmpatch's runtime with dynamic batching; vllm: relay to a vLLM server.")
    @click.option("--vllm-url", default=None, help="vLLM server started with --enable-prompt-embeds (--engine vllm).")
    @click.option("--vllm-model", default=None, help="Model name on the vLLM server (default: its first).")
    @click.option("--vllm-api-key", envvar="LLMPATCH_VLLM_API_KEY", default=None, help="API key of the vLLM server.")
    @click.option("--check-weights/--no-check-weights", default=True, show_default=True,
                  help="Refuse a vLLM whose model directory does not fingerprint as the environment's base.")
    @click.option("--max-batch", default=32, show_default=True, help="Largest dynamic batch (local engine).")
    @click.option("--batch-window-ms", default=5.0, show_default=True,
                  help="How long the batcher waits for more requests (local engine).")
    @json_option("Print the server's address as one JSON line on start (errors too: {\"error\": ..., \"hint\": ...}).")
    def serve(env_dir, host, port, api_key, model_name, engine, vllm_url, vllm_model, vllm_api_key, check_weights,
              max_batch, batch_window_ms, as_json) -> None:
        """Serve the environment's patched model over an OpenAI-compatible HTTP API.

        \b
        POST /v1/chat/completions, POST /v1/completions (stream or not), GET /v1/models, GET /health.
        `llmpatch install/remove/rollback` in the same environment switch the server to the new
        generation between requests, no restart. Responses name the stack in the
        x-llmpatch-stack / x-llmpatch-generation headers and in system_fingerprint.
        Example: llmpatch serve --port 8000   (then point any OpenAI client at http://127.0.0.1:8000/v1)
        """
        from llmpatch import ui
        from llmpatch.serve import serve as run_server

        if as_json:
            ui.print_json({"engine": engine, "url": f"http://{host}:{port}/v1", "host": host, "port": port})
        else:
            ui.console.print(f"[dim]llmpatch serve: {engine} engine on http://{host}:{port}/v1[/dim]")
        run_server(env_dir, host=host, port=port, api_key=api_key, model_name=model_name, engine=engine,
                   vllm_url=vllm_url, vllm_model=vllm_model, vllm_api_key=vllm_api_key, check_weights=check_weights,
                   max_batch=max_batch, batch_window_ms=batch_window_ms)
