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

from ._native import rk_backward_op, rk_sequence_op
from ._workspace import Lease, Workspace
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


def _combination(terms: list[tuple[int, float]], like: Tensor, scale: float = 1.0) -> tuple[str, Any]:
    """How to form ``h + Σ_j scale·c_j K_j``: one ``add`` for a single term, otherwise one
    ``addmm`` of a coefficient row with the (stages, batch·hidden) block of stage values."""
    if len(terms) == 1:
        j, a = terms[0]
        return "add", (j, scale * a)
    width = max(j for j, _ in terms) + 1
    coef = like.new_zeros(1, width)
    for j, a in terms:
        coef[0, j] += scale * a
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


def _flat_rows(plan: FusedPlan, scale: float = 1.0) -> tuple[list[int], list[int], list[float]]:
    """The stage couplings as CSR lists (row_ptr, slot, scale·dt a_ij), stage order."""
    row_ptr, row_slot, row_coef = [0], [], []
    for i in plan.stages:
        for j, a in plan.rows[i]:
            row_slot.append(j)
            row_coef.append(scale * a)
        row_ptr.append(len(row_slot))
    return row_ptr, row_slot, row_coef


#: fewest batch rows the native loop gives one thread (it splits the batch between threads)
NATIVE_MIN_ROWS = 4
#: activation codes of the native loop (0: σ with tanh folded into the coefficients)
_NATIVE_ACT = {"tanh": 1, "sigmoid": 2, "relu": 3, "identity": 4}


def _native_op(like: Tensor) -> Any:
    """The native operator when it applies (CPU, float32/float64) and is available."""
    if like.device.type != "cpu" or like.dtype not in (torch.float32, torch.float64):
        return None
    return rk_sequence_op()


def _native_backward_op(like: Tensor) -> Any:
    """The native reverse pass where the forward one applies."""
    return rk_backward_op() if _native_op(like) is not None else None


