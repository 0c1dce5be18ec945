// Native sequence loop of the fused explicit Runge–Kutta kernel (odernn_bridge.cells.fused).
//
// Built on first use by odernn_bridge/cells/_native.py against the installed torch (it links
// libtorch_cpu and torch's own OpenMP runtime, so its parallel region uses torch's thread
// pool and honours torch.set_num_threads).  It runs the same arithmetic as the Python loop of
// fused.py for fields f(h, u) = act(W h + u) − leak·h.  Why it is faster:
//
//   * no Python between operations (the Python loop dispatches ~17 ATen calls per RK4 step);
//   * the batch rows of a recurrence never interact (W is shared, read only), so the
//     intra-op threads split the *batch* once and each runs the whole sequence — every
//     stage's product, activation and combination — on its own rows: one parallel region
//     per call, no synchronisation between stages.  In the Python loop each 64×256 product
//     is split across threads by MKL (1.7× on two threads) and every elementwise operation
//     runs on one thread (ATen does not split tensors below 32768 values).
//
// Products are ATen's (`at::mm_out` on the thread's rows; BLAS runs single-threaded inside
// the region) and sigmoids are ATen's vectorised `sigmoid_`, so results agree with the
// Python loop to rounding (stage sums are accumulated in another order).
//
// Stage values R_i live in a per-thread (stages, rows, H) workspace, or in the caller's
// (stages, N, B, H) store when the backward pass needs them (training); with a leak the
// stage arguments Y_i are stored too, and with substeps the substep states S.  The stage
// derivative is K_i = p R_i + q with p, q folded by the caller into the coefficients and the
// constant shift of each stage argument (see fused._Kernel), except with a leak, where
// K_i = act(z_i) − leak·y_i is formed here.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/core/GradMode.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sigmoid.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <vector>

namespace {

// activation codes (must match fused.py: _NATIVE_ACT)
constexpr int64_t ACT_RAW_SIGMOID = 0;  // R = σ(z), tanh folded into the coefficients
constexpr int64_t ACT_TANH2 = 1;        // tanh as 2σ(z) − 1, z the pre-activation scaled by 2 (with a leak)
constexpr int64_t ACT_SIGMOID = 2;
constexpr int64_t ACT_RELU = 3;
constexpr int64_t ACT_IDENTITY = 4;

// y = h + shift + Σ_t c_t K_t over n values
template <typename T>
inline void combine(T* y, const T* h, const std::vector<const T*>& K, const std::vector<T>& c, T shift, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = h[i] + shift;
  for (size_t t = 0; t < K.size(); ++t) {
    const T ct = c[t];
    const T* k = K[t];
    for (int64_t i = 0; i < n; ++i) y[i] += ct * k[i];
  }
}

struct Stages {
  std::vector<int64_t> row_ptr, row_slot, y_slot, upd_slot;
  std::vector<double> row_coef, row_shift, theta, upd_coef;
  double delta = 0.0, sc = 0.0, leak = 0.0;
  int64_t act = 0, m = 1;
  bool linear = false;
};

// what the forward and the reverse pass both read: the stage couplings, the update weights,
// the activation, the leak and the substep count
Stages common_stages(at::IntArrayRef row_ptr, at::IntArrayRef row_slot, at::ArrayRef<double> row_coef,
                     at::IntArrayRef upd_slot, at::ArrayRef<double> upd_coef, int64_t act, double leak,
                     int64_t substeps) {
  Stages st;
  st.row_ptr.assign(row_ptr.begin(), row_ptr.end());
  st.row_slot.assign(row_slot.begin(), row_slot.end());
  st.row_coef.assign(row_coef.begin(), row_coef.end());
  st.upd_slot.assign(upd_slot.begin(), upd_slot.end());
  st.upd_coef.assign(upd_coef.begin(), upd_coef.end());
  st.act = act;
  st.leak = leak;
  st.m = substeps;
  return st;
}

// contiguous row blocks, one per thread, each at least min_rows rows (a product of fewer
// rows does not pay for a thread)
int64_t batch_grain(int64_t B, int64_t min_rows) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  return std::max<int64_t>(std::max<int64_t>(min_rows, 1), (B + threads - 1) / threads);
}

