"""Stability regions on grids, traced boundaries, plots; the whole catalogue."""

from __future__ import annotations

import math

import numpy as np
import pytest

import odernn_bridge as ob
from odernn_bridge.stability.multistep import max_root_modulus

ALL_METHODS = ob.list_methods()  # at collection time: whatever the catalogue holds now


def test_region_dims_coords_attrs():
    r = ob.stability_region("RK4", real=(-5, 1), imag=(-4, 4), resolution=401)
    assert r.dims == ("imag", "real") and r.shape == (401, 401)
    assert r["real"].values[0] == -5.0 and r["real"].values[-1] == 1.0
    assert r["imag"].values[0] == -4.0 and r["imag"].values[-1] == 4.0
    assert r.attrs["method"] == "RK4" and r.attrs["quantity"] == "|R(z)|"
    assert "odernn_bridge_version" in r.attrs
    assert ob.stability_region("RK4", resolution=(7, 5)).shape == (5, 7)


def test_euler_region_is_the_unit_disk_at_minus_one():
    r = ob.stability_region("Euler", real=(-2.5, 0.5), imag=(-1.5, 1.5), resolution=301)
    z = r["real"].values[None, :] + 1j * r["imag"].values[:, None]
    # |R(z)| = |1 + z| up to one rounding
    np.testing.assert_allclose(r.values, np.abs(1 + z), rtol=1e-15, atol=1e-15)
    inside = r.values <= 1
    dist = np.abs(z + 1)
    away = np.abs(dist - 1) > 1e-9
    assert np.array_equal(inside[away], (dist <= 1)[away])
    b = ob.stability_boundary("Euler", real=(-2.5, 0.5), imag=(-1.5, 1.5), resolution=301)
    assert len(b) == 1 and b.closed == (True,)
    # refined boundary points lie on the unit circle about −1 to rounding
    assert np.max(np.abs(np.abs(b[0] + 1) - 1)) < 1e-13


def test_rk4_region_matches_direct_evaluation():
    r = ob.stability_region("RK4", resolution=64)
    z = r["real"].values[None, :] + 1j * r["imag"].values[:, None]
    direct = np.abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)
    np.testing.assert_allclose(r.values, direct, rtol=1e-13)


def test_boundary_of_unbounded_implicit_region(radau2):
    # Radau IIA3 is stable outside a bounded set in the right half-plane; in a window that
    # cuts that set the traced boundary is an open arc ending on the window edge
    b = ob.stability_boundary(radau2, real=(-2, 3), imag=(-2, 2), resolution=201)
    assert len(b) >= 1 and not all(b.closed)
    R = ob.stability_function(radau2)
    for c in b:
        assert np.max(np.abs(np.abs(R(c)) - 1)) < 1e-12
    full = ob.stability_boundary(radau2, real=(-2, 8), imag=(-6, 6), resolution=301)
    assert full.closed == (True,)  # the whole instability island fits: one closed loop


def test_disconnected_region_has_two_closed_boundaries(two_islands):
    # R = 1 + z + z²/10 has the critical value R(−5) = −3/2: {|R| ≤ 1} splits into two
    # islands around the roots −5 ± √15 of R
    b = ob.stability_boundary(two_islands, real=(-11, 1), imag=(-3, 3), resolution=301)
    assert len(b) == 2 and b.closed == (True, True)
    R = ob.stability_function(two_islands)
    centres = sorted(float(np.mean(c.real)) for c in b)
    assert abs(centres[0] - (-5 - math.sqrt(15))) < 0.5 and abs(centres[1] - (-5 + math.sqrt(15))) < 0.5
    for c in b:
        assert np.max(np.abs(np.abs(R(c)) - 1)) < 1e-12


def test_bdf6_boundary_is_projected_onto_the_locus():
    m = ob.get_method("BDF6")
    b = ob.stability_boundary(m, real=(-10, 30), imag=(-25, 25), resolution=201)
    assert len(b) >= 1
    for c in b:
        # a root on the unit circle, none outside: max |ζ| = 1 to 1e-8
        assert np.max(np.abs(max_root_modulus(m, c) - 1)) < 1e-8