class _Kernel:
    """Per-call constants of the fused kernel (they depend on the weight).

    The stage buffer holds ``R_i``, from which the stage derivative is ``K_i = p R_i + q``.
    For ``tanh`` without a leak, ``R_i = σ(2 z_i)`` and ``K_i = 2 R_i − 1`` (``p, q = 2, −1``):
    the affine map is never applied elementwise but folded into the coefficients —
    ``y_i = h + Σ_j dt a_ij K_j = ŷ_i + γ_i 1`` with ``ŷ_i = h + Σ_j p dt a_ij R_j`` and
    ``γ_i = q Σ_j dt a_ij``, whose share of the pre-activation, ``γ_i (W 1)``, is the bias
    row of the product ``addmm(bias_i, ŷ_i, sc Wᵀ)``; the update adds ``q Σ dt b_i`` as a
    0-dim tensor.  That removes two elementwise passes and two dispatches per stage
    (``mul_(2)``, ``sub_(1)``, each of which also converts its Python scalar).  Otherwise
    (a leak, whose ``K = act − leak·y`` needs the value; other activations) ``R_i = K_i``
    or the activation, ``p, q = 1, 0``.
    """

    def __init__(self, plan: FusedPlan, act: str, leak: float, W: Tensor, like: Tensor) -> None:
        self.act = act
        self.sc = PREACTIVATION_SCALE.get(act, 1.0)  # tanh(z) = 2σ(2z) − 1, the 2 folded into W
        self.raw = act == "tanh" and not leak
        p, q = (2.0, -1.0) if self.raw else (1.0, 0.0)
        self.p, self.q = p, q
        self.W2t = (W * self.sc).t() if self.sc != 1.0 else W.t()
        colsum = self.W2t.sum(0, keepdim=True) if q else None  # (1ᵀ W2ᵀ): the row W 1, scaled
        #: γ_i = q Σ_j dt a_ij per stage (stage order) and the update's q Σ dt b_i
        self.gammas = [q * sum(a for _, a in plan.rows[i]) for i in plan.stages]
        self.delta_value = q * sum(b for _, b in plan.weights)
        self.stages = []
        for i, gamma in zip(plan.stages, self.gammas):
            rows = plan.rows[i]
            comb = _combination(rows, like, p) if rows else None
            bias = gamma * colsum if (colsum is not None and gamma != 0.0) else None
            self.stages.append((i, plan.index[i], comb, bias))
        self.update = _combination(plan.weights, like, p)
        self.delta = like.new_full((), self.delta_value) if self.delta_value != 0.0 else None
        #: the native loop's activation code (0: σ with tanh folded into the coefficients)
        self.native_code = 0 if self.raw else _NATIVE_ACT[act]

    def native_args(self, plan: FusedPlan) -> tuple[Any, ...]:
        """The stage description in the form of the native operator (see ``_native``):
        the stage argument's constant ``γ_i`` is added to ``y_i`` itself there (free in the
        native loop), instead of the bias row of the product used here."""
        row_ptr, row_slot, row_coef = _flat_rows(plan, self.p)
        y_slot = [plan.yslot.get(i, -1) for i in plan.stages]
        theta = [t for per_sub in plan.theta for t in per_sub]
        upd_slot = [j for j, _ in plan.weights]
        upd_coef = [self.p * b for _, b in plan.weights]
        return (row_ptr, row_slot, row_coef, self.gammas, y_slot, theta, upd_slot, upd_coef, self.delta_value,
                self.sc, self.native_code)

    def preactivate(self, y: Tensor, bias: Tensor | None, u: Tensor, du: Tensor | None, theta: float,
                    out: Tensor) -> Tensor:
        """``out = R(W y + u_i)`` in place, ``u_i = u + θ du`` under linear input interpolation.

        A plain product followed by one ``add_`` (which scales ``u`` on the fly) rather than
        ``addmm(u, y, Wᵀ, beta=sc, alpha=sc, out=out)``: the latter first copies ``u`` into
        ``out`` on one thread and then runs the product with β = 1 (70 µs against 57 µs for
        product + add at 64×256×256 with two threads, float32, torch 2.13, MKL; equal within
        2 µs on one thread).  A stage's bias row (see the class) is a broadcast (1, hidden)
        row, whose copy is cheap.
        """
        if bias is None:
            torch.mm(y, self.W2t, out=out)
        else:
            torch.addmm(bias, y, self.W2t, out=out)
        out.add_(u, alpha=self.sc)
        if du is not None and theta != 0.0:
            out.add_(du, alpha=self.sc * theta)
        if self.raw:
            return out.sigmoid_()
        return activation_from_scaled_(self.act, out)

    def finish_update(self, h: Tensor) -> Tensor:
        """Add the update's constant share ``q Σ dt b_i`` (zero unless folded)."""
        return h if self.delta is None else h.add_(self.delta)


def _state(S: Tensor | None, h0: Tensor, out: Tensor, idx: int) -> Tensor:
    """The state before (sub)step ``idx``: from the substep buffer ``S`` when there is one,
    else (one substep per input) ``h0`` or the previous output row."""
    if S is not None:
        return S[idx]
    return h0 if idx == 0 else out[idx - 1]


