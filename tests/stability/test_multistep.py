"""Multistep methods: root condition, boundary locus, vectorised root moduli."""

from __future__ import annotations

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.stability.multistep import all_roots, max_root_modulus

from .conftest import catalogue_method


@pytest.mark.parametrize("name", [f"AB{k}" for k in range(1, 7)] + [f"AM{k}" for k in range(1, 7)]
                         + [f"BDF{k}" for k in range(1, 7)] + ["Leapfrog", "MilneSimpson"])
def test_catalogue_multistep_methods_are_zero_stable(name):
    assert ob.root_condition(catalogue_method(name))


def test_root_condition_failures():
    # ρ = (ζ − 1)(ζ + 2): a root outside the unit circle
    unstable = ob.LinearMultistep([-2, 1, 1], [0, 0, 3], name="my_unstable", verify=False)
    assert not ob.root_condition(unstable)
    # ρ = (ζ − 1)(ζ + 1)²: a double root on the unit circle
    double = ob.LinearMultistep([-1, -1, 1, 1], [0, 0, 0, 4], name="my_double", verify=False)
    assert not ob.root_condition(double)
    assert ob.real_stability_interval(unstable) == 0.0


def test_root_condition_at_z(bdf2, ab2):
    assert ob.root_condition(ab2, -0.5) and not ob.root_condition(ab2, -1.5)
    assert ob.root_condition("RK4", -2.0) and not ob.root_condition("RK4", -3.0)
    with pytest.raises(ValueError, match="z"):
        ob.root_condition(bdf2, complex("nan"))


def test_boundary_locus_satisfies_characteristic_equation(ab2):
    loc = ob.boundary_locus(ab2, n=257)
    assert loc.dims == ("theta",)
    zeta = np.exp(1j * loc["theta"].values)
    z = loc.values
    ok = np.isfinite(z)
    res = np.polyval(ab2.alpha[::-1], zeta) - z * np.polyval(ab2.beta[::-1], zeta)
    assert np.max(np.abs(res[ok])) < 1e-13
    # AB2: z(π) = ρ(−1)/σ(−1) = 2/(−2) = −1
    assert abs(complex(ob.boundary_locus(ab2, theta=[np.pi]).values[0]) + 1) < 1e-15


def test_rk_boundary_locus_is_R_equals_unimodular():
    loc = ob.boundary_locus("RK4", n=64)
    assert loc.dims == ("theta", "branch") and loc.shape == (64, 4)
    R = ob.stability_function("RK4")
    th = loc["theta"].values[:, None]
    assert np.max(np.abs(R(loc.values) - np.exp(1j * th))) < 1e-12


def test_max_root_modulus_vectorised_matches_np_roots():
    m = catalogue_method("BDF4")
    rng = np.random.default_rng(3)
    z = rng.uniform(-5, 5, 50) + 1j * rng.uniform(-5, 5, 50)
    got = max_root_modulus(m, z)
    for zz, g in zip(z, got):
        roots = np.roots((np.asarray(m.alpha) - zz * np.asarray(m.beta))[::-1])
        assert abs(g - np.max(np.abs(roots))) < 1e-11 * max(1, g)
    assert all_roots(m, z).shape == (50, 4)


def test_root_at_infinity_is_inf(bdf2):
    # α_k − zβ_k = 0 at z = 1/β_k = 3/2: a root escapes to infinity
    assert max_root_modulus(bdf2, np.array([1.5]))[0] == np.inf


@pytest.mark.parametrize("name", ["AB6", "BDF6", "MilneSimpson", "AM4"])
def test_grid_continuation_matches_eigenvalues(name):
    """The row-continuation solver used for region grids vs per-point companion eigenvalues."""
    from odernn_bridge.stability.multistep import grid_max_root_modulus

    m = catalogue_method(name)
    x = np.linspace(-5, 1, 97)
    y = np.linspace(-4, 4, 81)
    z = x[None, :] + 1j * y[:, None]
    g = grid_max_root_modulus(m, z)
    e = max_root_modulus(m, z)
    # Newton-polished roots (last step < 1e-7 => error ~1e-14) vs LAPACK eigenvalues
    assert np.max(np.abs(g - e) / np.maximum(1, e)) < 1e-11
