"""End-to-end training parity: a fastrnn LSTM -> Dense model trained with train_on_batch
takes the same steps (per-step losses and final weights) as its PyTorch twin."""

import warnings

import numpy as np
import pytest

import fastrnn as fr

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # tiny problem: thread wake-ups would dominate on a busy machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


warnings.filterwarnings("ignore", message=".*compiled kernels are not built.*")

I, H, O, T, B, STEPS = 3, 5, 2, 7, 4, 20


class TorchTwin(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.lstm = torch.nn.LSTM(I, H, batch_first=True).to(dtype)
        self.fc = torch.nn.Linear(H, O).to(dtype)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y[:, -1, :])


def _pair(dtype, seed=0):
    model = fr.Sequential([fr.LSTM(H, input_size=I, dtype=dtype, seed=seed + 1),
                           fr.Dense(O, dtype=dtype, seed=seed + 2)])
    model.build((None, T, I))
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    twin = TorchTwin(tdtype)
    lstm, dense = model.layers
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(twin.lstm, name + "_l0").copy_(torch.from_numpy(lstm.params[name].copy()))
        twin.fc.weight.copy_(torch.from_numpy(dense.params["weight"].copy()))
        twin.fc.bias.copy_(torch.from_numpy(dense.params["bias"].copy()))
    return model, twin


def _torch_params_in_fastrnn_order(twin):
    return [twin.lstm.weight_ih_l0, twin.lstm.weight_hh_l0, twin.lstm.bias_ih_l0,
            twin.lstm.bias_hh_l0, twin.fc.weight, twin.fc.bias]


def _clip_global(params, c):
    total = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)).item()
    if total > c:
        for p in params:
            p.grad.mul_(c / total)


def _clip_each(params, c):
    for p in params:
        n = torch.linalg.vector_norm(p.grad.double()).item()
        if n > c:
            p.grad.mul_(c / n)


CASES = {
    "sgd-momentum": (lambda: fr.optimizers.SGD(lr=0.1, momentum=0.9),
                     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), None),
    "sgd-nesterov-wd": (lambda: fr.optimizers.SGD(lr=0.05, momentum=0.8, nesterov=True,
                                                  weight_decay=0.01),
                        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True,
                                                   weight_decay=0.01), None),
    "adam": (lambda: fr.optimizers.Adam(lr=0.01),
             lambda ps: torch.optim.Adam(ps, lr=0.01), None),
    "adam-globalclip": (lambda: fr.optimizers.Adam(lr=0.02, amsgrad=True,
                                                   global_clipnorm=0.05),
                        lambda ps: torch.optim.Adam(ps, lr=0.02, amsgrad=True),
                        lambda ps: _clip_global(ps, 0.05)),
    "adamw-clipnorm": (lambda: fr.optimizers.AdamW(lr=0.01, clipnorm=0.02),
                       lambda ps: torch.optim.AdamW(ps, lr=0.01),
                       lambda ps: _clip_each(ps, 0.02)),
    "rmsprop-centered": (lambda: fr.optimizers.RMSprop(lr=0.005, momentum=0.5,
                                                       centered=True),
                         lambda ps: torch.optim.RMSprop(ps, lr=0.005, momentum=0.5,
                                                        centered=True), None),
    "adagrad": (lambda: fr.optimizers.Adagrad(lr=0.05, lr_decay=0.01),
                lambda ps: torch.optim.Adagrad(ps, lr=0.05, lr_decay=0.01), None),
}


def _run(case, dtype):
    make_ours, make_theirs, clip = CASES[case]
    model, twin = _pair(dtype)
    model.compile(optimizer=make_ours(), loss="mse")
    tparams = _torch_params_in_fastrnn_order(twin)
    topt = make_theirs(tparams)
    rng = np.random.default_rng(42)
    ours, theirs = [], []
    for _ in range(STEPS):
        x = rng.standard_normal((B, T, I)).astype(dtype)
        y = rng.standard_normal((B, O)).astype(dtype)
        ours.append(model.train_on_batch(x, y))
        topt.zero_grad()
        loss = torch.nn.functional.mse_loss(twin(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        if clip is not None:
            clip(tparams)
        topt.step()
        theirs.append(loss.item())
    final = [p.detach().numpy() for p in tparams]
    return model, np.array(ours), np.array(theirs), final


@pytest.mark.parametrize("case", sorted(CASES))
def test_float64_training_matches_torch(case):
    model, ours, theirs, final = _run(case, "float64")
    # the losses move: this is a real training run, not a constant
    assert abs(ours[0] - ours[-1]) > 1e-3 * abs(ours[0])
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0)
    for (name, p), ref in zip(model.params(), final):
        np.testing.assert_allclose(p, ref, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", ["sgd-momentum", "adam"])
def test_float32_training_matches_torch(case):
    model, ours, theirs, final = _run(case, "float32")
    for _, p in model.params():
        assert p.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=0)
    for (name, p), ref in zip(model.params(), final):
        np.testing.assert_allclose(p, ref, rtol=1e-4, atol=1e-5, err_msg=name)