def _forward(plan: FusedPlan, kern: _Kernel, leak: float, u_seq: Tensor, h0: Tensor,
             ws: Workspace) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """Run the sequence keeping what the backward pass needs: returns (outputs (T, B, H),
    substep states S or None, stage values R (stages, T·m, B, H), stage arguments Y).

    R always, and Y only with a leak (without one, Y is recomputed from the states and R in
    :func:`_grad_weight`), come from the workspace ``ws``.  With one substep per input the
    states are the outputs themselves (and ``h0``), so each new state is written straight
    into the returned tensor; with substeps the (T·m + 1) substep states live in a workspace
    buffer ``S`` and the outputs are copied out of it.
    """
    T, B, H = u_seq.shape
    m = plan.substeps
    ns = len(plan.stages)
    N = T * m
    out = h0.new_empty(T, B, H)
    S = None
    if m > 1:
        S = ws.take((N + 1, B, H), h0)
        S[0] = h0
    Abuf = ws.take((ns, N, B, H), h0)  # stage-major: each stage's block is contiguous
    keep_y = bool(leak)
    Ybuf = ws.take((max(plan.n_y, 1), N if keep_y else 1, B, H), h0)
    op = _native_op(h0)
    if op is not None:
        _call_native(op, plan, kern, leak, u_seq, h0, out, Abuf, Ybuf if keep_y else None, S)
        return out, S, Abuf, Ybuf
    Kleak = h0.new_empty(ns, B, H) if leak else None  # A − leak·y for one step
    idx = 0
    for k in range(T):
        u = u_seq[k]
        du = torch.sub(u_seq[k + 1], u) if plan.linear and k + 1 < T else None
        for mm in range(m):
            h = _state(S, h0, out, idx)
            Kd = Abuf[:, idx] if Kleak is None else Kleak
            for i, r, comb, bias in kern.stages:
                y = h if comb is None else _combine(h, comb, Kd, Ybuf[plan.yslot[i], idx if keep_y else 0])
                a_out = Abuf[r, idx]
                kern.preactivate(y, bias, u, du, plan.theta[mm][r], a_out)
                if Kleak is not None:
                    torch.add(a_out, y, alpha=-leak, out=Kleak[r])
            kern.finish_update(_combine(h, kern.update, Kd, S[idx + 1] if S is not None else out[k]))
            idx += 1
    if S is not None:
        out.copy_(S[m::m])
    return out, S, Abuf, Ybuf


def _call_native(op: Any, plan: FusedPlan, kern: _Kernel, leak: float, u_seq: Tensor, h0: Tensor, out: Tensor,
                 R_store: Tensor | None = None, Y_store: Tensor | None = None, S_store: Tensor | None = None) -> None:
    """Run the sequence in the native loop (``_native``), writing ``out`` (and the stores)."""
    (row_ptr, row_slot, row_coef, shift, y_slot, theta, upd_slot, upd_coef, delta, sc,
     code) = kern.native_args(plan)
    op(u_seq.detach().contiguous(), h0.detach().contiguous(), kern.W2t.detach(), row_ptr, row_slot, row_coef, shift, y_slot, theta,
       upd_slot, upd_coef, delta, sc, code, float(leak), plan.linear, plan.substeps, out, R_store, Y_store, S_store,
       NATIVE_MIN_ROWS)


def _infer(plan: FusedPlan, kern: _Kernel, leak: float, u_seq: Tensor, h0: Tensor) -> Tensor:
    """States (seq, batch, hidden) without any autograd bookkeeping (``torch.no_grad``).

    The same arithmetic as :func:`_forward` (equal results to rounding) in one step's workspace,
    written in place: the stage values live in one (stages, batch·hidden) block, so a stage
    argument with several terms and the update are each a single ``addmm`` over that block.
    """
    T, B, H = u_seq.shape
    m, ns = plan.substeps, len(plan.stages)
    out = h0.new_empty(T, B, H)
    op = _native_op(h0)
    if op is not None:
        _call_native(op, plan, kern, leak, u_seq, h0, out)
        return out
    A = h0.new_empty(ns, B, H)  # stage values R_i
    Kd = h0.new_empty(ns, B, H) if leak else A  # stage derivatives (A − leak·y with a leak)
    Ybuf = h0.new_empty(ns, B, H)
    work = h0.new_empty(2, B, H) if m > 1 else None
    stage_plan = [(r, comb, bias, Ybuf[r], A[r], Kd[r]) for _, r, comb, bias in kern.stages]
    upd = kern.update
    preactivate, finish = kern.preactivate, kern.finish_update
    h = h0
    theta = plan.theta
    for k in range(T):
        u = u_seq[k]
        du = torch.sub(u_seq[k + 1], u) if plan.linear and k + 1 < T else None
        for mm in range(m):
            th = theta[mm]
            for r, comb, bias, ybuf, a_out, k_out in stage_plan:
                y = h if comb is None else _combine(h, comb, Kd, ybuf)
                preactivate(y, bias, u, du, th[r], a_out)
                if leak:
                    torch.add(a_out, y, alpha=-leak, out=k_out)
            h = finish(_combine(h, upd, Kd, out[k] if mm == m - 1 else work[mm % 2]))  # type: ignore[index]
    return out


