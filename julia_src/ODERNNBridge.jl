"""
    ODERNNBridge

Thin Julia companion of the Python package `odernn_bridge` (loaded by
`odernn_bridge.reference.julia` through juliacall, with `include` into a fresh module).

* named tableaux of OrdinaryDiffEq / DiffEqDevTools exported as plain arrays
  (`export_tableau`), with a shim between the naming schemes: the split packages
  `OrdinaryDiffEqExplicitTableaus` / `OrdinaryDiffEqImplicitTableaus` (unexported `RK4()`,
  `Tsitouras5()`, `GL4()` … since April 2026; `construct*` in their first releases) and
  the older `DiffEqDevTools.construct*()` functions;
* fixed-step solves with `ExplicitRK(tableau = tab)`, one step from many states, and a
  `Vern9` reference (optionally in `BigFloat`);
* `DiffEqDevTools.stability_region`, `imaginary_stability_interval` and
  `analyticless_test_convergence`.

Right-hand sides are in-place functions `f!(du, u, p, t)`; `p` is a parameter vector.
"""
module ODERNNBridge

import DiffEqBase
import DiffEqDevTools
import OrdinaryDiffEq

export export_tableau, find_constructor, tableau_modules, tableau_from_arrays, solve_fixed,
    step_many, solve_reference, stability, real_stability_interval, imag_stability_interval,
    convergence, versions, naming_scheme

const EXPLICIT_TABLEAUS = Base.PkgId(
    Base.UUID("3278f1b1-0f5c-4cde-98e0-ba5eb00db955"), "OrdinaryDiffEqExplicitTableaus")
const IMPLICIT_TABLEAUS = Base.PkgId(
    Base.UUID("75f66a49-58fc-43e3-9173-2340726368f7"), "OrdinaryDiffEqImplicitTableaus")

const _MODULES = Ref{Union{Nothing, Vector{Module}}}(nothing)

function _try_require(pkg::Base.PkgId)
    try
        return Base.require(pkg)
    catch
        return nothing
    end
end

"""
    tableau_modules() -> Vector{Module}

Modules searched for named tableau constructors, in order: the split tableau packages
where installed, then `DiffEqDevTools`, then the module that defines
`OrdinaryDiffEq.ExplicitRK` (home of `constructDormandPrince`).
"""
function tableau_modules()
    if _MODULES[] === nothing
        mods = Module[]
        for pkg in (EXPLICIT_TABLEAUS, IMPLICIT_TABLEAUS)
            m = _try_require(pkg)
            m isa Module && push!(mods, m)
        end
        push!(mods, DiffEqDevTools)
        push!(mods, parentmodule(OrdinaryDiffEq.ExplicitRK))
        _MODULES[] = unique(mods)
    end
    return _MODULES[]::Vector{Module}
end

"""
    naming_scheme() -> String

`"split"` when a split tableau package is loaded, `"construct"` otherwise.
"""
naming_scheme() = any(m -> nameof(m) in (:OrdinaryDiffEqExplicitTableaus, :OrdinaryDiffEqImplicitTableaus),
    tableau_modules()) ? "split" : "construct"

"""
    find_constructor(name) -> (constructor, qualified_name)

Look `name` (`"Tsitouras5"` or `"constructTsitouras5"`) up as `name` and as
`construct*name` in each of `tableau_modules()`; only functions defined in that module
count (so `RK4` never resolves to the solver algorithm of the same name).
"""
function find_constructor(name::AbstractString)
    base = startswith(name, "construct") ? String(name[(length("construct") + 1):end]) : String(name)
    for m in tableau_modules()
        for cand in (base, "construct" * base)
            sym = Symbol(cand)
            isdefined(m, sym) || continue
            f = getfield(m, sym)
            if f isa Function && parentmodule(f) === m
                return f, string(nameof(m), ".", cand)
            end
        end
    end
    searched = join((string(nameof(m)) for m in tableau_modules()), ", ")
    throw(ArgumentError("unknown tableau $(repr(name)): neither $(base)() nor construct$(base)() in $(searched)"))
end

"""
    find_tableau(name; T = Float64)

The tableau object (`DiffEqBase.ExplicitRKTableau` / `ImplicitRKTableau`) named `name`.
"""
function find_tableau(name::AbstractString; T::Type = Float64)
    f, qualified = find_constructor(name)
    tab = Base.invokelatest(f, T)
    tab isa DiffEqBase.ODERKTableau ||
        throw(ArgumentError("$(qualified)() did not return a Runge-Kutta tableau"))
    return tab
end

_is_explicit(A) = all(iszero(A[i, j]) for i in axes(A, 1) for j in axes(A, 2) if j >= i)

"""
    export_tableau(name; T = Float64)

`(A, b, c, b_embedded, order, embedded_order, kind, source)` as plain arrays
(`b_embedded` empty when the method has none; `kind` is `"explicit"` or `"implicit"`).
"""
function export_tableau(name::AbstractString; T::Type = Float64)
    f, qualified = find_constructor(name)
    tab = Base.invokelatest(f, T)
    A = Matrix{Float64}(tab.A)
    b = Vector{Float64}(tab.α)
    c = Vector{Float64}(tab.c)
    bemb = Vector{Float64}(tab.αEEst)
    kind = tab isa DiffEqBase.ExplicitRKTableau || _is_explicit(A) ? "explicit" : "implicit"
    return (A, b, c, bemb, Int(tab.order), Int(tab.adaptiveorder), kind, qualified)
