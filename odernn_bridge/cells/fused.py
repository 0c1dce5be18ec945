"""Fused whole-sequence kernel for explicit RK cells on fields ``act(W h + u) − leak·h``.

One ``torch.autograd.Function`` runs the whole sequence.  The forward pass records no
graph: it writes every stage argument ``Y_i`` and activation ``A_i = act(W Y_i + u)`` into
preallocated buffers (``torch.addmm(..., out=)``, in-place activations).  The hand-written
reverse pass walks the steps backwards through the stages:

    gK_i = dt b_i g + Σ_{l>i} dt a_li gY_l,   gP_i = gK_i ⊙ act'(P_i),
    gY_i = gP_i W − leak gK_i,                 g ← g + Σ_i gY_i,

and forms ``∂L/∂W = Σ gP_iᵀ Y_i`` as one large matrix product per stage over all steps,
``∂L/∂u_k = Σ_i gP_i`` as one reduction (with linear input interpolation, stage i of step k
sees ``u_k + θ_i (u_{k+1} − u_k)`` and its gradient is split (1 − θ_i, θ_i) between them).
Under ``torch.no_grad()`` (or when nothing requires grad) only one step's workspace is kept.  It is first-order only (no double backward);
the generic autograd path (``RKCell(fused=False)``) remains for everything else and is
the reference the tests compare this kernel against.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .fields import PREACTIVATION_SCALE, activation_derivative, activation_from_scaled_

__all__ = ["fused_explicit_sequence", "FusedPlan"]


class FusedPlan:
    """The tableau reduced to what the kernel needs (needed stages, nonzero a_ij, b_i)."""

    def __init__(self, cell: Any) -> None:
        needed = list(cell._needed)
        self.index = {i: r for r, i in enumerate(needed)}  # stage -> slot in the A buffer
        self.stages = needed
        hs = cell.step_size
        self.rows = {i: [(self.index[j], hs * a) for j, a in cell._rows[i]] for i in needed}
        ybuf = [i for i in needed if self.rows[i]]
        self.yslot = {i: r for r, i in enumerate(ybuf)}
        self.n_y = len(ybuf)
        self.weights = [(self.index[i], hs * b) for i, b in cell._weights]
        self.substeps = cell.substeps
        # linear input interpolation: stage r of substep mm sees u_k + θ (u_{k+1} − u_k)
        self.linear = cell.input_interpolation == "linear"
        c = cell.method.c
        self.theta = [[(mm + float(c[i])) / cell.substeps for i in needed] for mm in range(cell.substeps)]

    def key(self) -> tuple[int, bool]:
        return self.substeps, self.linear


def _combination(terms: list[tuple[int, float]], like: Tensor) -> tuple[str, Any]:
    """How to form ``h + Σ_j c_j K_j``: one ``add`` for a single term, otherwise one ``addmm``
    of a coefficient row with the (stages, batch·hidden) block of stage derivatives."""
    if len(terms) == 1:
        return "add", terms[0]
    width = max(j for j, _ in terms) + 1
    coef = like.new_zeros(1, width)
    for j, a in terms:
        coef[0, j] += a
    return "mm", (width, coef)


def _combine(h: Tensor, comb: tuple[str, Any], Kd: Tensor, out: Tensor) -> Tensor:
    """``out = h + Σ_j c_j Kd[j]`` (Kd: (stages, batch, hidden), possibly strided over stages)."""
    if comb[0] == "add":
        j, a = comb[1]
        return torch.add(h, Kd[j], alpha=a, out=out)
    width, coef = comb[1]
    B, H = h.shape
    torch.addmm(h.reshape(1, B * H), coef, Kd[:width].reshape(width, B * H), out=out.view(1, B * H))
    return out


def _activate(act: str, sc: float, Wt: Tensor, y: Tensor, u: Tensor, du: Tensor | None, theta: float,
              ubuf: Tensor | None, out: Tensor) -> Tensor:
    """``out = act(W y + u_i)`` in place, with the stage input ``u_i = u + θ_i du`` under linear
    input interpolation (else ``u``); ``sc`` is the activation's pre-activation scale."""
    if du is not None and theta != 0.0:
        u = torch.add(u, du, alpha=theta, out=ubuf)
    torch.addmm(u, y, Wt, beta=sc, alpha=sc, out=out)
    return activation_from_scaled_(act, out)


