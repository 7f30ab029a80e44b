"""fastrnn.Model (the functional API): an encoder-decoder against a hand-written PyTorch twin
(outputs and every gradient, float64), Sequential vs the same graph written functionally
(identical training), compile/fit/evaluate/predict with several inputs and outputs, and
save/load round trips."""

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import optimizers

F64 = {"dtype": "float64"}
V, E, H = 9, 4, 3


def encoder_decoder(seed=0):
    src = fr.Input((None,), dtype="int64", name="src")
    tgt = fr.Input((None,), dtype="int64", name="tgt")
    e = fr.Embedding(V, E, mask_zero=True, seed=seed + 1, **F64)(src)
    enc, hf, cf, hb, cb = fr.Bidirectional(
        fr.LSTM(H, return_sequences=True, return_state=True, seed=seed + 2, **F64))(e)
    h = fr.Concatenate()([hf, hb])
    c = fr.Concatenate()([cf, cb])
    d = fr.Embedding(V, E, seed=seed + 3, **F64)(tgt)
    dec = fr.LSTM(2 * H, return_sequences=True, seed=seed + 4, **F64)(d, initial_state=[h, c])
    ctx = fr.Attention(use_scale=True, **F64)([dec, enc])
    out = fr.Dense(V, activation="softmax", seed=seed + 5, **F64)(fr.Concatenate()([dec, ctx]))
    return fr.Model([src, tgt], out, name="seq2seq")


def batch(rng, B=3, Ts=6, Tt=4):
    src = rng.integers(1, V, (B, Ts))
    src[0, 4:] = 0
    src[2, 2:] = 0
    tgt = rng.integers(1, V, (B, Tt))
    y = rng.integers(0, V, (B, Tt))
    return [src, tgt], y


