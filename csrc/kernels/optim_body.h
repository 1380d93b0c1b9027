/* Optimizer kernels for one element type T (see optim.c). The arithmetic is done in T,
 * with the scalars rounded to T once, as PyTorch does for a float32 or float64 tensor. */

/* SGD: param (n) +=, momentum_buf (n) or NULL when momentum == 0; grad (n).
 *   d   = grad + weight_decay * param                       (coupled L2 term, if wd != 0)
 *   buf = first_step ? d : momentum * buf + (1 - dampening) * d
 *   d   = nesterov ? d + momentum * buf : buf                (when momentum != 0)
 *   param -= lr * d
 * On the first step the buffer starts as a copy of d (no dampening), as in PyTorch. With
 * weight_decay == 0 the L2 term is left out, not added as 0 * param (NaN for an infinite
 * param), as PyTorch does: the bodies below take `with_wd` as a constant, so each caller's
 * branch on it is outside the loop. */
#define NR_SGD_D(i) (with_wd ? grad[i] + wd * param[i] : grad[i])

/* Elements [i0, i1) of the SGD step with momentum, the flags hoisted out of the loop. */
static inline __attribute__((always_inline)) void
FN(nr_sgd_momentum_body)(T *restrict param, T *restrict buf, const T *restrict grad, T lr_,
                         T mom, T keep, T wd, int nesterov, int first_step, int64_t i0,
                         int64_t i1, const int with_wd)
{
    if (first_step) {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            const T d = NR_SGD_D(i);
            buf[i] = d;
            param[i] -= lr_ * (nesterov ? d + mom * d : d);
        }
    }
    else if (nesterov) {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            const T d = NR_SGD_D(i);
            const T b = mom * buf[i] + keep * d;
            buf[i] = b;
            param[i] -= lr_ * (d + mom * b);
        }
    }
    else {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            const T d = NR_SGD_D(i);
            const T b = mom * buf[i] + keep * d;
            buf[i] = b;
            param[i] -= lr_ * b;
        }
    }
}

static void
FN(nr_sgd_momentum_range)(T *restrict param, T *restrict buf, const T *restrict grad, T lr_,
                          T mom, T keep, T wd, int with_wd, int nesterov, int first_step,
                          int64_t i0, int64_t i1)
{
    if (with_wd) {
        FN(nr_sgd_momentum_body)(param, buf, grad, lr_, mom, keep, wd, nesterov, first_step, i0,
                                 i1, 1);
    }
    else {
        FN(nr_sgd_momentum_body)(param, buf, grad, lr_, mom, keep, wd, nesterov, first_step, i0,
                                 i1, 0);
    }
}

static inline __attribute__((always_inline)) void
FN(nr_sgd_plain_body)(T *restrict param, const T *restrict grad, T lr_, T wd, int64_t i0,
                      int64_t i1, const int with_wd)
{
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        const T d = NR_SGD_D(i);
        param[i] -= lr_ * d;
    }
}

static void
FN(nr_sgd_plain_range)(T *restrict param, const T *restrict grad, T lr_, T wd, int with_wd,
                       int64_t i0, int64_t i1)
{
    if (with_wd) {
        FN(nr_sgd_plain_body)(param, grad, lr_, wd, i0, i1, 1);
    }
    else {
        FN(nr_sgd_plain_body)(param, grad, lr_, wd, i0, i1, 0);
    }
}
#undef NR_SGD_D

void
FN(nr_sgd_step)(T *param, T *momentum_buf, const T *grad, int64_t n, double lr, double momentum,
                double dampening, double weight_decay, int nesterov, int first_step)
{
    const T lr_ = (T)lr, mom = (T)momentum, keep = (T)(1.0 - dampening), wd = (T)weight_decay;
    const int with_wd = weight_decay != 0.0;
    /* param, grad, and the buffer read and written */
    int nt = nr_threads_for((size_t)n * (momentum_buf ? 5 : 3) * sizeof(T));
    if (!momentum_buf) {
        NR_SPLIT(nt, n, 16, FN(nr_sgd_plain_range)(param, grad, lr_, wd, with_wd, i0, i1));
        return;
    }
    NR_SPLIT(nt, n, 16,
             FN(nr_sgd_momentum_range)(param, momentum_buf, grad, lr_, mom, keep, wd, with_wd,
                                       nesterov, first_step, i0, i1));
}

/* Elements [i0, i1) of the Adam / AdamW step; `with_wd` (a constant in each call) adds
 * Adam's coupled L2 term. */
