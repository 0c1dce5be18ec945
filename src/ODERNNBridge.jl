"""
    ODERNNBridge

Thin Julia companion of the Python package `odernn_bridge`: a Julia package in its own
right (`Project.toml` at the repository root; `julia --project -e 'using Pkg; Pkg.test()'`)
and the module that `odernn_bridge.reference.julia` loads through juliacall
(`Base.include` into a module made with `juliacall.newmodule`).

* named tableaux exported as plain arrays (`export_tableau`) from the split tableau
  packages `OrdinaryDiffEqExplicitTableaus` (`RK4()`, `Tsitouras5()`, `DormandPrince()`, ...)
  and `OrdinaryDiffEqImplicitTableaus` (`GL4()`, `RadauIIA5()`, ...), version 2 (the first
  with these names; their functions are unexported, so always qualified here);
* fixed-step solves with `OrdinaryDiffEqExplicitRK.ExplicitRK(tableau = tab)` (OrdinaryDiffEq
  v7 no longer re-exports `ExplicitRK`), one step from many states, and an adaptive
  reference with one of `REFERENCE_ALGORITHMS` (optionally in `BigFloat`);
* `DiffEqDevTools.stability_region`, `imaginary_stability_interval` and
  `analyticless_test_convergence`.

Right-hand sides are in-place functions `f!(du, u, p, t)`; `p` is a parameter vector.
Arrays from Python arrive as `PythonCall.PyArray`s, which index like the NumPy array
(strides honoured); every function copies them into plain `Array`s first.
"""
module ODERNNBridge

import LinearAlgebra
import DiffEqBase
import DiffEqDevTools
import OrdinaryDiffEq
import OrdinaryDiffEqExplicitRK
import OrdinaryDiffEqExplicitTableaus
import OrdinaryDiffEqImplicitTableaus

export export_tableau, find_constructor, find_tableau, tableau_modules, tableau_from_arrays,
    solve_fixed, step_many, solve_reference, stability, real_stability_interval,
    imag_stability_interval, convergence, versions, REFERENCE_ALGORITHMS

"""
    tableau_modules() -> Vector{Module}

The modules whose functions name tableaux, searched in this order.
"""
tableau_modules() = Module[OrdinaryDiffEqExplicitTableaus, OrdinaryDiffEqImplicitTableaus]

"""
    REFERENCE_ALGORITHMS

Adaptive algorithms `solve_reference` accepts, by name: explicit ones that OrdinaryDiffEq v7
exports itself (it re-exports only `Tsit5`, `Vern6`-`Vern9`, `Rosenbrock23`, `Rodas5P`,
`FBDF` and the default algorithm).
"""
const REFERENCE_ALGORITHMS = Dict{String, Any}(
    "Tsit5" => OrdinaryDiffEq.Tsit5,
    "Vern6" => OrdinaryDiffEq.Vern6,
    "Vern7" => OrdinaryDiffEq.Vern7,
    "Vern8" => OrdinaryDiffEq.Vern8,
    "Vern9" => OrdinaryDiffEq.Vern9,
)

"""
    find_constructor(name) -> (constructor, qualified_name)

The function `name` (e.g. `"Tsitouras5"`, `"GL4"`) of one of `tableau_modules()`. Only
functions defined in that module count, so `RK4` never resolves to the solver algorithm
of the same name.
"""
function find_constructor(name::AbstractString)
    base = String(name)
    isempty(base) && throw(ArgumentError("unknown tableau \"\": empty name"))
    sym = Symbol(base)
    for m in tableau_modules()
        isdefined(m, sym) || continue
        f = getfield(m, sym)
        if f isa Function && parentmodule(f) === m
            return f, string(nameof(m), ".", base)
        end
    end
    searched = join((string(nameof(m)) for m in tableau_modules()), ", ")
    throw(ArgumentError("unknown tableau \"$(base)\": no function $(base)() in $(searched)"))
end

"""
    find_tableau(name; T = Float64)

The tableau object (`DiffEqBase.ExplicitRKTableau` / `ImplicitRKTableau`) named `name`.
"""
find_tableau(name::AbstractString; T::Type = Float64) = first(_make_tableau(name, T))

function _make_tableau(name::AbstractString, ::Type{T}) where {T}
    f, qualified = find_constructor(name)
    tab = f(T)
    tab isa DiffEqBase.ODERKTableau ||
        throw(ArgumentError("$(qualified)() did not return a Runge-Kutta tableau"))
    return tab, qualified
end

_is_explicit(A) = all(iszero(A[i, j]) for i in axes(A, 1) for j in axes(A, 2) if j >= i)

