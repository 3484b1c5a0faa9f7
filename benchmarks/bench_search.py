"""Benchmark: `llmpatch search` over a local registry index of 10,000 versions.

Builds a synthetic, schema-valid index (1,000 patches x 10 versions, signed) in a temp dir and
prints how long the search takes: the first read (which schema-validates every entry once),
then warm searches (open registry, read + verify the index signature and freshness, search):
in one process (the parsed index is reused by content sha256) and as each `llmpatch search`
process runs them (only the on-disk view cache is warm), and the whole CLI process for reference.

    python benchmarks/bench_search.py [--versions 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build(root: Path, n_versions: int, key) -> None:
    from llmpatch.registry.index import Index, IndexEntry
    from llmpatch.registry.local import LocalRegistry

    idx = Index.empty().next(expires=None)
    per = 10
    domains = ["toxicity", "gender_bias", "harmfulness", "privacy"]
    for i in range(n_versions // per):
        name = f"patch-{i:05d}"
        for v in range(per):
            idx.put(IndexEntry(
                name=name, version=f"1.{v}.0", summary=f"Safety patch number {i} for {domains[i % 4]}",
                domains=(domains[i % 4],), base_fingerprint="sha256:" + f"{i % 7:x}" * 64, base_id="HuggingFaceTB/SmolLM2-135M-Instruct",
                num_virtual_tokens=20, requires={}, conflicts={},
                files={n: {"sha256": f"{(i * per + v) % 16:x}" * 64, "size": 1000}
                       for n in ("adapter_config.json", "adapter_model.safetensors", "README.md", "llmpatch.json")},
                manifest_sha256="a" * 64, yanked=(v == 3), yank_reason="bad" if v == 3 else None,
                published="2026-01-01T00:00:00Z", location={"path": f"patches/{name}/1.{v}.0"}, signature=None,
                evals=({"suite": "rtp", "metric": "toxicity", "value": 0.1},),
            ))
    reg = LocalRegistry(str(root))
    root.mkdir(parents=True, exist_ok=True)
    reg._write_index(idx, key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--versions", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLMPATCH_HOME"] = str(Path(tmp) / "home")
        from llmpatch import signing
        from llmpatch.registry import open_registry

        key = signing.generate_key("bench")
        root = Path(tmp) / "registry"
        build(root, args.versions, key)
        size_mb = (root / "index.json").stat().st_size / 1e6
        reg = open_registry(str(root))
        reg.trust.trust(key.public)  # so every read also verifies the index signature

        import shutil

        from llmpatch import paths

        shutil.rmtree(paths.cache_dir("index-view"), ignore_errors=True)  # a client that never saw these bytes
        t0 = time.perf_counter()
        idx = reg.index()
        first = time.perf_counter() - t0
        assert len(idx) == args.versions, len(idx)

        times = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            hits = open_registry(str(root)).index().search("toxicity 12")
            times.append(time.perf_counter() - t0)
        from llmpatch.registry.cache import forget_parsed

        fresh = []  # as each `llmpatch search` process does: nothing parsed yet, the view cache warm
        for i in range(args.repeat):
            forget_parsed()
            t0 = time.perf_counter()
            open_registry(str(root)).index().search("toxicity 12")
            fresh.append(time.perf_counter() - t0)
        every = []
        for _ in range(5):
            t0 = time.perf_counter()
            all_hits = open_registry(str(root)).index().search("")
            every.append(time.perf_counter() - t0)

        env = {**os.environ}
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "llmpatch.cli", "search", "toxicity 12", "--registry", str(root), "--json"],
                             env=env, capture_output=True, text=True)
        cli_s = time.perf_counter() - t0
        assert out.returncode == 0, out.stderr

        print(f"index: {len(idx)} versions, {len(idx.names())} patches, {size_mb:.1f} MB, signed")
        print(f"first read by a new client (parse + schema-validate all entries + build the view cache): {first * 1000:.0f} ms")
        print(f"search 'toxicity 12' ({len(hits)} hits), warm, median of {args.repeat}: {statistics.median(times) * 1000:.1f} ms "
              f"(max {max(times) * 1000:.1f} ms)")
        print(f"search 'toxicity 12', index not yet parsed in this process (view cache warm), median of {args.repeat}: "
              f"{statistics.median(fresh) * 1000:.1f} ms (max {max(fresh) * 1000:.1f} ms)")
        print(f"search '' (all {len(all_hits)} unyanked versions), median of 5: {statistics.median(every) * 1000:.1f} ms")
        print(f"whole `llmpatch search` process (python start-up + imports + search): {cli_s * 1000:.0f} ms")
        # Judged on the search as a new process runs it (it cannot reuse another process's parse).
        verdict = "PASS" if max(statistics.median(times), statistics.median(fresh)) < 0.2 else "FAIL"
        print(f"{verdict}: search under 200 ms (in-process and as a new process, view cache warm)")


if __name__ == "__main__":
    main()
