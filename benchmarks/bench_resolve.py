"""Resolve and install from a 10,000-version local registry index (no model is loaded).

A local registry gets tox-fix in 10,000 versions (0.0.0 ... 9.9.99): 3.4.99 is a real published
patch, the other 9,999 are index entries cloned from a real one (their files are never fetched).
``install tox-fix@3.4`` must scan down from 9.9.99 to 3.4.99 (about 6,500 candidates), fetch
and verify it into the store, verify and compose the new stack, and switch generations.

    python benchmarks/bench_resolve.py [--repeat 7] [--budget-ms 200]

Prints medians of: the registry's index read, the resolve alone, the whole install (index
reads, resolve, fetch + verify, stack check, generation switch, lock file), the install without
the time spent inside the registry's ``index()`` and ``Index.versions()``, and the first install
in a process that has not parsed this index yet (as ``llmpatch install`` runs: the on-disk view
cache is warm, the in-process one empty). An install reads the index twice (to resolve, then
inside ``fetch``); both reads verify signature and freshness on the raw bytes, the second reuses
the parse. Exits 1 when the end-to-end install median exceeds the budget.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

N_VERSIONS = 10_000


def make_tiny_base(path: Path) -> Path:
    """A tiny random Llama and a BPE tokenizer trained in-process (no download)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scenario", Path(__file__).resolve().parent.parent / "examples" / "scenario.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_tiny_base(path)


def build_registry(work: Path, base_spec: str):
    """A local registry whose index holds 10,000 versions of tox-fix; returns (registry, base fingerprint)."""
    import torch

    from llmpatch import artifact
    from llmpatch import base as base_mod
    from llmpatch.registry import open_registry
    from llmpatch.registry.index import INDEX_FILE, IndexEntry

    info = base_mod.identify(base_spec)
    reg = open_registry(str(work / "registry"))
    emb = torch.randn(8, info.hidden_size, generator=torch.Generator().manual_seed(0))
    real = artifact.write_patch(work / "build" / "tox-fix-3.4.99", emb, name="tox-fix", version="3.4.99",
                                summary="benchmark patch", domains=["toxicity"], base=info.to_ref())
    reg.publish(real.path)
    idx = reg.index()
    template = idx.get("tox-fix", "3.4.99").to_dict()
    new = idx.next(expires=None)
    for a in range(10):
        for b in range(10):
            for c in range(100):
                v = f"{a}.{b}.{c}"
                if v != "3.4.99":
                    new.put(IndexEntry.from_dict("tox-fix", v, template))
    # Written directly (the bench needs no 9,999 publishes); the registry reads it like any index.
    (reg.root / INDEX_FILE).write_bytes(new.to_bytes())
    return reg, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--budget-ms", type=float, default=200.0)
    parser.add_argument("--base", help="Base spec (default: a tiny random model built on the fly).")
    ns = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="llmpatch-bench-"))
    os.environ["LLMPATCH_HOME"] = str(work / "home")
    try:
        from llmpatch.env import Environment
        from llmpatch.env import operations as ops
        from llmpatch.resolver import resolve
        from llmpatch.versions import PatchSpec

        base_spec = ns.base or str(make_tiny_base(work / "tiny-base"))
        reg, info = build_registry(work, base_spec)
        template = Environment.create(work / "template" / ".llmpatch", base_spec, registry=reg.url)

        t0 = time.perf_counter()
        idx = reg.index()  # first read in this process: the view cache was written (validated) with the bytes
        cold = time.perf_counter() - t0
        assert len(idx) == N_VERSIONS, len(idx)

        spec = PatchSpec.parse("tox-fix@3.4")
        # Time spent inside the registry's index() (JSON parse of ~12 MB) and Index.versions()
        # (10,000 entry objects, semver sort), measured by wrapping them: that part belongs to the
        # registry, the rest (resolve, store, verify, compose, generation switch) to llmpatch.
        in_index = [0.0]
        real_index = reg.index

        def timed_index():
            t = time.perf_counter()
            try:
                return real_index()
            finally:
                in_index[0] += time.perf_counter() - t

        reg.index = timed_index
        from llmpatch.registry.index import Index

        real_versions = Index.versions

        def timed_versions(self, name):
            t = time.perf_counter()
            try:
                return real_versions(self, name)
            finally:
                in_index[0] += time.perf_counter() - t

        Index.versions = timed_versions
        from llmpatch.registry.cache import forget_parsed

        def install(proj_name: str) -> float:
            proj = work / proj_name
            shutil.copytree(template.project_dir, proj)
            env = Environment(proj / ".llmpatch")
            t0 = time.perf_counter()
            with env.transaction("bench install"):
                plan = ops.plan_install(env, reg, [spec], command="llmpatch install tox-fix@3.4", registry_url=reg.url)
                gen = ops.apply(env, plan, lambda url: reg)
            took = time.perf_counter() - t0
            assert gen is not None and [p.id for p in gen.patches] == ["tox-fix@3.4.99"]
            return took

        fresh_times = []
        for i in range(ns.repeat):
            forget_parsed()  # as in a new `llmpatch install` process: parse from the view cache
            fresh_times.append(install(f"fresh-{i}"))

        read_times, resolve_times, install_times, own_times = [], [], [], []
        for i in range(ns.repeat):
            t0 = time.perf_counter()
            idx = reg.index()
            versions = idx.versions("tox-fix")
            read_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            (entry,) = resolve([spec], lambda name: versions, base_fingerprint=info.fingerprint)
            resolve_times.append(time.perf_counter() - t0)
            assert entry.version == "3.4.99", entry.version

            in_index[0] = 0.0
            total = install(f"run-{i}")
            install_times.append(total)
            own_times.append(total - in_index[0])

        def ms(xs: list[float]) -> float:
            return statistics.median(xs) * 1000

        med_install, med_own = ms(install_times), ms(own_times)
        print(f"index: {N_VERSIONS} versions of tox-fix ({(reg.root / 'index.json').stat().st_size / 1e6:.1f} MB); "
              f"request tox-fix@3.4 -> 3.4.99; medians of {ns.repeat} runs")
        print(f"  first index read (view cache written by to_bytes):  {cold * 1000:7.1f} ms")
        print(f"  registry index read + versions('tox-fix'):           {ms(read_times):7.1f} ms")
        print(f"  resolve (resolvelib + policy, ~6,500 candidates):     {ms(resolve_times):7.1f} ms")
        print(f"  install end to end (resolve, fetch+verify, stack check, generation switch, lock file): {med_install:7.1f} ms")
        print(f"  install excluding the registry's index() and versions(): {med_own:5.1f} ms")
        print(f"  first install in a process that has not parsed the index (view cache warm): {ms(fresh_times):7.1f} ms")
        ok = med_install <= ns.budget_ms
        print(f"{'PASS' if ok else 'FAIL'}: install end to end {med_install:.1f} ms (budget {ns.budget_ms:.0f} ms)")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