"""
    export_tableau(name; T = Float64)

`(A, b, c, b_embedded, order, embedded_order, kind, source)` as plain `Float64` arrays
(`b_embedded` is `αEEst`, the embedded *solution* weights, empty when the method has none;
`kind` is `"explicit"` or `"implicit"`; `source` the qualified constructor name).
"""
function export_tableau(name::AbstractString; T::Type = Float64)
    tab, qualified = _make_tableau(name, T)
    A = Matrix{Float64}(tab.A)
    b = Vector{Float64}(tab.α)
    c = Vector{Float64}(tab.c)
    bemb = Vector{Float64}(tab.αEEst)
    kind = tab isa DiffEqBase.ExplicitRKTableau || _is_explicit(A) ? "explicit" : "implicit"
    return (A, b, c, bemb, Int(tab.order), Int(tab.adaptiveorder), kind, qualified)
end

"""
    tableau_from_arrays(A, b, c, order; b_embedded = nothing, embedded_order = 0)

A `DiffEqBase.ExplicitRKTableau` (strictly lower-triangular `A`) or `ImplicitRKTableau`,
built with the constructors `(A, c, α, order; αEEst, adaptiveorder)`.
"""
function tableau_from_arrays(A, b, c, order::Integer; b_embedded = nothing, embedded_order::Integer = 0)
    A = Matrix{Float64}(A)
    b = Vector{Float64}(b)
    c = Vector{Float64}(c)
    s = length(b)
    size(A) == (s, s) && length(c) == s ||
        throw(DimensionMismatch("A must be $(s)×$(s) and c of length $(s) (length(b)), got A $(size(A)), c $(length(c))"))
    T = _is_explicit(A) ? DiffEqBase.ExplicitRKTableau : DiffEqBase.ImplicitRKTableau
    if b_embedded === nothing || isempty(b_embedded)
        return T(A, c, b, Int(order))
    end
    bemb = Vector{Float64}(b_embedded)
    length(bemb) == s || throw(DimensionMismatch("b_embedded must have length $(s), got $(length(bemb))"))
    return T(A, c, b, Int(order); αEEst = bemb, adaptiveorder = Int(embedded_order))
end

_explicit_rk(tab) = OrdinaryDiffEqExplicitRK.ExplicitRK(tableau = tab)

function _problem(f, u0, tspan, p, ::Type{T}) where {T}
    return OrdinaryDiffEq.ODEProblem(f, T.(collect(u0)), (T(tspan[1]), T(tspan[2])), T.(collect(p)))
end

_rows(sol) = permutedims(reduce(hcat, [Float64.(u) for u in sol.u]))

"""
    solve_fixed(f, u0, tspan, p, tab, dt) -> (t, U)

Fixed-step solution with `ExplicitRK(tableau = tab)`; `U` is `length(t) × length(u0)`.
"""
function solve_fixed(f, u0, tspan, p, tab, dt)
    prob = _problem(f, u0, tspan, p, Float64)
    sol = OrdinaryDiffEq.solve(prob, _explicit_rk(tab); dt = Float64(dt), adaptive = false)
    return (Vector{Float64}(sol.t), _rows(sol))
end

"""
    step_many(f, U, t, dt, p, tab) -> V

One step of `ExplicitRK(tableau = tab)` from each row of `U` (`init` + `step!`).
"""
function step_many(f, U, t, dt, p, tab)
    U = Matrix{Float64}(U)
    out = similar(U)
    alg = _explicit_rk(tab)
    t0, h = Float64(t), Float64(dt)
    for i in axes(U, 1)
        prob = _problem(f, U[i, :], (t0, t0 + h), p, Float64)
        integ = OrdinaryDiffEq.init(prob, alg; dt = h, adaptive = false, save_everystep = false)
        OrdinaryDiffEq.step!(integ)
        out[i, :] .= integ.u
    end
    return out
end

"""
    solve_reference(f, u0, tspan, p, saveat; abstol = 1e-14, reltol = 1e-14, bigfloat = false, alg = "Vern9")

Adaptive reference solution saved at `saveat` (in `BigFloat` when `bigfloat`, rounded
back to Float64). `alg` must be a key of `REFERENCE_ALGORITHMS`; any other name is an
`ArgumentError` (never looked up as an arbitrary binding).
"""
function solve_reference(f, u0, tspan, p, saveat; abstol = 1e-14, reltol = 1e-14, bigfloat::Bool = false,
        alg::AbstractString = "Vern9")
    haskey(REFERENCE_ALGORITHMS, alg) ||
        throw(ArgumentError("alg: expected one of $(join(sort!(collect(keys(REFERENCE_ALGORITHMS))), ", ")), got $(repr(alg))"))
    T = bigfloat ? BigFloat : Float64
    prob = _problem(f, u0, tspan, p, T)
    algorithm = REFERENCE_ALGORITHMS[alg]()
    sol = OrdinaryDiffEq.solve(prob, algorithm; abstol = T(abstol), reltol = T(reltol),
        saveat = T.(collect(saveat)))
    return (Vector{Float64}(Float64.(sol.t)), _rows(sol))
end

