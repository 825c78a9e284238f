"""Text for sequence tasks: a reversible tokenizer and vocabularies.

Token ids are dense int32 arrays padded to a fixed length with 0, so the loader gathers
fixed-shape batches and the steps compile once; the lengths travel beside them.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)  # every Vocabulary starts with those four
SPACE = "\u2581"  # "▁", marks a token that follows a space (as sentencepiece does)
_PIECES = re.compile(r"\s*(?:\w+|[^\w\s])")


def tokenize(text: str) -> list[str]:
    """Words and single punctuation marks; a token after a space starts with "▁".

    Reversible: `detokenize(tokenize(s)) == " ".join(s.split())`.
    """
    return [SPACE + piece.lstrip() if piece[0].isspace() else piece
            for piece in _PIECES.findall(" " + text.strip())]


def detokenize(tokens: Iterable[str]) -> str:
    return "".join(tokens).replace(SPACE, " ").strip()


@dataclass(frozen=True)
class Vocabulary:
    """Tokens by id; ids 0-3 are <pad>, <s>, </s>, <unk>.

    Stored as its token list in `Dataset.info`, so a trained model needs no data.
    """

    tokens: tuple[str, ...]

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], *, max_size: int = 0,
              min_count: int = 1) -> Vocabulary:
        """The tokens of `sentences`, most frequent first (ties by first appearance)."""
        counts = collections.Counter(t for sentence in sentences for t in sentence)
        ranked = [t for t, n in counts.most_common() if n >= min_count]
        if max_size:
            ranked = ranked[:max(max_size - 4, 0)]
        return cls((PAD, BOS, EOS, UNK, *ranked))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, sentences: Sequence[Sequence[str]], length: int, *, bos: bool = False,
               eos: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Ids [N, length] (0-padded, truncated to fit) and true lengths [N]."""
        index = self.index
        ids = np.zeros((len(sentences), length), np.int32)
        lengths = np.zeros(len(sentences), np.int32)
        for row, sentence in enumerate(sentences):
            seq = [BOS_ID] * bos + [index.get(t, UNK_ID) for t in sentence] + [EOS_ID] * eos
            seq = seq[:length]
            ids[row, :len(seq)] = seq
            lengths[row] = len(seq)
        return ids, lengths

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first </s> or <pad>, skipping <s>."""
        out = []
        for i in ids:
            if i in (PAD_ID, EOS_ID):
                break
            if i != BOS_ID:
                out.append(self.tokens[i])
        return out
