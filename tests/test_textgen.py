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


def _plain_copy(model):
    """The same layers and weights, not stateful and returning their final states: the
    reference that carries the state by hand."""
    layers = []
    for layer in model.layers:
        cfg = layer.get_config()
        if isinstance(layer, (fastrnn.LSTM, fastrnn.GRU, fastrnn.SimpleRNN)):
            cfg = dict(cfg, stateful=False, return_state=True)
        layers.append(type(layer).from_config(cfg))
    for a, b in zip(layers, model.layers):
        a.build(None if isinstance(a, fastrnn.Embedding) else (None, None, b.input_size))
        for k, v in b.params.items():
            a.params[k][...] = v
    return layers


def _plain_forward(layers, ids, states=None, training=False):
    """Logits and final states of one forward with the state passed by hand."""
    emb, rnns, dense = layers[0], layers[1:-1], layers[-1]
    h = emb.forward(ids, training=training)
    states = states or [None] * len(rnns)
    finals = []
    for layer, s in zip(rnns, states):
        h, *f = layer.forward(h, initial_state=s, training=training)
        finals.append(f if len(f) > 1 else f[0])
    return dense.forward(h, training=training), finals


def test_charlm_is_a_stateful_sequential():
    lm = _lm("gru", layers=2)
    assert isinstance(lm.model, fastrnn.Sequential)
    kinds = [type(layer).__name__ for layer in lm.model.layers]
    assert kinds == ["Embedding", "GRU", "GRU", "Dense"]
    assert all(r.stateful and r.return_sequences for r in lm.rnns)
    assert lm.dense.units == len(lm.vocab) and lm.dense.activation in (None, "linear")


