# cython: language_level=3
"""Elman RNN kernels (float32 / float64 via the fused type `real`).

Design
------
Layout: time-major, C-contiguous. x (T, B, I); h (B, H); pre-activations
A (T, B, H). Weights in PyTorch layout: W_ih (H, I), W_hh (H, H).
h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act: 0 tanh, 1 relu.

Forward:
  1. one GEMM for the input projection of every step: A = X(T*B, I) @ W_ih^T,
     or the fused step computes it itself (as LSTM: common.pxd fuse_input);
     b = b_ih + b_hh is summed once per call and added in the fused pass.
  2. per step: A[t] += h_{t-1} @ W_hh^T (GEMV for a single row), then one
     fused pointwise pass (bias, activation, mask) writing h_t.
  No GIL, no allocation, FTZ/DAZ for the whole sequence.
Training caches only hs: h0 followed by h_0..h_{T-1} (T+1, B, H); the
activation derivative is taken from the post-activation h_t (tanh: 1 - h^2,
relu: h > 0).
Backward: per step the fused pass dG[t] = (dy_t + dh) * act'(h_t) and
dh_{t-1} = dG[t] @ W_hh. After the loop dX, dW_ih, dW_hh as one GEMM each
over T*B rows, db = column sums of dG. Masked (t, b): state carried, zero
dG, dh passes through.
Recurrent step and threads (shared by the three cells, see common.pxd and
src/fr_kern.c, src/fr_kern_impl.h): W_hh is packed once per call (T > 1),
gate-interleaved, into panels holding every gate of VL hidden units; per step one
fused kernel runs the register-blocked product (AVX-512: 24 zmm accumulators, e.g.
6 rows x i|f|g|o of 16 units; AVX2: 12 ymm) and, while each tile is in L1, the
cell's pointwise update (bias, activations, state update, mask, training cache).
The instruction-set path is chosen once at import by CPUID (FASTRNN_ISA forces a
lower one). Single-step calls (streaming) skip the packing: GEMV for one row, BLAS
otherwise, then the separate pointwise pass. The batch is split over OpenMP threads
for the WHOLE sequence (no per-step synchronisation) when every thread gets >= 2
rows and enough work; each thread sets FTZ/DAZ for itself and restores it. The
input projection and dX use the engine's packed GEMM (measured >= OpenBLAS on
these shapes; rows split over the threads); so do the two weight-gradient
products (common.pxd: gemm_tn; BLAS single-threaded per OpenMP thread on the
baseline path), so only one thread pool is ever active.
No -ffast-math anywhere.
Recurrent dropout (Keras / Gal): an optional (B, H) mask m, one per sequence,
multiplies h_{t-1} where it enters the recurrent product only. Per step each
thread forms hm = h_{t-1} * m for its rows in a (B, H) workspace and hands it to
the unchanged fused step; the outputs that must see the unmasked state are
repaired after it (O(rows * H), see common.pxd). Backward: dG[t] @ W_hh goes to
a (B, H) workspace and reaches dh_{t-1} through m; dW_hh = dG^T (hs[:T] * m),
formed once after the loop. Only m is cached.
(Elman: padded rows carry the unmasked h_{t-1}.)

"""
from fastrnn._engine.blas cimport real
from fastrnn._engine.common cimport (fr_ftz_enter, fr_ftz_exit, fr_isa_set,
                              fr_fuse_input_set, colsum_add,
                              elman_fwd_pw, elman_step, elman_bwd_pw, recur_fwd, recur_bwd,
                              product, weight_grads, rdrop_mul, rdrop_add, rdrop_carry,
                              recur_bwd_set, ALL_PANELS, team_barrier, fr_team_barrier,
                              forward_sequence, backward_sequence)