// the whole sequence for batch rows [b0, b1)
template <typename T>
void run_rows(const Stages& st, const at::Tensor& u_seq, const at::Tensor& h0, const at::Tensor& W2t,
              const at::Tensor& out, const at::Tensor& R_store, const at::Tensor& Y_store, const at::Tensor& S_store,
              int64_t b0, int64_t b1) {
  // grad mode is thread-local: OpenMP workers do not inherit the caller's no-grad mode
  c10::AutoGradMode no_grad(false);
  const int64_t T_ = u_seq.size(0), B = u_seq.size(1), H = u_seq.size(2);
  const int64_t ns = static_cast<int64_t>(st.row_ptr.size()) - 1;
  const int64_t nb = b1 - b0, BH = B * H, n = nb * H, off = b0 * H;
  const int64_t m = st.m;
  const T sc = static_cast<T>(st.sc), leak = static_cast<T>(st.leak);
  const bool store_R = R_store.defined(), store_Y = Y_store.defined(), with_S = S_store.defined();
  const bool has_leak = st.leak != 0.0;
  auto opts = h0.options();
  // per-thread one-step workspace (stage values, derivatives with a leak, stage arguments)
  at::Tensor A = store_R ? at::Tensor() : at::empty({ns, nb, H}, opts);
  at::Tensor Kl = has_leak ? at::empty({ns, nb, H}, opts) : at::Tensor();
  at::Tensor Yw = at::empty({ns, nb, H}, opts);
  at::Tensor dU = st.linear ? at::empty({nb, H}, opts) : at::Tensor();
  at::Tensor work = (m > 1 && !with_S) ? at::empty({2, nb, H}, opts) : at::Tensor();
  const int64_t N = T_ * m;
  const T* u_base = u_seq.template data_ptr<T>() + off;
  T* out_base = out.template data_ptr<T>() + off;
  T* R_base = store_R ? R_store.template data_ptr<T>() + off : nullptr;
  T* Y_base = store_Y ? Y_store.template data_ptr<T>() + off : nullptr;
  T* S_base = with_S ? S_store.template data_ptr<T>() + off : nullptr;
  T* A_base = store_R ? nullptr : A.template data_ptr<T>();
  T* Kl_base = has_leak ? Kl.template data_ptr<T>() : nullptr;
  T* Yw_base = Yw.template data_ptr<T>();

  // a (nb, H) tensor over the rows at p, whose row stride is H
  auto rows = [&](T* p) { return at::from_blob(p, {nb, H}, opts); };
  auto R_ptr = [&](int64_t r, int64_t idx) -> T* {
    return store_R ? R_base + (r * N + idx) * BH : A_base + r * n;
  };
  auto K_ptr = [&](int64_t r, int64_t idx) -> const T* { return has_leak ? Kl_base + r * n : R_ptr(r, idx); };
  // strides: the stores and outputs have row stride H inside a (B, H) block, so the
  // thread's rows of one block are contiguous; from_blob views them without copying

  const T* h = h0.template data_ptr<T>() + off;
  if (with_S) std::copy(h, h + n, S_base);
  std::vector<const T*> Ks;
  std::vector<T> cs;
  int64_t idx = 0;
  for (int64_t k = 0; k < T_; ++k) {
    const T* u = u_base + k * BH;
    const T* du = nullptr;
    if (st.linear && k + 1 < T_) {
      T* d = dU.template data_ptr<T>();
      const T* un = u + BH;
      for (int64_t i = 0; i < n; ++i) d[i] = un[i] - u[i];
      du = d;
    }
    for (int64_t mm = 0; mm < m; ++mm) {
      for (int64_t r = 0; r < ns; ++r) {
        const int64_t p0 = st.row_ptr[r], p1 = st.row_ptr[r + 1];
        const T* y = h;
        if (p1 > p0) {
          T* ydst = (store_Y && st.y_slot[r] >= 0) ? Y_base + (st.y_slot[r] * N + idx) * BH : Yw_base + r * n;
          Ks.clear();
          cs.clear();
          for (int64_t p = p0; p < p1; ++p) {
            Ks.push_back(K_ptr(st.row_slot[p], idx));
            cs.push_back(static_cast<T>(st.row_coef[p]));
          }
          combine<T>(ydst, h, Ks, cs, static_cast<T>(st.row_shift[r]), n);
          y = ydst;
        }
        T* z = R_ptr(r, idx);
        at::Tensor zt = rows(z);
        at::mm_out(zt, rows(const_cast<T*>(y)), W2t);
        const T th = static_cast<T>(st.theta[mm * ns + r]);
        for (int64_t i = 0; i < n; ++i) z[i] += sc * u[i];
        if (du != nullptr && th != T(0)) {
          const T f = sc * th;
          for (int64_t i = 0; i < n; ++i) z[i] += f * du[i];
        }
        if (st.act == ACT_RAW_SIGMOID || st.act == ACT_TANH2 || st.act == ACT_SIGMOID) {
          zt.sigmoid_();
          if (st.act == ACT_TANH2)
            for (int64_t i = 0; i < n; ++i) z[i] = T(2) * z[i] - T(1);
        } else if (st.act == ACT_RELU) {
          for (int64_t i = 0; i < n; ++i) z[i] = z[i] > T(0) ? z[i] : T(0);
        }
        if (has_leak) {
          T* kl = Kl_base + r * n;
          for (int64_t i = 0; i < n; ++i) kl[i] = z[i] - leak * y[i];
        }
      }
      // h' = h + Σ β K + δ into the output row block, the substep store or a work buffer
      T* dst;
      if (with_S)
        dst = S_base + (idx + 1) * BH;
      else if (mm == m - 1)
        dst = out_base + k * BH;
      else
        dst = work.template data_ptr<T>() + (mm % 2) * n;
      Ks.clear();
      cs.clear();
      for (size_t p = 0; p < st.upd_slot.size(); ++p) {
        Ks.push_back(K_ptr(st.upd_slot[p], idx));
        cs.push_back(static_cast<T>(st.upd_coef[p]));
      }
      combine<T>(dst, h, Ks, cs, static_cast<T>(st.delta), n);
      if (with_S && mm == m - 1) std::copy(dst, dst + n, out_base + k * BH);
      h = dst;
      ++idx;
    }
  }
}

