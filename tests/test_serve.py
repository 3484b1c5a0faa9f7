"""`llmpatch serve` driven by the official `openai` client: answers, streaming, batching, hot swap, errors."""

from __future__ import annotations

import concurrent.futures as cf
import json
import threading

import httpx
import openai
import pytest

import llmpatch
from llmpatch.serve import create_app, running
from llmpatch.serve.local import LocalBackend
from clihelp import run, run_json

PROMPTS = ["hello world this is", "the nurse said that she would help", "a", "you are a kind and helpful",
           "the doctor and the teacher went to the market", "I cannot help with that"]


@pytest.fixture(scope="module")
def lively_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with larger random weights: its greedy answers differ by prompt and by patch
    (the plain tiny model repeats one token whatever the prompt, which would hide mixed-up answers)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("lively-base")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture
def env_project(project, lively_model_dir, registry):
    """A project pinned to the lively tiny base with tox-fix installed (generation 2); bias-fix published."""
    registry.publish_patch("tox-fix", "1.0.0", tokens=5, base_dir=lively_model_dir)
    registry.publish_patch("bias-fix", "1.0.0", tokens=4, domains=["gender_bias"], base_dir=lively_model_dir)
    run("init", "--base", lively_model_dir)
    run("install", "tox-fix")
    return project


@pytest.fixture
def server(env_project):
    """(client, base_url, backend) for a local-engine server on an ephemeral port."""
    backend = LocalBackend.from_env(env_project / ".llmpatch")
    app = create_app(backend, model_name="tiny")
    with running(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120)
        yield client, url, backend
    backend.engine.close()


def chat(client, prompt, model="tiny", **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 12)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": prompt}], **kw)
    return raw.parse(), raw.headers


def expected(project, prompts, *, chat_mode=True, max_new_tokens=12, patched=True):
    """What `llmpatch run` prints for these prompts in the project's environment."""
    args = ["run", "--max-new-tokens", max_new_tokens, "--json", "--chat" if chat_mode else "--no-chat"]
    data = run_json(*args, *(["--compare"] if not patched else []), *prompts)
    return [r["output" if patched else "unpatched"] for r in data["results"]]


def test_greedy_chat_and_completion_equal_llmpatch_run_and_name_the_stack(server, env_project):
    client, _, _ = server
    want = expected(env_project, PROMPTS[:3])
    for prompt, text in zip(PROMPTS[:3], want):
        resp, headers = chat(client, prompt)
        assert resp.choices[0].message.content == text
        assert headers["x-llmpatch-stack"] == "tox-fix@1.0.0" and headers["x-llmpatch-generation"] == "2"
        assert resp.system_fingerprint.startswith("llmpatch-g2-")
        assert resp.model == "tiny" and resp.usage.completion_tokens >= 1
        assert resp.llmpatch["stack_id"] == headers["x-llmpatch-stack-id"]  # extra field kept by the client
    want_raw = expected(env_project, PROMPTS[:2], chat_mode=False, max_new_tokens=10)
    for prompt, text in zip(PROMPTS[:2], want_raw):
        resp = client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=10)
        assert resp.choices[0].text == text and resp.object == "text_completion"


def test_the_unpatched_model_answers_like_the_bare_base(server, env_project):
    client, _, _ = server
    want = expected(env_project, PROMPTS[:2], patched=False)
    got = [chat(client, p, model="tiny:unpatched")[0].choices[0].message.content for p in PROMPTS[:2]]
    assert got == want
    assert got != expected(env_project, PROMPTS[:2])  # the patch does change the answers


def test_streaming_chunks_join_to_the_same_text(server):
    client, _, _ = server
    for prompt in PROMPTS[:3]:
        whole = chat(client, prompt, max_tokens=16)[0].choices[0].message.content
        chunks = list(client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": prompt}],
                                                     temperature=0, max_tokens=16, stream=True,
                                                     stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
        raw = client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=16)
        streamed = client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=16, stream=True)
        assert "".join(c.choices[0].text for c in streamed) == raw.choices[0].text