static inline __attribute__((always_inline)) void
FN(nr_adam_body)(T *restrict param, T *restrict exp_avg, T *restrict exp_avg_sq,
                 T *restrict max_exp_avg_sq, const T *restrict grad, T one_m_b1, T b2,
                 T one_m_b2, T eps_, T decay, T wd, T step_size, T bc2_sqrt, int64_t i0,
                 int64_t i1, const int with_wd)
{
    if (max_exp_avg_sq) {
#pragma omp simd
        for (int64_t i = i0; i < i1; i++) {
            const T p = param[i] * decay;
            const T g = with_wd ? grad[i] + wd * p : grad[i];
            const T m = exp_avg[i] + one_m_b1 * (g - exp_avg[i]);
            T v = b2 * exp_avg_sq[i] + one_m_b2 * g * g;
            exp_avg[i] = m;
            exp_avg_sq[i] = v;
            v = NR_MAX(max_exp_avg_sq[i], v);
            max_exp_avg_sq[i] = v;
            param[i] = p - step_size * (m / (SQRT(v) / bc2_sqrt + eps_));
        }
        return;
    }
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        const T p = param[i] * decay;
        const T g = with_wd ? grad[i] + wd * p : grad[i];
        const T m = exp_avg[i] + one_m_b1 * (g - exp_avg[i]);
        const T v = b2 * exp_avg_sq[i] + one_m_b2 * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        param[i] = p - step_size * (m / (SQRT(v) / bc2_sqrt + eps_));
    }
}

static void
FN(nr_adam_range)(T *restrict param, T *restrict exp_avg, T *restrict exp_avg_sq,
                  T *restrict max_exp_avg_sq, const T *restrict grad, T one_m_b1, T b2,
                  T one_m_b2, T eps_, T decay, T wd, int with_wd, T step_size, T bc2_sqrt,
                  int64_t i0, int64_t i1)
{
    if (with_wd) {
        FN(nr_adam_body)(param, exp_avg, exp_avg_sq, max_exp_avg_sq, grad, one_m_b1, b2,
                         one_m_b2, eps_, decay, wd, step_size, bc2_sqrt, i0, i1, 1);
    }
    else {
        FN(nr_adam_body)(param, exp_avg, exp_avg_sq, max_exp_avg_sq, grad, one_m_b1, b2,
                         one_m_b2, eps_, decay, wd, step_size, bc2_sqrt, i0, i1, 0);
    }
}

/* Adam / AdamW: param (n), exp_avg (n), exp_avg_sq (n), max_exp_avg_sq (n) or NULL
 * (amsgrad) are updated in place from grad (n).
 *   decoupled (AdamW): param *= 1 - lr * weight_decay;   else g = grad + weight_decay * param
 *   (Adam's L2 term only when weight_decay != 0, AdamW's g always the plain grad: a 0 * inf
 *   term would turn the moments of an infinite param into NaN, which PyTorch's do not)
 *   m = m + (1 - beta1) * (g - m)          (lerp, as torch.lerp_)
 *   v = beta2 * v + (1 - beta2) * g * g
 *   vmax = max(vmax, v)                    (amsgrad; the denominator then uses vmax)
 *   param -= lr / bias_correction1 * m / (sqrt(v) / sqrt(bias_correction2) + eps)
 * with bias_correction_k = 1 - beta_k ** step computed by the caller. */
void
FN(nr_adam_step)(T *param, T *exp_avg, T *exp_avg_sq, T *max_exp_avg_sq, const T *grad,
                 int64_t n, double lr, double beta1, double beta2, double eps,
                 double weight_decay, int decoupled, double bias_correction1,
                 double bias_correction2)
{
    const T one_m_b1 = (T)(1.0 - beta1), b2 = (T)beta2, one_m_b2 = (T)(1.0 - beta2);
    const T eps_ = (T)eps;
    const T decay = decoupled ? (T)(1.0 - lr * weight_decay) : (T)1;
    const T wd = decoupled ? (T)0 : (T)weight_decay;
    const int with_wd = !decoupled && weight_decay != 0.0;
    const T step_size = (T)(lr / bias_correction1);
    const T bc2_sqrt = (T)sqrt(bias_correction2);
    int nt = nr_threads_for((size_t)n * (max_exp_avg_sq ? 9 : 7) * sizeof(T));
    NR_SPLIT(nt, n, 16,
             FN(nr_adam_range)(param, exp_avg, exp_avg_sq, max_exp_avg_sq, grad, one_m_b1, b2,
                               one_m_b2, eps_, decay, wd, with_wd, step_size, bc2_sqrt, i0,
                               i1));
}
