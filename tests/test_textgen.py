import json
import os

import numpy as np
import pytest

import fastrnn
from fastrnn import textgen
from fastrnn.datasets import CharVocab

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40
        + "pack my box with five dozen liquor jugs!\n" * 30)


def _lm(cell="lstm", layers=1, hidden=12, seed=1):
    return textgen.CharLM.from_text(TEXT, hidden=hidden, layers=layers, cell=cell,
                                    embed_dim=6, seed=seed)


def _ids(lm, B=3, T=17, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, len(lm.vocab), size=(B, T))


@pytest.mark.parametrize("cell", textgen.CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_carried_state_equals_one_long_forward(cell, layers):
    # truncated BPTT relies on this: forward over windows with the state carried
    # gives the same logits as one forward over the whole sequence
    lm = _lm(cell, layers)
    ids = _ids(lm)
    full, _ = lm.forward(ids)
    a, st = lm.forward(ids[:, :7])
    b, st = lm.forward(ids[:, 7:12], st)
    c, _ = lm.forward(ids[:, 12:], st)
    np.testing.assert_allclose(np.concatenate([a, b, c], axis=1), full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", textgen.CELLS)
def test_step_matches_forward(cell):
    lm = _lm(cell, layers=2)
    ids = _ids(lm, B=2, T=6)
    full, _ = lm.forward(ids)
    state = lm.zero_state(2)
    for t in range(ids.shape[1]):
        logits, state = lm.step(ids[:, t], state)
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-4, atol=1e-5)


def test_forward_does_not_leave_return_state_on():
    lm = _lm()
    lm.forward(_ids(lm), training=True)
    assert all(r.return_state is False for r in lm.rnns)
    assert all(r.return_sequences for r in lm.rnns)


def test_xent_matches_library_loss_and_finite_differences():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5))
    y = rng.integers(0, 5, size=(2, 3))
    loss, grad = textgen._xent_from_logits(logits, y)
    ref = fastrnn.losses.SparseCategoricalCrossentropy(from_logits=True)
    rl, rg = ref.loss_and_gradient(y, logits)
    assert loss == pytest.approx(rl, rel=1e-10)
    np.testing.assert_allclose(grad, rg, rtol=1e-9, atol=1e-12)
    eps = 1e-6
    num = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        lp = logits.copy(); lp[idx] += eps
        lm_ = logits.copy(); lm_[idx] -= eps
        num[idx] = (textgen._xent_from_logits(lp, y)[0] - textgen._xent_from_logits(lm_, y)[0]) / (2 * eps)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


def test_training_reduces_loss_and_counts():
    lm = _lm(hidden=24)
    res = textgen.train(lm, TEXT, seq_len=20, batch_size=4, max_steps=60, learning_rate=1e-2,
                        verbose=0)
    assert res.steps == 60 and not res.interrupted
    assert 50 * 4 * 20 < res.train_chars <= 60 * 4 * 20   # epoch ends give short windows
    assert res.last_loss_bpc < res.first_loss_bpc - 1.0
    assert np.isfinite(res.val_bpc) and res.val_bpc < np.log2(len(lm.vocab))


def test_train_epochs_stop_and_progress_output(capsys):
    import io
    lm = _lm()
    buf = io.StringIO()
    res = textgen.train(lm, TEXT[:400], seq_len=10, batch_size=4, epochs=2, verbose=1,
                        stream=buf, val_fraction=0.0)
    # 380 training chars -> 4 streams of 95 -> ceil(94 / 10) = 10 windows per epoch
    assert res.steps == 20
    assert "step 20" in buf.getvalue() and "bpc" in buf.getvalue()
    assert np.isnan(res.val_bpc)


def test_train_argument_errors():
    lm = _lm()
    with pytest.raises(ValueError, match="at least one"):
        textgen.train(lm, TEXT)
    with pytest.raises(ValueError, match="too short"):
        textgen.train(lm, "abc", epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="seq_len"):
        textgen.train(lm, TEXT, epochs=1, seq_len=0)
    with pytest.raises(ValueError, match="minutes"):
        textgen.train(lm, TEXT, minutes=-1.0)
    with pytest.raises(ValueError, match="cell"):
        textgen.CharLM.from_text(TEXT, cell="tcn")
    with pytest.raises(ValueError, match="hidden"):
        textgen.CharLM.from_text(TEXT, hidden=0)


def test_generate_properties():
    lm = _lm()
    a = textgen.generate(lm, prime="the ", length=30, temperature=1.0, num_samples=3, seed=5)
    b = textgen.generate(lm, prime="the ", length=30, temperature=1.0, num_samples=3, seed=5)
    assert a == b and len(a) == 3 and all(len(s) == 30 for s in a)
    assert all(set(s) <= set(lm.vocab.chars) for s in a)
    g1 = textgen.generate(lm, prime="x", length=12, temperature=0, seed=1)
    g2 = textgen.generate(lm, prime="x", length=12, temperature=0, seed=2)
    assert g1 == g2                                   # greedy ignores the seed
    assert textgen.generate(lm, length=0) == [""]
    with pytest.raises(ValueError, match="temperature"):
        textgen.generate(lm, temperature=-1)
    with pytest.raises(ValueError, match="length"):
        textgen.generate(lm, length=-1)


