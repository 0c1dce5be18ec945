"""Fused whole-sequence kernel for explicit RK cells on fields ``act(W h + u) − leak·h``.

One ``torch.autograd.Function`` runs the whole sequence.  The forward pass records no
graph: it writes every stage argument ``Y_i`` and activation ``A_i = act(W Y_i + u)`` into
preallocated buffers (``torch.addmm(..., out=)``, in-place activations).  The hand-written
reverse pass walks the steps backwards through the stages:

    gK_i = dt b_i g + Σ_{l>i} dt a_li gY_l,   gP_i = gK_i ⊙ act'(P_i),
    gY_i = gP_i W − leak gK_i,                 g ← g + Σ_i gY_i,

and forms ``∂L/∂W = Σ gP_iᵀ Y_i`` as ONE large matrix product over all steps and stages,
``∂L/∂u_k = Σ_i gP_i`` as one reduction.  It is first-order only (no double backward);
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


def _act_inplace(name: str, x: Tensor) -> None:
    if name == "tanh":
        x.tanh_()
    elif name == "sigmoid":
        x.sigmoid_()
    elif name == "relu":
        x.relu_()
    elif name != "identity":
        raise ValueError(f"activation: unsupported activation {name!r} in the fused kernel")


class _FusedRK(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, plan: FusedPlan, act: str, leak: float, u_seq: Tensor, h0: Tensor, W: Tensor) -> Tensor:
        T, B, H = u_seq.shape
        m = plan.substeps
        ns = len(plan.stages)
        N = T * m
        S = h0.new_empty(N + 1, B, H)
        S[0] = h0
        Abuf = h0.new_empty(ns, N, B, H)  # stage-major: each stage's block is contiguous
        Ybuf = h0.new_empty(max(plan.n_y, 1), N, B, H)
        Wt = W.t()
        idx = 0
        for k in range(T):
            u = u_seq[k]
            for _ in range(m):
                h = S[idx]
                K: list[Tensor | None] = [None] * ns
                for i in plan.stages:
                    r = plan.index[i]
                    row = plan.rows[i]
                    if row:
                        y = Ybuf[plan.yslot[i], idx]
                        j0, a0 = row[0]
                        torch.add(h, K[j0], alpha=a0, out=y)  # type: ignore[arg-type]
                        for j, a in row[1:]:
                            y.add_(K[j], alpha=a)  # type: ignore[arg-type]
                    else:
                        y = h
                    a_out = Abuf[r, idx]
                    torch.addmm(u, y, Wt, out=a_out)
                    _act_inplace(act, a_out)
                    K[r] = a_out if not leak else torch.add(a_out, y, alpha=-leak)
                nxt = S[idx + 1]
                (r0, w0), rest = plan.weights[0], plan.weights[1:]
                torch.add(h, K[r0], alpha=w0, out=nxt)  # type: ignore[arg-type]
                for r, w in rest:
                    nxt.add_(K[r], alpha=w)  # type: ignore[arg-type]
                idx += 1
        ctx.plan, ctx.act, ctx.leak = plan, act, leak
        ctx.shape = (T, B, H)
        ctx.save_for_backward(S, Abuf, Ybuf, W)
        return S[m::m].clone()

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
        for idx in range(N - 1, -1, -1):
            if (idx + 1) % m == 0:
                g.add_(g_out[idx // m])
            live = [False] * ns
            for r, w in plan.weights:
                torch.mul(g, w, out=gKbuf[r])
                live[r] = True
            g_acc.copy_(g)
            for i in rev:
                r = plan.index[i]
                gp = G[r, idx]
                if not live[r]:
                    gp.zero_()
                    continue
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
                    if live[j]:
                        gKbuf[j].add_(gy, alpha=a_ij)
                    else:
                        torch.mul(gy, a_ij, out=gKbuf[j])
                        live[j] = True
            g, g_acc = g_acc, g
        need_u, need_h, need_W = ctx.needs_input_grad[3:6]
        gu = G.view(ns, T, m, B, H).sum((0, 2)) if need_u else None
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


def fused_explicit_sequence(cell: Any, u_seq: Tensor, h0: Tensor) -> Tensor:
    """States (seq, batch, hidden) of an explicit RKCell whose field has an affine form."""
    form = cell.field.affine_form()
    plan = getattr(cell, "_fused_plan", None)
    if plan is None or plan.substeps != cell.substeps:
        plan = FusedPlan(cell)
        cell._fused_plan = plan
    W = form.weight
    u = u_seq.expand(u_seq.shape[0], h0.shape[0], h0.shape[1]) if u_seq.shape[1] != h0.shape[0] else u_seq
    return _FusedRK.apply(plan, form.activation, float(form.leak), u, h0, W)
