"""Parallel corpora for translation: English-French number phrases, or `tsv:FILE`.

Splits hold "src" and "tgt" token ids [N, length] (0-padded; the target ends with </s>).
The vocabularies are built from the training split only and travel in `Dataset.info`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from zoo.data.loader import split_indices
from zoo.data.tables import read_tsv
from zoo.data.text import Vocabulary, tokenize
from zoo.errors import ZooError, unknown
from zoo.paths import cache_dir
from zoo.task import Dataset
from zoo_tasks.translation import subwords as subwords_lib

DATASETS = {
    "numbers": "English number phrases to French, 0 to 999,999, written by num2words "
               "(offline; the default)",
    "tsv:FILE": "your parallel text, one source<TAB>target pair per line (extra columns, "
                "such as the attribution of tatoeba downloads, are ignored)",
}
SPLIT_SEED = 20240601
NUMBERS = {"train": 40_000, "val": 1000, "test": 2000}
VERSION = 1  # bump when the corpus changes: names the cache file


def load(spec: str, *, max_len: int, vocab_size: int, subwords: int = 0) -> Dataset:
    """Tokenized, vocabulary-encoded splits of corpus `spec`.

    Args:
      subwords: 0 for word tokens, else the size of the sentencepiece model trained per
        language on the training split.
    """
    if spec == "numbers":
        pairs = number_pairs(sum(NUMBERS.values()))
        sizes = NUMBERS
    elif spec.startswith("tsv:"):
        pairs = _unique(_pairs(spec.removeprefix("tsv:")))
        n = len(pairs)
        if n < 3:
            raise ZooError(f"{spec}: {n} distinct sentence pair(s); train, val and test need 3")
        n_val = n_test = max(1, min(n // 20, 2000))
        sizes = {"train": n - n_val - n_test, "val": n_val, "test": n_test}
    else:
        raise unknown("data set", spec, DATASETS)
    index = split_indices(len(pairs), sizes, SPLIT_SEED)
    info: dict = {"data": spec}
    src_tok, tgt_tok = _tokenizers(pairs, index["train"], subwords, info)
    tokens = {name: ([src_tok(pairs[i][0]) for i in idx], [tgt_tok(pairs[i][1]) for i in idx])
              for name, idx in index.items()}
    src_vocab = Vocabulary.build(tokens["train"][0], max_size=vocab_size)
    tgt_vocab = Vocabulary.build(tokens["train"][1], max_size=vocab_size)
    src_len = _length(tokens["train"][0], max_len)
    tgt_len = _length(tokens["train"][1], max_len) + 1  # </s>
    splits = {name: {"src": src_vocab.encode(src, src_len)[0],
                     "tgt": tgt_vocab.encode(tgt, tgt_len, eos=True)[0]}
              for name, (src, tgt) in tokens.items()}
    info.update(src_vocab=list(src_vocab.tokens), tgt_vocab=list(tgt_vocab.tokens),
                src_len=src_len, tgt_len=tgt_len)
    return Dataset(splits, info)


def number_pairs(count: int) -> list[tuple[str, str]]:
    """`count` distinct (English, French) number phrases: every number below 10,000, then
    seeded random ones up to 999,999. Cached as TSV (num2words takes seconds)."""
    cached = cache_dir("data") / f"numbers-en-fr-{count}-v{VERSION}.tsv"
    if cached.exists():
        return _pairs(cached)
    from num2words import num2words

    rng = np.random.default_rng(SPLIT_SEED)
    small = np.arange(min(count, 10_000))
    large = rng.choice(np.arange(10_000, 1_000_000), max(count - len(small), 0), replace=False)
    pairs = [(num2words(int(n)), num2words(int(n), lang="fr"))
             for n in np.concatenate([small, large])]
    tmp = cached.with_suffix(".tmp")
    tmp.write_text("".join(f"{src}\t{tgt}\n" for src, tgt in pairs), encoding="utf-8")
    tmp.replace(cached)  # atomic: a killed process never leaves a half-written cache
    return pairs


def _tokenizers(pairs, train: np.ndarray, subwords: int, info: dict) -> tuple[Callable, Callable]:
    """Word tokenizers, or sentencepiece models trained on the training split (kept in info)."""
    if not subwords:
        return tokenize, tokenize
    out = []
    for side, name in enumerate(("src", "tgt")):
        info[f"{name}_subwords"] = model = subwords_lib.train([pairs[i][side] for i in train],
                                                              subwords)
        out.append(subwords_lib.tokenizer(model))
    return out[0], out[1]


def source_tokenizer(info: dict) -> Callable[[str], list[str]]:
    """How `predict` tokenizes new source sentences: as the training data was."""
    model = info.get("src_subwords")
    return subwords_lib.tokenizer(model) if model else tokenize


def _pairs(path) -> list[tuple[str, str]]:
    """The first two tab-separated columns of a headerless file."""
    table = read_tsv(path, ("source", "target"), header=False)
    return list(zip(table.columns["source"], table.columns["target"]))


def _unique(pairs) -> list[tuple[str, str]]:
    """Pairs in first-seen order without repeated sources (a repeated source in train and
    test would leak)."""
    seen, out = set(), []
    for src, tgt in pairs:
        if src.strip() and tgt.strip() and src not in seen:
            seen.add(src)
            out.append((src, tgt))
    return out


def _length(sentences: list[list[str]], max_len: int) -> int:
    """The longest training sentence, capped at `max_len` (0: no cap)."""
    longest = max(len(s) for s in sentences)
    return min(longest, max_len) if max_len else longest
