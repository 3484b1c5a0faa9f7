"""Running the app: backends from options, uvicorn in the foreground or in a thread."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def make_backend(env: str | Path | None = None, *, engine: str = "local", vllm_url: str | None = None,
                 vllm_model: str | None = None, vllm_api_key: str | None = None, check_weights: bool = True,
                 max_batch: int = 32, batch_window_ms: float = 5.0) -> Any:
    """The backend for an environment (``env``: a project dir or its ``.llmpatch``; default: found from cwd)."""
    from llmpatch.env import find_env

    env_dir = find_env(Path(env) if env is not None else None)
    if engine == "local":
        from llmpatch.serve.local import LocalBackend

        return LocalBackend.from_env(env_dir, max_batch=max_batch, window_s=batch_window_ms / 1000)
    if engine == "vllm":
        from llmpatch.errors import InvalidSpecError
        from llmpatch.serve.vllm import VLLMBackend

        if not vllm_url:
            raise InvalidSpecError("--engine vllm needs --vllm-url (the vLLM server's base URL)",
                                   hint="e.g. --vllm-url http://127.0.0.1:8001; see docs/serving.md")
        return VLLMBackend.from_env(env_dir, url=vllm_url, vllm_model=vllm_model, api_key=vllm_api_key,
                                    check_weights=check_weights)
    from llmpatch.errors import InvalidSpecError

    raise InvalidSpecError(f"unknown engine {engine!r}: expected 'local' or 'vllm'")


def serve(env: str | Path | None = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          api_key: str | None = None, model_name: str | None = None, log_level: str = "info", **backend_kw: Any) -> None:
    """Serve an environment until interrupted (``llmpatch serve``)."""
    import uvicorn

    from llmpatch.serve.app import create_app

    backend = make_backend(env, **backend_kw)
    app = create_app(backend, model_name=model_name, api_key=api_key)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@contextmanager
def running(app: Any, *, host: str = DEFAULT_HOST, port: int = 0, log_level: str = "warning") -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread (an ephemeral port by default); yields its base URL."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="llmpatch-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
