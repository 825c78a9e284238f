"""zoo.data.text: tokenizer and vocabulary round trips."""

import pytest

from zoo.data.text import SPACE, Vocabulary, detokenize, tokenize


@pytest.mark.parametrize("text", [
    "three hundred and forty-two",
    "quatre-vingt-dix-sept",
    "one thousand, nine hundred and ninety-nine",
    "  Go on!  \"Quoted\", (par) l'été... 3.5%  ",
])
def test_tokenizer_round_trip(text):
    tokens = tokenize(text)
    assert detokenize(tokens) == " ".join(text.split())
    assert all(t.strip() and " " not in t for t in tokens)


def test_tokenizer_splits_words_and_punctuation():
    assert tokenize("forty-two, ok") == [f"{SPACE}forty", "-", "two", ",", f"{SPACE}ok"]


def test_vocabulary_round_trip_and_unknowns():
    sentences = [tokenize("vingt et un"), tokenize("vingt-deux"), tokenize("vingt et un")]
    vocab = Vocabulary.build(sentences)
    assert vocab.tokens[:4] == ("<pad>", "<s>", "</s>", "<unk>")
    assert vocab.tokens[4] == f"{SPACE}vingt"  # the most frequent first
    ids, lengths = vocab.encode(sentences[:2], 6, eos=True)
    assert lengths.tolist() == [4, 4] and ids[0, 3] == 2 and ids[0, 4:].tolist() == [0, 0]
    assert [detokenize(vocab.decode(row)) for row in ids] == ["vingt et un", "vingt-deux"]
    unseen, _ = vocab.encode([tokenize("vingt-trois")], 4)
    assert vocab.decode(unseen[0]) == [f"{SPACE}vingt", "-", "<unk>"]


def test_vocabulary_max_size_keeps_the_most_frequent():
    vocab = Vocabulary.build([["a", "b", "a", "c", "a", "b"]], max_size=6)
    assert vocab.tokens[4:] == ("a", "b")


def test_encode_truncates_to_the_length():
    vocab = Vocabulary.build([["a", "b", "c"]])
    ids, lengths = vocab.encode([["a", "b", "c"]], 2, bos=True)
    assert ids.tolist() == [[1, 4]] and lengths.tolist() == [2]
