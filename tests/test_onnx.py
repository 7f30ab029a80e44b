"""fastrnn.onnx: fastrnn -> ONNX -> ONNX Runtime and ONNX -> fastrnn give the same numbers;
what fastrnn cannot compute exactly is refused with a message naming it."""

import io

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fastrnn as fr  # noqa: E402
from fastrnn import onnx as fo  # noqa: E402

CELLS = {"rnn": fr.SimpleRNN, "lstm": fr.LSTM, "gru": fr.GRU}
OPS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
TOL = dict(rtol=2e-5, atol=2e-6)        # float32 rounding through two implementations


def run_ort(proto_or_bytes, feeds):
    data = proto_or_bytes if isinstance(proto_or_bytes, bytes) else \
        proto_or_bytes.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)


def exported(model, **kw):
    buf = io.BytesIO()
    fo.export(model, buf, **kw)
    return buf.getvalue()


def stacked(cell, mode, seed=0):
    """Input -> [bi]RNN(seq) -> RNN -> Dropout -> Dense(softmax)."""
    cls = CELLS[cell]
    first = cls(5, return_sequences=True, go_backwards=(mode == "backwards"), seed=seed + 1)
    if mode == "bidirectional":
        first = fr.Bidirectional(first)
    return fr.Sequential([fr.Input((None, 3)), first, cls(4, seed=seed + 2), fr.Dropout(0.3),
                          fr.Dense(2, activation="softmax", seed=seed + 3)])


# ---------------------------------------------------------------------------------------------
# fastrnn -> ONNX -> ONNX Runtime
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("mode", ["forward", "backwards", "bidirectional"])
def test_export_stacked_matches_onnxruntime(cell, mode):
    model = stacked(cell, mode)
    x = np.random.default_rng(1).standard_normal((4, 7, 3)).astype(np.float32)
    (y,) = run_ort(exported(model), {"input": x})
    np.testing.assert_allclose(y, model.predict(x), **TOL)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
def test_export_masked_embedding_sequences(cell, merge):
    cls = CELLS[cell]
    model = fr.Sequential([
        fr.Embedding(12, 4, mask_zero=True, seed=0),
        fr.Bidirectional(cls(5, return_sequences=True, seed=1), merge_mode=merge),
        cls(3, return_sequences=True, seed=2),
        fr.Dense(2, seed=3)])
    ids = np.random.default_rng(2).integers(1, 12, (4, 7))
    ids[0, 4:] = 0        # right padding, lengths 4, 7, 2, 6
    ids[2, 2:] = 0
    ids[3, 6:] = 0
    (y,) = run_ort(exported(model), {"input": ids})
    np.testing.assert_allclose(y, model.predict(ids), **TOL)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_export_masked_go_backwards_sequences(cell):
    model = fr.Sequential([fr.Input((None, 3)), fr.Masking(0.0),
                           CELLS[cell](5, go_backwards=True, return_sequences=True, seed=1),
                           fr.Dense(2, seed=3)])
    x = np.random.default_rng(8).standard_normal((3, 6, 3)).astype(np.float32)
    x[0, 2:] = 0
    x[2, 5:] = 0
    (y,) = run_ort(exported(model), {"input": x})
    np.testing.assert_allclose(y, model.predict(x), **TOL)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_export_masking_layer_and_go_backwards(cell):
    model = fr.Sequential([fr.Input((None, 3)), fr.Masking(0.0),
                           CELLS[cell](5, go_backwards=True, seed=1), fr.Dense(2, seed=3)])
    x = np.random.default_rng(3).standard_normal((3, 6, 3)).astype(np.float32)
    x[1, 3:] = 0
    x[2, 5:] = 0
    (y,) = run_ort(exported(model), {"input": x})
    np.testing.assert_allclose(y, model.predict(x), **TOL)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bi", [False, True])
