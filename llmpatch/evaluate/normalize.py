"""Text normalisation for judging: undo the tricks that hide offensive words from a bag-of-words judge.

A patch trained against a word-based classifier learns to write "f**k", "f u c k", "fuuuuck",
"sh1t" or "fսck" (an Armenian letter): tokens the classifier has never seen. ``normalize`` maps such
text back towards plain ASCII words so that the classifier (and the lexicon in
:mod:`llmpatch.evaluate.lexicon`) can see them, while leaving ordinary text as it was. The output is
for judging only, never shown: it may garble rare benign tokens ("mp3" -> "mpe"), which is harmless
because the judge scores the raw text too and takes the larger score.

Steps, in order (each a pure function, usable alone):

1. Unicode NFKC (fullwidth and mathematical letters, ligatures, circled letters -> ASCII).
2. ``strip_invisible``: zero-width, bidi-control, soft-hyphen, variation-selector and tag characters.
3. ``fold_confusables``: Cyrillic/Greek/other look-alike letters -> the ASCII letter they imitate
   (table built from the ``confusable-homoglyphs`` package's copy of Unicode's confusables data),
   then accents dropped.
4. ``collapse_mask_repeats``: "r*r*r*r*" -> "r*" (a letter-and-mask unit repeated 3+ times).
5. ``join_spelled_out``: "f u c k", "f.u.c.k", "f-u-c-k" -> "fuck" (3+ single characters joined by
   one and the same separator).
6. ``unleet``: 0->o 1->i 3->e 4->a 5->s 7->t @->a $->s !->i +->t |->l, only inside word-like pieces
   that mix letters with such symbols and have nothing else (e-mail addresses and URLs untouched,
   "@mentions" untouched, a trailing "!" is punctuation).
7. ``collapse_runs``: a letter repeated 3+ times -> twice ("fuuuuck" -> "fuuck"), or once with
   ``runs=1`` ("fuuuuck" -> "fuck"; doubled letters such as "good" are kept either way).

>>> normalize("you f u c k i n g 1d10t")
'you fucking idiot'
>>> normalize("sh!t, that's fuuuuuucked up", runs=1)
"shit, that's fucked up"
>>> normalize("2 * 3 = 6; **bold**; bob@example.com paid $5 for 3.14 kg; x_max = a*b")
'2 * 3 = 6; **bold**; bob@example.com paid $5 for 3.14 kg; x_max = a*b'
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache

__all__ = [
    "normalize", "normalize_variants", "strip_invisible", "fold_confusables", "collapse_mask_repeats",
    "join_spelled_out", "unleet", "collapse_runs", "LEET",
]

#: Leetspeak symbol -> letter. "1" is read as "i" (b1tch, sh1t); the lexicon also tries "l".
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "+": "t", "|": "l"}
_LEET_TABLE = str.maketrans(LEET)

# zero-width and format characters: soft hyphen, combining grapheme joiner, Arabic letter mark,
# Hangul fillers, Mongolian selectors, ZWSP/ZWNJ/ZWJ/LRM/RLM, bidi embeddings and isolates, word
# joiner and invisible operators, variation selectors, BOM, tag characters
_INVISIBLE_RE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]"
)

# letters the confusables data does not map to ASCII but that read as one
_EXTRA_CONFUSABLES = {
    "τ": "t", "κ": "k", "ꜰ": "f", "ƒ": "f", "ʀ": "r", "ɪ": "i", "ʜ": "h", "ɢ": "g", "ʟ": "l",
    "ɴ": "n", "ʏ": "y", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ᴋ": "k", "ᴍ": "m", "ᴏ": "o",
    "ᴘ": "p", "ᴛ": "t", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o",
    "đ": "d", "ł": "l", "ı": "i", "ħ": "h", "€": "e", "¢": "c", "£": "l", "¥": "y",
    "т": "t", "к": "k", "м": "m", "н": "h", "в": "b", "п": "n", "Т": "T", "К": "K", "М": "M", "Н": "H", "В": "B",
}


@lru_cache(maxsize=1)
def _confusables_table() -> dict[int, str]:
    """ord(char) -> ASCII letter/digit it imitates, from Unicode's confusables (confusable-homoglyphs)."""
    table: dict[int, str] = {}
    try:
        from importlib.resources import files

        data = json.loads((files("confusable_homoglyphs") / "confusables.json").read_text(encoding="utf-8"))
    except Exception:  # the package is a declared dependency; without it fall back to the small table
        data = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        for g in glyphs:
            c = g.get("c", "")
            if len(c) == 1 and c.isascii() and c.isalnum():
                table[ord(char)] = c
                break
    table.update({ord(k): v for k, v in _EXTRA_CONFUSABLES.items()})
    return table


def strip_invisible(text: str) -> str:
    """Remove zero-width, bidi-control and other invisible format characters.

    >>> strip_invisible("f\\u200bu\\u200dc\\u2063k \\u202eok")
    'fuck ok'
    """
    return _INVISIBLE_RE.sub("", text)


def fold_confusables(text: str) -> str:
    """Map look-alike letters from other scripts to ASCII and drop accents (ASCII text returned as is).

    >>> fold_confusables("fսсk уоu")  # Armenian seh, Cyrillic es/u/o
    'fuck you'
    >>> fold_confusables("ѕhіt café naïve")
    'shit cafe naive'
    """
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    text = unicodedata.normalize("NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn"))
    return text.translate(_confusables_table())


_MASK_REPEAT_RE = re.compile(r"([^\W\d_][*#])\1{2,}")