class _FusedRK(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, plan: FusedPlan, act: str, leak: float, ws: Workspace, u_seq: Tensor, h0: Tensor,
                W: Tensor) -> Tensor:
        kern = _Kernel(plan, act, leak, W, h0)
        out, S, Abuf, Ybuf = _forward(plan, kern, leak, u_seq, h0, ws)
        ctx.plan, ctx.leak, ctx.ws, ctx.kern = plan, leak, ws, kern
        ctx.shape = tuple(u_seq.shape)
        # the workspace buffers return to the pool when this node is destroyed
        ctx.lease = Lease(ws, S, Abuf, Ybuf)
        ctx.substates = S
        ctx.save_for_backward(Abuf, Ybuf, W, h0, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_out: Tensor) -> tuple[Any, ...]:
        Abuf, Ybuf, W, h0, out = ctx.saved_tensors
        S = ctx.substates
        plan: FusedPlan = ctx.plan
        kern: _Kernel = ctx.kern
        leak, ws = ctx.leak, ctx.ws
        T, B, H = ctx.shape
        m = plan.substeps
        ns = len(plan.stages)
        N = T * m
        # G holds gP_i / gscale: for σ-stored tanh, ∂K/∂z = 4 R (1 − R) and the 4 is applied
        # once to W in the loop and to ∂L/∂u, ∂L/∂W at the end
        gscale = 4.0 if kern.raw else 1.0
        Wg = W * gscale if kern.raw else W
        G = ws.take(tuple(Abuf.shape), Abuf)
        op = _native_backward_op(Abuf)
        if op is not None:
            g = torch.empty_like(h0)
            op(g_out.contiguous(), Abuf, Wg.detach().contiguous(), *_flat_rows(plan),
               [j for j, _ in plan.weights], [b for _, b in plan.weights], kern.native_code, float(leak), m, G, g,
               NATIVE_MIN_ROWS)
        else:
            g = _backward_loop(plan, kern, leak, g_out, Abuf, Wg, G, h0)
        need_u, need_h, need_W = ctx.needs_input_grad[4:7]
        # Σ_i gP_i per (sub)step: ∂L/∂u (before the interpolation shares), ∂L/∂W's state term
        Gs = G.sum(0) if (need_W or need_u) else None
        gu = None
        if need_u:
            Gv = G.view(ns, T, m, B, H)
            gu = Gs.view(T, m, B, H).sum(1) if m > 1 else Gs.clone()  # type: ignore[union-attr]
            if plan.linear:
                th = torch.tensor(plan.theta, dtype=G.dtype, device=G.device).t()  # (ns, m)
                g_next = torch.einsum("rm,rtmbh->tbh", th, Gv)  # the θ-share goes to u_{k+1} ...
                gu[:-1] -= g_next[:-1]
                gu[1:] += g_next[:-1]  # ... except at the last step, held constant
            if gscale != 1.0:
                gu.mul_(gscale)
        gW = None
        if need_W:
            gW = _grad_weight(plan, kern, leak, G, Gs, S, h0, out, Abuf, Ybuf)
            if gscale != 1.0:
                gW.mul_(gscale)
        ws.give(G)
        return None, None, None, None, gu, (g if need_h else None), gW


def _backward_loop(plan: FusedPlan, kern: _Kernel, leak: float, g_out: Tensor, Abuf: Tensor, Wg: Tensor,
                   G: Tensor, h0: Tensor) -> Tensor:
    """The reverse pass in Python (when the native one is unavailable): fills G with gP (÷ the
    scale of folded tanh) for every step and stage; returns ∂L/∂h0."""
    ns, N, B, H = Abuf.shape
    m = plan.substeps
    # workspaces reused across steps (no per-step allocations)
    g = torch.zeros_like(h0)
    g_acc = torch.empty_like(g)
    gKbuf = torch.empty(ns, B, H, dtype=g.dtype, device=g.device)
    gy = torch.empty_like(g)
    rev = list(reversed(plan.stages))
    # gK_r = dt b_r g for all stages at once (b_r = 0 for stages only other stages need);
    # every needed stage is reached (by a weight or a later stage) before it is read
    wvec = torch.zeros(ns, 1, 1, dtype=g.dtype, device=g.device)
    for r, w in plan.weights:
        wvec[r] = w
    act = kern.act
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
            if kern.raw:  # R = σ(2z): gP/4 = gK R (1 − R)
                torch.mul(gk, a, out=gp)
                torch.addcmul(gp, gp, a, value=-1.0, out=gp)
            elif act == "tanh":
                torch.mul(gk, a, out=gp)
                torch.addcmul(gk, gp, a, value=-1.0, out=gp)  # gk (1 - a²), elementwise in place
            else:
                torch.mul(gk, activation_derivative(act, a), out=gp)
            torch.mm(gp, Wg, out=gy)
            if leak:
                gy.add_(gk, alpha=-leak)
            g_acc.add_(gy)
            for j, a_ij in plan.rows[i]:
                gKbuf[j].add_(gy, alpha=a_ij)
        g, g_acc = g_acc, g
    return g