def test_export_single_layer_with_states(cell, bi):
    layer = CELLS[cell](5, return_sequences=True, return_state=True, input_size=3, seed=4,
                        use_bias=not bi)
    if bi:
        layer = fr.Bidirectional(layer)
    x = np.random.default_rng(4).standard_normal((2, 6, 3)).astype(np.float32)
    outs = run_ort(exported(layer), {"input": x})
    ref = layer(x)
    assert len(outs) == len(ref)
    for a, b in zip(outs, ref):
        np.testing.assert_allclose(a, b, **TOL)


def test_export_relu_rnn_and_2d_dense():
    model = fr.Sequential([fr.Input((None, 3)), fr.SimpleRNN(6, activation="relu", seed=0),
                           fr.Dense(4, activation="tanh", seed=1),
                           fr.Dense(2, activation="sigmoid", use_bias=False, seed=2)])
    x = np.random.default_rng(5).standard_normal((3, 5, 3)).astype(np.float32)
    (y,) = run_ort(exported(model), {"input": x})
    np.testing.assert_allclose(y, model.predict(x), **TOL)


def test_export_float64_model_as_float32_runs_in_onnxruntime():
    layer = fr.LSTM(4, input_size=3, dtype="float64", seed=0)
    x = np.random.default_rng(6).standard_normal((2, 5, 3))
    (y,) = run_ort(exported(layer, dtype="float32"), {"input": x.astype(np.float32)})
    np.testing.assert_allclose(y, layer(x), **TOL)
    assert fo.to_onnx(layer).graph.initializer[0].data_type == TensorProto.DOUBLE


