# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5 — Learnable tableaux under order constraints
#
# A `LearnableRKCell` trains the Butcher coefficients of an explicit method together with the
# network.  After every optimiser step the coefficients are projected back onto the set of
# tableaux that satisfy every rooted-tree order condition up to order $p$,
# $\Phi(t) = 1/\gamma(t)$ for $|t| \le p$ (float64 Gauss–Newton, minimum-norm steps), so the
# cell is an order-$p$ integrator at every step of training.
#
# With 4 stages and order 3 one degree of freedom of the stability polynomial is free:
# $R(z) = 1 + z + z^2/2 + z^3/6 + \alpha_4 z^4$ with $\alpha_4 = b^\top A^3 \mathbb{1}$
# (RK4: $\alpha_4 = 1/24$).  Below, the cell starts from RK4 on sequential digits, with a
# penalty asking for a real stability interval of 4 (RK4 has 2.785), and we watch the
# stability region move epoch by epoch.  (With stages = order = 4 the region could not move:
# every 4-stage order-4 method has RK4's stability polynomial.)

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from torch.utils.data import TensorDataset

import odernn_bridge as ob
from odernn_bridge.train import TrainConfig, Trainer, get_task

from _common import FAST, OUT, show  # notebooks/_common.py: settings and the figure helper

task = get_task("digits")
if FAST:  # the same task, fewer samples
    cut = lambda ds, n: TensorDataset(*(t[:n] for t in ds.tensors))  # noqa: E731
    task.train, task.val, task.test = cut(task.train, 256), cut(task.val, 128), cut(task.test, 128)

cfg = TrainConfig(task="digits", method="learnable", learnable_stages=4, learnable_order=3, learnable_init="RK4",
                  learnable_stability=4.0, learnable_options={"stability_weight": 10.0}, dt=0.5,
                  hidden=16 if FAST else 64, epochs=3 if FAST else 8, batch_size=32 if FAST else 64,
                  lr=1e-2 if FAST else 5e-3, progress=not FAST, monitor_every=0, seed=0)
result = Trainer(cfg, OUT / "runs" / "learnable", task=task).fit()
hist = result.history
s = result.summary
print(f"test accuracy {s['final_test_accuracy']:.3f}; learned tableau verified at order "
      f"{s['tableau_verified_order']}, max order-condition residual {s['tableau_order_residual']:.1e}, "
      f"projection failures {s['tableau_projection_failures']}")

# %% [markdown]
# ## The tableau at every epoch: order, stability intervals, $\alpha_4$
#
# `history.nc` holds the tableau per epoch (`tableau_A(epoch, stage_i, stage_j)`,
# `tableau_b(epoch, stage)`), the order-condition residuals per step, and the stability
# intervals per epoch.  Every recorded tableau is rebuilt here as a `ButcherTableau` and its
# order checked independently by `verify_order` (residuals below $10^{-12}$).

# %%
initial = json.loads(hist.attrs["tableau_initial"])
tableaux = {0: ob.ButcherTableau(initial["tableau_A"], initial["tableau_b"], order=3, name="epoch 0 (RK4)")}
for e in hist.epoch.values:
    A = hist.tableau_A.sel(epoch=e).values
    b = hist.tableau_b.sel(epoch=e).values
    tableaux[int(e)] = ob.ButcherTableau(A.tolist(), b.tolist(), order=3, name=f"epoch {int(e)}")
print(f"{'epoch':>5} {'order':>5} {'alpha_4':>10} {'real interval':>14} {'imag interval':>14}")
for e, tab in tableaux.items():
    alpha4 = float(tab.b @ np.linalg.matrix_power(tab.A, 3) @ np.ones(4))
    print(f"{e:>5} {ob.verify_order(tab, tol=1e-12):>5} {alpha4:>10.5f} "
          f"{ob.real_stability_interval(tab):>14.4f} {ob.imag_stability_interval(tab):>14.4f}")
assert all(ob.verify_order(t, tol=1e-12) >= 3 for t in tableaux.values())

# %% [markdown]
# ## How the stability region moved
#
# The boundary $|R(z)| = 1$ of each epoch's tableau; the region is the inside, and it
# stretches along the negative real axis as the penalty pulls $\alpha_4$ down.

# %%
fig = ob.plot_stability_regions(list(tableaux.values()), real=(-5, 1), imag=(-3.5, 3.5),
                                resolution=241 if FAST else 401, fill=False,
                                title="Stability region of the learned 4-stage order-3 tableau")
show(fig, "05_stability_regions_during_training.png")

# %% [markdown]
# ## Coefficients and the projection, step by step
#
# Left: the weights $b_i$ per epoch.  Right: the largest order-condition residual after each
# optimiser step (before projection) and after the projection — the order conditions hold to
# rounding error throughout training.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
epochs = [0, *hist.epoch.values.tolist()]
bs = np.array([tableaux[e].b for e in tableaux])
for i in range(bs.shape[1]):
    ax1.plot(epochs, bs[:, i], "o-", label=f"$b_{i + 1}$")
ax1.set_xticks(epochs)
ax1.set_xlabel("epoch")
ax1.set_ylabel("weight")
ax1.legend()
ax2.semilogy(hist.step, hist.tableau_residual_before, ".", label="after the optimiser step")
ax2.semilogy(hist.step, np.maximum(hist.tableau_residual, 1e-17), ".", label="after the projection")
ax2.set_xlabel("step")
ax2.set_ylabel(r"max $|\Phi(t) - 1/\gamma(t)|$, $|t| \leq 3$")
ax2.legend()
fig.tight_layout()
show(fig, "05_tableau_trajectory.png")
