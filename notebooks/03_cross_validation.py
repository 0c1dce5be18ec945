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
# # 3 — Cross-validating a cell against a reference solver
#
# A recurrent cell that claims to be "RK4 with dt = 0.1" should *be* RK4: its global error
# against a tight reference solution must shrink like $\Delta t^4$.  `ob.validate` steps a
# method or a torch cell along a problem at halving step sizes, compares every step with the
# reference backend (Julia's DifferentialEquations.jl when installed, SciPy + mpmath otherwise)
# and estimates the observed order.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

import odernn_bridge as ob
from odernn_bridge.cells import RKCell, make_field
# `validate` is `ob.validate`; imported from its module because importing the submodule
# `odernn_bridge.validate` rebinds the package attribute `ob.validate` to that module
from odernn_bridge.validate import validate, validate_sweep

from _common import FAST, show  # notebooks/_common.py: settings and the figure helper

BACKEND = os.environ.get("ODERNN_BACKEND", "auto")
torch.manual_seed(0)


# %% [markdown]
# ## A method on Van der Pol

# %%
ds = validate("RK4", "vanderpol", backend=BACKEND, n_dts=4 if FAST else 6)
print(f"observed order {float(ds.observed_order):.2f} (nominal {int(ds.nominal_order)}), "
      f"verdict: {ds.attrs['verdict']}, backend: {ds.attrs.get('backend')}")
ds

# %% [markdown]
# ## A torch cell, on its own vector field
#
# `problem="field"` integrates the cell's own field, driven by a seeded input sequence, with the
# reference solver — so this checks the PyTorch code path end to end (float64).

# %%
cells = {name: RKCell(make_field("elman", 3, 6, dtype=torch.float64), name, dt=0.5)
         for name in ([m for m in ("Euler", "Midpoint", "RK4") if m in ob.list_methods()])}
results = {name: validate(cell, "field", backend=BACKEND, n_dts=4 if FAST else 6) for name, cell in cells.items()}
for name, r in results.items():
    print(f"{name:>9}: observed order {float(r.observed_order):.2f}, nominal {int(r.nominal_order)}, "
          f"verdict {r.attrs['verdict']}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, r in results.items():
    axes[0].loglog(r.dt, r.final_error, "o-", label=f"{name} cell (p≈{float(r.observed_order):.2f})")
axes[0].loglog(ds.dt, ds.final_error, "k^--", label=f"RK4 on Van der Pol (p≈{float(ds.observed_order):.2f})")
axes[0].set(xlabel="dt", ylabel="final global error", title="convergence against the reference")
axes[0].legend(fontsize=8)
r = results[list(results)[-1]]
for d in r.dt.values:
    axes[1].semilogy(r.time.sel(dt=d), r.global_error.sel(dt=d), label=f"dt={d:g}")
axes[1].set(xlabel="t", ylabel="global error", title=f"{list(results)[-1]} cell: error along the trajectory")
axes[1].legend(fontsize=8)
show(fig, "03_cell_convergence.png")

# %% [markdown]
# ## A sweep over methods

# %%
methods = [m for m in ob.list_methods("explicit")][: 4 if FAST else None]
sweep = validate_sweep(methods, "vanderpol", backend=BACKEND, progress=False, n_dts=4 if FAST else 6)
fig, ax = plt.subplots(figsize=(5.5, 4))
x = np.arange(sweep.sizes["method"])
ax.bar(x - 0.2, sweep.nominal_order, width=0.4, label="nominal")
ax.bar(x + 0.2, sweep.observed_order, width=0.4, label="observed")
ax.set_xticks(x, [str(m) for m in sweep.method.values], rotation=45)
ax.set(ylabel="order", title="claimed vs observed order (Van der Pol)")
ax.legend()
show(fig, "03_order_sweep.png")
