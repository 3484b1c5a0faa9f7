"""Prompt sets: the project's built-in sets, local JSONL/CSV/text files, and Hub data sets.

A *source* is one of:

* ``None``: the built-in set for the suite (``llmpatch/evaluate/data/<suite>.jsonl``, written
  for this project; every prompt carries a ``split``: ``train`` for building patches,
  ``validation`` for choosing among a build's checkpoints, ``eval`` held out for evaluation).
* a file path, optionally ``PATH#COLUMN`` and row filters ``?KEY=VALUE[&KEY=VALUE]`` (a row is
  kept when each named column holds that value, case-insensitively; e.g. XSTest's safe prompts:
  ``xstest_prompts.csv?label=safe``, RealToxicityPrompts' challenging subset:
  ``prompts.jsonl?challenging=true``):
    - ``.jsonl``: one JSON object per line with a text column (``prompt``, ``text``, ``goal``,
      ``behavior``, ``question``, ``query`` or ``instruction``; or the named COLUMN), or one
      JSON string per line. Other keys (``id``, ``split``, ``profession`` ...) are kept as metadata.
    - ``.csv`` / ``.tsv``: a header row with such a column.
    - anything else (``.txt``): one prompt per line; blank lines and lines starting with ``#`` skipped.
* ``hf:<dataset-id>[@config][:split][:column]``: a Hugging Face data set through ``datasets``
  (needs the network or a local datasets cache), e.g. ``hf:allenai/real-toxicity-prompts:train:prompt``,
  ``hf:walledai/HarmBench@standard:train:prompt``, ``hf:walledai/XSTest:test:prompt``.

A file's ``split`` column is honoured when present (``split="all"`` takes every row); rows
without one are all used.
"""

from __future__ import annotations

import csv
import io
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from llmpatch.errors import EvaluationError

DATA_DIR = Path(__file__).parent / "data"
#: Suites that have a built-in prompt set (file ``data/<name>.jsonl``).
BUILTIN_SETS = ("toxicity", "gender", "harmfulness", "over_refusal", "fluency", "utility")
SUITE_ALIASES = {"over-refusal": "over_refusal", "overrefusal": "over_refusal", "bias": "gender",
                 "gender_bias": "gender", "gender-bias": "gender", "harm": "harmfulness", "toxic": "toxicity"}
SPLITS = ("train", "validation", "eval", "all")
#: Fields every prompt of a suite must carry (its metrics read them), with the values allowed
#: (None: any non-empty text). A prompt file for the suite without them is refused, naming the line.
REQUIRED_FIELDS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "gender": {"profession": None, "stereotype": ("male", "female", "neutral")},
}
#: Column names taken as the prompt text, in order of preference (case-insensitive).
TEXT_COLUMNS = ("prompt", "text", "goal", "behavior", "question", "query", "instruction", "input")


@dataclass(frozen=True)
class PromptItem:
    """One prompt of a suite, with an id and metadata (``profession``, ``category``, ...)."""

    id: str
    text: str
    suite: str
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "suite": self.suite, "split": self.split, "meta": dict(self.meta)}


def canonical_suite(name: str) -> str:
    """``over-refusal`` -> ``over_refusal``; unknown names pass through lower-cased."""
    key = (name or "").strip().lower()
    return SUITE_ALIASES.get(key, key)


def prompts_digest(items: Iterable[PromptItem]) -> str:
    """sha256 over the prompt texts in order: names exactly which prompts a number was measured on."""
    h = hashlib.sha256()
    for it in items:
        h.update(it.text.encode("utf-8") + b"\0")
    return "sha256:" + h.hexdigest()


def load_prompts(suite: str, source: str | None = None, split: str = "eval", *, limit: int | None = None) -> list[PromptItem]:
    """The prompts of ``suite`` from the built-in set (``source=None``), a file, or ``hf:<id>``."""
    suite = canonical_suite(suite)
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    if limit is not None and limit < 1:
        raise EvaluationError(f"limit must be at least 1, got {limit}")
    if source is None or str(source).strip() in ("", "builtin", "default"):
        if suite not in BUILTIN_SETS:
            raise EvaluationError(
                f"suite {suite!r} has no built-in prompt set: built-in sets exist for {', '.join(BUILTIN_SETS)}",
                hint="pass a prompt file or hf:<dataset-id> for this suite",
            )
        path = DATA_DIR / f"{suite}.jsonl"
        items = _select_split(_read_jsonl(path, suite, None, label=f"built-in {suite} set"), split, f"built-in {suite} set")
    else:
        source = str(source).strip()
        if source.startswith("hf:"):
            items = _read_hf(source, suite)
        else:
            items = _select_split(_read_file(source, suite), split, source)
    if not items:
        raise EvaluationError(f"prompt source {source or suite!r} for suite {suite!r} holds no prompts",
                              hint="give at least one non-empty prompt")
    return items[:limit] if limit else items


# -- readers ----------------------------------------------------------------------------------