def torch_twin(model, src, tgt, y):
    """The same network written directly in PyTorch (masked LSTM loops by hand)."""
    torch = pytest.importorskip("torch")
    P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in model.params()}

    def lstm(x, keep, w_ih, w_hh, b_ih, b_hh, h, c, reverse=False):
        T = x.shape[1]
        ys = [None] * T
        steps = range(T - 1, -1, -1) if reverse else range(T)
        for t in steps:
            g = x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            i, f, gg, o = g.chunk(4, dim=1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            if keep is not None:
                k = keep[:, t:t + 1]
                c_new = torch.where(k, c_new, c)
                h_new = torch.where(k, h_new, h)
            h, c = h_new, c_new
            ys[t] = h
        return torch.stack(ys, dim=1), h, c

    names = {layer.name: i for i, layer in enumerate(model.layers)}
    L = lambda layer, k: P[f"layers.{names[layer]}.{k}"]
    src_t, tgt_t = torch.tensor(src), torch.tensor(tgt)
    keep = src_t != 0
    B = src.shape[0]
    z = torch.zeros(B, H, dtype=torch.float64)
    e = L("embedding", "weight")[src_t]
    bi = lambda p: L("bidirectional", p)
    yf, hf, cf = lstm(e, keep, bi("forward_weight_ih"), bi("forward_weight_hh"),
                      bi("forward_bias_ih"), bi("forward_bias_hh"), z, z)
    yb, hb, cb = lstm(e, keep, bi("backward_weight_ih"), bi("backward_weight_hh"),
                      bi("backward_bias_ih"), bi("backward_bias_hh"), z, z, reverse=True)
    enc = torch.cat([yf, yb], dim=-1)
    d = L("embedding_1", "weight")[tgt_t]
    dec, _, _ = lstm(d, None, L("lstm", "weight_ih"), L("lstm", "weight_hh"),
                     L("lstm", "bias_ih"), L("lstm", "bias_hh"),
                     torch.cat([hf, hb], -1), torch.cat([cf, cb], -1))
    scores = L("attention", "scale") * (dec @ enc.transpose(1, 2))
    scores = scores - 1e9 * (~keep)[:, None, :].to(torch.float64)
    ctx = torch.softmax(scores, dim=-1) @ enc
    logits = torch.cat([dec, ctx], -1) @ L("dense", "weight").T + L("dense", "bias")
    logp = torch.log_softmax(logits, dim=-1)
    loss = -logp.gather(-1, torch.tensor(y)[..., None]).mean()
    loss.backward()
    return torch.softmax(logits, -1).detach().numpy(), float(loss.detach()), \
        {k: (v.grad.numpy() if v.grad is not None else np.zeros(v.shape)) for k, v in P.items()}


def test_encoder_decoder_equals_pytorch_twin():
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    model = encoder_decoder()
    # the layer names the twin uses
    assert [l.name for l in model.layers] == [
        "src", "tgt", "embedding_1", "embedding", "bidirectional", "concatenate",
        "concatenate_1", "lstm", "attention", "concatenate_2", "dense"]
    for layer in model.layers:                  # no constant weights: perturb the scale
        if isinstance(layer, fr.Attention):
            layer.params["scale"] = np.array([0.8])
    x, y = batch(rng)
    model.compile(optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    out = model.predict(x)
    loss = model.train_on_batch(x, y)
    grads = dict(model.grads())
    t_out, t_loss, t_grads = torch_twin(model, x[0], x[1], y)
    np.testing.assert_allclose(out, t_out, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(loss, t_loss, rtol=1e-9)
    assert set(grads) == set(t_grads)
    for k in grads:
        np.testing.assert_allclose(grads[k], t_grads[k], rtol=1e-9, atol=1e-13, err_msg=k)
        assert np.abs(grads[k]).sum() > 0, k      # every parameter takes part


def _seq_layers():
    return [fr.Embedding(11, 5, mask_zero=True), fr.LSTM(6, return_sequences=True),
            fr.Dropout(0.3), fr.GRU(4), fr.Dense(3, activation="softmax")]


def test_sequential_and_functional_train_identically():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 11, (40, 7))
    x[::3, 5:] = 0
    y = rng.integers(0, 3, 40)
    seq = fr.Sequential(_seq_layers(), seed=7)
    ids = fr.Input((7,), dtype="int64")
    t = ids
    for layer in _seq_layers():
        t = layer(t)
    func = fr.Model(ids, t, seed=7)
    seq.build((None, 7))
    for a, b in zip(seq.get_weights(), func.get_weights()):
        np.testing.assert_array_equal(a, b)      # same seeds give the same initial weights
    hist = []
    for m in (seq, func):
        m.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
        hist.append(m.fit(x, y, batch_size=8, epochs=3, validation_split=0.2, verbose=0).history)
    assert hist[0] == hist[1]
    for a, b in zip(seq.get_weights(), func.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_multi_input_output_fit_evaluate_predict():
    rng = np.random.default_rng(2)
    a = fr.Input((None, 3), name="a")
    b = fr.Input((4,), name="b")
    h = fr.GRU(5)(a)
    both = fr.Concatenate()([h, fr.Dense(5)(b)])
    cls = fr.Dense(3, activation="softmax", name="cls")(both)
    reg = fr.Dense(1, name="reg")(both)
    model = fr.Model([a, b], [cls, reg], seed=3)
    xa, xb = rng.standard_normal((30, 6, 3)), rng.standard_normal((30, 4))
    yc, yr = rng.integers(0, 3, 30), rng.standard_normal((30, 1))
    model.compile("adam", {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"]}, loss_weights={"cls": 1.0, "reg": 0.5})
    hist = model.fit({"a": xa, "b": xb}, [yc, yr], epochs=2, batch_size=8, verbose=0,
                     validation_data=([xa, xb], {"cls": yc, "reg": yr}))
    assert set(hist.history) == {"loss", "cls_loss", "reg_loss", "cls_accuracy", "val_loss",
                                 "val_cls_loss", "val_reg_loss", "val_cls_accuracy"}
    logs = model.evaluate([xa, xb], [yc, yr], return_dict=True)
    np.testing.assert_allclose(logs["loss"], logs["cls_loss"] + 0.5 * logs["reg_loss"],
                               rtol=1e-6)
    pc, pr = model.predict([xa, xb], batch_size=7)
    assert pc.shape == (30, 3) and pr.shape == (30, 1)
    np.testing.assert_allclose(pc.sum(axis=1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="list or dict of 2 arrays"):
        model.predict(xa)
    with pytest.raises(ValueError, match="dict keys"):
        model.predict({"a": xa})
    with pytest.raises(ValueError, match="must have shape"):
        model.predict([xa, xa])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "cls (Dense)" in text and \
        f"Total params: {model.count_params():,}" in text


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    model = encoder_decoder(seed=10)
    x, y = batch(rng, B=6)
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=3, verbose=0, shuffle=False)
    path = tmp_path / "s2s.safetensors"
    model.save(path)
    again = fr.load_model(path)
    assert type(again) is fr.Model and again.get_config() == model.get_config()
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    # the optimizer state came along: training continues identically
    h1 = model.fit(x, y, epochs=2, batch_size=3, verbose=0, shuffle=False).history
    h2 = again.fit(x, y, epochs=2, batch_size=3, verbose=0, shuffle=False).history
    assert h1 == h2
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    # weights-only files and from_config work too
    fr.save_weights(model, tmp_path / "w.safetensors")
    clone = fr.Model.from_config(model.get_config())
    fr.load_weights(clone, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))


def test_multi_output_compile_survives_save(tmp_path):
    x = fr.Input((3,))
    o1, o2 = fr.Dense(2, name="p")(x), fr.Dense(1, name="q")(x)
    model = fr.Model(x, [o1, o2])
    model.compile("sgd", ["mse", "mae"], metrics=[["mae"], []], loss_weights=[1.0, 3.0])
    model.save(tmp_path / "m.safetensors")
    again = fr.load_model(tmp_path / "m.safetensors")
    assert again.get_compile_config() == model.get_compile_config()
    data = np.ones((2, 3))
    ys = [np.zeros((2, 2)), np.zeros((2, 1))]
    assert again.evaluate(data, ys, return_dict=True) == \
        pytest.approx(model.evaluate(data, ys, return_dict=True))


def test_tampered_functional_file_is_refused(tmp_path):
    import json
    from fastrnn.io import ModelFileError, read_tensors, write_tensors
    model = encoder_decoder()
    path = tmp_path / "m.safetensors"
    model.save(path)
    tensors, meta = read_tensors(path)
    arch = json.loads(meta["architecture"])
    arch["config"]["layers"][1]["class_name"] = "os.system"
    meta["architecture"] = json.dumps(arch)
    meta.pop("checksum", None)
    write_tensors(tmp_path / "bad.safetensors", tensors, meta)
    with pytest.raises(ModelFileError, match="unknown layer class"):
        fr.load_model(tmp_path / "bad.safetensors")
    arch = json.loads(read_tensors(path)[1]["architecture"])
    arch["config"]["layers"][1]["config"]["output_dim"] = 10 ** 7
    meta["architecture"] = json.dumps(arch)
    write_tensors(tmp_path / "big.safetensors", tensors, meta)
    with pytest.raises(ModelFileError, match="larger than"):
        fr.load_model(tmp_path / "big.safetensors")


def test_io_knows_models_only_through_the_registry():
    import ast
    import inspect
    from fastrnn import io
    tree = ast.parse(inspect.getsource(io))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any("models" in m or "callbacks" in m for m in imported), imported
    assert io.MODEL_REGISTRY["Sequential"] is fr.Sequential
    assert io.MODEL_REGISTRY["Model"] is fr.Model


def test_sequential_accepts_the_symbolic_input():
    model = fr.Sequential([fr.Input((5, 3)), fr.LSTM(4), fr.Dense(2)], seed=0)
    assert model.built and model.count_params() == 4 * 4 * (3 + 4 + 2) + 2 * 4 + 2
    assert model.predict(np.zeros((2, 5, 3))).shape == (2, 2)
