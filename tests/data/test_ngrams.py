import numpy as np

from ctxops.data.ngrams import NgramIndex, ngram_hashes, text_ngrams, text_word_hashes, word_hashes, words


def test_words_are_normalized():
    assert words("Hello, WORLD! It's 42_x.") == ["hello", "world", "it", "s", "42", "x"]


def test_equal_text_up_to_case_and_punctuation_gives_equal_ngrams():
    a = text_ngrams("The quick brown fox, jumps over the lazy dog.", 3)
    b = text_ngrams("the QUICK brown fox jumps -- over the lazy dog", 3)
    assert len(a) == 7
    assert np.array_equal(a, b)


def test_ngram_hashes_depend_on_order_and_are_stable():
    h = word_hashes(["a", "b", "c"])
    assert ngram_hashes(h, 2)[0] != ngram_hashes(word_hashes(["b", "a"]), 2)[0]
    assert len(ngram_hashes(h, 4)) == 0
    assert int(word_hashes(["ctxops"])[0]) == int(word_hashes(["ctxops"])[0])


def test_index_lookup_finds_every_owner_and_sets_boilerplate_apart():
    template = "answer the question about the text below please "
    items = [template + "alpha beta gamma", template + "delta epsilon zeta", template + "alpha beta gamma"]
    grams = [text_ngrams(t, 3) for t in items]
    index = NgramIndex.build(grams, ["t", "t", "t"], boilerplate_share=0.9)
    # template trigrams are in every item: boilerplate; "alpha beta gamma" is in 2 of 3 (< 90%): kept
    assert len(index.boilerplate) == len(text_ngrams(template, 3))
    positions, keys = index.lookup(text_ngrams("x alpha beta gamma y", 3))
    assert sorted(index.owners[keys].tolist()) == [0, 2]
    assert positions.tolist() == [1, 1]
    assert index.boilerplate_hits(text_ngrams(template, 3)) == len(text_ngrams(template, 3))
    assert index.item_totals.tolist() == [3, 3, 3]  # 2 trigrams join the template to the tail


def test_the_ascii_byte_path_hashes_words_as_the_regular_expression_does():
    texts = [
        "Hello, WORLD! It's 42_x.\tA-b c\nE",
        "naïve CAFÉ, 42",
        "",
        " \n ",
        "x\x00y",
        "snake_case MIXED99z",
    ]
    for text in texts:
        assert np.array_equal(text_word_hashes(text), word_hashes(words(text))), text
