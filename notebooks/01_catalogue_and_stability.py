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
# # 1 — The method catalogue and stability regions
#
# Every integrator in `odernn_bridge` is data: a Butcher tableau (or a linear multistep
# method) with exact coefficients, a verified order and a citation.  Its stability function
# $R(z)$ decides which step sizes keep a recurrence $h_{n+1} = h_n + \Delta t\,\Phi(h_n)$
# bounded: a linearised mode with eigenvalue $\lambda$ is damped when $\Delta t\,\lambda$
# lies in the region $S = \{z : |R(z)| \le 1\}$.
#
# Settings: `ODERNN_FAST=1` shrinks the grids; figures are saved into
# `$ODERNN_NOTEBOOK_OUT` (default `figures/`).

# %%
import matplotlib.pyplot as plt
import numpy as np

import odernn_bridge as ob

from _common import FAST, show  # notebooks/_common.py: settings and the figure helper

RES = 161 if FAST else 601


# %% [markdown]
# ## The catalogue

# %%
for kind in ("explicit", "diagonally_implicit", "implicit", "multistep"):
    try:
        names = ob.list_methods(kind)
    except (ValueError, LookupError):
        continue
    print(f"{kind:>20}: {len(names):3d}  {', '.join(names[:12])}{' …' if len(names) > 12 else ''}")

# %%
explicit = ob.list_methods("explicit")
rows = []
for name in explicit if not FAST else explicit[:8]:
    m = ob.get_method(name)
    rows.append((name, m.stages, m.order, ob.real_stability_interval(m), ob.imag_stability_interval(m)))
print(f"{'method':>12} {'stages':>6} {'order':>5} {'real int.':>9} {'imag int.':>9}")
for name, s, p, r, i in rows:
    print(f"{name:>12} {s:6d} {p:5d} {r:9.4f} {i:9.4f}")

# %% [markdown]
# ## Stability regions
#
# The classical explicit methods grow their region with the order; only some of them
# contain a piece of the imaginary axis — what an antisymmetric (oscillatory) recurrence needs.

# %%
wanted = ["Euler", "Midpoint", "Heun", "RK4", "BS3", "DP5", "Tsit5", "Vern7"]
shown = [m for m in wanted if m in explicit] or explicit[:4]
fig = ob.plot_stability_regions(shown, real=(-5, 1), imag=(-4, 4), resolution=RES,
                                title="stability regions |R(z)| ≤ 1")
show(fig, "01_stability_regions.png")

# %%
region = ob.stability_region("RK4", real=(-4, 1), imag=(-3.5, 3.5), resolution=RES)
print(region.dims, region.shape)
fig, ax = plt.subplots(figsize=(5.5, 5))
re, im = region["real"].values, region["imag"].values  # coordinates (not DataArray.real!)
pc = ax.pcolormesh(re, im, np.log10(np.clip(region.values, 1e-3, 1e3)), cmap="RdBu_r",
                   vmin=-3, vmax=3, shading="auto")
ax.contour(re, im, region.values, levels=[1.0], colors="k")
fig.colorbar(pc, label="log10 |R(z)|")
ax.set(xlabel="Re z", ylabel="Im z", title="RK4: |R(z)| (black: |R| = 1)", aspect="equal")
show(fig, "01_rk4_amplification.png")

# %% [markdown]
# ## From the region to a step size
#
# The eigenvalues of an antisymmetric recurrent matrix $W - W^\top - \gamma I$ lie on the line
# $\mathrm{Re}\,\lambda = -\gamma$.  `max_stable_dt` returns the largest $\Delta t$ that keeps
# all of them inside a method's region: tiny for explicit Euler (its region touches the
# imaginary axis only at 0, so only the damping γ helps), of order one for RK4.

# %%
rng = np.random.default_rng(0)
n = 32 if FAST else 128
W = rng.standard_normal((n, n)) / np.sqrt(n)
eigs = np.linalg.eigvals(W - W.T - 0.01 * np.eye(n))
for name in shown:
    print(f"{name:>10}: max stable dt = {ob.max_stable_dt(name, eigs):.4f}")
fig = ob.plot_stability_regions([m for m in ("Euler", "RK4") if m in explicit], resolution=RES,
                                eigenvalues=eigs, dt=0.9 * ob.max_stable_dt("RK4", eigs),
                                title="dt·λ of an antisymmetric matrix at 0.9 × RK4's max stable dt")
show(fig, "01_antisymmetric_spectrum.png")