def test_greedy_generation_follows_argmax():
    lm = _lm(cell="gru")
    out = textgen.generate(lm, prime="th", length=5, temperature=0)[0]
    ids = list(lm.vocab.encode("th"))
    for ch in out:
        logits, _ = lm.forward(np.array([ids]))
        assert lm.vocab.chars[int(logits[0, -1].argmax())] == ch
        ids.append(lm.vocab.index[ch])


def test_sampling_distribution():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.7, 0.2, 0.1]] * 20000))
    draws = textgen._sample(logits, 1.0, rng)
    freq = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1], atol=0.015)
    cold = textgen._sample(logits[:2000], 0.25, rng)
    assert np.mean(cold == 0) > 0.95


@pytest.mark.parametrize("cell", textgen.CELLS)
def test_save_load_roundtrip(tmp_path, cell):
    lm = _lm(cell, layers=2)
    textgen.train(lm, TEXT, seq_len=10, batch_size=4, max_steps=3, verbose=0)
    path = tmp_path / "m.safetensors"
    files = textgen.save(lm, path, extra={"note": "x"})
    assert os.fspath(path) in files
    lm2 = textgen.load(path)
    assert lm2.vocab == lm.vocab and lm2.cell == cell and lm2.num_layers == 2
    ids = _ids(lm)
    np.testing.assert_array_equal(lm.forward(ids)[0], lm2.forward(ids)[0])
    # the file is also an ordinary fastrnn model
    seq = fastrnn.load_model(path)
    np.testing.assert_allclose(seq.predict(ids), lm.forward(ids)[0], rtol=1e-5, atol=1e-6)


def test_load_errors(tmp_path):
    with pytest.raises(textgen.ModelFileError, match="not found"):
        textgen.load(tmp_path / "missing")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(textgen.ModelFileError):
        textgen.load(bad)
    # a valid model file whose vocabulary does not fit its layers
    lm = _lm()
    path = tmp_path / "m.safetensors"
    files = textgen.save(lm, path)
    if len(files) > 1:   # vocabulary in a sidecar: corrupt it
        meta = json.loads(open(files[1]).read())
        meta["vocab"]["chars"] = meta["vocab"]["chars"][:-1]
        open(files[1], "w").write(json.dumps(meta))
        with pytest.raises(textgen.ModelFileError, match="vocabulary has"):
            textgen.load(path)
        open(files[1], "w").write("{")
        with pytest.raises(textgen.ModelFileError, match="vocabulary"):
            textgen.load(path)


def test_vocab_is_sorted_and_complete():
    lm = _lm()
    assert lm.vocab == CharVocab.from_text(TEXT)
    assert lm.count_params() == sum(p.size for _, p, _ in lm.named_params())


class _FakeTerminal:
    """A text stream that says it is a terminal (the progress line redraws with '\\r')."""

    encoding = "utf-8"

    def __init__(self):
        self.parts = []

    def isatty(self):
        return True

    def write(self, s):
        self.parts.append(s)

    def flush(self):
        pass


def test_progress_line_fits_a_narrow_terminal(monkeypatch):
    from fastrnn import textgen
    monkeypatch.setenv("COLUMNS", "50")
    term = _FakeTerminal()
    bar = textgen._Progress(total_steps=100, stream=term)
    logs = {"loss": "2.345 bits/char", "speed": "12,345 chars/s", "eta": "0:42"}
    bar.update(10, logs)
    bar.update(100, logs, final=True)
    frames = "".join(term.parts).split("\r")[1:]
    assert len(frames) == 2
    for frame in frames:
        assert len(frame.rstrip("\n")) <= 49, frame


# issue 9, defect 8: the vocabulary lives in the model file itself (one atomic write)

def test_vocabulary_is_saved_inside_the_one_model_file(tmp_path):
    from fastrnn import io as fio
    lm = _lm()
    path = tmp_path / "m.safetensors"
    # a stale sidecar of another model at the same path must not be paired with these weights
    stale = {"format": textgen.FORMAT, "version": 1, "vocab": CharVocab("xy").to_json(),
             "config": lm.config(), "extra": {}}
    (tmp_path / "m.safetensors.json").write_text(json.dumps(stale))
    assert textgen.save(lm, path) == [os.fspath(path)]
    _, meta = fio.read_header(path)
    assert CharVocab.from_json(json.loads(meta[textgen.FORMAT])["vocab"]) == lm.vocab
    assert textgen.load(path).vocab == lm.vocab
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors", "m.safetensors.json"]


def test_old_two_file_models_still_load(tmp_path):
    lm = _lm()
    path = tmp_path / "old.safetensors"
    fastrnn.save_model(lm.to_sequential(), path, include_optimizer=False)
    meta = {"format": textgen.FORMAT, "version": 1, "vocab": lm.vocab.to_json(),
            "config": lm.config(), "extra": {}}
    (tmp_path / "old.safetensors.json").write_text(json.dumps(meta))
    lm2 = textgen.load(path)
    assert lm2.vocab == lm.vocab
    ids = _ids(lm)
    np.testing.assert_array_equal(lm.forward(ids)[0], lm2.forward(ids)[0])


def test_save_metadata_cannot_override_fastrnn_keys(tmp_path):
    lm = _lm()
    with pytest.raises(ValueError, match="reserved"):
        fastrnn.save_model(lm.to_sequential(), tmp_path / "x.safetensors",
                           metadata={"architecture": "{}"})
    assert not (tmp_path / "x.safetensors").exists()