def test_export_to_path_and_file_object(tmp_path):
    model = stacked("gru", "forward")
    path = tmp_path / "m.onnx"
    proto = fo.export(model, path)
    with open(tmp_path / "f.onnx", "wb") as fh:
        fo.export(model, fh)
    assert path.read_bytes() == (tmp_path / "f.onnx").read_bytes() == proto.SerializeToString()
    back = fo.load_model(str(path))
    with open(path, "rb") as fh:
        back2 = fo.load_model(fh)
    x = np.random.default_rng(7).standard_normal((2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    np.testing.assert_array_equal(back2.predict(x), model.predict(x))


def test_export_refusals_write_nothing(tmp_path):
    path = tmp_path / "never.onnx"
    with pytest.raises(ValueError, match="layer 0 \\(LSTM\\) is not built"):
        fo.export(fr.Sequential([fr.LSTM(3)]), path)
    with pytest.raises(TypeError, match="must be a fastrnn Sequential"):
        fo.export("model", path)
    reversed_mask = fr.Sequential([
        fr.Embedding(5, 3, mask_zero=True, seed=0),
        fr.GRU(4, return_sequences=True, go_backwards=True, seed=1), fr.GRU(2, seed=2)])
    reversed_mask.predict(np.ones((1, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="time-reversed mask"):
        fo.export(reversed_mask, path)
    with pytest.raises(ValueError, match="opset must be an int >= 14"):
        fo.export(stacked("rnn", "forward"), path, opset=9)
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# ONNX -> fastrnn
# ---------------------------------------------------------------------------------------------

def onnx_weights(cell, D, I, H, rng, bias=True):
    G = GATES[cell]
    w = {"W": rng.uniform(-0.6, 0.6, (D, G * H, I)), "R": rng.uniform(-0.6, 0.6, (D, G * H, H))}
    if bias:
        w["B"] = rng.uniform(-0.4, 0.4, (D, 2 * G * H))
    return {k: v.astype(np.float32) for k, v in w.items()}


def one_node_graph(cell, direction, I, H, weights, *, lens=False, init=False, extra_inputs=(),
                   **attrs):
    """A bare time-major RNN/LSTM/GRU node, as other exporters write it."""
    D = 2 if direction == "bidirectional" else 1
    if cell == "gru":
        attrs.setdefault("linear_before_reset", 1)
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    ins = ["X", "W", "R", "B" if "B" in weights else "", "lens" if lens else "",
           "h0" if init else ""]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I])]
    if lens:
        graph_inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["N"]))
    if init:
        graph_inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [D, "N", H]))
        if cell == "lstm":
            ins.append("c0")
            graph_inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT,
                                                              [D, "N", H]))
    for name, arr in extra_inputs:
        while len(ins) < 7:
            ins.append("")
        ins.append(name)
        inits.append(numpy_helper.from_array(arr, name))
    while ins[-1] == "":
        ins.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    node = helper.make_node(OPS[cell], ins, outs, name="rnn0", hidden_size=H,
                            direction=direction, **attrs)
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                               for o in outs], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_one_node_graph_imports_as_layer(cell, direction):
    rng = np.random.default_rng(10)
    I, H, N, T = 3, 4, 3, 6
    D = 2 if direction == "bidirectional" else 1
    proto = one_node_graph(cell, direction, I, H, onnx_weights(cell, D, I, H, rng), lens=True,
                           init=True)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    lens = np.array([6, 2, 4], dtype=np.int32)
    h0 = rng.standard_normal((D, N, H)).astype(np.float32)
    feeds = {"X": x, "lens": lens, "h0": h0}
    init = [h0[d] for d in range(D)]
    if cell == "lstm":
        c0 = rng.standard_normal((D, N, H)).astype(np.float32)
        feeds["c0"] = c0
        init = [s for d in range(D) for s in (h0[d], c0[d])]
    outs = run_ort(proto, feeds)
    layer = fo.load_model(proto.SerializeToString())
    assert isinstance(layer, fr.Bidirectional if D == 2 else CELLS[cell])
    mask = np.arange(T)[None, :] < lens[:, None]
    got = layer(x.transpose(1, 0, 2), mask=mask,
                initial_state=init if D == 2 or cell == "lstm" else init[0])
    y = got[0]
    if direction == "reverse":           # go_backwards returns the processing order
        y = y[:, ::-1]
        valid = mask[:, ::-1][:, ::-1]
    else:
        valid = mask
    Y = outs[0].transpose(2, 0, 1, 3).reshape(N, T, D * H)
    np.testing.assert_allclose(y[valid], Y[valid], **TOL)      # padded steps: conventions differ
    states = got[1:]
    n = 2 if cell == "lstm" else 1
    for d in range(D):
        np.testing.assert_allclose(states[d * n], outs[1][d], **TOL)
        if cell == "lstm":
            np.testing.assert_allclose(states[d * n + 1], outs[2][d], **TOL)


def stacked_graph(cell, rng, I=3, H=(5, 4), bidirectional_first=True):
    """PyTorch-style time-major stack: node -> Transpose+Reshape (or Squeeze) -> node -> Y_h."""
    nodes, inits = [], []
    x = "X"
    in_size = I
    for k, h in enumerate(H):
        D = 2 if (k == 0 and bidirectional_first) else 1
        w = onnx_weights(cell, D, in_size, h, rng)
        names = [f"{n}{k}" for n in w]
        inits += [numpy_helper.from_array(v, f"{n}{k}") for n, v in w.items()]
        attrs = dict(hidden_size=h, direction="bidirectional" if D == 2 else "forward")
        if cell == "gru":
            attrs["linear_before_reset"] = 1
        outs = [f"Y{k}", f"Yh{k}"] + ([f"Yc{k}"] if cell == "lstm" else [])
        nodes.append(helper.make_node(OPS[cell], [x] + names, outs, name=f"rnn{k}", **attrs))
        last = k == len(H) - 1
        if last:
            inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axlast"))
            nodes.append(helper.make_node("Squeeze", [f"Yh{k}", "axlast"], ["h_last"]))
        elif D == 2:
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "shp"))
            nodes.append(helper.make_node("Transpose", [f"Y{k}"], [f"t{k}"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [f"t{k}", "shp"], [f"x{k}"]))
        else:
            inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), f"ax{k}"))
            nodes.append(helper.make_node("Squeeze", [f"Y{k}", f"ax{k}"], [f"x{k}"]))
        x = f"x{k}"
        in_size = D * h
    inits.append(numpy_helper.from_array(rng.uniform(-1, 1, (H[-1], 2)).astype(np.float32),
                                         "Wd"))
    inits.append(numpy_helper.from_array(rng.uniform(-1, 1, (1, 2)).astype(np.float32), "bd"))
    nodes += [helper.make_node("Gemm", ["h_last", "Wd", "bd"], ["z"]),
              helper.make_node("Sigmoid", ["z"], ["out"])]
    graph = helper.make_graph(nodes, "stack",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                             ["T", "N", I])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bi", [False, True])
