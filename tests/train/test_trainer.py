"""Trainer: exact resume, atomic checkpoints, NaN detection, history, schedules, early stopping."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from odernn_bridge import NonFiniteError
from odernn_bridge.io import open_dataset
from odernn_bridge.train import TrainConfig, Trainer, load_checkpoint

SMALL_ADDING = {"seq_len": 10, "n_train": 96, "n_val": 32, "n_test": 32}
ODERNN_SMALL = {"model": "odernn", "method": "RK4", "dt": 0.5, "field": "antisymmetric"}


def small_config(**kw) -> TrainConfig:
    base = dict(task="adding", task_options=SMALL_ADDING, model="lstm", hidden=8, epochs=2, batch_size=16,
                lr=1e-2, scheduler="none", progress=False, monitor_every=0)
    base.update(kw)
    return TrainConfig(**base)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# two stacked layers with dropout between them: the resumed run must also restore torch's RNG
RESUME_CASES = {
    "lstm-dropout-onecycle": dict(num_layers=2, dropout=0.3, scheduler="onecycle"),
    "odernn-rk4-cosine": dict(**ODERNN_SMALL, num_layers=2, dropout=0.3, scheduler="cosine"),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_after_max_steps_gives_identical_weights(tmp_path: Path, case: str) -> None:
    kw = RESUME_CASES[case]
    full = Trainer(small_config(**kw), tmp_path / "full").fit()
    assert full.stopped == "completed" and full.summary["steps"] == 12  # 2 epochs × 6 batches

    # stop mid-epoch (step 8 of 12 is batch 2 of epoch 2), then continue in a fresh Trainer
    part = Trainer(small_config(**kw, max_steps=8), tmp_path / "part").fit()
    assert part.stopped == "max_steps" and part.summary["steps"] == 8
    assert not any(torch.equal(a, b) for a, b in zip(weights(part.model).values(), weights(full.model).values())
                   if a.numel() > 1)
    resumed = Trainer(small_config(**kw), tmp_path / "part").fit(resume=True)
    assert resumed.stopped == "completed"
    assert_same_weights(weights(resumed.model), weights(full.model))
    # the histories agree too (losses bit for bit; wall times naturally differ)
    assert resumed.history.loss.values.tolist() == full.history.loss.values.tolist()
    assert resumed.history.val_loss.values.tolist() == full.history.val_loss.values.tolist()


def test_resume_after_exception_in_callback(tmp_path: Path) -> None:
    cfg = small_config(checkpoint_every=3, epochs=3)
    full = Trainer(cfg, tmp_path / "full").fit()

    class Boom(RuntimeError):
        pass

    def explode(trainer: Trainer, record: dict) -> None:
        if record["step"] == 14:
            raise Boom("simulated crash")

    with pytest.raises(Boom):
        Trainer(cfg, tmp_path / "crash", callbacks=[explode]).fit()
    ck = load_checkpoint(tmp_path / "crash" / "checkpoint.pt")
    assert ck["loop"]["global_step"] == 12  # the last multiple of checkpoint_every before the crash
    resumed = Trainer(cfg, tmp_path / "crash").fit(resume=True)
    assert_same_weights(weights(resumed.model), weights(full.model))


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        Trainer(small_config(), tmp_path / "nothing").fit(resume=True)


def test_history_dataset_and_files(tmp_path: Path) -> None:
    res = Trainer(small_config(), tmp_path / "run").fit()
    for name in ("config.json", "checkpoint.pt", "history.nc", "model.pt", "summary.json"):
        assert (tmp_path / "run" / name).is_file(), name
    ds = open_dataset(tmp_path / "run" / "history.nc")
    assert ds.sizes == {"step": 12, "epoch": 2}
    assert ds.step.values.tolist() == list(range(1, 13)) and ds.epoch.values.tolist() == [1, 2]
    assert ds.epoch_end_step.values.tolist() == [6, 12]
    for v in ("loss", "grad_norm", "lr"):
        assert ds[v].dims == ("step",)
    for v in ("train_loss", "val_loss", "test_loss"):
        assert ds[v].dims == ("epoch",)
    assert ds.attrs["task"] == "adding" and ds.attrs["model"] == "lstm"
    # the saved history equals the in-memory one; the epoch train loss is the mean batch loss
    assert ds.loss.values.tolist() == res.history.loss.values.tolist()
    first_epoch = ds.loss.values[:6]
    sizes = [16] * 6
    assert math.isclose(float(ds.train_loss[0]), float((first_epoch * sizes).sum() / 96), rel_tol=1e-12)
    # the untrained output is ≈ 0, so the first loss is ≈ E[y²] ≈ 7/6; 12 Adam steps learn at
    # least the mean of the target (MSE → 1/6 for the constant 1), far below half the start
    assert float(ds.loss[0]) > 0.8 and res.summary["best_test_loss"] < 0.5 * float(ds.loss[0])


def test_gradient_clipping_bounds_the_update(tmp_path: Path) -> None:
    """With clip=c, SGD(lr, no momentum) moves the weights by at most lr·c per step."""
    cfg = small_config(optimizer="sgd", momentum=0.0, lr=0.1, clip=1e-3, epochs=1, max_steps=1)
    tr = Trainer(cfg)
    torch.manual_seed(0)
    tr._build()
    before = torch.cat([p.detach().flatten().clone() for p in tr.model.parameters()])
    res = Trainer(cfg).fit()
    after = torch.cat([p.detach().flatten() for p in res.model.parameters()])
    assert res.history.grad_norm.values[0] > 1e-3  # clipping was active
    assert float((after - before).norm()) <= 0.1 * 1e-3 * (1 + 1e-5)


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = small_config(checkpoint_every=2, epochs=2)

    def poison(trainer: Trainer, record: dict) -> None:
        if record["step"] == 5:
            with torch.no_grad():
                trainer.model.head.weight.fill_(float("nan"))

    with pytest.raises(NonFiniteError, match=r"non-finite training loss.*step 6.*last good checkpoint"):
        Trainer(cfg, tmp_path / "run", callbacks=[poison]).fit()
    ck = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ck["loop"]["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    # the history on disk covers the steps that were taken
    assert open_dataset(tmp_path / "run" / "history.nc").sizes["step"] == 5


def test_diverging_recurrence_raises_nonfinite(tmp_path: Path) -> None:
    """Explicit Euler far outside its stability region blows the state up to Inf/NaN: on the
    leaky field tanh(·) − h it multiplies h by about 1 − dt = −999 per step (40 steps ≫ float32)."""
    cfg = small_config(model="odernn", method="Euler", dt=1e3, field="leaky", hidden=8, epochs=1,
                       task_options={**SMALL_ADDING, "seq_len": 40})

    with pytest.raises(NonFiniteError, match=r"non-finite .* step 1 .*last good checkpoint"):
        Trainer(cfg, tmp_path / "run").fit()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["loop"]["global_step"] == 0


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle", "step", "plateau", "none"])
def test_schedulers(scheduler: str) -> None:
    res = Trainer(small_config(scheduler=scheduler, step_size=1, gamma=0.5, lr=1e-2)).fit()
    lr = res.history.lr.values
    if scheduler == "cosine":
        assert lr[-1] < 1e-12 + 1e-2 * (1 - math.cos(math.pi / 12)) / 2 * 1.01  # ends at 0
    elif scheduler == "onecycle":
        assert lr.max() == pytest.approx(1e-2, rel=0.05) and lr[-1] < 0.05 * lr.max()
    elif scheduler == "step":
        # the learning rate used during each epoch (halved after every epoch)
        assert res.history.epoch_lr.values.tolist() == pytest.approx([1e-2, 5e-3])
    else:
        assert lr[0] == 1e-2


def test_early_stopping(tmp_path: Path) -> None:
    # lr so small that nothing improves: the validation loss stays put, so patience=1
    # stops after the second epoch
    res = Trainer(small_config(epochs=10, patience=1, optimizer="sgd", momentum=0.0, lr=1e-12)).fit()
    assert res.stopped == "early_stopping"
    assert res.summary["epochs_done"] == 2 and res.summary["best_epoch"] == 1
    # resuming an early-stopped run does not train further
    cfg = small_config(epochs=10, patience=1, optimizer="sgd", momentum=0.0, lr=1e-12)
    Trainer(cfg, tmp_path / "run").fit()
    again = Trainer(cfg, tmp_path / "run").fit(resume=True)
    assert again.stopped == "early_stopping" and again.summary["steps"] == 12


@pytest.mark.parametrize("kw,arg", [({"hidden": 0}, "hidden"), ({"lr": -1.0}, "lr"), ({"optimizer": "lbfgs"}, "optimizer"),
                                    ({"scheduler": "warm"}, "scheduler"), ({"model": "transformer"}, "model"),
                                    ({"clip": 0.0}, "clip"), ({"max_steps": 0}, "max_steps"),
                                    ({"dt": float("nan")}, "dt")])
def test_bad_config_is_named(kw: dict, arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        small_config(**kw)


def test_short_digits_training_beats_chance() -> None:
    """3 epochs of a small antisymmetric ODERNN on sequential digits: far above 10 % chance."""
    cfg = TrainConfig(task="digits", **{**ODERNN_SMALL, "method": "Euler", "dt": 0.2}, hidden=48, epochs=3,
                      batch_size=64, lr=5e-3, progress=False, monitor_every=0)
    res = Trainer(cfg).fit()
    # chance is 10.5 % (majority class); 3 epochs reliably reach > 40 % (typically ~55 %)
    assert res.summary["best_test_accuracy"] > 0.4


def test_stability_monitor_metrics_in_history(tmp_path: Path) -> None:
    calls = []

    def monitor(rnn: torch.nn.Module, inputs: torch.Tensor) -> dict[str, float]:
        calls.append(inputs.shape)
        w = next(rnn.parameters())
        return {"weight_norm": float(w.detach().norm()), "not_a_number": "skip me"}

    res = Trainer(small_config(monitor_every=4), monitor=monitor).fit()
    m = res.history["monitor_weight_norm"]
    assert len(calls) == 3  # steps 4, 8, 12
    assert m.dropna("step").step.values.tolist() == [4, 8, 12]
    assert "monitor_not_a_number" not in res.history


def test_theory_stability_monitor_hook(tmp_path: Path) -> None:
    pytest.importorskip("odernn_bridge.theory", reason="theory layer not installed")
    from odernn_bridge.theory import StabilityMonitor  # noqa: F401  (the real hook)

    res = Trainer(small_config(**ODERNN_SMALL, monitor_every=3), tmp_path / "run").fit()
    monitored = [v for v in res.history.data_vars if str(v).startswith("monitor_")]
    assert monitored, "the StabilityMonitor produced no metrics"
    for v in monitored:
        assert res.history[v].dropna("step").step.values.tolist() == [3, 6, 9, 12]
    # the summary carries the latest reading; a fraction is a fraction
    assert res.summary["monitor_step"] == 12 and 0.0 <= res.summary["frac_inside"] <= 1.0
    assert res.summary["frac_inside"] == float(res.history.monitor_frac_inside.sel(step=12))


# --------------------------------------------------------------------------- SIGKILL

_KILL_SCRIPT = textwrap.dedent("""
    import sys
    from odernn_bridge.train import TrainConfig, Trainer
    cfg = TrainConfig(task="adding", task_options={"seq_len": 10, "n_train": 96, "n_val": 32, "n_test": 32},
                      model="lstm", hidden=8, epochs=50, batch_size=16, progress=False, monitor_every=0,
                      checkpoint_every=1)
    Trainer(cfg, sys.argv[1]).fit()