def _forward(plan: FusedPlan, act: str, leak: float, u_seq: Tensor, h0: Tensor, W: Tensor,
             store: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Run the sequence; with ``store`` keep every stage's Y_i and A_i (for the backward pass),
    otherwise reuse one step's workspace (inference: memory independent of the length)."""
    T, B, H = u_seq.shape
    m = plan.substeps
    ns = len(plan.stages)
    N = T * m
    S = h0.new_empty(N + 1, B, H)
    S[0] = h0
    Nb = N if store else 1
    Abuf = h0.new_empty(ns, Nb, B, H)  # stage-major: each stage's block is contiguous
    # without a leak the backward pass forms ∂L/∂W from S and A (Y_i = S + Σ_j dt a_ij A_j),
    # so the stage arguments need only one step's workspace: no sequence-long buffer to fill
    keep_y = store and bool(leak)
    Ybuf = h0.new_empty(max(plan.n_y, 1), N if keep_y else 1, B, H)
    Kleak = h0.new_empty(ns, B, H) if leak else None  # A − leak·y for one step
    Wt = W.t()
    sc = PREACTIVATION_SCALE.get(act, 1.0)  # tanh(z) = 2σ(2z) − 1, the 2 folded into addmm
    ubuf = h0.new_empty(B, H) if plan.linear else None
    combs = {i: _combination(plan.rows[i], h0) for i in plan.stages if plan.rows[i]}
    upd = _combination(plan.weights, h0)
    idx = 0
    for k in range(T):
        u = u_seq[k]
        du = torch.sub(u_seq[k + 1], u) if plan.linear and k + 1 < T else None
        for mm in range(m):
            h = S[idx]
            slot = idx if store else 0
            Kd = Abuf[:, slot] if Kleak is None else Kleak
            for i in plan.stages:
                r = plan.index[i]
                y = _combine(h, combs[i], Kd, Ybuf[plan.yslot[i], idx if keep_y else 0]) if i in combs else h
                a_out = Abuf[r, slot]
                _activate(act, sc, Wt, y, u, du, plan.theta[mm][r], ubuf, a_out)
                if Kleak is not None:
                    torch.add(a_out, y, alpha=-leak, out=Kleak[r])
            _combine(h, upd, Kd, S[idx + 1])
            idx += 1
    return S, Abuf, Ybuf


def _infer(plan: FusedPlan, act: str, leak: float, u_seq: Tensor, h0: Tensor, W: Tensor) -> Tensor:
    """States (seq, batch, hidden) without any autograd bookkeeping (``torch.no_grad``).

    One step's workspace, written in place: the stage derivatives live in one (stages,
    batch·hidden) block, so a stage argument ``h + Σ_j dt a_ij K_j`` with several terms and the
    update ``h + Σ_i dt b_i K_i`` are each a single ``addmm`` over that block (one pass, one
    dispatch) instead of one ``add`` per term; per-step Python work is a few list lookups.
    """
    T, B, H = u_seq.shape
    m, ns = plan.substeps, len(plan.stages)
    out = h0.new_empty(T, B, H)
    A = h0.new_empty(ns, B, H)  # activations act(W y_i + u)
    Kd = h0.new_empty(ns, B, H) if leak else A  # stage derivatives (A − leak·y with a leak)
    Ybuf = h0.new_empty(ns, B, H)
    work = h0.new_empty(2, B, H) if m > 1 else None
    Wt = W.t()
    sc = PREACTIVATION_SCALE.get(act, 1.0)

    stage_plan = []
    for i in plan.stages:
        r = plan.index[i]
        stage_plan.append((r, _combination(plan.rows[i], h0) if plan.rows[i] else None, Ybuf[r], A[r], Kd[r]))
    upd = _combination(plan.weights, h0)
    ubuf = h0.new_empty(B, H) if plan.linear else None
    h = h0
    for k in range(T):
        u = u_seq[k]
        du = torch.sub(u_seq[k + 1], u) if plan.linear and k + 1 < T else None
        for mm in range(m):
            for r, comb, ybuf, a_out, k_out in stage_plan:
                y = h if comb is None else _combine(h, comb, Kd, ybuf)
                _activate(act, sc, Wt, y, u, du, plan.theta[mm][r], ubuf, a_out)
                if leak:
                    torch.add(a_out, y, alpha=-leak, out=k_out)
            h = _combine(h, upd, Kd, out[k] if mm == m - 1 else work[mm % 2])  # type: ignore[index]
    return out


class _FusedRK(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, plan: FusedPlan, act: str, leak: float, u_seq: Tensor, h0: Tensor, W: Tensor) -> Tensor:
        S, Abuf, Ybuf = _forward(plan, act, leak, u_seq, h0, W, store=True)
        ctx.plan, ctx.act, ctx.leak = plan, act, leak
        ctx.shape = tuple(u_seq.shape)
        ctx.save_for_backward(S, Abuf, Ybuf, W)
        return S[plan.substeps::plan.substeps].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_out: Tensor) -> tuple[Any, ...]:
        S, Abuf, Ybuf, W = ctx.saved_tensors
        plan: FusedPlan = ctx.plan
        act, leak = ctx.act, ctx.leak
        T, B, H = ctx.shape
        m = plan.substeps
        ns = len(plan.stages)
        N = T * m
        G = torch.empty_like(Abuf)  # gP for every step and stage
        # workspaces reused across steps (no per-step allocations)
        g = torch.zeros_like(S[0])
        g_acc = torch.empty_like(g)
        gKbuf = torch.empty(ns, B, H, dtype=g.dtype, device=g.device)
        gy = torch.empty_like(g)
        rev = list(reversed(plan.stages))
        # gK_r = dt b_r g for all stages at once (b_r = 0 for stages only other stages need);
        # every needed stage is reached (by a weight or a later stage) before it is read
        wvec = torch.zeros(ns, 1, 1, dtype=g.dtype, device=g.device)
        for r, w in plan.weights:
            wvec[r] = w
        for idx in range(N - 1, -1, -1):
            if (idx + 1) % m == 0:
                g.add_(g_out[idx // m])
            torch.mul(wvec, g, out=gKbuf)
            g_acc.copy_(g)
            for i in rev:
                r = plan.index[i]
                gp = G[r, idx]
                gk = gKbuf[r]
                a = Abuf[r, idx]
                if act == "tanh":
                    torch.mul(gk, a, out=gp)
                    torch.addcmul(gk, gp, a, value=-1.0, out=gp)  # gk (1 - a²), elementwise in place
                else:
                    torch.mul(gk, activation_derivative(act, a), out=gp)
                torch.mm(gp, W, out=gy)
                if leak:
                    gy.add_(gk, alpha=-leak)
                g_acc.add_(gy)
                for j, a_ij in plan.rows[i]:
                    gKbuf[j].add_(gy, alpha=a_ij)
            g, g_acc = g_acc, g
        need_u, need_h, need_W = ctx.needs_input_grad[3:6]
        gu = None
        if need_u:
            Gv = G.view(ns, T, m, B, H)
            gu = Gv.sum((0, 2))
            if plan.linear:
                th = torch.tensor(plan.theta, dtype=G.dtype, device=G.device).t()  # (ns, m)
                g_next = torch.einsum("rm,rtmbh->tbh", th, Gv)  # the θ-share goes to u_{k+1} ...
                gu[:-1] -= g_next[:-1]
                gu[1:] += g_next[:-1]  # ... except at the last step, held constant
        gW = None
        if need_W:
            gW = _grad_weight(plan, leak, G, S, Abuf, Ybuf)
        return None, None, None, gu, (g if need_h else None), gW


def _grad_weight(plan: FusedPlan, leak: float, G: Tensor, S: Tensor, Abuf: Tensor, Ybuf: Tensor) -> Tensor:
    """``∂L/∂W = Σ_i Σ_steps gP_iᵀ Y_i`` as large matrix products over all steps.

    With a leak the stage arguments Y_i were stored.  Without one, ``K_j = A_j`` and
    ``Y_i = S + Σ_j dt a_ij A_j``, so ``∂L/∂W = (Σ_i gP_i)ᵀ S + Σ_j (Σ_i dt a_ij gP_i)ᵀ A_j``:
    the same number of products (one per stage coupling column plus one), no stored Y.
    """
    ns, N, B, H = G.shape
    gW = G.new_zeros(H, H)
    if leak:
        # Y_i for stages without a row is the substep's starting state S[idx]
        for i in plan.stages:
            r = plan.index[i]
            Yi = (Ybuf[plan.yslot[i]] if plan.rows[i] else S[:N]).reshape(N * B, H)
            gW.addmm_(G[r].view(N * B, H).t(), Yi)
        return gW
    gW.addmm_(G.sum(0).view(N * B, H).t(), S[:N].reshape(N * B, H))
    cols: dict[int, list[tuple[int, float]]] = {}
    for i in plan.stages:
        for j, a in plan.rows[i]:
            cols.setdefault(j, []).append((plan.index[i], a))
    for j, terms in cols.items():
        if len(terms) == 1:
            r, a = terms[0]
            gW.addmm_(G[r].view(N * B, H).t(), Abuf[j].view(N * B, H), alpha=a)
        else:
            coef = G.new_zeros(1, ns)
            for r, a in terms:
                coef[0, r] += a
            Gc = torch.mm(coef, G.view(ns, N * B * H)).view(N * B, H)
            gW.addmm_(Gc.t(), Abuf[j].view(N * B, H))
    return gW


@torch.compiler.disable
def fused_explicit_sequence(cell: Any, u_seq: Tensor, h0: Tensor) -> Tensor:
    """States (seq, batch, hidden) of an explicit RKCell whose field has an affine form.

    Opaque to ``torch.compile`` (``torch.compiler.disable``): the kernel writes into its own
    buffers with ``out=`` ops and has a hand-written backward, which tracing would not keep
    intact; a compiled model calls it eagerly (the surrounding code is still compiled).
    """
    form = cell.field.affine_form()
    plan = getattr(cell, "_fused_plan", None)
    if plan is None or plan.key() != (cell.substeps, cell.input_interpolation == "linear"):
        plan = FusedPlan(cell)
        cell._fused_plan = plan
    W = form.weight
    u = u_seq.expand(u_seq.shape[0], h0.shape[0], h0.shape[1]) if u_seq.shape[1] != h0.shape[0] else u_seq
    if not (torch.is_grad_enabled() and (u.requires_grad or h0.requires_grad or W.requires_grad)):
        with torch.no_grad():
            return _infer(plan, form.activation, float(form.leak), u, h0.contiguous(), W)
    return _FusedRK.apply(plan, form.activation, float(form.leak), u, h0, W)