def _select_split(items: list[PromptItem], split: str, label: str) -> list[PromptItem]:
    if split == "all" or not any(it.split for it in items):
        return items
    chosen = [it for it in items if it.split == split or it.split is None]
    if not chosen:
        found = sorted({it.split for it in items if it.split})
        raise EvaluationError(f"{label} has no prompts in split {split!r} (its splits: {', '.join(found)})",
                              hint="choose one of those splits, or 'all'")
    return chosen


#: Longest line of a prompt file (characters); longer ones are refused before any tokenizing.
MAX_LINE_CHARS = 100_000


def _lines(path: Path) -> list[str]:
    """The file's lines: UTF-8 text, no line longer than MAX_LINE_CHARS; else EvaluationError."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"prompt file {str(path)!r} is not UTF-8 text ({exc})",
                              hint="convert it, e.g. `iconv -f latin1 -t utf-8`") from None
    for n, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise EvaluationError(f"prompt file {str(path)!r}: line {n} is {len(line)} characters, more than {MAX_LINE_CHARS}",
                                  hint="a prompt is one line of ordinary length; split or shorten it")
    return lines


def parse_filters(query: str, source: str) -> list[tuple[str, str]]:
    """``label=safe&type=homonyms`` -> [("label", "safe"), ("type", "homonyms")].

    >>> parse_filters("label=safe", "x.csv?label=safe")
    [('label', 'safe')]
    """
    out = []
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise EvaluationError(f"prompt source {source!r}: row filter {part!r} is not KEY=VALUE",
                                  hint="e.g. xstest_prompts.csv?label=safe or prompts.jsonl#prompt?challenging=true")
        out.append((key.strip(), value.strip()))
    return out


def _filter_rows(items: list[PromptItem], filters: list[tuple[str, str]], source: str) -> list[PromptItem]:
    """Keep the rows whose columns hold the filters' values; clear errors for unknown columns."""
    for key, _ in filters:
        if items and not any(key in it.meta for it in items):
            known = sorted({k for it in items for k in it.meta})
            raise EvaluationError(f"prompt source {source!r}: no column {key!r} to filter on (columns besides the "
                                  f"prompt: {', '.join(known) or 'none'})", hint="name one of those columns after '?'")
    kept = [it for it in items if all(str(it.meta.get(k, "")).strip().lower() == v.lower() for k, v in filters)]
    if items and not kept:
        raise EvaluationError(f"prompt source {source!r}: no row matches {'&'.join(f'{k}={v}' for k, v in filters)}",
                              hint="check the values in those columns (compared case-insensitively)")
    return kept


def _read_file(source: str, suite: str) -> list[PromptItem]:
    source, _, query = source.partition("?")
    filters = parse_filters(query, source) if query else []
    path_text, _, column = source.partition("#")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise EvaluationError(f"prompt file {path_text!r} does not exist",
                              hint="give a .jsonl, .csv, .tsv or .txt file, or hf:<dataset-id>")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        items = _read_jsonl(path, suite, column or None, label=str(path))
    elif suffix in (".csv", ".tsv"):
        items = _read_csv(path, suite, column or None, delimiter="\t" if suffix == ".tsv" else ",")
    else:
        if column:
            raise EvaluationError(f"{source!r}: a plain-text prompt file has no columns (one prompt per line)")
        items = []
        for n, line in enumerate(_lines(path), 1):
            text = line.strip()
            if text and not text.startswith("#"):
                items.append(check_fields(PromptItem(f"{path.stem}-{n}", text, suite), f"{path}:{n}"))
    if not items:
        raise EvaluationError(f"prompt file {str(path)!r} is empty: expected at least one prompt",
                              hint=_format_hint(suite))
    return _filter_rows(items, filters, source) if filters else items


def _format_hint(suite: str) -> str:
    return ("one prompt per line (.txt), JSON objects with a 'prompt' field per line (.jsonl), "
            "or a CSV with a 'prompt' column; see docs/verify.md for each suite's optional columns")


def _pick_column(columns: Iterable[str], wanted: str | None, label: str, suite: str) -> str:
    cols = list(columns)
    if wanted:
        for c in cols:
            if c == wanted or c.lower() == wanted.lower():
                return c
        raise EvaluationError(f"{label} has no column {wanted!r}: its columns are {cols}",
                              hint="name one of them after '#', e.g. FILE#prompt")
    lower = {c.lower(): c for c in cols}
    for name in TEXT_COLUMNS:
        if name in lower:
            return lower[name]
    raise EvaluationError(
        f"{label} has columns {cols} but none holds the prompt: expected one of {', '.join(TEXT_COLUMNS)}",
        hint="rename the prompt column to 'prompt', or name it after '#': FILE#COLUMN",
    )


def _as_text(value: Any) -> str | None:
    """A prompt value: strings as-is; RealToxicityPrompts-style ``{"text": ...}`` objects unwrapped."""
    if isinstance(value, dict) and "text" in value:
        value = value["text"]
    if value is None:
        return None
    if not isinstance(value, str):
        return None
    return value.strip()