def test_stop_strings_cut_the_answer_streamed_or_not(server):
    client, _, _ = server
    whole = chat(client, PROMPTS[0], max_tokens=16)[0].choices[0].message.content
    assert len(whole) > 4
    stop = whole[3:5]
    cut = whole[:whole.find(stop)]
    resp = chat(client, PROMPTS[0], max_tokens=16, stop=[stop])[0]
    assert resp.choices[0].message.content == cut and resp.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": PROMPTS[0]}],
                                            temperature=0, max_tokens=16, stream=True, stop=stop)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == cut


def test_seeded_sampling_is_reproducible(server):
    client, _, _ = server
    a = chat(client, PROMPTS[1], temperature=1.5, seed=7, max_tokens=10)[0].choices[0].message.content
    b = chat(client, PROMPTS[1], temperature=1.5, seed=7, max_tokens=10)[0].choices[0].message.content
    assert a == b


def test_32_concurrent_requests_are_batched_and_never_mixed(server, env_project):
    client, _, backend = server
    prompts = [f"{PROMPTS[i % len(PROMPTS)]} {i}" for i in range(32)]
    model = llmpatch.load(env=env_project)
    want = [model.generate([p], max_new_tokens=10)[0] for p in prompts]  # one at a time
    with cf.ThreadPoolExecutor(32) as pool:
        got = list(pool.map(lambda p: chat(client, p, max_tokens=10)[0].choices[0].message.content, prompts))
    assert got == want
    assert backend.engine.largest_batch > 1


def test_install_and_rollback_switch_the_server_between_requests(server, env_project):
    """Every response comes from exactly one generation, the one its header names."""
    client, _, _ = server
    prompts = PROMPTS[:3]
    by_stack = {"tox-fix@1.0.0": expected(env_project, prompts)}
    seen: list[tuple[str, str, str, int]] = []
    stop = threading.Event()

    def hammer():
        i = 0
        while not stop.is_set() or i < 6:
            p = i % len(prompts)
            resp, h = chat(client, prompts[p])
            seen.append((h["x-llmpatch-generation"], h["x-llmpatch-stack"], resp.choices[0].message.content, p))
            i += 1

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    run("install", "bias-fix")
    by_stack["tox-fix@1.0.0 -> bias-fix@1.0.0"] = expected(env_project, prompts)
    after_install = chat(client, prompts[0])[1]
    run("rollback")
    after_rollback = chat(client, prompts[0])[1]
    stop.set()
    for w in workers:
        w.join()
    assert after_install["x-llmpatch-generation"] == "3" and "bias-fix" in after_install["x-llmpatch-stack"]
    assert after_rollback["x-llmpatch-generation"] == "4" and after_rollback["x-llmpatch-stack"] == "tox-fix@1.0.0"
    assert by_stack["tox-fix@1.0.0"] != by_stack["tox-fix@1.0.0 -> bias-fix@1.0.0"]
    stacks = {"2": "tox-fix@1.0.0", "3": "tox-fix@1.0.0 -> bias-fix@1.0.0", "4": "tox-fix@1.0.0"}
    for gen, stack, text, p in seen:
        assert stacks[gen] == stack and by_stack[stack][p] == text, (gen, stack, text)
    assert {g for g, *_ in seen} >= {"4"}


def test_a_stream_in_flight_finishes_on_the_stack_it_started_with(server, env_project):
    client, _, _ = server
    old = expected(env_project, PROMPTS[:1], max_new_tokens=16)[0]
    with client.chat.completions.with_streaming_response.create(
            model="tiny", messages=[{"role": "user", "content": PROMPTS[0]}], temperature=0, max_tokens=16,
            stream=True) as resp:
        assert resp.headers["x-llmpatch-generation"] == "2"
        run("install", "bias-fix")  # the pointer moves while this response is open
        assert chat(client, PROMPTS[0])[1]["x-llmpatch-generation"] == "3"
        text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    assert text == old


@pytest.mark.parametrize("body,status,param", [
    ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400, "max_tokens"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**6}, 400, "max_tokens"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 500}, 400, "max_tokens"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hello world " * 400}]}, 400, "messages"),
    ({"model": "tiny", "messages": []}, 400, "messages"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 5}, 400, "temperature"),
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
])
def test_bad_requests_get_openai_error_objects_and_the_server_keeps_serving(server, body, status, param):
    client, url, _ = server
    r = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["param"] == param and err["message"] and "Traceback" not in r.text
    assert chat(client, "hi")[0].choices[0].message.content is not None