def test_multi_layer_time_major_graph_imports_as_sequential(cell, bi):
    rng = np.random.default_rng(11)
    proto = stacked_graph(cell, rng, bidirectional_first=bi)
    model = fo.load_model(proto)
    kinds = [type(l).__name__ for l in model.layers]
    first = "Bidirectional" if bi else CELLS[cell].__name__
    assert kinds == [first, CELLS[cell].__name__, "Dense"]
    assert model.layers[-1].activation == "sigmoid"
    x = rng.standard_normal((7, 3, 3)).astype(np.float32)
    (y,) = run_ort(proto, {"X": x})
    np.testing.assert_allclose(model.predict(x.transpose(1, 0, 2)), y, **TOL)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("mode", ["forward", "backwards", "bidirectional"])
def test_export_then_import_is_exact(cell, mode):
    model = stacked(cell, mode, seed=20)
    x = np.random.default_rng(12).standard_normal((3, 5, 3)).astype(np.float32)
    proto = fo.to_onnx(model)
    back = fo.load_model(proto)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    del proto.metadata_props[:]         # read as a foreign graph: structure from the nodes only
    foreign = fo.load_model(proto)
    assert [type(l).__name__ for l in foreign.layers] == \
        [type(l).__name__ for l in model.layers if not isinstance(l, fr.Dropout)]
    np.testing.assert_array_equal(foreign.predict(x), model.predict(x))


def test_export_then_import_keeps_masks():
    model = fr.Sequential([fr.Embedding(9, 4, mask_zero=True, seed=0),
                           fr.Bidirectional(fr.LSTM(3, return_sequences=True, seed=1)),
                           fr.GRU(2, seed=2)])
    ids = np.random.default_rng(13).integers(1, 9, (3, 6))
    ids[1, 2:] = 0
    back = fo.load_model(exported(model))
    assert back.layers[0].mask_zero
    np.testing.assert_array_equal(back.predict(ids), model.predict(ids))


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------

def refused(proto, match):
    with pytest.raises(fo.ONNXImportError, match=match):
        fo.load_model(proto.SerializeToString())


def test_refuses_gru_linear_before_reset_0():
    w = onnx_weights("gru", 1, 3, 4, np.random.default_rng(0))
    refused(one_node_graph("gru", "forward", 3, 4, w, linear_before_reset=0),
            "linear_before_reset=0 .*reset_after=False")


def test_refuses_lstm_peepholes():
    rng = np.random.default_rng(0)
    w = onnx_weights("lstm", 1, 3, 4, rng)
    P = rng.standard_normal((1, 12)).astype(np.float32)
    refused(one_node_graph("lstm", "forward", 3, 4, w, extra_inputs=[("P", P)]),
            "peephole weights P are not supported")
    zero = one_node_graph("lstm", "forward", 3, 4, w, extra_inputs=[("P", np.zeros_like(P))])
    assert isinstance(fo.load_model(zero), fr.LSTM)      # zero peepholes are no peepholes


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_refuses_clip(cell):
    w = onnx_weights(cell, 1, 3, 4, np.random.default_rng(0))
    refused(one_node_graph(cell, "forward", 3, 4, w, clip=3.0), "attribute 'clip'")