def _add_state_product(gW: Tensor, Gm: Tensor, S: Tensor | None, h0: Tensor, out: Tensor) -> None:
    """``gW += Σ_steps Gm[idx]ᵀ state(idx)`` for Gm of shape (N, B, H)."""
    N, B, H = Gm.shape
    if S is not None:
        gW.addmm_(Gm.reshape(N * B, H).t(), S[:N].reshape(N * B, H))
        return
    gW.addmm_(Gm[0].t(), h0)
    if N > 1:
        gW.addmm_(Gm[1:].reshape((N - 1) * B, H).t(), out[:N - 1].reshape((N - 1) * B, H))


def _grad_weight(plan: FusedPlan, kern: _Kernel, leak: float, G: Tensor, Gs: Tensor, S: Tensor | None,
                 h0: Tensor, out: Tensor, Abuf: Tensor, Ybuf: Tensor) -> Tensor:
    """``∂L/∂W = Σ_i Σ_steps gP_iᵀ Y_i`` as large matrix products over all steps.

    With a leak the stage arguments Y_i were stored.  Without one, ``K_j = p R_j + q`` and
    ``Y_i = S + Σ_j dt a_ij K_j``, so ``∂L/∂W = (Σ_i gP_i)ᵀ S + Σ_j (Σ_i p dt a_ij gP_i)ᵀ R_j
    + Σ_i γ_i colsum(gP_i) 1ᵀ`` (``γ_i = q Σ_j dt a_ij``): one product per stage coupling
    column plus one, and a rank-one term; no stored Y.
    """
    ns, N, B, H = G.shape
    gW = G.new_zeros(H, H)
    if leak:
        # Y_i for stages without a row is the substep's starting state
        for i in plan.stages:
            r = plan.index[i]
            if plan.rows[i]:
                gW.addmm_(G[r].view(N * B, H).t(), Ybuf[plan.yslot[i]].reshape(N * B, H))
            else:
                _add_state_product(gW, G[r], S, h0, out)
        return gW
    _add_state_product(gW, Gs, S, h0, out)
    cols: dict[int, list[tuple[int, float]]] = {}
    for i in plan.stages:
        for j, a in plan.rows[i]:
            cols.setdefault(j, []).append((plan.index[i], kern.p * a))
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
    if any(kern.gammas):
        gamma = torch.tensor([kern.gammas], dtype=G.dtype, device=G.device)  # stage order = slot order
        colsum = torch.mm(gamma, G.view(ns, N * B, H).sum(1)).view(H)  # per-stage column sums first
        gW.add_(colsum.unsqueeze(1))
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
    ws = getattr(cell, "_workspace", None)
    if ws is None:
        ws = cell._workspace = Workspace()
    u = u_seq.expand(u_seq.shape[0], h0.shape[0], h0.shape[1]) if u_seq.shape[1] != h0.shape[0] else u_seq
    if not (torch.is_grad_enabled() and (u.requires_grad or h0.requires_grad or W.requires_grad)):
        with torch.no_grad():
            h0c = h0.contiguous()
            return _infer(plan, _Kernel(plan, form.activation, float(form.leak), W, h0c), float(form.leak), u, h0c)
    return _FusedRK.apply(plan, form.activation, float(form.leak), ws, u, h0, W)
