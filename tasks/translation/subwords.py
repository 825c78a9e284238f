"""Optional sentencepiece subwords for large vocabularies (`pip install 'zoo[subwords]'`).

A unigram model is trained on the training split of each language. Its pieces mark a
preceding space with "▁" exactly as `zoo.data.text.tokenize` does, so vocabularies and
detokenization are the same with or without subwords. The serialized model (identity
normalization keeps it small) travels base64-encoded in `Dataset.info`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence

from zoo.errors import ZooError


def _spm():
    try:
        import sentencepiece
    except ImportError:
        raise ZooError("subwords need sentencepiece: pip install 'zoo[subwords]' "
                       "(or --set subwords=0 for word tokens)") from None
    return sentencepiece


def train(sentences: Sequence[str], size: int) -> str:
    """A unigram model of about `size` pieces, base64-encoded."""
    spm = _spm()
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_writer=model,
                                   vocab_size=size, model_type="unigram", hard_vocab_limit=False,
                                   normalization_rule_name="identity", bos_id=-1, eos_id=-1,
                                   minloglevel=2)
    return base64.b64encode(model.getvalue()).decode("ascii")


def tokenizer(model: str) -> Callable[[str], list[str]]:
    """The piece tokenizer of a `train` output."""
    processor = _spm().SentencePieceProcessor(model_proto=base64.b64decode(model))
    return lambda text: processor.encode(text.strip(), out_type=str)
