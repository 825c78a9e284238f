"""Sequence building blocks: LSTM masking, CTC loss and decoders, beam search, CRNN, Seq2Seq."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from zoo.models.crnn import CRNN
from zoo.models.initialise import initialised
from zoo.models.ctc import ctc_beam_search, ctc_greedy, ctc_loss
from zoo.models.lstm import LSTM, BiLSTM
from zoo.models.search import beam_search
from zoo.models.seq2seq import Seq2Seq


def _logits(probs) -> jax.Array:
    """Logits whose softmax is `probs` [B, T, V]."""
    return jnp.log(jnp.asarray(probs, jnp.float32))


# -- CTC ------------------------------------------------------------------------------


def test_ctc_loss_matches_a_hand_worked_case():
    # Two frames, classes (blank, a): "a" has alignments aa, a-, -a; "aa" needs a, -, a.
    p = np.array([[[0.3, 0.7], [0.6, 0.4]]])
    mask = jnp.ones((1, 2))
    expected_a = 0.7 * 0.4 + 0.7 * 0.6 + 0.3 * 0.4
    loss = ctc_loss(_logits(p), mask, jnp.array([[1, 0]]))
    np.testing.assert_allclose(loss, [-np.log(expected_a)], rtol=1e-5)
    p3 = np.array([[[0.2, 0.8], [0.5, 0.5], [0.1, 0.9]]])
    loss = ctc_loss(_logits(p3), jnp.ones((1, 3)), jnp.array([[1, 1]]))
    np.testing.assert_allclose(loss, [-np.log(0.8 * 0.5 * 0.9)], rtol=1e-5)


def test_ctc_loss_ignores_padded_frames():
    p = np.array([[[0.3, 0.7], [0.6, 0.4], [0.01, 0.99]]])  # the third frame is padding
    loss = ctc_loss(_logits(p), jnp.array([[1.0, 1.0, 0.0]]), jnp.array([[1, 0]]))
    np.testing.assert_allclose(loss, [-np.log(0.7 * 0.4 + 0.7 * 0.6 + 0.3 * 0.4)], rtol=1e-5)


def test_greedy_decoding_merges_repeats_then_drops_blanks():
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3, 3]  # a a - a b b - - c c  ->  a a b c
    mask = [1] * 8 + [0, 0]  # the trailing c c are padding frames
    logits = jax.nn.one_hot(jnp.array([path]), 4)
    ids = ctc_greedy(logits, jnp.array([mask], jnp.float32))
    assert ids.tolist() == [[1, 1, 2, 0, 0, 0, 0, 0, 0, 0]]


def _best_labelling(probs: np.ndarray) -> tuple[int, ...]:
    """The most probable CTC labelling by enumerating every alignment."""
    total: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        merged = [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]
        p = np.prod([probs[t, c] for t, c in enumerate(path)])
        total[tuple(merged)] = total.get(tuple(merged), 0.0) + p
    return max(total, key=total.get)


def test_prefix_beam_search_finds_the_labelling_greedy_misses():
    # Each frame prefers blank, but "a" (0.64) is likelier than "" (0.36).
    p = np.array([[[0.6, 0.4], [0.6, 0.4]]])
    mask = jnp.ones((1, 2))
    assert ctc_greedy(_logits(p), mask).tolist() == [[0, 0]]
    assert ctc_beam_search(_logits(p), mask, beam=2).tolist() == [[1, 0]]


def test_prefix_beam_search_is_exact_with_a_wide_beam():
    rng = np.random.default_rng(0)
    probs = jax.nn.softmax(2 * rng.normal(size=(12, 5, 3)), axis=-1)
    ids = ctc_beam_search(jnp.log(probs), jnp.ones((12, 5)), beam=16)
    for row, p in zip(np.asarray(ids), np.asarray(probs)):
        assert tuple(int(i) for i in row if i) == _best_labelling(p)


# -- beam search ----------------------------------------------------------------------

PAD, BOS, EOS = 0, 1, 2


def _markov_step(table: np.ndarray):
    """A toy decoder whose next-token log-probs depend only on the last token."""
    log_table = jnp.log(jnp.asarray(table, jnp.float32))

    def step(context, state, tokens):
        del context
        return state, log_table[tokens]

    return step


def _decode(table, beam, max_len, alpha=0.0):
    state, context = jnp.zeros((1, 1)), jnp.zeros((1, 1))
    tokens, score = beam_search(_markov_step(table), context, state, beam=beam, max_len=max_len,
                                bos=BOS, eos=EOS, alpha=alpha)
    return [int(t) for t in tokens[0]], float(score[0])


def test_beam_search_finds_the_best_hypothesis_greedy_misses():
    table = np.full((5, 5), 1e-6)
    table[BOS, 3], table[BOS, 4] = 0.6, 0.4  # start: a (0.6) or b (0.4)
    table[3, [EOS, 3, 4]] = 0.4, 0.3, 0.3  # after a: nothing is likely
    table[4, EOS] = 1.0  # after b: surely the end
    table[EOS, EOS] = 1.0
    greedy, greedy_score = _decode(table, beam=1, max_len=4)
    best, best_score = _decode(table, beam=2, max_len=4)
    assert greedy[:2] == [3, EOS] and best == [4, EOS, PAD, PAD]
    np.testing.assert_allclose([greedy_score, best_score], np.log([0.24, 0.4]), rtol=1e-4)


def test_wide_beam_search_equals_exhaustive_search():
    rng = np.random.default_rng(1)
    for _ in range(5):
        table = rng.dirichlet(np.ones(5) * 0.5, size=5)
        table[:, [PAD, BOS]] = 1e-9
        table /= table.sum(1, keepdims=True)
        best, score = _decode(table, beam=25, max_len=3)
        hyps = {}
        for seq in itertools.product(range(2, 5), repeat=3):  # EOS, a, b
            end = seq.index(EOS) + 1 if EOS in seq else 3
            seq = seq[:end]
            prev = (BOS, *seq[:-1])
            hyps[seq] = float(np.sum(np.log(table[list(prev), list(seq)])))
        expected = max(hyps, key=hyps.get)
        assert tuple(t for t in best if t != PAD) == expected
        np.testing.assert_allclose(score, hyps[expected], rtol=1e-4)


# -- masking: padding never changes results -------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_outputs_and_final_state_ignore_padding(reverse):
    lstm = initialised(lambda rngs: LSTM(3, 8, rngs=rngs), nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    padded = jnp.concatenate([x, 7 * jnp.ones((2, 4, 3))], axis=1)  # garbage in padding
    mask = jnp.concatenate([jnp.ones((2, 5)), jnp.zeros((2, 4))], axis=1)
    out, (c, h) = lstm(x, reverse=reverse)
    out_p, (c_p, h_p) = lstm(padded, mask, reverse=reverse)
    np.testing.assert_allclose(out_p[:, :5], out, atol=1e-6)
    assert not np.any(out_p[:, 5:])
    np.testing.assert_allclose(h_p, h, atol=1e-6)
    np.testing.assert_allclose(c_p, c, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_gradient_equals_differentiating_its_steps(reverse):
    """The hand-written backward pass (one kernel matmul after the scan) against JAX's
    gradient of the same masked steps written as a Python loop: weights, input and the
    initial carry, with padding and a carry in (as a decoder gets the encoder's)."""
    lstm = initialised(lambda rngs: LSTM(3, 4, rngs=rngs), nnx.Rngs(0))
    keys = jax.random.split(jax.random.key(3), 4)
    x = jax.random.normal(keys[0], (2, 5, 3))
    mask = jnp.array([[1.0] * 5, [1.0] * 3 + [0.0] * 2])
    carry = (jax.random.normal(keys[1], (2, 4)), jax.random.normal(keys[2], (2, 4)))
    weights = jax.random.normal(keys[3], (2, 5, 4))

    def looped(lstm, x, carry):
        steps = range(x.shape[1])[::-1] if reverse else range(x.shape[1])
        outputs = {}
        for t in steps:
            keep = mask[:, t, None]
            new = lstm.step(carry, x[:, t])
            carry = tuple(keep * n + (1 - keep) * o for n, o in zip(new, carry))
            outputs[t] = new[1] * keep
        return jnp.stack([outputs[t] for t in range(x.shape[1])], 1), carry

    def loss(run):
        def value(lstm, x, carry):
            out, (c, h) = run(lstm, x, carry)
            return (out * weights).sum() + jnp.sin(c).sum() + (h ** 2).sum()
        return nnx.jit(nnx.grad(value, argnums=(0, 1, 2)))  # eagerly it took 7 s

    scanned = lambda lstm, x, carry: lstm(x, mask, reverse=reverse, carry=carry)  # noqa: E731
    got, want = loss(scanned)(lstm, x, carry), loss(looped)(lstm, x, carry)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_bilstm_of_a_batch_equals_each_sequence_alone():
    rnn = initialised(lambda rngs: BiLSTM(3, 4, layers=2, rngs=rngs), nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 6, 3))
    lengths = [6, 3]
    mask = (jnp.arange(6)[None, :] < jnp.array(lengths)[:, None]).astype(jnp.float32)
    batch_out, _ = rnn(x, mask)
    for i, n in enumerate(lengths):
        alone, _ = rnn(x[i:i + 1, :n])
        np.testing.assert_allclose(batch_out[i, :n], alone[0], atol=1e-5)