def check_fields(item: PromptItem, where: str) -> PromptItem:
    """``item`` if it carries the fields its suite needs (:data:`REQUIRED_FIELDS`), else a clear error.

    ``where`` names the row (``FILE:LINE``) so the message points at the prompt to fix.
    """
    needed = REQUIRED_FIELDS.get(item.suite)
    if not needed:
        return item
    for name, allowed in needed.items():
        value = item.meta.get(name)
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            raise EvaluationError(
                f"{where}: prompt {item.id!r} ({item.text[:60]!r}) has no {name!r}, which the {item.suite} suite needs",
                hint=f"give every row {' and '.join(repr(k) for k in needed)} (stereotype: male, female or neutral) "
                "in a .jsonl or .csv file, as examples/prompts/gender-prompts.jsonl does; a .txt file cannot carry them")
        if allowed and text.lower() not in allowed:
            raise EvaluationError(f"{where}: prompt {item.id!r} has {name} {value!r}: expected one of {', '.join(allowed)}",
                                  hint=f"fix the {name!r} of that row")
    return item


def _row_item(row: dict[str, Any], column: str, suite: str, n: int, label: str, stem: str) -> PromptItem:
    text = _as_text(row.get(column))
    if not text:
        raise EvaluationError(f"{label}: row {n} has no text in column {column!r} (got {row.get(column)!r})",
                              hint="every row needs a non-empty prompt")
    meta = {k: v for k, v in row.items() if k not in (column, "id", "split")}
    split = row.get("split")
    item = PromptItem(str(row.get("id") or f"{stem}-{n}"), text, suite, str(split) if split else None, meta)
    return check_fields(item, f"{label}:{n}")


def _read_jsonl(path: Path, suite: str, column: str | None, *, label: str) -> list[PromptItem]:
    items: list[PromptItem] = []
    chosen: str | None = None
    from llmpatch import schemas

    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = schemas.loads(line, what="it", error=EvaluationError)
        except EvaluationError as exc:
            raise EvaluationError(f"{label}: line {n} is not JSON ({exc.message}): {line[:80]!r}",
                                  hint="a .jsonl file holds one JSON object (or string) per line") from None
        if isinstance(row, str):
            if row.strip():
                items.append(check_fields(PromptItem(f"{path.stem}-{n}", row.strip(), suite), f"{label}:{n}"))
            continue
        if not isinstance(row, dict):
            raise EvaluationError(f"{label}: line {n} is {type(row).__name__}, expected an object or a string")
        if chosen is None or chosen not in row:
            chosen = _pick_column(row.keys(), column, f"{label} (line {n})", suite)
        items.append(_row_item(row, chosen, suite, n, label, path.stem))
    return items


def _read_csv(path: Path, suite: str, column: str | None, *, delimiter: str) -> list[PromptItem]:
    fh = io.StringIO("\n".join(_lines(path)), newline="")
    try:
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames:
            return []
        chosen = _pick_column(reader.fieldnames, column, str(path), suite)
        return [_row_item(dict(row), chosen, suite, n, str(path), path.stem) for n, row in enumerate(reader, 2)]
    except csv.Error as exc:
        raise EvaluationError(f"prompt file {str(path)!r} is not valid CSV ({exc})") from None


def parse_hf_source(source: str) -> tuple[str, str | None, str | None, str | None]:
    """``hf:<id>[@config][:split][:column]`` -> (dataset id, config, split, column)."""
    body = source[3:]
    parts = body.split(":")
    if not parts[0] or len(parts) > 3:
        raise EvaluationError(f"invalid data set source {source!r}: expected hf:<dataset-id>[@config][:split][:column]",
                              hint="e.g. hf:allenai/real-toxicity-prompts:train:prompt")
    ds_id, _, config = parts[0].partition("@")
    split = parts[1] if len(parts) > 1 and parts[1] else None
    column = parts[2] if len(parts) > 2 and parts[2] else None
    return ds_id, config or None, split, column


def _read_hf(source: str, suite: str) -> list[PromptItem]:
    ds_id, config, split, column = parse_hf_source(source)
    try:
        import datasets
    except ImportError:
        raise EvaluationError(f"{source!r} needs the 'datasets' package",
                              hint="pip install 'llmpatch[datasets]'") from None
    try:
        loaded = datasets.load_dataset(ds_id, config, split=split)
    except Exception as exc:  # network, auth, missing split: datasets raises many types
        raise EvaluationError(
            f"cannot load data set {ds_id!r}{f' ({config})' if config else ''}: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint="Hub data sets need network access (or a local datasets cache); otherwise export the prompts to a "
            ".jsonl/.csv file and pass its path",
        ) from None
    if isinstance(loaded, dict):  # a DatasetDict: prefer the test split
        names = list(loaded.keys())
        loaded = loaded["test" if "test" in names else names[0]]
    chosen = _pick_column(loaded.column_names, column, f"data set {ds_id!r}", suite)
    stem = ds_id.replace("/", "_")
    return [_row_item(dict(row), chosen, suite, n, f"data set {ds_id!r}", stem) for n, row in enumerate(loaded)]