cdef void elman_fwd_rows(Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0, Py_ssize_t nb,
                         Py_ssize_t H, int act, real* A, const real* whh,
                         const real* wp, const real* bias, const real* h0, real* hseq,
                         const unsigned char* mask, const real* rm,
                         real* hm, const real* x=NULL, Py_ssize_t I=0,
                         const real* wpx=NULL, int pa=0, int pb=ALL_PANELS,
                         fr_team_barrier* bar=NULL, int nsync=1) noexcept nogil:
    """Recurrence for batch rows [b0, b0+nb). wpx != NULL: the fused steps compute
    the input projections of x (T, B, I) themselves (W_ih packed in wpx), A unread.
    rm: (B, H) recurrent-dropout mask or NULL; then the thread's rows of hm (B, H)
    receive h_{t-1} * rm, the product's input, at every step. Hidden-unit split
    (bar != NULL, nsync threads): panels [pa, pb) of every step, then a barrier
    (fused path only, no rm)."""
    cdef Py_ssize_t t
    cdef real* a
    cdef const real* gin
    cdef const real* xt = NULL
    cdef const real* hp
    cdef const real* hx
    cdef const unsigned char* m = NULL
    for t in range(T):
        a = A + (t * B + b0) * H
        hp = h0 + b0 * H if t == 0 else hseq + ((t - 1) * B + b0) * H
        if mask != NULL:
            m = mask + t * B + b0
        hx = hp
        if rm != NULL:
            hx = hm + b0 * H
            rdrop_mul(nb * H, hp, rm + b0 * H, hm + b0 * H)
        gin = a
        if wpx != NULL:
            gin = NULL                     # projection computed in the step's tiles
            xt = x + (t * B + b0) * I
        if wp != NULL:
            # fused: every register tile of h W_hh^T gets its activation in L1
            elman_step(nb, H, pa, pb, act, hx, wp, gin, xt, I, I, wpx, bias,
                       hseq + (t * B + b0) * H, m)
            if bar != NULL:
                team_barrier(bar, nsync)
            if rm != NULL and m != NULL:
                # padded rows copied hx: they carry the unmasked state
                rdrop_carry(nb, H, hp, hseq + (t * B + b0) * H, m)
        else:
            recur_fwd(nb, H, H, hx, whh, NULL, a, 1)
            elman_fwd_pw(nb, H, act, a, bias, hp, hseq + (t * B + b0) * H, m)


cdef struct elman_fwd_ctx:
    # elman_fwd_rows' arguments (real* as void*: float if is_f, else double)
    bint is_f
    Py_ssize_t T, B, H
    int act
    void* A
    const void* whh
    const void* bias
    const void* h0
    void* hseq
    const unsigned char* mask
    const void* rm
    void* hm
    const void* x
    Py_ssize_t I


cdef void elman_fwd_cb(void* p, const void* wp, const void* wpx, Py_ssize_t b0,
                       Py_ssize_t nb, int pa, int pb, fr_team_barrier* bar,
                       int nsync) noexcept nogil:
    """forward_sequence's callback (common.pxd): elman_fwd_rows on the context."""
    cdef elman_fwd_ctx* c = <elman_fwd_ctx*>p
    if c.is_f:
        elman_fwd_rows(c.T, c.B, b0, nb, c.H, c.act, <float*>c.A, <const float*>c.whh,
                       <const float*>wp, <const float*>c.bias, <const float*>c.h0,
                       <float*>c.hseq, c.mask, <const float*>c.rm, <float*>c.hm,
                       <const float*>c.x, c.I, <const float*>wpx, pa, pb, bar, nsync)
    else:
        elman_fwd_rows(c.T, c.B, b0, nb, c.H, c.act, <double*>c.A, <const double*>c.whh,
                       <const double*>wp, <const double*>c.bias, <const double*>c.h0,
                       <double*>c.hseq, c.mask, <const double*>c.rm, <double*>c.hm,
                       <const double*>c.x, c.I, <const double*>wpx, pa, pb, bar, nsync)