""")


def test_sigkill_during_checkpoint_write_keeps_previous_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "ODERNN_CHECKPOINT_WRITE_DELAY": "0.4", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(run)], env=env)
    try:
        deadline = time.monotonic() + 60
        # wait for a complete checkpoint AND a half-written temporary of the next one
        while time.monotonic() < deadline:
            tmps = list(run.glob(".checkpoint.pt.*.tmp")) if run.is_dir() else []
            if (run / "checkpoint.pt").is_file() and tmps and tmps[0].stat().st_size > 0:
                break
            assert proc.poll() is None, "training ended before the test could interrupt it"
            time.sleep(0.02)
        else:
            pytest.fail("no checkpoint write was observed within 60 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ck = load_checkpoint(run / "checkpoint.pt")  # loads: the previous checkpoint is intact
    assert ck["format"].startswith("odernn_bridge.train.checkpoint")
    leftovers = list(run.glob(".checkpoint.pt.*.tmp"))
    assert leftovers, "the killed write left its temporary file (proves the kill hit mid-write)"
    with pytest.raises(Exception):
        torch.load(leftovers[0], weights_only=True)  # the half-written file is unreadable
    # and the run resumes from it (stale temporaries are cleaned up)
    step = ck["loop"]["global_step"]
    cfg = TrainConfig(task="adding", task_options=SMALL_ADDING, model="lstm", hidden=8, epochs=50, batch_size=16,
                      progress=False, monitor_every=0, checkpoint_every=1, max_steps=step + 2)
    res = Trainer(cfg, run).fit(resume=True)
    assert res.summary["steps"] == step + 2
    assert not list(run.glob(".checkpoint.pt.*.tmp"))


@pytest.mark.parametrize("task,options,classification", [
    ("copy", {"k": 3, "delay": 5, "n_train": 64, "n_val": 16, "n_test": 16}, True),
    ("dynamics", {"system": "lotka_volterra", "n_points": 12, "irregular": True, "n_train": 32, "n_val": 8,
                  "n_test": 8}, False),
    ("pdigits", {}, True),
])
def test_sequence_tasks_train_with_the_odernn(task: str, options: dict, classification: bool) -> None:
    cfg = TrainConfig(task=task, task_options=options, **ODERNN_SMALL, hidden=16, epochs=3, batch_size=16,
                      max_steps=4, progress=False, monitor_every=0)
    tr = Trainer(cfg)
    res = tr.fit()
    assert res.stopped == "max_steps" and res.history.sizes["step"] == 4
    assert ("accuracy" in res.history) == classification
    assert all(math.isfinite(v) for v in res.history.loss.values)
    ev = tr.evaluate("val")
    assert ("accuracy" in ev) == classification and math.isfinite(ev["loss"])