def test_boundary_to_dataset_roundtrip(tmp_path):
    from odernn_bridge.io import open_dataset, to_netcdf

    b = ob.stability_boundary("RK4", resolution=101)
    ds = b.to_dataset()
    path = to_netcdf(ds, tmp_path / "b.nc")
    back = open_dataset(path)
    np.testing.assert_array_equal(back["real"].values, b[0].real)
    assert int(back["closed"].values[0]) == 1


def test_lmm_region_values(bdf2):
    r = ob.stability_region(bdf2, real=(-3, 5), imag=(-4, 4), resolution=33)
    for zr, zi in [(-1.0, 0.5), (2.0, 1.0), (4.0, -3.0)]:
        v = float(r.sel(real=zr, imag=zi, method="nearest"))
        zz = float(r["real"].sel(real=zr, method="nearest")) + 1j * float(r["imag"].sel(imag=zi, method="nearest"))
        roots = np.roots((np.asarray(bdf2.alpha) - zz * np.asarray(bdf2.beta))[::-1])
        assert abs(v - np.max(np.abs(roots))) < 1e-12
    assert r.attrs["method_type"] == "linear_multistep"


@pytest.mark.parametrize("kw, match", [
    (dict(real=(1, -5)), "real"),
    (dict(real=(0, 0)), "real"),
    (dict(imag=(4, -4)), "imag"),
    (dict(imag=(0, np.nan)), "imag"),
    (dict(real=(-5,)), "real"),
    (dict(resolution=1), "resolution"),
    (dict(resolution=2.5), "resolution"),
    (dict(resolution=(10, 1)), "resolution"),
])
def test_region_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        ob.stability_region("RK4", **kw)
    with pytest.raises(ValueError, match=match):
        ob.stability_boundary("RK4", **kw)


def test_boundary_locus_bad_input():
    with pytest.raises(ValueError, match="n"):
        ob.boundary_locus("AB2", n=1)
    with pytest.raises(ValueError, match="theta"):
        ob.boundary_locus("AB2", theta=[])


def test_plot_regions_with_eigenvalues(tmp_path):
    lam = np.array([-1 + 1j, -2.0, -0.5 - 2j])
    fig = ob.plot_stability_regions(["RK4", "Euler"], eigenvalues=lam, dt=0.5, resolution=81)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["RK4", "Euler", "dt·λ"]
    offsets = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(offsets[:, 0] + 1j * offsets[:, 1], 0.5 * lam)
    fig.savefig(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="eigenvalues"):
        ob.plot_stability_regions("RK4", eigenvalues=[np.nan], resolution=11)
    with pytest.raises(ValueError, match="methods"):
        ob.plot_stability_regions([], resolution=11)


# -- every catalogue method --------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_METHODS)
def test_every_catalogue_method_has_a_region(name):
    m = ob.get_method(name)
    r = ob.stability_region(m, real=(-3, 1), imag=(-2, 2), resolution=41)
    assert r.shape == (41, 41) and r.attrs["method"] == m.name
    assert not np.any(np.isnan(r.values))
    # near z = 0 every consistent method follows e^z: at z = −0.1 the amplification (the
    # principal root for multistep methods) is within 0.01 of e^{−0.1} ≥ the other roots'
    v = float(ob.stability_function(m)(-0.1))
    if isinstance(m, ob.ButcherTableau):
        assert abs(v - math.exp(-0.1)) < 0.01
    else:
        assert v >= math.exp(-0.1) - 0.01


@pytest.mark.parametrize("name", ALL_METHODS)
def test_every_catalogue_method_intervals_consistent(name):
    """The real/imaginary intervals agree with direct evaluation just inside / just outside."""
    m = ob.get_method(name)
    R = ob.stability_function(m)

    def f(z):
        return np.abs(R(z))

    for interval, unit in ((ob.real_stability_interval(m), -1.0), (ob.imag_stability_interval(m), 1j)):
        assert interval >= 0
        r = min(interval, 50.0)
        if r > 0:
            t = np.linspace(0, r * (1 - 1e-7), 2001)[1:]
            assert np.max(f(t * unit)) <= 1 + 1e-9
        if math.isfinite(interval) and interval > 0:
            # just beyond the exit the amplification exceeds 1 (a transversal crossing)
            assert float(f(interval * (1 + 1e-6) * unit)) > 1
        elif interval == 0:
            # leaves at once: points outside arbitrarily close to 0
            assert np.max(f(np.linspace(0, 0.5, 501)[1:] * unit)) > 1
