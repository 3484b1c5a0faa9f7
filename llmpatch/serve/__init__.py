"""``llmpatch serve``: an OpenAI-compatible HTTP server for an environment's patched model.

>>> # from llmpatch.serve import make_backend, create_app, serve
>>> # serve(env="./proj", port=8000)                       # local runtime, hot-swapped generations
>>> # serve(env="./proj", engine="vllm", vllm_url="http://gpu-host:8001")   # vLLM does the serving

See docs/serving.md.
"""

from __future__ import annotations

from llmpatch.serve.app import create_app
from llmpatch.serve.server import make_backend, running, serve

__all__ = ["create_app", "make_backend", "running", "serve"]