end

"""
    tableau_from_arrays(A, b, c, order; b_embedded = nothing, embedded_order = 0)

A `DiffEqBase.ExplicitRKTableau` (strictly lower-triangular `A`) or `ImplicitRKTableau`.
"""
function tableau_from_arrays(A, b, c, order::Integer; b_embedded = nothing, embedded_order::Integer = 0)
    A = Matrix{Float64}(A)
    b = Vector{Float64}(b)
    c = Vector{Float64}(c)
    T = _is_explicit(A) ? DiffEqBase.ExplicitRKTableau : DiffEqBase.ImplicitRKTableau
    if b_embedded === nothing || isempty(b_embedded)
        return T(A, c, b, Int(order))
    end
    return T(A, c, b, Int(order); αEEst = Vector{Float64}(b_embedded), adaptiveorder = Int(embedded_order))
end

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
    sol = OrdinaryDiffEq.solve(prob, OrdinaryDiffEq.ExplicitRK(tableau = tab); dt = Float64(dt), adaptive = false)
    return (Vector{Float64}(sol.t), _rows(sol))
end

"""
    step_many(f, U, t, dt, p, tab) -> V

One step of `ExplicitRK(tableau = tab)` from each row of `U` (`init` + `step!`).
"""
function step_many(f, U, t, dt, p, tab)
    U = Matrix{Float64}(U)
    out = similar(U)
    alg = OrdinaryDiffEq.ExplicitRK(tableau = tab)
    for i in axes(U, 1)
        prob = _problem(f, U[i, :], (Float64(t), Float64(t) + Float64(dt)), p, Float64)
        integ = OrdinaryDiffEq.init(prob, alg; dt = Float64(dt), adaptive = false, save_everystep = false)
        OrdinaryDiffEq.step!(integ)
        out[i, :] .= integ.u
    end
    return out
end

"""
    solve_reference(f, u0, tspan, p, saveat; abstol = 1e-14, reltol = 1e-14, bigfloat = false, alg = "Vern9")

Adaptive reference solution saved at `saveat` (in `BigFloat` when `bigfloat`, rounded
back to Float64). `alg` names any OrdinaryDiffEq algorithm with a zero-argument constructor.
"""
function solve_reference(f, u0, tspan, p, saveat; abstol = 1e-14, reltol = 1e-14, bigfloat::Bool = false,
        alg::AbstractString = "Vern9")
    T = bigfloat ? BigFloat : Float64
    prob = _problem(f, u0, tspan, p, T)
    algorithm = getproperty(OrdinaryDiffEq, Symbol(alg))()
    sol = OrdinaryDiffEq.solve(prob, algorithm; abstol = T(abstol), reltol = T(reltol),
        saveat = T.(collect(saveat)))
    return (Vector{Float64}(Float64.(sol.t)), _rows(sol))
end

"""
    stability(tab, z) -> Vector{ComplexF64}

`R(z)` from `DiffEqDevTools.stability_region(z, tab)` at each `z`.
"""
stability(tab, z) = ComplexF64[DiffEqDevTools.stability_region(ComplexF64(zi), tab) for zi in z]

"""
    real_stability_interval(tab)

Length of the real stability interval: `DiffEqDevTools.stability_region(tab)` returns its
(negative) left end.
"""
real_stability_interval(tab) = abs(Float64(DiffEqDevTools.stability_region(tab)))

"""
    imag_stability_interval(tab)

`DiffEqDevTools.imaginary_stability_interval(tab)`.
"""
imag_stability_interval(tab) = abs(Float64(DiffEqDevTools.imaginary_stability_interval(tab)))

"""
    convergence(f, u0, tspan, p, tab, dts; abstol = 1e-14, reltol = 1e-14) -> (final_errors, order)

`DiffEqDevTools.analyticless_test_convergence` with a `Vern9` reference; returns the
`:final` errors and estimated order (which assumes `dts` halve).
"""
function convergence(f, u0, tspan, p, tab, dts; abstol = 1e-14, reltol = 1e-14)
    prob = _problem(f, u0, tspan, p, Float64)
    setup = Dict(:alg => OrdinaryDiffEq.Vern9(), :abstol => abstol, :reltol => reltol)
    sim = DiffEqDevTools.analyticless_test_convergence(collect(Float64, dts), prob,
        OrdinaryDiffEq.ExplicitRK(tableau = tab), setup)
    return (Vector{Float64}(sim.errors[:final]), Float64(sim.𝒪est[:final]))
end

"""
    versions() -> Dict{String, String}

Julia and package versions (`pkgversion`).
"""
function versions()
    d = Dict{String, String}("julia" => string(VERSION))
    for m in (OrdinaryDiffEq, DiffEqBase, DiffEqDevTools, tableau_modules()...)
        v = pkgversion(m)
        d[string(nameof(m))] = v === nothing ? "unknown" : string(v)
    end
    return d
end

end # module
