"""QUNN — the Quantum-inspired Universal computing Neural Network (THEORY.md §4).

The hidden state is a (real-embedded) quantum state ψ ∈ ℂ^d, d = 2^q, evolved unitarily:

    ψ_{k+1} = U_k ψ_k,   U_k = exp(−i·dt·H_k)        (``integrator="expm"``)
                          or (I + i dt/2 H_k)⁻¹(I − i dt/2 H_k)   (``"cayley"`` = implicit midpoint)

with a data-dependent Hermitian Hamiltonian over a fixed set of G Pauli strings P_g,

    H_k = Σ_g ( B_g + Σ_{ℓ=0}^{t−1} J_{ℓ,g} · e_g(x_{k−ℓ}) ) P_g .

* generators: every single-qubit X_i, Y_i, Z_i and the nearest-neighbour couplings
  X_iX_{i+1}, Y_iY_{i+1}, Z_iZ_{i+1} on a chain — G = 6q − 3 strings; they generate the
  Lie algebra su(2^q) (single-qubit su(2)s plus one entangling coupling on a connected
  graph), so the family of products of their exponentials is universal;
* encoding: ``e(x) = E x`` with a fixed 0/1 matrix E (G × m) — input feature j feeds generator
  j mod G (m ≥ G), or generator g reads feature g mod m (m < G).  No parameters;
* learned parameters: one coupling vector J_ℓ ∈ ℝ^G per memory lag ℓ = 0 … t−1 plus a static
  drift B ∈ ℝ^G: ``(t + 1)·G`` in total — linear in t, independent of the input width m and
  of the sequence length (:func:`qunn_param_count`).

Both integrators have |R(iy)| = 1 (R(z) = e^z, resp. (1 + z/2)/(1 − z/2)), so ‖ψ_k‖ = 1 for
every k up to round-off.  In real form [Re ψ; Im ψ] the field −iHψ is linear with a
skew-symmetric matrix ``[[Im H, Re H], [−Re H, Im H]]`` (:meth:`QUNNCell.real_generator`):
the Cayley step is exactly the implicit-midpoint ODERNN step on it.

>>> import torch
>>> qunn = QUNNCell(input_size=3, n_qubits=2, memory=4)
>>> sum(p.numel() for p in qunn.parameters()) == qunn_param_count(2, 4)
True
>>> with torch.no_grad(): out, h = qunn(torch.randn(10, 5, 3, dtype=torch.float64))
>>> out.shape, float((h.pow(2).sum(-1) - 1).abs().max()) < 1e-12
(torch.Size([10, 5, 4]), True)
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Sequence

import torch
from torch import Tensor, nn

from .._checks import check_step_size
from .classify import Classification

__all__ = [
    "QUNNCell",
    "pauli_strings",
    "pauli_matrix",
    "qunn_param_count",
    "qunn_generator_count",
    "lstm_param_count",
    "odernn_param_count",
    "elman_odernn_param_count",
    "PolynomialField",
]

_PAULI = {
    "I": ((1, 0), (0, 1)),
    "X": ((0, 1), (1, 0)),
    "Y": ((0, -1j), (1j, 0)),
    "Z": ((1, 0), (0, -1)),
}


def _check_int(name: str, v: object, low: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")
    return v


def pauli_strings(n_qubits: int) -> list[str]:
    """The default generator set: X_i, Y_i, Z_i and X_iX_{i+1}, Y_iY_{i+1}, Z_iZ_{i+1} (chain).

    >>> pauli_strings(2)
    ['XI', 'YI', 'ZI', 'IX', 'IY', 'IZ', 'XX', 'YY', 'ZZ']
    """
    q = _check_int("n_qubits", n_qubits)
    out = []
    for i in range(q):
        for p in "XYZ":
            out.append("".join(p if j == i else "I" for j in range(q)))
    for i in range(q - 1):
        for p in "XYZ":
            out.append("".join(p if j in (i, i + 1) else "I" for j in range(q)))
    return out


def pauli_matrix(string: str, dtype: torch.dtype = torch.complex128) -> Tensor:
    """Kronecker product of single-qubit Pauli matrices (qubit 0 is the most significant)."""
    if not string or any(ch not in _PAULI for ch in string):
        raise ValueError(f"string: expected a non-empty word over I, X, Y, Z, got {string!r}")
    mats = [torch.tensor(_PAULI[ch], dtype=dtype) for ch in string]
    return reduce(torch.kron, mats)


def qunn_generator_count(n_qubits: int) -> int:
    """G(q) = 3q + 3(q − 1) = 6q − 3 Pauli strings in the default set."""
    q = _check_int("n_qubits", n_qubits)
    return 6 * q - 3


def qunn_param_count(n_qubits: int, memory: int, input_size: int | None = None) -> int:
    """Trained parameters of a QUNN: ``(memory + 1) · G(q)`` — independent of ``input_size``.

    >>> [qunn_param_count(3, t) for t in (1, 2, 64)]
    [30, 45, 975]
    """
    _check_int("memory", memory)
    if input_size is not None:
        _check_int("input_size", input_size)
    return (memory + 1) * qunn_generator_count(n_qubits)


def lstm_param_count(input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True) -> int:
    """``nn.LSTM``'s parameter count: Σ_layers 4H(m_l + H) + 8H·bias.

    >>> lstm_param_count(10, 20) == sum(p.numel() for p in nn.LSTM(10, 20).parameters())
    True
    """
    m, H = _check_int("input_size", input_size), _check_int("hidden_size", hidden_size)
    L = _check_int("num_layers", num_layers)
    total = 0
    for layer in range(L):
        ml = m if layer == 0 else H
        total += 4 * H * (ml + H) + (8 * H if bias else 0)
    return total


def odernn_param_count(n: int, t: int, input_size: int, hidden_size: int) -> int:
    """A *generic* n-t-ODERNN: the order-t field h^{(t)} = p(h, …, h^{(t−1)}, x) is a general
    polynomial of degree n (the degree of functional nonlinearity an n-stage step composes)
    in its t·H + m arguments, one per hidden coordinate:  ``H · C(t·H + m + n, n)`` —
    polynomial in both t and the input width m (THEORY.md §4).  :class:`PolynomialField`
    realises it.

    >>> odernn_param_count(1, 1, 3, 2)  # degree 1: an affine map of (h, x), 2·(2+3+1)
    12
    """
    n, t = _check_int("n", n), _check_int("t", t)
    m, H = _check_int("input_size", input_size), _check_int("hidden_size", hidden_size)
    return H * math.comb(t * H + m + n, n)


def elman_odernn_param_count(t: int, input_size: int, hidden_size: int, bias: bool = True) -> int:
    """The affine-in-state (Elman-type) order-t field act(Σ_j W_j h^{(j)} + U x + b):
    ``t·H² + H·m + H·bias`` — linear in t but still proportional to H·m."""
    t, m, H = _check_int("t", t), _check_int("input_size", input_size), _check_int("hidden_size", hidden_size)
    return t * H * H + H * m + (H if bias else 0)


def _monomials(n_vars: int, degree: int) -> list[tuple[int, ...]]:
    from itertools import combinations_with_replacement

    out: list[tuple[int, ...]] = []
    for d in range(degree + 1):
        out.extend(combinations_with_replacement(range(n_vars), d))
    return out


class PolynomialField(nn.Module):
    """The generic order-t, degree-n field of :func:`odernn_param_count`, as a module.

    State ``s = [h, h', …, h^{(t−1)}]`` (t·H); ``forward(s, x)`` returns ds/dτ =
    ``[h', …, h^{(t−1)}, C·φ(s, x)]`` with φ all monomials of degree ≤ n of (s, x) and C
    (H × C(tH+m+n, n)) the trained coefficients.  Meant for counting and small examples.
    """

    def __init__(self, n: int, t: int, input_size: int, hidden_size: int, *,
                 build_monomials: bool | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.n, self.t = _check_int("n", n), _check_int("t", t)
        self.input_size, self.hidden_size = _check_int("input_size", input_size), _check_int("hidden_size", hidden_size)
        n_terms = math.comb(t * hidden_size + input_size + n, n)
        self.coefficients = nn.Parameter(torch.zeros(hidden_size, n_terms, dtype=dtype))
        nn.init.normal_(self.coefficients, std=1.0 / math.sqrt(n_terms))
        self._monos: list[tuple[int, ...]] | None = None

    def features(self, s: Tensor, x: Tensor) -> Tensor:
        z = torch.cat([s, x], dim=-1)
        if self._monos is None:
            self._monos = _monomials(z.shape[-1], self.n)
        cols = [torch.ones_like(z[..., 0]) if not m else reduce(torch.mul, [z[..., i] for i in m])
                for m in self._monos]
        return torch.stack(cols, dim=-1)

    def forward(self, s: Tensor, x: Tensor) -> Tensor:
        top = self.features(s, x) @ self.coefficients.t()
        return torch.cat([s[..., self.hidden_size:], top], dim=-1)


def _encoding_matrix(n_generators: int, input_size: int) -> Tensor:
    G, m = n_generators, input_size
    E = torch.zeros(G, m, dtype=torch.float64)
    if m >= G:
        for j in range(m):
            E[j % G, j] = 1.0
    else:
        for g in range(G):
            E[g, g % m] = 1.0
    return E


class QUNNCell(nn.Module):
    """A QUNN layer: unitary evolution under a data-dependent Pauli Hamiltonian.

    Args:
        input_size: width m of an input x_k (any m; it does not change the parameter count).
        n_qubits: q; the state has d = 2^q complex amplitudes, 2d real numbers.
        memory: t, the number of input lags coupled into H_k (one coupling vector each).
        dt: step length of the evolution.
        integrator: ``"expm"`` (exact exponential) or ``"cayley"`` (implicit midpoint =
            1-stage Gauss–Legendre); both have |R(iy)| = 1.
        generators: Pauli strings (default :func:`pauli_strings`).
        output: what ``forward`` returns per step — ``"probabilities"`` |ψ_j|² (d, the
            parameter-free measurement), ``"state"`` [Re ψ; Im ψ] (2d) or ``"pauli"``
            the expectations ⟨ψ|P_g|ψ⟩ (G).

    ``forward(input, h0=None) -> (output, h_n)`` with ``nn.RNN``'s layout (seq, batch, m)
    (``batch_first`` as an attribute); the state ``h`` is real-embedded, ``(batch, 2d)``,
    default |0…0⟩.
    """

    def __init__(self, input_size: int, n_qubits: int, memory: int = 1, dt: float = 1.0, *,
                 integrator: str = "expm", generators: Sequence[str] | None = None,
                 output: str = "probabilities", batch_first: bool = False,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.input_size = _check_int("input_size", input_size)
        self.n_qubits = _check_int("n_qubits", n_qubits)
        self.memory = _check_int("memory", memory)
        self.dt = check_step_size(dt, "dt")
        if integrator not in ("expm", "cayley"):
            raise ValueError(f"integrator: expected 'expm' or 'cayley', got {integrator!r}")
        if output not in ("probabilities", "state", "pauli"):
            raise ValueError(f"output: expected 'probabilities', 'state' or 'pauli', got {output!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.integrator = integrator
        self.output = output
        self.batch_first = bool(batch_first)
        self.generators = list(generators) if generators is not None else pauli_strings(n_qubits)
        for s in self.generators:
            if len(s) != n_qubits:
                raise ValueError(f"generators: {s!r} does not act on {n_qubits} qubits")
        self.dim = 2 ** n_qubits
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        G = len(self.generators)
        self.register_buffer("paulis", torch.stack([pauli_matrix(s, cdtype) for s in self.generators]))
        self.register_buffer("encoding", _encoding_matrix(G, input_size).to(dtype))
        self.couplings = nn.Parameter(torch.randn(memory, G, dtype=dtype) / math.sqrt(G))
        self.drift = nn.Parameter(torch.randn(G, dtype=dtype) / math.sqrt(G))

    # -- structure ---------------------------------------------------------------------
    @property
    def n_generators(self) -> int:
        return len(self.generators)

    @property
    def state_size(self) -> int:
        return 2 * self.dim

    def classification(self) -> Classification:
        how = ("the exact flow exp(−i dt H), one Hamiltonian per step" if self.integrator == "expm" else
               "the Cayley map = implicit midpoint, the 1-stage Gauss–Legendre method")
        return Classification(1, self.memory, (
            f"QUNN on {self.n_qubits} qubits: ψ_(k+1) = U(H_k) ψ_k with {how} (n = 1, |R(iy)| = 1); "
            f"H_k couples the last {self.memory} inputs x_k … x_(k−{self.memory - 1}) through one coupling "
            f"vector per lag (t = {self.memory})."))

    def coefficients(self, window: Tensor) -> Tensor:
        """Generator coefficients c (batch, G) from the input window (t, batch, m), newest first."""
        e = window @ self.encoding.t()  # (t, batch, G)
        return self.drift + torch.einsum("tbg,tg->bg", e, self.couplings)

    def hamiltonian(self, window: Tensor) -> Tensor:
        """H_k (batch, d, d), Hermitian, for the input window (t, batch, m), newest first."""
        c = self.coefficients(window)
        return torch.einsum("bg,gij->bij", c.to(self.paulis.dtype), self.paulis)

    def propagator(self, H: Tensor) -> Tensor:
        """U = exp(−i dt H) or the Cayley map, (batch, d, d) unitary."""
        if self.integrator == "expm":
            return torch.linalg.matrix_exp(-1j * self.dt * H)
        eye = torch.eye(self.dim, dtype=H.dtype, device=H.device)
        return torch.linalg.solve(eye + 0.5j * self.dt * H, eye - 0.5j * self.dt * H)

    def real_generator(self, window: Tensor) -> Tensor:
        """dt·(−iH) acting on [Re ψ; Im ψ]: a real skew-symmetric (batch, 2d, 2d) matrix —
        the Jacobian dt·J of the QUNN's vector field (for the stability analysis)."""
        H = self.hamiltonian(window)
        Hr, Hi = H.real, H.imag
        top = torch.cat([Hi, Hr], dim=-1)
        bot = torch.cat([-Hr, Hi], dim=-1)
        return self.dt * torch.cat([top, bot], dim=-2)

    # -- state conversions -------------------------------------------------------------
    def to_complex(self, h: Tensor) -> Tensor:
        return torch.complex(h[..., : self.dim], h[..., self.dim:])

    def to_real(self, psi: Tensor) -> Tensor:
        return torch.cat([psi.real, psi.imag], dim=-1)

    def initial_state(self, batch: int) -> Tensor:
        """|0…0⟩, real-embedded: (batch, 2d)."""
        h = torch.zeros(batch, 2 * self.dim, dtype=self.couplings.dtype, device=self.couplings.device)
        h[:, 0] = 1.0
        return h

    def measure(self, psi: Tensor) -> Tensor:
        """The per-step output features of a complex state psi (…, d)."""
        if self.output == "probabilities":
            return psi.real ** 2 + psi.imag ** 2
        if self.output == "state":
            return self.to_real(psi)
        Ppsi = torch.einsum("gij,...j->...gi", self.paulis, psi)
        return torch.einsum("...i,...gi->...g", psi.conj(), Ppsi).real

    @property
    def output_size(self) -> int:
        return {"probabilities": self.dim, "state": 2 * self.dim, "pauli": self.n_generators}[self.output]

    # -- evolution ---------------------------------------------------------------------
    def step(self, window: Tensor, h: Tensor) -> Tensor:
        """One step: real state h (batch, 2d) → U(H(window)) h, window (t, batch, m) newest first."""
        U = self.propagator(self.hamiltonian(window))
        return self.to_real(torch.einsum("bij,bj->bi", U, self.to_complex(h)))

    def forward(self, input: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:  # noqa: A002
        """Run a sequence; returns (features per step (seq, batch, output_size), final state (batch, 2d))."""
        if not isinstance(input, Tensor) or input.dim() != 3 or input.shape[-1] != self.input_size:
            raise ValueError(f"input: expected a tensor (seq, batch, input_size={self.input_size})"
                             f"{' with batch_first' if self.batch_first else ''}, got "
                             f"{tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__}")
        x = input.transpose(0, 1) if self.batch_first else input
        if not torch.isfinite(x).all():
            raise ValueError("input: contains NaN or Inf")
        T, B = x.shape[0], x.shape[1]
        x = x.to(self.couplings.dtype)
        h = self.initial_state(B) if h0 is None else h0
        if h.shape != (B, 2 * self.dim):
            raise ValueError(f"h0: expected shape (batch={B}, 2·2^q={2 * self.dim}), got {tuple(h.shape)}")
        t = self.memory
        padded = torch.cat([x.new_zeros(t - 1, B, self.input_size), x], dim=0)
        # all coefficients at once: window for step k is padded[k : k + t] reversed (newest first)
        e = padded @ self.encoding.t()  # (T + t − 1, B, G)
        c = self.drift.expand(T, B, -1)
        for lag in range(t):
            c = c + e[t - 1 - lag: t - 1 - lag + T] * self.couplings[lag]
        H = torch.einsum("kbg,gij->kbij", c.to(self.paulis.dtype), self.paulis)
        U = self.propagator(H.reshape(T * B, self.dim, self.dim)).reshape(T, B, self.dim, self.dim)
        psi = self.to_complex(h)
        outs = []
        for k in range(T):
            psi = torch.einsum("bij,bj->bi", U[k], psi)
            outs.append(self.measure(psi))
        out = torch.stack(outs, 0)
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, self.to_real(psi)
