# cython: language_level=3
"""Declarations of the C helpers in fastrnn/_src (fused pointwise passes,
FTZ/DAZ control, runtime info) and fused-type dispatchers over them."""
from fastrnn._blas cimport real

cdef extern from "fr_common.h" nogil:
    unsigned int fr_ftz_enter()
    void fr_ftz_exit(unsigned int saved)
    int fr_simd_level()
    int fr_have_target_clones()
    void fr_colsum_add_f(int rows, int n, const float* a, float* acc)
    void fr_colsum_add_d(int rows, int n, const double* a, double* acc)
    void fr_act_f(int kind, int n, const float* x, float* y)
    void fr_act_d(int kind, int n, const double* x, double* y)
    void fr_elman_fwd_f(int nb, int H, int act, const float* g, const float* bias,
                        const float* h_prev, float* h_out, const unsigned char* mask)
    void fr_elman_fwd_d(int nb, int H, int act, const double* g, const double* bias,
                        const double* h_prev, double* h_out, const unsigned char* mask)
    void fr_elman_bwd_f(int nb, int H, int act, const float* h, const float* dy,
                        const float* dh_next, float* dG, float* dh_prev,
                        const unsigned char* mask)
    void fr_elman_bwd_d(int nb, int H, int act, const double* h, const double* dy,
                        const double* dh_next, double* dG, double* dh_prev,
                        const unsigned char* mask)
    void fr_lstm_fwd_f(int nb, int H, const float* g, const float* bias,
                       const float* h_prev, const float* c_prev, float* h_out,
                       float* c_out, float* gates_out, const unsigned char* mask)
    void fr_lstm_fwd_d(int nb, int H, const double* g, const double* bias,
                       const double* h_prev, const double* c_prev, double* h_out,
                       double* c_out, double* gates_out, const unsigned char* mask)
    void fr_lstm_bwd_f(int nb, int H, const float* gates, const float* c,
                       const float* c_prev, const float* dy, const float* dh_next,
                       float* dc, float* dG, float* dh_prev, const unsigned char* mask)
    void fr_lstm_bwd_d(int nb, int H, const double* gates, const double* c,
                       const double* c_prev, const double* dy, const double* dh_next,
                       double* dc, double* dG, double* dh_prev, const unsigned char* mask)
    void fr_gru_fwd_f(int nb, int H, const float* gi, const float* gh,
                      const float* bias_rz, const float* b_in, const float* b_hn,
                      const float* h_prev, float* h_out, float* gates_out,
                      float* hn_out, const unsigned char* mask)
    void fr_gru_fwd_d(int nb, int H, const double* gi, const double* gh,
                      const double* bias_rz, const double* b_in, const double* b_hn,
                      const double* h_prev, double* h_out, double* gates_out,
                      double* hn_out, const unsigned char* mask)
    void fr_gru_bwd_f(int nb, int H, const float* gates, const float* hn,
                      const float* h_prev, const float* dy, const float* dh_next,
                      float* dGi, float* dGh, float* dh_prev, const unsigned char* mask)
    void fr_gru_bwd_d(int nb, int H, const double* gates, const double* hn,
                      const double* h_prev, const double* dy, const double* dh_next,
                      double* dGi, double* dGh, double* dh_prev, const unsigned char* mask)


cdef inline void colsum_add(Py_ssize_t rows, Py_ssize_t n, const real* a,
                            real* acc) noexcept nogil:
    if real is float:
        fr_colsum_add_f(<int>rows, <int>n, a, acc)
    else:
        fr_colsum_add_d(<int>rows, <int>n, a, acc)


cdef inline void elman_fwd_pw(Py_ssize_t nb, Py_ssize_t H, int act, const real* g,
                              const real* bias, const real* h_prev, real* h_out,
                              const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_elman_fwd_f(<int>nb, <int>H, act, g, bias, h_prev, h_out, mask)
    else:
        fr_elman_fwd_d(<int>nb, <int>H, act, g, bias, h_prev, h_out, mask)


cdef inline void elman_bwd_pw(Py_ssize_t nb, Py_ssize_t H, int act, const real* h,
                              const real* dy, const real* dh_next, real* dG,
                              real* dh_prev, const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_elman_bwd_f(<int>nb, <int>H, act, h, dy, dh_next, dG, dh_prev, mask)
    else:
        fr_elman_bwd_d(<int>nb, <int>H, act, h, dy, dh_next, dG, dh_prev, mask)


cdef inline void lstm_fwd_pw(Py_ssize_t nb, Py_ssize_t H, const real* g,
                             const real* bias, const real* h_prev, const real* c_prev,
                             real* h_out, real* c_out, real* gates_out,
                             const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_lstm_fwd_f(<int>nb, <int>H, g, bias, h_prev, c_prev, h_out, c_out,
                      gates_out, mask)
    else:
        fr_lstm_fwd_d(<int>nb, <int>H, g, bias, h_prev, c_prev, h_out, c_out,
                      gates_out, mask)


cdef inline void lstm_bwd_pw(Py_ssize_t nb, Py_ssize_t H, const real* gates,
                             const real* c, const real* c_prev, const real* dy,
                             const real* dh_next, real* dc, real* dG, real* dh_prev,
                             const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_lstm_bwd_f(<int>nb, <int>H, gates, c, c_prev, dy, dh_next, dc, dG,
                      dh_prev, mask)
    else:
        fr_lstm_bwd_d(<int>nb, <int>H, gates, c, c_prev, dy, dh_next, dc, dG,
                      dh_prev, mask)


cdef inline void gru_fwd_pw(Py_ssize_t nb, Py_ssize_t H, const real* gi,
                            const real* gh, const real* bias_rz, const real* b_in,
                            const real* b_hn, const real* h_prev, real* h_out,
                            real* gates_out, real* hn_out,
                            const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_gru_fwd_f(<int>nb, <int>H, gi, gh, bias_rz, b_in, b_hn, h_prev, h_out,
                     gates_out, hn_out, mask)
    else:
        fr_gru_fwd_d(<int>nb, <int>H, gi, gh, bias_rz, b_in, b_hn, h_prev, h_out,
                     gates_out, hn_out, mask)


cdef inline void gru_bwd_pw(Py_ssize_t nb, Py_ssize_t H, const real* gates,
                            const real* hn, const real* h_prev, const real* dy,
                            const real* dh_next, real* dGi, real* dGh, real* dh_prev,
                            const unsigned char* mask) noexcept nogil:
    if real is float:
        fr_gru_bwd_f(<int>nb, <int>H, gates, hn, h_prev, dy, dh_next, dGi, dGh,
                     dh_prev, mask)
    else:
        fr_gru_bwd_d(<int>nb, <int>H, gates, hn, h_prev, dy, dh_next, dGi, dGh,
                     dh_prev, mask)
