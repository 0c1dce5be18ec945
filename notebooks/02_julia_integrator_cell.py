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
# # 2 — A Julia integrator as a recurrent cell
#
# With Julia installed, `ob.get_method("julia:Feagin14")` reads the tableau of
# OrdinaryDiffEq.jl's 14th-order Feagin method from Julia itself; the same object then drives
# a PyTorch `RKCell`.  Without Julia the call raises `ob.JuliaUnavailableError` (within a
# second, saying how to install it) and this notebook falls back to the highest-order explicit
# method of the built-in catalogue — everything below works with either.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import odernn_bridge as ob
from odernn_bridge.cells import RKCell, make_field

from _common import FAST, show  # notebooks/_common.py: settings and the figure helper

torch.manual_seed(0)


# %%
try:
    method = ob.get_method("julia:Feagin14")
    source = "Julia (OrdinaryDiffEq.jl)"
except ob.JuliaUnavailableError as exc:
    print(f"Julia unavailable, using the catalogue instead:\n  {exc}")
    explicit = ob.list_methods("explicit")
    if "Feagin14" in explicit:
        method = ob.get_method("Feagin14")
    else:  # the highest-order explicit method we have
        method = max((ob.get_method(n) for n in explicit), key=lambda m: (m.order, -m.stages))
    source = "built-in catalogue"
print(f"method {method.name}: order {method.order}, {method.stages} stages, {method.kind} — from {source}")

# %% [markdown]
# ## The cell
#
# A small Elman field $f(h, x) = \tanh(Wh + Ux + b)$ in float64; one `RKCell` step integrates
# $\dot h = f(h, x)$ over `dt` with the chosen tableau.  `substeps` splits each step.

# %%
H, T = 8, 12 if FAST else 40
field = make_field("elman", 2, H, dtype=torch.float64)
with torch.no_grad():
    field.W.weight.mul_(2.0)  # a livelier field: larger Jacobian, visible integration errors
x = torch.randn(T, 1, 2, dtype=torch.float64)
dt = 0.5


def run(cell, x):
    h = torch.zeros(1, H, dtype=torch.float64)
    states = []
    for xt in x:
        h = cell(xt, h)
        states.append(h)
    return torch.stack(states)[:, 0]


with torch.no_grad():
    reference = run(RKCell(field, method, dt=dt, substeps=64), x)
    euler = run(RKCell(field, "Euler", dt=dt), x)
    high = run(RKCell(field, method, dt=dt), x)
print("max |Euler − reference| =", float((euler - reference).abs().max()))
print(f"max |{method.name} − reference| =", float((high - reference).abs().max()))

fig, ax = plt.subplots(figsize=(7, 3.5))
t = dt * np.arange(1, T + 1)
for i in range(3):
    ax.plot(t, reference[:, i], "k-", lw=2, alpha=0.3, label="reference (64 substeps)" if i == 0 else None)
    ax.plot(t, euler[:, i], "--", color=f"C{i}", label="Euler" if i == 0 else None)
    ax.plot(t, high[:, i], ".", color=f"C{i}", label=method.name if i == 0 else None)
ax.set(xlabel="t", ylabel="h_i(t)", title="hidden states: a high-order cell follows the ODE")
ax.legend(fontsize=8)
show(fig, "02_hidden_states.png")

# %% [markdown]
# ## Its convergence order, measured through the cell
#
# Halving the internal step (more substeps) shrinks the error by $2^p$ for a method of order
# $p$, until float64 round-off takes over.

# %%
subs = [1, 2, 4, 8] if FAST else [1, 2, 4, 8, 16]
errors = {}
for name in dict.fromkeys(["Euler", "Midpoint", "RK4", method.name]):
    m = method if name == method.name else ob.get_method(name)
    with torch.no_grad():
        fine = run(RKCell(field, m, dt=dt, substeps=128), x)
        errors[name] = [float((run(RKCell(field, m, dt=dt, substeps=s), x) - fine).abs().max()) for s in subs]
fig, ax = plt.subplots(figsize=(5.5, 4))
hs = dt / np.array(subs)
for name, err in errors.items():
    err = np.maximum(err, 1e-16)
    ok = np.flatnonzero(err > 1e-11)[-2:]  # the two smallest steps above float64 round-off
    slope = np.polyfit(np.log(hs[ok]), np.log(err[ok]), 1)[0] if len(ok) == 2 else np.nan
    ax.loglog(hs, err, "o-", label=f"{name} (slope {slope:.1f})")
ax.set(xlabel="internal step dt/substeps", ylabel="max error vs 128 substeps", title="order seen through the cell")
ax.legend(fontsize=8)
show(fig, "02_cell_convergence.png")

# %% [markdown]
# ## Its stability region next to RK4's

# %%
shown = [m for m in dict.fromkeys(["RK4", method.name])]
fig = ob.plot_stability_regions([method if n == method.name else n for n in shown], real=(-8, 2), imag=(-7, 7),
                                resolution=161 if FAST else 401)
show(fig, "02_stability_region.png")