@pytest.mark.parametrize("cell", textgen.CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_stateful_windows_equal_one_long_forward(cell, layers):
    # the state carry truncated BPTT relies on: the stateful model over consecutive windows
    # gives the logits of one forward over the whole sequence
    lm = _lm(cell, layers)
    ids = _ids(lm)
    full, _ = _plain_forward(_plain_copy(lm.model), ids)
    lm.model.reset_states()
    parts = [lm.model.predict_on_batch(ids[:, a:b]) for a, b in ((0, 7), (7, 12), (12, 17))]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", textgen.CELLS)
def test_fit_over_windows_equals_truncated_bptt_by_hand(cell):
    # textgen.train is model.fit over CharWindows: the same updates as the truncated-BPTT
    # loop written out (state carried from window to window without gradient, zero state
    # and a new window offset at each epoch, Adam with per-tensor clipnorm)
    text = TEXT[:300]
    lm = _lm(cell, layers=2, hidden=10)
    ref = _plain_copy(lm.model)
    res = textgen.train(lm, text, seq_len=9, batch_size=3, epochs=3, learning_rate=1e-2,
                        val_fraction=0.0, seed=4, verbose=0)
    ids = lm.vocab.encode(text)
    windows = textgen.CharWindows(ids, 3, 9, shift=True, seed=4)
    opt = fastrnn.optimizers.Adam(learning_rate=1e-2, clipnorm=1.0)
    xent = fastrnn.losses.SparseCategoricalCrossentropy(from_logits=True)
    steps = 0
    for epoch in range(3):
        states = None
        for k in range(len(windows)):
            x, y = windows[k]
            logits, states = _plain_forward(ref, x, states, training=True)
            _, d = xent.loss_and_gradient(y, logits)
            d = ref[-1].backward(d)
            for layer in reversed(ref[1:-1]):
                d = layer.backward(d)
            ref[0].backward(d)
            opt.apply([(f"layers.{i}.{n}", p, layer.grads[n]) for i, layer in enumerate(ref)
                       for n, p in layer.params.items()])
            steps += 1
        windows.on_epoch_end()
    assert res.steps == steps
    for layer, mine in zip(ref, lm.model.layers):
        for n, p in layer.params.items():
            np.testing.assert_allclose(mine.params[n], p, rtol=2e-4, atol=2e-6, err_msg=n)


def test_char_windows_are_aligned_rows_of_one_text():
    ids = np.arange(50)
    w = textgen.CharWindows(ids, batch_size=4, seq_len=5)      # 4 streams of 12
    assert len(w) == 3                                         # 11 inputs: 5 + 5 + 1
    rows = np.concatenate([w[k][0] for k in range(len(w))], axis=1)
    targets = np.concatenate([w[k][1] for k in range(len(w))], axis=1)
    np.testing.assert_array_equal(rows, np.arange(48).reshape(4, 12)[:, :11])
    np.testing.assert_array_equal(targets, rows + 1)
    assert [w.chars(k) for k in range(3)] == [20, 20, 4]
    with pytest.raises(IndexError):
        w[3]
    shifted = textgen.CharWindows(ids, batch_size=4, seq_len=5, shift=True, seed=0)
    offsets = set()
    for _ in range(20):
        shifted.on_epoch_end()
        offsets.add(shifted.offset)
        x0 = shifted[0][0]
        np.testing.assert_array_equal(x0[:, 0], np.arange(4) * 12 + shifted.offset)
        assert sum(shifted.chars(k) for k in range(len(shifted))) == 4 * (11 - shifted.offset)
    assert offsets <= set(range(5)) and len(offsets) > 1
    tiny = textgen.CharWindows(np.arange(4), batch_size=2, seq_len=3, shift=True)
    tiny.on_epoch_end()                                          # 2 columns: offset stays 0
    assert tiny.offset == 0 and len(tiny) == 1


@pytest.mark.parametrize("cell", textgen.CELLS)
def test_stepper_matches_the_model(cell):
    lm = _lm(cell, layers=2)
    ids = _ids(lm, B=2, T=6)
    full, _ = _plain_forward(_plain_copy(lm.model), ids)
    lm.model.reset_states()
    step = textgen._Stepper(lm.model)
    for t in range(ids.shape[1]):
        np.testing.assert_allclose(step(ids[:, t]), full[:, t], rtol=1e-4, atol=1e-5)
    # the state lives in the layers: predict continues from it
    nxt = _ids(lm, B=2, T=3, seed=1)
    after = lm.model.predict_on_batch(nxt)
    ref, _ = _plain_forward(_plain_copy(lm.model), np.concatenate([ids, nxt], axis=1))
    np.testing.assert_allclose(after, ref[:, 6:], rtol=1e-4, atol=1e-5)


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
        lm.model.reset_states()
        logits = lm.model.predict(np.array([ids]))
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
    lm.model.reset_states()
    expected = lm.model.predict(ids)
    np.testing.assert_array_equal(lm2.model.predict(ids), expected)
    # the file is an ordinary fastrnn model: the same stateful Sequential, the same logits
    seq = fastrnn.models.load_model(path)
    assert isinstance(seq, fastrnn.Sequential) and all(r.stateful for r in seq.layers[1:-1])
    np.testing.assert_array_equal(seq.predict(ids), expected)
    assert textgen.generate(lm2, prime="the", length=20, seed=3) == \
        textgen.generate(lm, prime="the", length=20, seed=3)


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
    # the vocabulary in the file's metadata one character short of the layers
    meta = {"format": textgen.FORMAT, "version": textgen.FORMAT_VERSION,
            "vocab": CharVocab(lm.vocab.chars[:-1]).to_json(), "config": lm.config()}
    short = tmp_path / "short.safetensors"
    lm.model.save(short, include_optimizer=False, metadata={textgen.FORMAT: json.dumps(meta)})
    with pytest.raises(textgen.ModelFileError, match="vocabulary has"):
        textgen.load(short)
    meta["config"]["cell"] = "tcn"
    lm.model.save(short, include_optimizer=False, metadata={textgen.FORMAT: json.dumps(meta)})
    with pytest.raises(textgen.ModelFileError, match="tcn"):
        textgen.load(short)
    assert issubclass(textgen.ModelFileError, ValueError)
    assert textgen.ModelFileError is fastrnn.ModelFileError      # one error class
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
    assert lm.count_params() == sum(p.size for p in lm.model.get_weights())


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
    # the oldest layout: the plain (not stateful) Sequential, the vocabulary beside it
    rnns = _plain_copy(lm.model)[1:-1]
    for r in rnns:
        r.return_state = False
    plain = fastrnn.Sequential([lm.embedding, *rnns, lm.dense])
    plain.build((None, None))
    fastrnn.save_model(plain, path, include_optimizer=False)
    meta = {"format": textgen.FORMAT, "version": 1, "vocab": lm.vocab.to_json(),
            "config": lm.config(), "extra": {}}
    (tmp_path / "old.safetensors.json").write_text(json.dumps(meta))
    lm2 = textgen.load(path)
    assert lm2.vocab == lm.vocab and all(r.stateful for r in lm2.rnns)
    ids = _ids(lm)
    lm.model.reset_states()
    np.testing.assert_array_equal(lm.model.predict(ids), lm2.model.predict(ids))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_files_of_the_old_charlm_are_converted_on_load(cell):
    # fixtures written by the CharLM of before the character model became a stateful
    # Sequential (its own training loop): they load as the stateful model, with the logits
    # and the greedy text recorded when they were written
    data = os.path.join(os.path.dirname(__file__), "data")
    expected = json.load(open(os.path.join(data, "charlm_v1_expected.json")))[cell]
    lm = textgen.load(os.path.join(data, f"charlm_v1_{cell}.safetensors"))
    assert lm.cell == cell and isinstance(lm.model, fastrnn.Sequential)
    assert all(r.stateful and r.return_sequences for r in lm.rnns)
    lm.model.reset_states()
    logits = lm.model.predict(np.array([expected["prime_ids"]]))
    np.testing.assert_allclose(logits[0], np.array(expected["logits"]), atol=2e-5)
    assert textgen.generate(lm, prime="the ", length=20, temperature=0)[0] == \
        expected["greedy_after_the"]


def test_save_metadata_cannot_override_fastrnn_keys(tmp_path):
    lm = _lm()
    with pytest.raises(ValueError, match="reserved"):
        fastrnn.save_model(lm.model, tmp_path / "x.safetensors",
                           metadata={"architecture": "{}"})
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_training_after_the_step_and_keeps_the_weights(signame):
    # fit's own signal handling: the step in progress completes, training ends, train()
    # reports which signal stopped it (the command line then saves and exits 128 + N)
    import signal
    sig = getattr(signal, signame)
    lm = _lm()
    before = [w.copy() for w in lm.model.get_weights()]
    kill = fastrnn.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: os.kill(os.getpid(), sig) if b == 2 else None)
    old = signal.getsignal(sig)
    res = textgen.train(lm, TEXT, seq_len=10, batch_size=4, epochs=5, verbose=0,
                        callbacks=[kill])
    assert signal.getsignal(sig) == old                 # the handler is put back
    assert res.interrupted and res.stop_signal == sig and res.steps == 3
    assert np.isnan(res.val_bpc)                        # no validation pass when stopped
    assert all(np.isfinite(w).all() for w in lm.model.get_weights())
    assert any((a != b).any() for a, b in zip(before, lm.model.get_weights()))