def test_bilstm_in_one_scan_equals_its_two_directions_run_apart():
    rnn = initialised(lambda rngs: BiLSTM(3, 4, rngs=rngs), nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(2), (2, 6, 3))
    mask = jnp.array([[1.0] * 6, [1.0] * 4 + [0.0] * 2])
    (out, (final_f, final_b)), ((out_f, apart_f), (out_b, apart_b)) = nnx.jit(
        lambda m, x, mask: (m(x, mask), (m.forward[0](x, mask),
                                          m.backward[0](x, mask, reverse=True))))(rnn, x, mask)
    np.testing.assert_allclose(out, jnp.concatenate([out_f, out_b], axis=-1), rtol=1e-6, atol=1e-7)
    for got, want in zip(jax.tree.leaves((final_f, final_b)), jax.tree.leaves((apart_f, apart_b))):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_crnn_ctc_loss_is_the_same_however_much_padding():
    model = initialised(lambda rngs: CRNN(16, 1, 5, widths=(4, 8), pools=((2, 2), (2, 2)),
                                          hidden=8, rngs=rngs), nnx.Rngs(0))
    line = jax.random.uniform(jax.random.key(2), (1, 16, 24, 1))
    labels = jnp.array([[1, 2, 0]])
    forward = nnx.jit(lambda m, x, widths: m(x, widths))  # op by op it takes several times longer
    logits, frames = forward(model, line, jnp.array([24]))
    padded = jnp.pad(line, ((0, 0), (0, 0), (0, 40), (0, 0)))
    logits_p, frames_p = forward(model, padded, jnp.array([24]))
    assert frames.shape == (1, 6) and frames_p.shape == (1, 16) and frames_p.sum() == 6
    np.testing.assert_allclose(logits_p[:, :6], logits, atol=1e-5)
    np.testing.assert_allclose(ctc_loss(logits_p, frames_p, labels),
                               ctc_loss(logits, frames, labels), rtol=1e-5)


def test_seq2seq_logits_ignore_source_padding():
    model = initialised(lambda rngs: Seq2Seq(10, 12, embed=8, hidden=16, rngs=rngs), nnx.Rngs(0))
    src = jnp.array([[4, 5, 6]])
    tgt_in = jnp.array([[1, 7, 8]])
    logits = model(src, jnp.ones((1, 3)), tgt_in)
    padded = jnp.array([[4, 5, 6, 0, 0]])
    logits_p = model(padded, (padded > 0).astype(jnp.float32), tgt_in)
    np.testing.assert_allclose(logits_p, logits, atol=1e-5)


def test_seq2seq_step_by_step_equals_teacher_forcing():
    model = initialised(lambda rngs: Seq2Seq(10, 12, embed=8, hidden=16, rngs=rngs), nnx.Rngs(0))
    src, mask, tgt_in = jnp.array([[4, 5, 6]]), jnp.ones((1, 3)), jnp.array([[1, 7, 8]])
    forced = model(src, mask, tgt_in)
    memory, state = model.encode(src, mask)
    for t in range(3):
        state, logits = model.step_tokens(memory, state, tgt_in[:, t])
        np.testing.assert_allclose(logits, forced[:, t], atol=1e-5)
