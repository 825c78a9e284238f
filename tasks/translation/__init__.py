"""Machine translation: an LSTM encoder-decoder with attention, as in Sockeye 1."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sacrebleu
from flax import nnx

from zoo.batching import Prepared
from zoo.config import EarlyStoppingConfig, OptimizerConfig, Positive, Rate, TaskConfig, TrainConfig
from zoo.data.text import BOS_ID, EOS_ID, Vocabulary, detokenize
from zoo.errors import ZooError
from zoo.models.search import beam_search
from zoo.models.seq2seq import Seq2Seq
from zoo.predictions import Text
from zoo.task import Dataset, Metrics, PredictOptions, Task, compiled, masked_mean
from zoo_tasks.translation import data


@dataclass(frozen=True)
class TranslationConfig(TaskConfig):
    model: str = "lstm-attention"
    data: str = "numbers"  # numbers | tsv:FILE
    embed: int = 64  # token embedding size
    hidden: int = 128  # decoder LSTM units (the encoder has hidden/2 per direction)
    layers: int = 1  # encoder BiLSTM layers
    dropout: Rate = 0.0  # on embeddings (try 0.2-0.3 on small real corpora)
    max_len: int = 50  # tokens per sentence; longer ones are truncated
    vocab_size: int = 16000  # most frequent training tokens kept per language
    subwords: int = 0  # >0: sentencepiece pieces per language (pip install 'zoo[subwords]')
    beam: int = 4  # beam width of evaluation decoding (1: greedy)
    alpha: float = 0.6  # length-penalty exponent of the beam search
    train: TrainConfig = TrainConfig(epochs=3, batch_size=64, eval_batch_size=500)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=2e-3, schedule="cosine",
                                                 warmup_epochs=0.5, grad_clip_norm=1.0)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=2)

    @classmethod
    def smoke(cls) -> TranslationConfig:
        base = super().smoke()
        return cls(embed=16, hidden=32, beam=2, train=base.train)


@dataclass(frozen=True)
class TranslationOptions(PredictOptions):
    beam: Positive = compiled(5)  # beam width (1: greedy)


class TranslationTask(Task):
    """Translates a sentence; reports test `bleu`, `chrf` and `exact_match`."""

    name = "translation"
    description = "translation: LSTM encoder-decoder with attention, beam search (Sockeye-style)"
    Config = TranslationConfig
    models = ("lstm-attention",)
    datasets = data.DATASETS
    metric = "bleu"
    metric_mode = "max"
    PredictOptions = TranslationOptions
    Result = Text
    inputs = "SENTENCE"

    def load_data(self) -> Dataset:
        cfg = self.config
        return data.load(cfg.data, max_len=cfg.max_len, vocab_size=cfg.vocab_size,
                         subwords=cfg.subwords)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        cfg = self.config
        return Seq2Seq(len(info["src_vocab"]), len(info["tgt_vocab"]), embed=cfg.embed,
                       hidden=cfg.hidden, layers=cfg.layers, dropout=cfg.dropout,
                       dtype=self.compute_dtype, rngs=rngs)

    def loss(self, model, batch, rng):
        return _token_loss(model, batch, nnx.Rngs(dropout=rng), rows=batch.get("mask"))

    def eval_step(self, model, batch):
        mask = batch["mask"]
        loss, _ = _token_loss(model, batch, None, reduce=False)
        tokens = translate(model, batch["src"], beam=self.config.beam, alpha=self.config.alpha,
                           max_len=batch["tgt"].shape[1])
        return {"count": mask.sum(), "loss": (loss * mask).sum(), "tokens": tokens}

    def new_metrics(self, info: Mapping[str, Any]) -> Metrics:
        return TranslationMetrics(Vocabulary(tuple(info["tgt_vocab"])))

    def prepare(self, info, inputs, options) -> list[Prepared]:
        bad = [x for x in inputs if not isinstance(x, str)]
        if bad:
            raise ZooError(f"translation translates sentences (str), not {type(bad[0]).__name__}")
        tokenize = data.source_tokenizer(info)
        src, _ = Vocabulary(tuple(info["src_vocab"])).encode([tokenize(s) for s in inputs],
                                                            info["src_len"])
        return [Prepared({"src": row}) for row in np.asarray(src, np.int32)]

    def example_input(self, info) -> list[str]:
        return ["one"]

    def infer(self, model, info, batch, options):
        return {"tokens": translate(model, batch["src"], beam=options.beam,
                                    alpha=self.config.alpha, max_len=info["tgt_len"])}

    def to_result(self, info, outputs, prepared, options) -> Text:
        return Text(detokenize(Vocabulary(tuple(info["tgt_vocab"])).decode(outputs["tokens"])))


def _token_loss(model: Seq2Seq, batch, rngs: nnx.Rngs | None, *, reduce: bool = True,
                rows: jax.Array | None = None):
    """Teacher-forced cross-entropy per target token: the batch mean (or per sentence);
    `rows` (B,) of 0 leave sentences out of the mean."""
    src, tgt = batch["src"], batch["tgt"]
    tgt_in = jnp.concatenate([jnp.full_like(tgt[:, :1], 1), tgt[:, :-1]], axis=1)  # <s> first
    logits = model(src, (src > 0).astype(jnp.float32), tgt_in, rngs=rngs)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, tgt)
    mask = (tgt > 0).astype(jnp.float32)
    if rows is not None:
        mask = mask * rows[:, None]
    if reduce:
        return masked_mean(losses, mask), {}
    return (losses * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0), {}


def translate(model: Seq2Seq, src: jax.Array, *, beam: int, alpha: float,
              max_len: int) -> jax.Array:
    """Target ids [B, max_len] (</s>, then 0) by beam search; traced once per shape."""
    memory, state = model.encode(src, (src > 0).astype(jnp.float32))
    tokens, _ = beam_search(model.step_tokens, memory, state, beam=beam, max_len=max_len,
                            bos=BOS_ID, eos=EOS_ID, alpha=alpha)
    return tokens


class TranslationMetrics(Metrics):
    """Corpus BLEU and chrF (sacrebleu, on detokenized text) and the exact-match rate."""

    def __init__(self, vocab: Vocabulary):
        super().__init__()
        self.vocab = vocab
        self.hypotheses: list[str] = []
        self.references: list[str] = []

    def update(self, batch, outputs) -> None:
        outputs = dict(outputs)
        tokens = outputs.pop("tokens")
        super().update(batch, outputs)
        for hyp, ref, real in zip(tokens, batch["tgt"], batch["mask"]):
            if real:
                self.hypotheses.append(detokenize(self.vocab.decode(hyp)))
                self.references.append(detokenize(self.vocab.decode(ref)))

    def compute(self) -> dict[str, Any]:
        refs = [self.references]
        exact = sum(h == r for h, r in zip(self.hypotheses, self.references))
        return {**super().compute(),
                "bleu": sacrebleu.corpus_bleu(self.hypotheses, refs).score,
                "chrf": sacrebleu.corpus_chrf(self.hypotheses, refs).score,
                "exact_match": exact / max(len(self.hypotheses), 1)}
