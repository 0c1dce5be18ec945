# Tests of the ODERNNBridge Julia package: `julia --project=. -e 'using Pkg; Pkg.test()'`
# (or `.ci/julia`). The numbers are those the Python backend-contract tests assert
# (tests/reference/test_backend_contract.py), so both sides check the same facts.
using Test
using ODERNNBridge

# u' = λu with λ = p[1] (the "linear" problem of odernn_bridge.reference.problems)
linear!(du, u, p, t) = (du[1] = p[1] * u[1]; nothing)
# Van der Pol, μ = p[1]
vanderpol!(du, u, p, t) = (du[1] = u[2]; du[2] = p[1] * (1 - u[1]^2) * u[2] - u[1]; nothing)

rk4_R(z) = 1 + z + z^2 / 2 + z^3 / 6 + z^4 / 24

@testset "ODERNNBridge" begin
    @testset "tableau export" begin
        A, b, c, bemb, order, emb_order, kind, source = export_tableau("RK4")
        @test A == [0 0 0 0; 1/2 0 0 0; 0 1/2 0 0; 0 0 1 0]
        @test b ≈ [1 / 6, 1 / 3, 1 / 3, 1 / 6] atol=1e-16
        @test c == [0, 1 / 2, 1 / 2, 1]
        @test isempty(bemb) && emb_order == 0   # RK4() has no embedded pair (αEEst = similar(α, 0))
        @test (order, kind) == (4, "explicit")
        @test source == "OrdinaryDiffEqExplicitTableaus.RK4"
        # DP5: 7 stages, 5(4) pair; 35/384 is the first weight (exact rational -> 1 ulp)
        A, b, c, bemb, order, emb_order, kind, _ = export_tableau("DormandPrince")
        @test size(A) == (7, 7) && (order, emb_order) == (5, 4) && kind == "explicit"
        @test b[1] ≈ 35 / 384 atol=1e-16
        @test sum(b) ≈ 1 atol=1e-15
        @test sum(bemb) ≈ 1 atol=1e-15
        # an implicit one from the other package
        A, b, c, _, order, _, kind, source = export_tableau("GL4")
        @test (order, kind) == (4, "implicit") && source == "OrdinaryDiffEqImplicitTableaus.GL4"
        @test A[1, 2] ≈ (3 - 2sqrt(3)) / 12 atol=1e-16
        # RK4 is also an algorithm name: only the tableau function counts
        f, qualified = find_constructor("RK4")
        @test parentmodule(f) === ODERNNBridge.OrdinaryDiffEqExplicitTableaus
        @test_throws ArgumentError find_constructor("NoSuchTableau")
        @test_throws ArgumentError find_constructor("")
        @test_throws DimensionMismatch tableau_from_arrays(zeros(2, 3), [1.0], [0.0], 1)
    end

    rk4 = find_tableau("RK4")

    @testset "fixed-step solve, linear problem" begin
        dt = 0.1
        t, U = solve_fixed(linear!, [1.0], (0.0, 1.0), [-1.0], rk4, dt)
        @test length(t) == 11 && size(U) == (11, 1)
        @test t[end] ≈ 1.0 atol=1e-14
        # RK4 on u' = -u multiplies by R(-dt) each step: exact up to rounding (10 steps)
        @test U[end, 1] ≈ rk4_R(-dt)^10 rtol=1e-14
        # and differs from exp(-1) by the global error C dt^4 (≈ 3.3e-7 here)
        @test 1e-8 < abs(U[end, 1] - exp(-1)) < 1e-6
        V = step_many(linear!, reshape([1.0, 2.0], 2, 1), 0.0, 0.05, [-1.0], rk4)
        @test V[:, 1] ≈ [1.0, 2.0] .* rk4_R(-0.05) rtol=1e-15
    end

    @testset "reference solution" begin
        t, U = solve_reference(linear!, [1.0], (0.0, 1.0), [-1.0], [0.5, 1.0])
        @test U[:, 1] ≈ exp.(-[0.5, 1.0]) atol=1e-12   # Vern9 at 1e-14 tolerances
        # only whitelisted algorithm names: never an arbitrary binding such as SciMLBase
        @test_throws ArgumentError solve_reference(linear!, [1.0], (0.0, 1.0), [-1.0], [1.0]; alg = "SciMLBase")
        @test_throws ArgumentError solve_reference(linear!, [1.0], (0.0, 1.0), [-1.0], [1.0]; alg = "Rodas4")
    end

    @testset "RK4 stability" begin
        z = ComplexF64[-1.0, -2.5 + 0.5im, 1im, 0.3 - 2im]
        @test stability(rk4, z) ≈ rk4_R.(z) rtol=1e-13
        # real: root of |R(-x)| = 1; imaginary: 2√2 exactly
        @test real_stability_interval(rk4) ≈ 2.785293563405282 atol=1e-8
        @test imag_stability_interval(rk4) ≈ 2sqrt(2) atol=1e-8
        # Euler: [-2, 0] and no imaginary interval
        euler = find_tableau("Euler")
        @test real_stability_interval(euler) ≈ 2.0 atol=1e-10
        @test imag_stability_interval(euler) == 0.0
    end

    @testset "convergence order" begin
        errs, order = convergence(vanderpol!, [2.0, 0.0], (0.0, 2.0), [1.0], rk4, [1 / 8, 1 / 16, 1 / 32, 1 / 64])
        @test abs(order - 4) < 0.3          # the Python contract's tolerance
        @test all(diff(log.(errs)) .< 0)
    end

    @testset "versions" begin
        v = versions()
        @test v["julia"] == string(VERSION)
        @test VersionNumber(v["OrdinaryDiffEq"]).major == 7
        @test VersionNumber(v["DiffEqBase"]).major == 7
        @test VersionNumber(v["OrdinaryDiffEqExplicitTableaus"]).major == 2
    end
end
