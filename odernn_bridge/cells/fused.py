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

from .fields import activation_derivative

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


def _act_inplace(name: str, x: Tensor) -> None:
    if name == "tanh":
        x.tanh_()
    elif name == "sigmoid":
        x.sigmoid_()
    elif name == "relu":
        x.relu_()
    elif name != "identity":
        raise ValueError(f"activation: unsupported activation {name!r} in the fused kernel")


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
    Ybuf = h0.new_empty(max(plan.n_y, 1), Nb, B, H)
    Wt = W.t()
    ubuf = h0.new_empty(B, H) if plan.linear else None
    idx = 0
    for k in range(T):
        u = u_seq[k]
        du = torch.sub(u_seq[k + 1], u) if plan.linear and k + 1 < T else None
        for mm in range(m):
            h = S[idx]
            slot = idx if store else 0
            K: list[Tensor | None] = [None] * ns
            for i in plan.stages:
                r = plan.index[i]
                row = plan.rows[i]
                if row:
                    y = Ybuf[plan.yslot[i], slot]
                    j0, a0 = row[0]
                    torch.add(h, K[j0], alpha=a0, out=y)  # type: ignore[arg-type]
                    for j, a in row[1:]:
                        y.add_(K[j], alpha=a)  # type: ignore[arg-type]
                else:
                    y = h
                a_out = Abuf[r, slot]
                theta = plan.theta[mm][r]
                if du is not None and theta != 0.0:
                    torch.add(u, du, alpha=theta, out=ubuf)
                    torch.addmm(ubuf, y, Wt, out=a_out)  # type: ignore[arg-type]
                else:
                    torch.addmm(u, y, Wt, out=a_out)
                _act_inplace(act, a_out)
                K[r] = a_out if not leak else torch.add(a_out, y, alpha=-leak)
            nxt = S[idx + 1]
            (r0, w0), rest = plan.weights[0], plan.weights[1:]
            torch.add(h, K[r0], alpha=w0, out=nxt)  # type: ignore[arg-type]
            for r, w in rest:
                nxt.add_(K[r], alpha=w)  # type: ignore[arg-type]
            idx += 1
    return S, Abuf, Ybuf


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
            # Y_i for stages without a row is the substep's starting state S[idx]
            gW = torch.zeros_like(W)
            for i in plan.stages:
                r = plan.index[i]
                Gi = G[r].view(N * B, H)
                Yi = (Ybuf[plan.yslot[i]] if plan.rows[i] else S[:N]).reshape(N * B, H)
                gW.addmm_(Gi.t(), Yi)
        return None, None, None, gu, (g if need_h else None), gW


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
            S = _forward(plan, form.activation, float(form.leak), u, h0, W, store=False)[0]
        m = plan.substeps
        return S[m::m].clone()
    return _FusedRK.apply(plan, form.activation, float(form.leak), u, h0, W)
