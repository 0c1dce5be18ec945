"""Structured Newton matrices ``I − C ⊗ J̄`` for implicit stage equations (Hairer–Wanner IV.8).

An implicit scheme written as ``K = Φ(K)`` with ``K`` of shape (batch, s, n) has the Newton
matrix ``I − ∂Φ/∂K``; for a Runge–Kutta method ``∂Φ/∂K = (dt·A) ⊗ J`` blockwise, with ``J``
the field's Jacobian at each stage of each sample.  Stiff solvers (Radau5, the SDIRK codes)
replace it by ``I − C ⊗ J̄`` with one Jacobian approximation ``J̄`` (here: shared by the whole
batch — the batch mean — and reused over steps while Newton converges fast), and then

* for a fully implicit tableau, **Butcher's transformation**: ``C = T D T⁻¹`` with ``D`` real
  block-diagonal (a 1×1 block per real eigenvalue of ``C``, a 2×2 block ``[[α, β], [−β, α]]``
  per complex pair ``α ± iβ``), so that ``(I − C⊗J̄)⁻¹ = (T⊗I) (I − D⊗J̄)⁻¹ (T⁻¹⊗I)`` needs
  ``n×n`` (real eigenvalue) and ``2n×2n`` (complex pair) inverses instead of one ``sn×sn``;
  the 2n×2n real form of a pair is the complex system ``(I − (α+iβ) J̄) z = r`` written
  out in real arithmetic;
* for a diagonally implicit tableau, ``n×n`` inverses of ``I − c_ii J̄`` (one per distinct
  diagonal value: a single one for SDIRK) and block substitution.

The inverses are formed once (``torch.linalg.inv``) and applied as matrix products, so one
application costs about one (batch×n)·(n×n) product per real eigenvalue and four per complex
pair; the transposed application (the implicit-function-theorem backward pass) reuses them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["SharedNewtonMatrix", "butcher_transform"]

#: transformations with cond(T) above this are not used (defective or nearly defective C):
#: the whole coupled system then stays one block
_MAX_COND = 1e6


@lru_cache(maxsize=64)
def _butcher_transform_cached(key: bytes, s: int) -> tuple[np.ndarray, np.ndarray, tuple[tuple[tuple[int, ...], np.ndarray], ...]] | None:
    C = np.frombuffer(key, dtype=np.float64).reshape(s, s)
    if s == 1:
        return np.eye(1), np.eye(1), (((0,), C.copy()),)
    try:
        lam, V = np.linalg.eig(C)
    except np.linalg.LinAlgError:
        return None
    scale = max(1.0, float(np.abs(C).max()))
    cols: list[np.ndarray] = []
    blocks: list[tuple[tuple[int, ...], np.ndarray]] = []
    used = np.zeros(s, dtype=bool)
    for i in range(s):
        if used[i]:
            continue
        used[i] = True
        if abs(lam[i].imag) <= 1e-12 * scale:
            blocks.append(((len(cols),), np.array([[lam[i].real]])))
            v = V[:, i].real
            cols.append(v / np.abs(v).max())
            continue
        # the conjugate partner: the closest unused eigenvalue to conj(λ_i)
        rest = [j for j in range(s) if not used[j]]
        if not rest:
            return None
        j = min(rest, key=lambda j: abs(lam[j] - np.conj(lam[i])))
        used[j] = True
        k = i if lam[i].imag > 0 else j
        a, b = lam[k].real, lam[k].imag
        v = V[:, k] / np.abs(V[:, k]).max()
        # C [p q] = [p q] [[α, β], [−β, α]] for v = p + i q, λ = α + iβ
        blocks.append(((len(cols), len(cols) + 1), np.array([[a, b], [-b, a]])))
        cols += [v.real, v.imag]
    T = np.stack(cols, axis=1)
    if not np.isfinite(T).all() or np.linalg.cond(T) > _MAX_COND:
        return None
    Tinv = np.linalg.inv(T)
    D = np.zeros((s, s))
    for idx, blk in blocks:
        D[np.ix_(idx, idx)] = blk
    if np.abs(T @ D @ Tinv - C).max() > 1e-12 * scale:
        return None
    return T, Tinv, tuple(blocks)


def butcher_transform(C: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[tuple[tuple[int, ...], np.ndarray], ...]] | None:
    """``(T, T⁻¹, blocks)`` with ``C = T D T⁻¹``, ``D`` real block-diagonal; ``blocks`` lists
    ``(indices, D-block)``.  None when ``C`` is not (well) diagonalisable.

    >>> import numpy as np
    >>> T, Ti, blocks = butcher_transform(np.array([[0.25, 0.25 - 3 ** 0.5 / 6],
    ...                                             [0.25 + 3 ** 0.5 / 6, 0.25]]))
    >>> [idx for idx, _ in blocks]        # Gauss–Legendre 4: one complex pair, one 2n×2n block
    [(0, 1)]
    """
    C = np.ascontiguousarray(C, dtype=np.float64)
    return _butcher_transform_cached(C.tobytes(), C.shape[0])


def spectral_radius_estimate(J: Tensor, iterations: int = 30) -> float:
    """Power-iteration estimate of J's spectral radius (the largest ‖J v‖/‖v‖ of the last
    iterations, so a dominant complex pair is not underestimated by much); a heuristic for
    choosing a predictor, never for accuracy."""
    v = torch.ones(J.shape[0], dtype=J.dtype, device=J.device)
    v = v / torch.linalg.vector_norm(v)
    ratios = []
    with torch.no_grad():
        for _ in range(iterations):
            w = J @ v
            nrm = torch.linalg.vector_norm(w)
            ratios.append(nrm)
            v = w / nrm.clamp_min(torch.finfo(J.dtype).tiny)
        est = float(torch.stack(ratios[-5:]).max())
    return est if est == est else float("inf")


def _is_transformed(X: Tensor) -> bool:
    """Whether X carries a tangent (forward AD, ``torch.func.jvp``/``vmap``), for which
    ``out=`` operations are not defined."""
    try:
        if torch._C._functorch.is_functorch_wrapped_tensor(X):
            return True
    except AttributeError:  # pragma: no cover - older torch
        pass
    from torch.autograd import forward_ad

    return forward_ad.unpack_dual(X).tangent is not None


def stage_mix(C: list[list[float]], X: Tensor) -> Tensor:
    """``out[:, i] = Σ_j C_ij X[:, j]`` for stage vectors X (batch, s, n) and a small constant
    s×s matrix given as Python floats.

    ``torch.matmul(C, X)`` broadcasts C over the batch into a batched matmul of (s×s)·(s×n)
    products (it copies C per sample and runs tiny GEMMs): 90–120 µs for 64×2×256 inside
    the Newton loop, about a fifth of a GL4 step.  Here it is s² scaled adds over the stage
    slices (in place without autograd, stacked under autograd or forward AD)."""
    s = len(C)
    if s == 1:
        return X * C[0][0]
    if (torch.is_grad_enabled() and X.requires_grad) or _is_transformed(X):
        rows = []
        for i in range(s):
            acc = X[:, 0] * C[i][0]
            for j in range(1, s):
                if C[i][j] != 0.0:
                    acc = torch.add(acc, X[:, j], alpha=C[i][j])
            rows.append(acc)
        return torch.stack(rows, 1)
    out = torch.empty_like(X)
    for i in range(s):
        o = out[:, i]
        torch.mul(X[:, 0], C[i][0], out=o)
        for j in range(1, s):
            if C[i][j] != 0.0:
                o.add_(X[:, j], alpha=C[i][j])
    return out


class SharedNewtonMatrix:
    """``(I − C ⊗ J̄)⁻¹`` and its transpose applied to stage vectors (batch, s, n).

    ``C`` (s×s, NumPy) is the stage coupling (``dt·A`` for RK, ``[[dt·β_k]]`` for a linear
    multistep method); ``J̄`` (n×n tensor) the shared Jacobian approximation.  ``lower``:
    ``C`` is lower triangular (diagonally implicit), handled by block substitution.
    Raises ``torch.linalg.LinAlgError`` if a block is singular.
    """

    def __init__(self, C: np.ndarray, J: Tensor, lower: bool = False) -> None:
        self.s = C.shape[0]
        self.n = J.shape[0]
        self.dtype, self.device = J.dtype, J.device
        self.J = J
        #: estimated spectral radius of C⊗J̄ (of the fixed-point map K ↦ Φ(K) near the iterate):
        #: below 1 a fixed-point step improves a guess (non-stiff), far above it ruins one (stiff)
        self.picard_rate = float(np.abs(np.linalg.eigvals(C)).max()) * spectral_radius_estimate(J)
        self.lower = bool(lower) and self.s > 1
        eye = torch.eye(self.n, dtype=J.dtype, device=J.device)
        if self.lower:
            self.C = C
            self._diag: dict[float, Tensor | None] = {}
            for i in range(self.s):
                c = float(C[i, i])
                if c not in self._diag:
                    self._diag[c] = None if c == 0.0 else torch.linalg.inv(eye - c * J)
            self._mixers = None
            self.blocks: list[tuple[list[int], Tensor]] = []
            return
        tr = butcher_transform(C)
        if tr is None:
            T = Tinv = np.eye(self.s)
            blocks = ((tuple(range(self.s)), C),)
        else:
            T, Tinv, blocks = tr
        identity = np.allclose(T, np.eye(self.s), rtol=0, atol=0)
        # T⁻¹ and T as Python floats for stage_mix: (forward left, forward right, transposed left, right)
        self._mixers = None if identity else (np.asarray(Tinv).tolist(), np.asarray(T).tolist(),
                                              np.asarray(T).T.tolist(), np.asarray(Tinv).T.tolist())
        self.blocks = []
        #: per complex-pair block (same order as ``blocks``): the inverse's complex form
        #: ``P + iQ`` as the three products of Gauss's trick, or None for a real block
        self.pairs: list[dict[bool, tuple[Tensor, Tensor, Tensor]] | None] = []
        for idx, D in blocks:
            m = len(idx)
            Dt = torch.tensor(np.asarray(D), dtype=J.dtype, device=J.device)
            M = torch.eye(m * self.n, dtype=J.dtype, device=J.device) - torch.kron(Dt, J)
            inv = torch.linalg.inv(M)
            self.blocks.append((list(idx), inv))
            self.pairs.append(self._pair_form(inv) if m == 2 and tr is not None else None)

    def _pair_form(self, inv: Tensor) -> dict[bool, tuple[Tensor, Tensor, Tensor]]:
        """A complex pair's block is ``I − [[a, b], [−b, a]] ⊗ J̄ = [[A, −B], [B, A]]`` (A = I − aJ̄,
        B = bJ̄), the real form of ``A + iB``; its inverse has the same form ``[[P, −Q], [Q, P]]``
        with ``P + iQ = (A + iB)⁻¹``.  Applying it is a complex product, done with three real
        n×n products instead of one 2n×2n product (four n×n products of work):
        ``t1 = P r1, t2 = Q r2, t3 = (P + Q)(r1 + r2)``, ``x1 = t1 − t2, x2 = t3 − t1 − t2``.
        The transpose is the same with ``(Pᵀ, −Qᵀ)``.  Stored as right factors of row vectors."""
        n = self.n
        P, Q = inv[:n, :n], inv[n:, :n]
        return {False: (P.t().contiguous(), Q.t().contiguous(), (P + Q).t().contiguous()),
                True: (P.contiguous(), (-Q).contiguous(), (P - Q).contiguous())}

    @staticmethod
    def _apply_pair(r1: Tensor, r2: Tensor, f: tuple[Tensor, Tensor, Tensor], out1: Tensor,
                    out2: Tensor) -> None:
        """``out1 + i·out2 = (P + iQ)(r1 + i·r2)`` with three products (see :meth:`_pair_form`)."""
        Pr, Qr, PQr = f
        t1 = r1 @ Pr
        t2 = r2 @ Qr
        t3 = torch.add(r1, r2) @ PQr
        torch.sub(t1, t2, out=out1)
        torch.sub(t3, t1, out=out2).sub_(t2)

    @property
    def stage_inverses(self) -> int:
        """Number of inverses formed (n×n for real eigenvalues/diagonal values, 2n×2n per pair)."""
        return len(self._diag) if self.lower else len(self.blocks)

    # -- diagonally implicit: one stage at a time ------------------------------------------
    def solve_stage(self, i: int, r: Tensor) -> Tensor:
        """``(I − c_ii J̄)⁻¹ r`` for one stage, r: (batch, n)."""
        inv = self._diag[float(self.C[i, i])] if self.lower else self.blocks[0][1]
        return r if inv is None else r @ inv.t()

    # -- whole stage vectors -----------------------------------------------------------------
    def solve(self, r: Tensor, transpose: bool = False) -> Tensor:
        """``(I − C⊗J̄)⁻¹ r`` (or ``(I − C⊗J̄)⁻ᵀ r`` with ``transpose``), r: (batch, s, n)."""
        if self.lower:
            return self._substitute(r, transpose)
        B = r.shape[0]
        # forward: r̃ = (T⁻¹⊗I) r, x = (T⊗I) x̃;  transposed: r̃ = (Tᵀ⊗I) r, x = (T⁻ᵀ⊗I) x̃
        if self._mixers is not None:
            r = stage_mix(self._mixers[2 if transpose else 0], r)
        out = torch.empty_like(r)
        for (idx, inv), pair in zip(self.blocks, self.pairs):
            m = len(idx)
            if pair is not None:
                self._apply_pair(r[:, idx[0]], r[:, idx[1]], pair[transpose], out[:, idx[0]], out[:, idx[1]])
                continue
            if m == self.s:
                rb = r.reshape(B, m * self.n)
            elif m == 1:
                rb = r[:, idx[0]]
            else:
                rb = r[:, idx].reshape(B, m * self.n)
            xb = rb @ (inv if transpose else inv.t())
            if m == self.s:
                out = xb.view(B, self.s, self.n)
            elif m == 1:
                out[:, idx[0]] = xb
            else:
                out[:, idx] = xb.view(B, m, self.n)
        if self._mixers is not None:
            out = stage_mix(self._mixers[3 if transpose else 1], out)
        return out

    def _substitute(self, r: Tensor, transpose: bool) -> Tensor:
        s, C = self.s, self.C
        xs: list[Tensor | None] = [None] * s
        if not transpose:  # x_i = (I − c_ii J̄)⁻¹ (r_i + Σ_{j<i} c_ij J̄ x_j)
            JX: list[Tensor | None] = [None] * s
            for i in range(s):
                acc = r[:, i]
                for j in range(i):
                    if C[i, j] != 0.0:
                        if JX[j] is None:
                            JX[j] = xs[j] @ self.J.t()  # type: ignore[operator]
                        acc = torch.add(acc, JX[j], alpha=float(C[i, j]))  # type: ignore[arg-type]
                xs[i] = self.solve_stage(i, acc)
        else:  # x_i = (I − c_ii J̄)⁻ᵀ (r_i + Σ_{l>i} c_li J̄ᵀ x_l)
            JX = [None] * s
            for i in reversed(range(s)):
                acc = r[:, i]
                for l in range(i + 1, s):
                    if C[l, i] != 0.0:
                        if JX[l] is None:
                            JX[l] = xs[l] @ self.J  # type: ignore[operator]
                        acc = torch.add(acc, JX[l], alpha=float(C[l, i]))  # type: ignore[arg-type]
                inv = self._diag[float(C[i, i])]
                xs[i] = acc if inv is None else acc @ inv
        return torch.stack(xs, dim=1)  # type: ignore[arg-type]
