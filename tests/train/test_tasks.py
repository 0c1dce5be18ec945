"""Tasks: shapes, fixed splits, determinism, and the defining property of each target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from odernn_bridge.train import get_task, list_tasks


def test_list_tasks() -> None:
    assert list_tasks() == ["adding", "copy", "digits", "dynamics", "pdigits"]


def test_digits_splits_are_disjoint_and_normalised() -> None:
    t = get_task("digits")
    xs = [getattr(t, s).tensors[0] for s in ("train", "val", "test")]
    assert [len(x) for x in xs] == [1258, 180, 359]  # 1797 digits: 10 % val, 20 % test
    assert all(x.shape[1:] == (64, 1) for x in xs)
    # training statistics: mean 0, std 1 (float32 rounding only)
    assert abs(float(xs[0].mean())) < 1e-5 and abs(float(xs[0].std()) - 1) < 1e-3
    # no sample shared between splits (rows of the raw data are unique up to a few duplicates,
    # so compare via indices of a regenerated split)
    flat = [x.reshape(len(x), -1).numpy() for x in xs]
    train_rows = {r.tobytes() for r in flat[0]}
    overlap = sum(r.tobytes() in train_rows for r in flat[2])
    assert overlap <= 2  # load_digits contains a handful of exact duplicate images


def test_pdigits_is_a_fixed_permutation_of_digits() -> None:
    a, b = get_task("digits"), get_task("pdigits")
    xa, xb = a.train.tensors[0][:, :, 0], b.train.tensors[0][:, :, 0]
    perm = np.random.default_rng(1234).permutation(64)
    assert torch.equal(xa[:, perm], xb)
    assert torch.equal(a.train.tensors[1], b.train.tensors[1])
    assert torch.equal(get_task("pdigits").train.tensors[0][:, :, 0], xb)  # deterministic


def test_adding_target_is_sum_of_marked_values() -> None:
    t = get_task("adding", seq_len=12, n_train=50, n_val=5, n_test=5, seed=3)
    x, y = t.train.tensors
    assert x.shape == (50, 12, 2) and y.shape == (50, 1)
    assert torch.all(x[:, :, 1].sum(1) == 2)
    expected = (x[:, :, 0] * x[:, :, 1]).sum(1, keepdim=True)
    assert torch.allclose(y, expected, atol=1e-6)
    assert torch.equal(get_task("adding", seq_len=12, n_train=50, n_val=5, n_test=5, seed=3).train.tensors[0], x)


def test_copy_target_repeats_the_first_symbols() -> None:
    t = get_task("copy", k=4, delay=6, n_train=20, n_val=2, n_test=2)
    x, y = t.train.tensors
    assert x.shape == (20, 14, 10) and y.shape == (20, 14)
    symbols = x[:, :4].argmax(-1)
    assert torch.equal(y[:, -4:], symbols)
    assert torch.all(y[:, :-4] == 0)
    assert torch.all(x[:, 4 + 6 - 1].argmax(-1) == 9)  # the delimiter
    # a perfect prediction scores 100 %, blanks everywhere scores 0 % on the scored steps
    perfect = torch.nn.functional.one_hot(y, 10).float()
    assert t.correct(perfect, y) == (80, 80)
    assert t.correct(torch.nn.functional.one_hot(torch.zeros_like(y), 10).float(), y) == (0, 80)


@pytest.mark.parametrize("irregular", [False, True])
def test_dynamics_targets_are_the_next_inputs(irregular: bool) -> None:
    t = get_task("dynamics", system="vanderpol", n_points=20, n_train=6, n_val=2, n_test=2, irregular=irregular)
    x, y = t.train.tensors
    d = 2
    assert x.shape == (6, 19, d + int(irregular)) and y.shape == (6, 19, d)
    # one-step-ahead: the target at k is the input state at k+1 (to float32 rounding)
    assert torch.allclose(y[:, :-1], x[:, 1:, :d], atol=1e-6)
    if irregular:
        gaps = x[:, :, d]
        assert torch.all(gaps > 0) and not torch.allclose(gaps, gaps[:, :1].expand_as(gaps))
    assert 0 < t.attrs["persistence_loss"] < 1


def test_dynamics_lorenz_and_lotka_volterra() -> None:
    lz = get_task("dynamics", system="lorenz", n_points=10, n_train=3, n_val=1, n_test=1)
    lv = get_task("dynamics", system="lotka_volterra", n_points=10, n_train=3, n_val=1, n_test=1)
    assert lz.output_size == 3 and lv.output_size == 2
    # Lotka–Volterra populations stay positive: destandardise and check
    mean, std = np.array(lv.attrs["state_mean"]), np.array(lv.attrs["state_std"])
    states = lv.train.tensors[0].numpy() * std + mean
    assert np.all(states > 0)


@pytest.mark.parametrize("name,kw,arg", [
    ("nope", {}, "task"),
    ("adding", {"seq_len": 0}, "seq_len"),
    ("copy", {"k": -1}, "k"),
    ("dynamics", {"system": "kepler3"}, "system"),
    ("digits", {"val_fraction": 0.9}, "val_fraction"),
    ("adding", {"bogus": 1}, "bogus"),
])
def test_bad_task_arguments_are_named(name: str, kw: dict, arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        get_task(name, **kw)