"""
    stability(tab, z) -> Vector{ComplexF64}

`R(z)` from `DiffEqDevTools.stability_region(z, tab)` at each `z`.
"""
stability(tab, z) = ComplexF64[DiffEqDevTools.stability_region(ComplexF64(zi), tab) for zi in z]

# errors of a singular I - zA (DiffEqDevTools.stability_region solves (I - zA) \ 1)
_singular(err) = err isa LinearAlgebra.SingularException || err isa LinearAlgebra.LAPACKException

# |R| - 1 along a ray (Inf where I - zA is singular)
function _excess(tab, z)
    try
        return abs(DiffEqDevTools.stability_region(z, tab)) - 1
    catch err
        _singular(err) || rethrow()
        return Inf
    end
end

# the polishing root finders (DiffEqDevTools' SimpleTrustRegion on |R| - 1) may step onto a
# pole of R or out of the domain; such a failure only means "bisect instead"
_polish_failed(err) = _singular(err) || err isa DomainError

# Largest r <= 1e3 with |R(dir*x)| <= 1 on [0, r]: scan (the grid of the SciPy backend),
# then polish the bracketing root with DiffEqDevTools' root finder, bisecting if that
# lands outside the bracket (its root finder alone may converge to x = 0, where |R| = 1 too).
function _interval(tab, dir, polish; tol = 1e-13)
    g = x -> _excess(tab, dir * x)
    grid = vcat(collect(range(0.0, 10.0; length = 20001))[2:end],
        exp.(collect(range(log(10.0), log(1.0e3); length = 4001)))[2:end])
    k = findfirst(x -> !(g(x) <= tol), grid)
    k === nothing && return Inf
    if k == 1 && !(g(1.0e-6) <= tol && g(1.0e-4) <= tol)
        return 0.0
    end
    lo, hi = (k == 1 ? 0.0 : grid[k - 1]), grid[k]
    r = try
        Float64(polish((lo + hi) / 2))
    catch err
        _polish_failed(err) || rethrow()
        NaN
    end
    if isfinite(r) && lo - 1.0e-12 <= r <= hi + 1.0e-12 && abs(g(r)) <= 1.0e-9
        return r
    end
    for _ in 1:200
        mid = (lo + hi) / 2
        g(mid) <= tol ? (lo = mid) : (hi = mid)
        hi - lo <= 1.0e-14 * max(1.0, hi) && break
    end
    return lo
end

"""
    real_stability_interval(tab) -> Float64

Largest `r` with `[-r, 0]` in the stability region (`Inf` if none ends before 1e3):
the first exit of `|R|` found on a grid, polished with
`DiffEqDevTools.stability_region(tab; initial_guess)`, which returns the (negative) root of
`|R(x)| = 1` nearest its guess.
"""
real_stability_interval(tab) = _interval(tab, -1.0,
    x0 -> -DiffEqDevTools.stability_region(tab; initial_guess = -x0))

"""
    imag_stability_interval(tab) -> Float64

Largest `r` with `[-ir, ir]` in the stability region (0 if none), polished with
`DiffEqDevTools.imaginary_stability_interval(tab; initial_guess)`.
"""
imag_stability_interval(tab) = _interval(tab, 1.0im,
    y0 -> abs(DiffEqDevTools.imaginary_stability_interval(tab; initial_guess = y0)))

"""
    convergence(f, u0, tspan, p, tab, dts; abstol = 1e-14, reltol = 1e-14) -> (final_errors, order)

`DiffEqDevTools.analyticless_test_convergence(dts, prob, ExplicitRK(tableau = tab),
Dict(:alg => Vern9(), :abstol => abstol, :reltol => reltol))`; returns the `:final`
errors and `𝒪est[:final]` (the mean of `log2` error ratios: it assumes `dts` halve).
"""
function convergence(f, u0, tspan, p, tab, dts; abstol = 1e-14, reltol = 1e-14)
    steps = collect(Float64, dts)
    length(steps) >= 2 || throw(ArgumentError("dts: need at least two step sizes, got $(length(steps))"))
    prob = _problem(f, u0, tspan, p, Float64)
    setup = Dict(:alg => OrdinaryDiffEq.Vern9(), :abstol => Float64(abstol), :reltol => Float64(reltol))
    sim = DiffEqDevTools.analyticless_test_convergence(steps, prob, _explicit_rk(tab), setup)
    return (Vector{Float64}(sim.errors[:final]), Float64(only(sim.𝒪est[:final])))
end

"""
    versions() -> Dict{String, String}

Julia and package versions (`pkgversion`).
"""
function versions()
    d = Dict{String, String}("julia" => string(VERSION))
    for m in (OrdinaryDiffEq, OrdinaryDiffEqExplicitRK, DiffEqBase, DiffEqDevTools, tableau_modules()...)
        v = pkgversion(m)
        d[string(nameof(m))] = v === nothing ? "unknown" : string(v)
    end
    return d
end

end # module