def rnn_forward(const real[:, :, ::1] x, const real[:, ::1] h0,
                const real[:, ::1] w_ih, const real[:, ::1] w_hh,
                const real[::1] bias, real[:, :, ::1] A, real[:, :, ::1] hseq,
                const unsigned char[:, ::1] mask, int act, int nthreads=1,
                const real[:, ::1] rmask=None, real[:, ::1] hm=None):
    """Fill hseq (T, B, H). A (T, B, H) is workspace. bias = b_ih + b_hh.
    rmask (B, H): recurrent dropout on h_{t-1} in the product; hm (B, H) is
    workspace for the masked state."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef Py_ssize_t H = h0.shape[1]
    cdef const unsigned char* mp = NULL
    cdef const real* rm = NULL
    cdef real* hmp = NULL
    cdef unsigned int csr
    cdef elman_fwd_ctx ctx
    if T == 0 or B == 0:
        return
    if mask is not None:
        mp = &mask[0, 0]
    if rmask is not None:
        rm = &rmask[0, 0]
        hmp = &hm[0, 0]
    ctx.is_f = real is float
    ctx.T, ctx.B, ctx.H, ctx.act = T, B, H, act
    ctx.A, ctx.whh, ctx.bias = &A[0, 0, 0], &w_hh[0, 0], &bias[0]
    ctx.h0, ctx.hseq, ctx.mask, ctx.rm, ctx.hm = &h0[0, 0], &hseq[0, 0, 0], mp, rm, hmp
    ctx.x, ctx.I = &x[0, 0, 0], I
    with nogil:
        csr = fr_ftz_enter()
        forward_sequence(elman_fwd_cb, &ctx, T, B, I, 1, H, &x[0, 0, 0], &w_ih[0, 0],
                         &w_hh[0, 0], &A[0, 0, 0], rm == NULL, nthreads)
        fr_ftz_exit(csr)


cdef void elman_bwd_rows(Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0, Py_ssize_t nb,
                         Py_ssize_t H, int act, const real* hs, const real* dy,
                         const real* whh, const real* wpt, real* dG, real* dhbuf, real* dh0,
                         const unsigned char* mask, const real* rm,
                         real* rbuf) noexcept nogil:
    """hs (T+1, B, H) with hs[0] = h0; dhbuf (2, B, H), buffer 0 = dh_n.
    rm (B, H) recurrent-dropout mask or NULL; then rbuf (B, H) is workspace for
    dG[t] @ W_hh, which reaches dh_{t-1} through the mask."""
    cdef Py_ssize_t t
    cdef real* cur = dhbuf + b0 * H
    cdef real* other = dhbuf + (B + b0) * H
    cdef real* nxt
    cdef real* dg
    cdef const unsigned char* m = NULL
    for t in range(T - 1, -1, -1):
        nxt = dh0 + b0 * H if t == 0 else other
        dg = dG + (t * B + b0) * H
        if mask != NULL:
            m = mask + t * B + b0
        elman_bwd_pw(nb, H, act, hs + ((t + 1) * B + b0) * H,
                     dy + (t * B + b0) * H if dy != NULL else NULL, cur, dg, nxt, m)
        if rm != NULL:
            recur_bwd_set(nb, H, H, dg, whh, wpt, rbuf + b0 * H)
            rdrop_add(nb * H, rbuf + b0 * H, rm + b0 * H, nxt)
        else:
            recur_bwd(nb, H, H, dg, whh, wpt, nxt)
        other = cur
        cur = nxt


cdef struct elman_bwd_ctx:
    # elman_bwd_rows' arguments (real* as void*: float if is_f, else double)
    bint is_f
    Py_ssize_t T, B, H
    int act
    const void* hs
    const void* dy
    const void* whh
    void* dG
    void* dhbuf
    void* dh0
    const unsigned char* mask
    const void* rm
    void* rbuf


cdef void elman_bwd_cb(void* p, const void* wpt, Py_ssize_t b0, Py_ssize_t nb) noexcept nogil:
    """backward_sequence's callback (common.pxd): elman_bwd_rows on the context."""
    cdef elman_bwd_ctx* c = <elman_bwd_ctx*>p
    if c.is_f:
        elman_bwd_rows(c.T, c.B, b0, nb, c.H, c.act, <const float*>c.hs,
                       <const float*>c.dy, <const float*>c.whh, <const float*>wpt,
                       <float*>c.dG, <float*>c.dhbuf, <float*>c.dh0, c.mask,
                       <const float*>c.rm, <float*>c.rbuf)
    else:
        elman_bwd_rows(c.T, c.B, b0, nb, c.H, c.act, <const double*>c.hs,
                       <const double*>c.dy, <const double*>c.whh, <const double*>wpt,
                       <double*>c.dG, <double*>c.dhbuf, <double*>c.dh0, c.mask,
                       <const double*>c.rm, <double*>c.rbuf)