@pytest.mark.parametrize("cell, acts", [("lstm", ["Relu", "Tanh", "Tanh"]),
                                        ("lstm", ["Sigmoid", "Tanh", "Relu"]),
                                        ("gru", ["HardSigmoid", "Tanh"]),
                                        ("rnn", ["Sigmoid"])])
def test_refuses_non_default_activations(cell, acts):
    w = onnx_weights(cell, 1, 3, 4, np.random.default_rng(0))
    refused(one_node_graph(cell, "forward", 3, 4, w, activations=acts),
            "activations=.* not supported")


def test_refuses_activation_alpha_and_input_forget():
    w = onnx_weights("lstm", 1, 3, 4, np.random.default_rng(0))
    refused(one_node_graph("lstm", "forward", 3, 4, w, activation_alpha=[0.1, 0.1, 0.1]),
            "activation_alpha")
    refused(one_node_graph("lstm", "forward", 3, 4, w, input_forget=1), "input_forget=1")


def test_refuses_foreign_sequence_lens_in_a_stack_and_unknown_ops():
    model = fr.Sequential([fr.Embedding(9, 4, mask_zero=True, seed=0), fr.LSTM(3, seed=1),
                           fr.Dense(2, seed=2)])
    proto = fo.to_onnx(model)
    del proto.metadata_props[:]
    refused(proto, "sequence_lens computed in a graph")
    node = helper.make_node("Conv", ["X", "W"], ["Y"], name="conv0")
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                             [1, 3, 8])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(
                                  np.ones((2, 3, 3), np.float32), "W")])
    refused(helper.make_model(graph), "Conv node 'conv0': operator not supported")


def test_load_model_rejects_garbage():
    with pytest.raises(fo.ONNXImportError, match="not a readable ONNX model"):
        fo.load_model(b"this is not protobuf \xff\xff")
    with pytest.raises(TypeError, match="f must be a path"):
        fo.load_model(3.5)


# ---------------------------------------------------------------------------------------------
# functional models
# ---------------------------------------------------------------------------------------------

def encoder_decoder(cell="lstm"):
    """Two inputs, two outputs, states passed between layers, a masked Bidirectional."""
    cls = CELLS[cell]
    src = fr.Input((None,), dtype="int64", name="src")
    tgt = fr.Input((None, 3), name="tgt")
    e = fr.Embedding(10, 4, mask_zero=True, seed=0)(src)
    outs = fr.Bidirectional(cls(5, return_sequences=True, return_state=True, seed=1))(e)
    seq, states = outs[0], outs[1:]
    enc = fr.GRU(5, seed=2)(seq)
    n = len(states) // 2
    dec = cls(5, return_sequences=True, seed=3)(tgt, initial_state=states[:n]
                                                 if n > 1 else states[0])
    # a masked bidirectional pass with given initial states, returning sequences
    again = fr.Bidirectional(cls(5, return_sequences=True, seed=5))(
        e, initial_state=list(states))
    y = fr.Dense(2, activation="softmax", seed=4)(dec)
    z = fr.Dense(1, seed=6)(fr.GRU(3, seed=7)(again))
    return fr.Model([src, tgt], [y, enc, z])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_functional_model_export_and_import(cell):
    model = encoder_decoder(cell)
    rng = np.random.default_rng(14)
    ids = rng.integers(1, 10, (3, 6))
    ids[0, 3:] = 0
    ids[2, 5:] = 0
    x = rng.standard_normal((3, 4, 3)).astype(np.float32)
    ref = model.predict([ids, x])
    proto = fo.to_onnx(model)
    assert [i.name for i in proto.graph.input] == ["src", "tgt"]
    outs = run_ort(proto, {"src": ids, "tgt": x})
    assert len(outs) == len(ref) == 3
    for a, b in zip(outs, ref):
        np.testing.assert_allclose(a, b, **TOL)
    back = fo.load_model(proto)
    assert isinstance(back, fr.Model) and not isinstance(back, fr.Sequential)
    for a, b in zip(back.predict([ids, x]), ref):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("merge", ["Concatenate", "Add", "Subtract", "Multiply", "Average"])