void rk_sequence(const at::Tensor& u_seq, const at::Tensor& h0, const at::Tensor& W2t, at::IntArrayRef row_ptr,
                 at::IntArrayRef row_slot, at::ArrayRef<double> row_coef, at::ArrayRef<double> row_shift,
                 at::IntArrayRef y_slot, at::ArrayRef<double> theta,
                 at::IntArrayRef upd_slot, at::ArrayRef<double> upd_coef, double delta, double sc, int64_t act,
                 double leak, bool linear, int64_t substeps, const at::Tensor& out,
                 const std::optional<at::Tensor>& R_store, const std::optional<at::Tensor>& Y_store,
                 const std::optional<at::Tensor>& S_store, int64_t min_rows) {
  TORCH_CHECK(u_seq.dim() == 3 && u_seq.is_contiguous(), "rk_sequence: u_seq must be contiguous (T, B, H)");
  TORCH_CHECK(h0.dim() == 2 && h0.is_contiguous(), "rk_sequence: h0 must be contiguous (B, H)");
  TORCH_CHECK(out.is_contiguous() && out.sizes() == u_seq.sizes(), "rk_sequence: out must match u_seq");
  TORCH_CHECK(u_seq.device().is_cpu(), "rk_sequence: CPU tensors only");
  TORCH_CHECK(substeps >= 1, "rk_sequence: substeps >= 1");
  const int64_t ns = static_cast<int64_t>(row_ptr.size()) - 1;
  TORCH_CHECK(ns >= 1 && static_cast<int64_t>(y_slot.size()) == ns && static_cast<int64_t>(row_shift.size()) == ns &&
                  static_cast<int64_t>(theta.size()) == ns * substeps,
              "rk_sequence: inconsistent stage description");
  at::Tensor Rs = R_store.has_value() ? *R_store : at::Tensor();
  at::Tensor Ys = Y_store.has_value() ? *Y_store : at::Tensor();
  at::Tensor Ss = S_store.has_value() ? *S_store : at::Tensor();
  const int64_t T_ = u_seq.size(0), Bn = u_seq.size(1), H = u_seq.size(2), N = T_ * substeps;
  TORCH_CHECK(h0.size(0) == Bn && h0.size(1) == H, "rk_sequence: h0 must be (B, H)");
  TORCH_CHECK(W2t.dim() == 2 && W2t.size(0) == H && W2t.size(1) == H, "rk_sequence: W2t must be (H, H)");
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&h0, &W2t, &out, &Rs, &Ys, &Ss})
    TORCH_CHECK(!t->defined() || (t->scalar_type() == u_seq.scalar_type() && t->device().is_cpu()),
                "rk_sequence: every tensor must be a CPU tensor of u_seq's dtype");
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&Rs, &Ys, &Ss})
    TORCH_CHECK(!t->defined() || t->is_contiguous(), "rk_sequence: stores must be contiguous");
  TORCH_CHECK(!Rs.defined() || Rs.sizes() == at::IntArrayRef({ns, N, Bn, H}), "rk_sequence: R_store must be (stages, N, B, H)");
  TORCH_CHECK(!Ss.defined() || Ss.sizes() == at::IntArrayRef({N + 1, Bn, H}), "rk_sequence: S_store must be (N+1, B, H)");
  int64_t max_slot = -1;
  for (int64_t v : y_slot) max_slot = std::max(max_slot, v);
  TORCH_CHECK(!Ys.defined() || (Ys.dim() == 4 && Ys.size(0) > max_slot && Ys.size(1) == N && Ys.size(2) == Bn &&
                                Ys.size(3) == H),
              "rk_sequence: Y_store must be (slots, N, B, H)");
  TORCH_CHECK(leak == 0.0 || act != 0, "rk_sequence: the folded sigmoid (act 0) needs leak 0");
  Stages st = common_stages(row_ptr, row_slot, row_coef, upd_slot, upd_coef, act, leak, substeps);
  st.y_slot.assign(y_slot.begin(), y_slot.end());
  st.row_shift.assign(row_shift.begin(), row_shift.end());
  st.theta.assign(theta.begin(), theta.end());
  st.delta = delta;
  st.sc = sc;
  st.linear = linear;
  AT_DISPATCH_FLOATING_TYPES(u_seq.scalar_type(), "rk_sequence", [&] {
    at::parallel_for(0, Bn, batch_grain(Bn, min_rows), [&](int64_t b0, int64_t b1) {
      run_rows<scalar_t>(st, u_seq, h0, W2t, out, Rs, Ys, Ss, b0, b1);
    });
  });
}


