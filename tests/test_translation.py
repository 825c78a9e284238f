"""Translation: the number corpus, `tsv:FILE`, metrics, masking, training and predict."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from zoo.data.text import Vocabulary, detokenize
from zoo.errors import ZooError
from zoo_tasks.translation import TranslationMetrics, _token_loss, data

from helpers import zoo_cli, zoo_here


@pytest.fixture(scope="module")
def numbers():
    return data.load("numbers", max_len=50, vocab_size=16000)


def _sentences(ds, split, side):
    vocab = Vocabulary(tuple(ds.info[f"{side}_vocab"]))
    return [detokenize(vocab.decode(row)) for row in ds.splits[split][side]]


def test_number_corpus_is_french_and_shares_no_sentence_across_splits(numbers):
    sizes = {name: numbers.size(name) for name in ("train", "val", "test")}
    assert sizes == data.NUMBERS
    src = {name: set(_sentences(numbers, name, "src")) for name in sizes}
    assert all(len(src[name]) == sizes[name] for name in sizes)  # distinct within a split
    assert not (src["train"] & src["val"] or src["train"] & src["test"] or src["val"] & src["test"])
    pairs = dict(zip(_sentences(numbers, "train", "src"), _sentences(numbers, "train", "tgt")))
    assert pairs.get("ninety-seven", "quatre-vingt-dix-sept") == "quatre-vingt-dix-sept"
    assert "<unk>" not in " ".join(_sentences(numbers, "test", "tgt"))


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    file = tmp_path / "pairs.tsv"
    lines = [f"word{i} common\tmot{i} commun\tCC-BY" for i in range(60)]
    file.write_text("\n".join(lines + lines[:5]) + "\n", encoding="utf-8")  # 5 duplicates
    ds = data.load(f"tsv:{file}", max_len=50, vocab_size=100)
    assert sum(ds.size(s) for s in ("train", "val", "test")) == 60
    held_out = set(_sentences(ds, "test", "src")) | set(_sentences(ds, "val", "src"))
    assert all(s.startswith("<unk> ") for s in held_out)  # word{i} is unseen in training
    assert "\u2581common" in ds.info["src_vocab"] and ds.info["tgt_len"] == 3  # 2 + </s>


def test_subword_vocabulary_round_trips_and_tokenizes_predict_input(tmp_path):
    pytest.importorskip("sentencepiece")
    file = tmp_path / "pairs.tsv"
    pairs = data.number_pairs(300)
    file.write_text("".join(f"{en}\t{fr}\n" for en, fr in pairs), encoding="utf-8")
    ds = data.load(f"tsv:{file}", max_len=80, vocab_size=1000, subwords=60)
    assert len(ds.info["src_vocab"]) < 70 and "src_subwords" in ds.info
    train_src = set(_sentences(ds, "train", "src"))
    assert train_src <= {en for en, _ in pairs}  # pieces detokenize to the sentences
    pieces = data.source_tokenizer(ds.info)("three hundred and forty-two")
    assert "".join(pieces).replace("\u2581", " ").strip() == "three hundred and forty-two"


def test_too_small_tsv_is_explained(tmp_path):
    file = tmp_path / "pairs.tsv"
    file.write_text("a\tb\na\tc\n", encoding="utf-8")
    with pytest.raises(ZooError, match="1 distinct sentence pair"):
        data.load(f"tsv:{file}", max_len=50, vocab_size=100)


def test_metrics_score_detokenized_text():
    sentence = [f"\u2581{w}" for w in "un deux trois quatre cinq six sept".split()]
    vocab = Vocabulary.build([sentence])
    ids, _ = vocab.encode([sentence] * 2, 8, eos=True)
    metrics = TranslationMetrics(vocab)
    wrong = ids.copy()
    wrong[1, 6] = vocab.index["\u2581un"]
    metrics.update({"tgt": ids, "mask": np.ones(2)},
                   {"tokens": np.concatenate([ids[:1], wrong[1:]]), "count": 2.0, "loss": 1.0})
    result = metrics.compute()
    assert result["exact_match"] == 0.5 and 0 < result["bleu"] < 100 and result["chrf"] < 100
    perfect = TranslationMetrics(vocab)
    perfect.update({"tgt": ids, "mask": np.ones(2)}, {"tokens": ids, "count": 2.0, "loss": 1.0})
    assert perfect.compute()["bleu"] == pytest.approx(100.0)


def test_padding_never_changes_the_loss():
    from zoo.models.seq2seq import Seq2Seq

    from zoo.models.initialise import initialised

    model = initialised(lambda rngs: Seq2Seq(12, 12, embed=8, hidden=16, rngs=rngs), nnx.Rngs(0))
    batch = {"src": jnp.array([[4, 5, 6], [7, 0, 0]]), "tgt": jnp.array([[8, 9, 2], [5, 2, 0]])}
    wide = {k: jnp.pad(v, ((0, 0), (0, 4))) for k, v in batch.items()}
    token_loss = nnx.jit(_token_loss, static_argnames="reduce")  # op by op: several times longer
    loss, _ = token_loss(model, batch, None)
    loss_wide, _ = token_loss(model, wide, None)
    per, _ = token_loss(model, wide, None, reduce=False)
    np.testing.assert_allclose(loss_wide, loss, rtol=1e-6)
    alone, _ = token_loss(model, {"src": batch["src"][1:, :1], "tgt": batch["tgt"][1:, :2]}, None)
    np.testing.assert_allclose(per[1], alone, rtol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two short epochs through the CLI (the first 8,000 training pairs: mostly < 10,000).

    On one device and in this process, for the reasons given in test_ocr's `trained` fixture.
    """
    workdir = tmp_path_factory.mktemp("mt")
    zoo_here("run", "translation", "--workdir", str(workdir), "--epochs", "2",
             "--set", "train.max_examples=8000", "--set", "beam=2", "--mesh", "data=1", "--quiet")
    return workdir


@pytest.mark.slow  # the train step is checked by test_conformance; predict by the published weights
def test_short_training_learns(trained):
    metrics = json.loads((trained / "metrics.json").read_text())["metrics"]
    assert metrics["bleu"] > 25 and metrics["chrf"] > 50  # untrained: ~0 and ~5


def test_predict_translates_with_a_beam(capsys):
    zoo_here("predict", "translation", "three hundred and forty-two", "seven",
             "--pretrained", "--beam", "3")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(lines)
    assert "cent" in lines[0] and "sept" in lines[1]


@pytest.mark.slow
@pytest.mark.timeout(7200)  # 20 minutes on a quiet 2-core CPU; far more on a busy one
def test_default_run_reaches_bleu_90(tmp_path):
    """The README's claim: a fresh `zoo run translation` reaches BLEU >= 90 on the test split."""
    zoo_cli("run", "translation", "--workdir", str(tmp_path), "--quiet", check=True, timeout=7200)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["metrics"]["bleu"] >= 90