def rnn_backward(const real[:, :, ::1] x, const real[:, :, ::1] hs,
                 const real[:, ::1] w_ih, const real[:, ::1] w_hh,
                 const real[:, :, ::1] dy, real[:, :, ::1] dG, real[:, :, ::1] dhbuf,
                 real[:, ::1] dh0, real[:, :, ::1] dx, real[:, ::1] dw_ih,
                 real[:, ::1] dw_hh, real[::1] db, const unsigned char[:, ::1] mask,
                 int act, int nthreads=1,
                  size_t blas_local=0, const real[:, ::1] rmask=None,
                  real[:, :, ::1] hm=None, real[:, ::1] rbuf=None):
    """dhbuf[0] = dh_n (zeros when absent) on entry; db zeroed on entry.
    Recurrent dropout: rmask (B, H); hm (T, B, H) workspace, filled with
    hs[:T] * rmask for dW_hh = dG^T hm; rbuf (B, H) workspace."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef Py_ssize_t H = w_hh.shape[1]
    cdef const unsigned char* mp = NULL
    cdef const real* dyp = NULL
    cdef const real* rm = NULL
    cdef real* rb = NULL
    cdef const real* hw = NULL
    cdef real* hwm = NULL
    cdef Py_ssize_t t
    cdef unsigned int csr
    cdef elman_bwd_ctx ctx
    if T == 0 or B == 0:
        return
    if mask is not None:
        mp = &mask[0, 0]
    if dy is not None:
        dyp = &dy[0, 0, 0]
    hw = &hs[0, 0, 0]
    if rmask is not None:
        rm = &rmask[0, 0]
        rb = &rbuf[0, 0]
        hwm = &hm[0, 0, 0]
        hw = hwm
    ctx.is_f = real is float
    ctx.T, ctx.B, ctx.H, ctx.act = T, B, H, act
    ctx.hs, ctx.dy, ctx.whh = &hs[0, 0, 0], dyp, &w_hh[0, 0]
    ctx.dG, ctx.dhbuf, ctx.dh0 = &dG[0, 0, 0], &dhbuf[0, 0, 0], &dh0[0, 0]
    ctx.mask, ctx.rm, ctx.rbuf = mp, rm, rb
    with nogil:
        csr = fr_ftz_enter()
        backward_sequence(elman_bwd_cb, &ctx, B, 1, H, &w_hh[0, 0], nthreads)
        if rm != NULL:
            # dW_hh = dG^T (h_{t-1} * m): the masked states the forward's product saw
            for t in range(T):
                rdrop_mul(B * H, &hs[t, 0, 0], rm, hwm + t * B * H)
        product(T * B, I, H, &dG[0, 0, 0], &w_ih[0, 0], I, 1, &dx[0, 0, 0], nthreads)
        weight_grads(T * B, H, I, H, &dG[0, 0, 0], &dG[0, 0, 0], &x[0, 0, 0],
                     hw, &dw_ih[0, 0], &dw_hh[0, 0], nthreads, blas_local)
        colsum_add(T * B, H, &dG[0, 0, 0], &db[0])
        fr_ftz_exit(csr)


def _set_isa(int level):
    """Kernel path of this module (set by fastrnn._engine.config, never while
    kernels run). Returns 0, or -1 if the CPU lacks it (unchanged)."""
    return fr_isa_set(level)


def _set_fuse_input(int mode):
    """Test hook: -1 lets the engine's rule decide whether the fused steps compute the
    input projection (common.pxd: fuse_input); 0 / 1 force it off / on in this module."""
    fr_fuse_input_set(mode)