// The reverse pass of the training kernel for batch rows [b0, b1): walks the steps backwards
// through the stages (see fused._FusedRK.backward, which this mirrors operation for operation):
//   gK_r = w_r g (+ Σ_{l later} a_lr gY_l), gP_r = gK_r ⊙ act'(R_r), gY_r = gP_r Wg − leak gK_r,
//   g ← g + Σ_r gY_r.
// G (stages, N, B, H) receives gP for every step and stage (the caller forms ∂L/∂u and ∂L/∂W
// from it with large products); g0 the gradient with respect to the initial state.
template <typename T>
void backward_rows(const Stages& st, const at::Tensor& g_out, const at::Tensor& R, const at::Tensor& Wg,
                   const at::Tensor& G, const at::Tensor& g0, int64_t b0, int64_t b1) {
  c10::AutoGradMode no_grad(false);
  const int64_t T_ = g_out.size(0), B = g_out.size(1), H = g_out.size(2);
  const int64_t ns = static_cast<int64_t>(st.row_ptr.size()) - 1;
  const int64_t nb = b1 - b0, BH = B * H, n = nb * H, off = b0 * H;
  const int64_t m = st.m, N = T_ * m;
  const T leak = static_cast<T>(st.leak);
  const bool has_leak = st.leak != 0.0;
  auto opts = g_out.options();
  at::Tensor work = at::empty({3 + ns, nb, H}, opts);  // g, g_acc, gy, gK[ns]
  T* g = work.template data_ptr<T>();
  T* g_acc = g + n;
  T* gy = g_acc + n;
  T* gK = gy + n;
  std::fill(g, g + n, T(0));
  const T* go_base = g_out.template data_ptr<T>() + off;
  const T* R_base = R.template data_ptr<T>() + off;
  T* G_base = G.template data_ptr<T>() + off;
  std::vector<T> wv(ns, T(0));
  for (size_t p = 0; p < st.upd_slot.size(); ++p) wv[st.upd_slot[p]] += static_cast<T>(st.upd_coef[p]);
  auto rows = [&](T* p) { return at::from_blob(p, {nb, H}, opts); };
  at::Tensor gy_t = rows(gy);
  for (int64_t idx = N - 1; idx >= 0; --idx) {
    if ((idx + 1) % m == 0) {
      const T* go = go_base + (idx / m) * BH;
      for (int64_t i = 0; i < n; ++i) g[i] += go[i];
    }
    for (int64_t r = 0; r < ns; ++r) {
      T* k = gK + r * n;
      const T w = wv[r];
      for (int64_t i = 0; i < n; ++i) k[i] = w * g[i];
    }
    std::copy(g, g + n, g_acc);
    for (int64_t r = ns - 1; r >= 0; --r) {
      T* gp = G_base + (r * N + idx) * BH;
      const T* gk = gK + r * n;
      const T* a = R_base + (r * N + idx) * BH;
      switch (st.act) {
        case ACT_RAW_SIGMOID:  // R = σ(2z): gP/4 = gK R (1 − R), the 4 is in Wg
        case ACT_SIGMOID:
          for (int64_t i = 0; i < n; ++i) gp[i] = gk[i] * a[i] * (T(1) - a[i]);
          break;
        case ACT_TANH2:
          for (int64_t i = 0; i < n; ++i) gp[i] = gk[i] * (T(1) - a[i] * a[i]);
          break;
        case ACT_RELU:
          for (int64_t i = 0; i < n; ++i) gp[i] = a[i] > T(0) ? gk[i] : T(0);
          break;
        default:
          std::copy(gk, gk + n, gp);
      }
      at::mm_out(gy_t, rows(gp), Wg);
      if (has_leak)
        for (int64_t i = 0; i < n; ++i) gy[i] -= leak * gk[i];
      for (int64_t i = 0; i < n; ++i) g_acc[i] += gy[i];
      for (int64_t p = st.row_ptr[r]; p < st.row_ptr[r + 1]; ++p) {
        T* kj = gK + st.row_slot[p] * n;
        const T c = static_cast<T>(st.row_coef[p]);
        for (int64_t i = 0; i < n; ++i) kj[i] += c * gy[i];
      }
    }
    std::swap(g, g_acc);
  }
  std::copy(g, g + n, g0.template data_ptr<T>() + off);
}