def test_malformed_json_and_unknown_routes_are_4xx_error_objects(server):
    client, url, _ = server
    r = httpx.post(url + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.get(url + "/v1/nothing-here")
    assert r.status_code == 404 and "error" in r.json()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="context"):
        client.completions.create(model="tiny", prompt="hello world " * 400)
    assert client.completions.create(model="tiny", prompt="hi", max_tokens=3, temperature=0).choices


def test_models_and_health_describe_the_current_stack(server):
    client, url, _ = server
    ids = [m.id for m in client.models.list().data]
    assert ids == ["tiny", "tiny:unpatched"]
    health = httpx.get(url + "/health").json()
    assert health["status"] == "ok" and health["generation"] == 2 and health["stack"] == "tox-fix@1.0.0"


def test_an_api_key_is_required_when_set(env_project):
    backend = LocalBackend.from_env(env_project / ".llmpatch")
    with running(create_app(backend, model_name="tiny", api_key="s3cret")) as url:
        bad = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        assert [m.id for m in good.models.list().data][0] == "tiny"
        assert httpx.get(url + "/health").status_code == 200
    backend.engine.close()


def test_serve_help_lists_the_options():
    from click.testing import CliRunner

    from llmpatch.cli import cli

    r = CliRunner().invoke(cli, ["serve", "--help"])
    assert r.exit_code == 0 and "--engine" in r.output and "--vllm-url" in r.output and "127.0.0.1" in r.output


# -- the vLLM engine against a stand-in that speaks vLLM's prompt_embeds API ----------------------


def test_the_vllm_engine_relays_prefix_plus_prompt_embeds_and_equals_the_local_runtime(env_project, lively_model_dir):
    from vllm_standin import create_standin

    from llmpatch.serve import make_backend

    standin = create_standin(lively_model_dir)
    with running(standin) as vllm_url:
        backend = make_backend(env_project, engine="vllm", vllm_url=vllm_url)
        with running(create_app(backend, model_name="tiny")) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            for patched in (True, False):
                want = expected(env_project, PROMPTS[:2], patched=patched)
                model = "tiny" if patched else "tiny:unpatched"
                resp = [chat(client, p, model=model) for p in PROMPTS[:2]]
                assert [r.choices[0].message.content for r, _ in resp] == want
                assert all(h["x-llmpatch-patched"] == str(patched).lower() for _, h in resp)
            sent = standin.state.requests[0]
            assert "prompt" not in sent and sent["model"] == "standin"
            streamed = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": PROMPTS[0]}],
                                                      temperature=0, max_tokens=12, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
                expected(env_project, PROMPTS[:1])[0]
            run("install", "bias-fix")
            resp, h = chat(client, PROMPTS[0])
            assert h["x-llmpatch-generation"] == "3"
            assert resp.choices[0].message.content == expected(env_project, PROMPTS[:1])[0]


def test_the_vllm_engine_refuses_a_vllm_serving_other_weights(env_project, tiny_model_dir):
    from vllm_standin import create_standin

    from llmpatch.errors import BaseMismatchError
    from llmpatch.serve import make_backend

    with running(create_standin(tiny_model_dir)) as vllm_url:
        with pytest.raises(BaseMismatchError, match="fingerprint"):
            make_backend(env_project, engine="vllm", vllm_url=vllm_url)


# -- the real model ------------------------------------------------------------------------------


@pytest.mark.slow
def test_serving_smollm2_equals_its_runtime(smollm2):
    model = llmpatch.load(smollm2)
    backend = LocalBackend.from_model(model)
    prompts = ["What is the capital of France?", "Write a haiku about rain."]
    want = model.generate(prompts, max_new_tokens=16)
    with running(create_app(backend, model_name="smol")) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        with cf.ThreadPoolExecutor(2) as pool:
            got = list(pool.map(lambda p: chat(client, p, model="smol", max_tokens=16)[0].choices[0].message.content,
                                prompts))
    backend.engine.close()
    assert got == want