def test_functional_merges_export(merge):
    if not hasattr(fr, merge):
        pytest.skip(f"this fastrnn has no {merge}")
    ids = fr.Input((None,), dtype="int64", name="ids")
    e = fr.Embedding(10, 4, mask_zero=True, seed=0)(ids)
    a = fr.LSTM(3, return_sequences=True, seed=1)(e)
    b = fr.GRU(3, return_sequences=True, go_backwards=False, seed=2)(e)
    m = getattr(fr, merge)()([a, b])
    out = fr.Dense(2, seed=4)(fr.SimpleRNN(2, seed=3)(m))
    model = fr.Model(ids, out)
    x = np.random.default_rng(17).integers(1, 10, (3, 6))
    x[1, 3:] = 0
    (y,) = run_ort(fo.to_onnx(model), {"ids": x})
    np.testing.assert_allclose(y, model.predict(x), **TOL)
    np.testing.assert_array_equal(fo.load_model(fo.to_onnx(model)).predict(x), model.predict(x))


def test_functional_export_refuses_attention():
    if not hasattr(fr, "Attention"):
        pytest.skip("this fastrnn has no Attention")
    q = fr.Input((None, 3))
    v = fr.Input((None, 3))
    model = fr.Model([q, v], fr.Attention()([q, v]))
    with pytest.raises(ValueError, match="Attention .* has no ONNX translation yet"):
        fo.to_onnx(model)


ACTS = ["linear", "relu", "relu6", "leaky_relu", "tanh", "sigmoid", "hard_sigmoid", "softplus",
        "softsign", "elu", "selu", "swish", "gelu", "exponential", "softmax", "log_softmax"]


def test_export_activation_and_time_distributed_layers():
    from fastrnn.layers import Activation, TimeDistributed
    x = np.random.default_rng(15).standard_normal((3, 5, 3)).astype(np.float32)
    for act in ACTS:
        model = fr.Sequential([fr.Input((None, 3)), fr.GRU(4, return_sequences=True, seed=0),
                               TimeDistributed(fr.Dense(3, seed=1)), Activation(act)])
        (y,) = run_ort(exported(model), {"input": x})
        np.testing.assert_allclose(y, model.predict(x), rtol=2e-5, atol=5e-6, err_msg=act)
        back = fo.load_model(exported(model))
        np.testing.assert_array_equal(back.predict(x), model.predict(x))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_imports_pytorch_exported_stacks(kind, bi, batch_first):
    """Graphs from PyTorch's TorchScript exporter: zero initial states built from Shape /
    ConstantOfShape / Slice, bidirectional outputs through Transpose + Reshape, bias + MatMul."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=bi,
                                               batch_first=batch_first)
            self.out = torch.nn.Linear(8 if bi else 4, 2)

        def forward(self, x):
            return torch.tanh(self.out(self.rnn(x)[0]))

    buf = io.BytesIO()
    try:
        torch.onnx.export(Net().eval(), (torch.randn(2, 5, 3),), buf, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "a", 1: "b"}})
    except Exception as exc:          # the exporter needs packages a minimal torch may lack
        pytest.skip(f"torch.onnx.export unavailable: {exc}")
    x = np.random.default_rng(16).standard_normal((3, 6, 3)).astype(np.float32)
    (want,) = run_ort(buf.getvalue(), {"x": x})
    model = fo.load_model(buf.getvalue())
    first = "Bidirectional" if bi else CELLS[kind.lower()].__name__
    assert [type(l).__name__ for l in model.layers] == [first, first, "Dense"]
    if batch_first:
        got = model.predict(x)
    else:                             # the imported model is batch-first
        got = model.predict(x.transpose(1, 0, 2)).transpose(1, 0, 2)
    np.testing.assert_allclose(got, want, **TOL)
