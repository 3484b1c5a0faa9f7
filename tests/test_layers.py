"""The import layers of docs/ARCHITECTURE.md: a module never imports one from a higher layer.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import cannot
hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "llmpatch"

#: Low -> high. A module may import its own layer and the ones below it; names match a module
#: and everything under it (``llmpatch.evaluate`` covers ``llmpatch.evaluate.judges``).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("llmpatch.__version__", "llmpatch.errors", "llmpatch.paths", "llmpatch.atomic", "llmpatch.schemas",
              "llmpatch.versions", "llmpatch.util")),
    ("artifact", ("llmpatch.manifest", "llmpatch.fingerprint", "llmpatch.artifact", "llmpatch.compose",
                  "llmpatch.signing")),
    ("models and registries", ("llmpatch.registry", "llmpatch.resolver", "llmpatch.base", "llmpatch.runtime",
                               "llmpatch.loading")),
    ("evaluate", ("llmpatch.evaluate",)),
    ("env", ("llmpatch.env",)),
    ("build and verify", ("llmpatch.builder", "llmpatch.verify")),
    # the package root re-exports llmpatch.load (the API): ``import llmpatch`` is an interface import
    ("interface", ("llmpatch", "llmpatch.api", "llmpatch.commands", "llmpatch.cli", "llmpatch.ui", "llmpatch.serve")),
]
#: Siblings in one layer that must not import each other.
SEPARATE = [("llmpatch.builder", "llmpatch.verify")]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int:
    """The layer index of a module: the most specific prefix that names it."""
    best = max(((len(p), i) for i, (_, ps) in enumerate(LAYERS) for p in ps if _under(module, p)), default=None)
    if best is None:
        raise LookupError(module)
    return best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every llmpatch import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from llmpatch import base`` imports the submodule llmpatch.base
            out += [(node.lineno, f"{base}.{a.name}" if base == "llmpatch" else base) for a in node.names]
    return [(line, m) for line, m in out if _under(m, "llmpatch")]


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [module_name(f) for f in FILES if not _has_layer(module_name(f))]
    assert not missing, f"add these modules to a layer in tests/test_layers.py and docs/ARCHITECTURE.md: {missing}"


def _has_layer(module: str) -> bool:
    try:
        layer_of(module)
    except LookupError:
        return False
    return True


@pytest.mark.parametrize("path", FILES, ids=lambda p: module_name(p))
def test_no_module_imports_a_higher_layer(path):
    me = module_name(path)
    mine = layer_of(me)
    bad = []
    for line, target in imports(path):
        theirs = layer_of(target)
        if theirs > mine:
            bad.append(f"line {line}: {target} ({LAYERS[theirs][0]}) from the {LAYERS[mine][0]} layer")
        for a, b in SEPARATE:
            if (_under(me, a) and _under(target, b)) or (_under(me, b) and _under(target, a)):
                bad.append(f"line {line}: {target}: {a} and {b} are separate")
    assert not bad, f"{me} imports upwards:\n" + "\n".join(bad)


def test_the_rule_catches_an_upward_import(tmp_path):
    # the check itself: an environment module importing the verify layer is refused
    assert layer_of("llmpatch.env.operations") < layer_of("llmpatch.verify.gate")
    assert layer_of("llmpatch.evaluate.judges") < layer_of("llmpatch.env")
    assert layer_of("llmpatch.evaluate.normalize") == layer_of("llmpatch.evaluate")
    assert layer_of("llmpatch.serve") == layer_of("llmpatch.commands.serve") == len(LAYERS) - 1