void rk_backward(const at::Tensor& g_out, const at::Tensor& R, const at::Tensor& Wg, at::IntArrayRef row_ptr,
                 at::IntArrayRef row_slot, at::ArrayRef<double> row_coef, at::IntArrayRef upd_slot,
                 at::ArrayRef<double> upd_coef, int64_t act, double leak, int64_t substeps, const at::Tensor& G,
                 const at::Tensor& g0, int64_t min_rows) {
  TORCH_CHECK(g_out.dim() == 3 && g_out.is_contiguous(), "rk_backward: g_out must be contiguous (T, B, H)");
  const int64_t T_ = g_out.size(0), B = g_out.size(1), H = g_out.size(2), N = T_ * substeps;
  const int64_t ns = static_cast<int64_t>(row_ptr.size()) - 1;
  TORCH_CHECK(substeps >= 1 && ns >= 1, "rk_backward: substeps >= 1 and at least one stage");
  TORCH_CHECK(R.is_contiguous() && R.sizes() == at::IntArrayRef({ns, N, B, H}), "rk_backward: R must be (stages, N, B, H)");
  TORCH_CHECK(G.is_contiguous() && G.sizes() == R.sizes(), "rk_backward: G must be like R");
  TORCH_CHECK(g0.is_contiguous() && g0.sizes() == at::IntArrayRef({B, H}), "rk_backward: g0 must be (B, H)");
  TORCH_CHECK(Wg.dim() == 2 && Wg.size(0) == H && Wg.size(1) == H, "rk_backward: Wg must be (H, H)");
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&R, &Wg, &G, &g0})
    TORCH_CHECK(t->scalar_type() == g_out.scalar_type() && t->device().is_cpu(),
                "rk_backward: every tensor must be a CPU tensor of g_out's dtype");
  const Stages st = common_stages(row_ptr, row_slot, row_coef, upd_slot, upd_coef, act, leak, substeps);
  AT_DISPATCH_FLOATING_TYPES(g_out.scalar_type(), "rk_backward", [&] {
    at::parallel_for(0, B, batch_grain(B, min_rows), [&](int64_t b0, int64_t b1) {
      backward_rows<scalar_t>(st, g_out, R, Wg, G, g0, b0, b1);
    });
  });
}

}  // namespace

TORCH_LIBRARY(odernn_bridge, m) {
  m.def(
      "rk_sequence(Tensor u_seq, Tensor h0, Tensor W2t, int[] row_ptr, int[] row_slot, float[] row_coef, "
      "float[] row_shift, int[] y_slot, float[] theta, int[] upd_slot, float[] upd_coef, "
      "float delta, float sc, int act, float leak, bool linear, int substeps, Tensor(a!) out, "
      "Tensor(b!)? R_store, Tensor(c!)? Y_store, Tensor(d!)? S_store, int min_rows) -> ()");
  m.impl("rk_sequence", c10::DispatchKey::CPU, TORCH_FN(rk_sequence));
  m.def(
      "rk_backward(Tensor g_out, Tensor R, Tensor Wg, int[] row_ptr, int[] row_slot, float[] row_coef, "
      "int[] upd_slot, float[] upd_coef, int act, float leak, int substeps, Tensor(a!) G, Tensor(b!) g0, "
      "int min_rows) -> ()");
  m.impl("rk_backward", c10::DispatchKey::CPU, TORCH_FN(rk_backward));
}