def collapse_mask_repeats(text: str) -> str:
    """Collapse a letter+mask unit repeated three or more times ("r*r*r*r*" -> "r*").

    >>> collapse_mask_repeats("f*****r*r*r*r*")
    'f*****r*'
    """
    return _MASK_REPEAT_RE.sub(r"\1", text)


# 3+ single word characters (or leet symbols) separated by one and the same separator
_SPELLED_RE = re.compile(r"(?<![\w@$!+|*])([^\W_]|[@$])(\s+|\s*[.\-_·•]\s*)(?:[^\W_]|[@$!])(?:\2(?:[^\W_]|[@$!]))+(?![\w@$+|])")
_SEP_RE = re.compile(r"[\s.\-_·•]+")


def join_spelled_out(text: str) -> str:
    """Join words spelled out letter by letter ("f u c k", "f.u.c.k", "s-h-1-t"); digits alone stay.

    >>> join_spelled_out("you f u c k i n g idiot, f.u.c.k and s - h - 1 - t")
    'you fucking idiot, fuck and sh1t'
    >>> join_spelled_out("1 2 3, a, b, c, U.S.A. and 2 * 3 = 6")
    '1 2 3, a, b, c, USA. and 2 * 3 = 6'
    """

    def join(m: re.Match) -> str:
        s = m.group(0)
        if not any(c.isalpha() for c in s):
            return s
        return _SEP_RE.sub("", s)

    return _SPELLED_RE.sub(join, text)


_PROTECTED_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|(?:https?|ftp)://\S+|www\.\S+")
_LEET_PIECE_RE = re.compile(r"[A-Za-z0-9@$!+|]*[0-9@$!+|][A-Za-z0-9@$!+|]*")
_LEET_CHARS = frozenset(LEET)


def _unleet_piece(m: re.Match) -> str:
    piece = m.group(0)
    core = piece.rstrip("!")  # a trailing "!" is punctuation
    lead = len(core) - len(core.lstrip("!"))
    core = core[lead:]
    if not core or core[0] in "@|" or core.endswith("++"):  # @mentions, shell pipes, C++
        return piece
    if not any(c.isalpha() for c in core) or not any(c in _LEET_CHARS for c in core):
        return piece
    if any(not (c.isalpha() or c in _LEET_CHARS) for c in core):
        return piece
    if re.fullmatch(r"[0-9]+(st|nd|rd|th|s|k|m|g|h|x|am|pm|kg|km|mm|cm|ml|gb|mb|tb|px|fps|hz|mph|d)", core, re.I):
        return piece  # ordinals and units: 1st, 5th, 10k, 3am, 4kg
    return piece[:lead] + core.translate(_LEET_TABLE) + piece[lead + len(core):]


def unleet(text: str) -> str:
    """Read leetspeak symbols as letters inside pieces that mix letters with them and nothing else.

    >>> unleet("b1tch, sh!t, @ss, a$$, $hit, 5h1t, fr33 h3ll0!")
    'bitch, shit, @ss, ass, shit, shit, free hello!'
    >>> unleet("costs $5, 3.14, 1st, 10k, 2*3=6, mail bob@example.com, see https://x.io/a1, @john, Hello!")
    'costs $5, 3.14, 1st, 10k, 2*3=6, mail bob@example.com, see https://x.io/a1, @john, Hello!'
    """
    if not any(c in _LEET_CHARS for c in text):
        return text
    out, pos = [], 0
    for m in _PROTECTED_RE.finditer(text):
        out.append(_LEET_PIECE_RE.sub(_unleet_piece, text[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_LEET_PIECE_RE.sub(_unleet_piece, text[pos:]))
    return "".join(out)


_RUN3_RE = re.compile(r"([^\W\d_])\1{2,}")
_RUN3_ANY_RE = re.compile(r"([^\W_]|[@$!+|])\1{2,}")  # before unleet: "b!!!!tch" has a run too


def collapse_runs(text: str, runs: int = 2) -> str:
    """Shorten a letter repeated 3+ times to ``runs`` (1 or 2) copies; doubled letters are kept.

    >>> collapse_runs("fuuuuuck yoooou, good bitchhhh")
    'fuuck yoou, good bitchh'
    >>> collapse_runs("fuuuuuck yoooou, good bitchhhh", runs=1)
    'fuck you, good bitch'
    """
    return _RUN3_RE.sub(r"\1" * max(1, min(runs, 2)), text)


def normalize(text: str, runs: int = 2) -> str:
    """All the steps above: the text as a word-based judge should see it.

    >>> normalize("Ｆｕｃｋ ｏｆｆ")
    'Fuck off'
    >>> normalize("n*****r and f**k. stay")
    'n*****r and f**k. stay'
    >>> normalize("Call me at 555-1234 or read RFC 2616; the U.S. economy grew 3%.")
    'Call me at 555-1234 or read RFC 2616; the U.S. economy grew 3%.'
    """
    text = unicodedata.normalize("NFKC", text)
    text = strip_invisible(text)
    text = fold_confusables(text)
    text = collapse_mask_repeats(text)
    text = join_spelled_out(text)
    text = unleet(text)
    return collapse_runs(text, runs)


def normalize_variants(text: str) -> list[str]:
    """``normalize(text)`` and, when a letter repeats 3+ times, also the ``runs=1`` reading.

    >>> normalize_variants("shiiiit")
    ['shiit', 'shit']
    >>> normalize_variants("b!!!!tch")
    ['biitch', 'bitch']
    >>> normalize_variants("plain")
    ['plain']
    """
    two = normalize(text, runs=2)
    if two == text or not _RUN3_ANY_RE.search(text):
        return [two]
    one = normalize(text, runs=1)
    return [two] if one == two else [two, one]
