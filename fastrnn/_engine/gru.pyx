# cython: language_level=3
"""GRU kernels, PyTorch's "linear before reset" form (float32 / float64).

Design
------
Layout: time-major, C-contiguous. x (T, B, I); h (B, H). Gate order r, z, n;
W_ih (3H, I), W_hh (3H, H) in PyTorch layout.
  r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz)
  n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h
Forward:
  1. one GEMM for all input projections: Gi = X(T*B, I) @ W_ih^T (T, B, 3H),
     or the fused step computes them itself (as LSTM: common.pxd fuse_input).
     Biases: b_ir + b_hr and b_iz + b_hz are summed once per call; b_in is
     added to the input side and b_hn stays INSIDE r * (W_hn h + b_hn).
  2. per step ONE recurrent GEMM for all three gates, Gh = h_{t-1} @ W_hh^T
     (B, 3H) into a per-call workspace (GEMV for one row), then one fused
     pointwise pass (biases, sigma, tanh, r*(.), h', mask).
  No GIL, no allocation, FTZ/DAZ for the whole sequence.
Training caches only what backward needs:
  gates: post-activation r, z, n stored in place of Gi (T, B, 3H);
  hn:    W_hn h_{t-1} + b_hn (T, B, H);
  hs:    h0 followed by h_0..h_{T-1} (T+1, B, H).
Backward: per step the fused pass writes dGi[t] (gradient of the input-side
pre-activations [r, z, n]) and dGh[t] (recurrent side: [r, z, r*dn]) and
dh_{t-1} = dh*z + dGh[t] @ W_hh. After the loop: dX = dGi @ W_ih,
dW_ih = dGi^T @ X, dW_hh = dGh^T @ hs[:T], db_ih / db_hh = column sums.
Masked (t, b): state carried, zero dgates, dh passes through.
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
(GRU: h_t = n + z * (h_{t-1} - n) is redone with the unmasked h_{t-1} from the
stored z, n, so the forward with a mask always stores the gates.)

"""
from fastrnn._engine.blas cimport real
from fastrnn._engine.common cimport (fr_ftz_enter, fr_ftz_exit, fr_isa_set,
                              fr_fuse_input_set, colsum_add,
                              gru_fwd_pw, gru_step, gru_bwd_pw, recur_fwd, recur_bwd,
                              product, weight_grads, rdrop_mul, rdrop_add,
                              rdrop_gru_carry, recur_bwd_set, ALL_PANELS, team_barrier,
                              fr_team_barrier, forward_sequence, backward_sequence)


cdef void gru_fwd_rows(Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0, Py_ssize_t nb,
                       Py_ssize_t H, real* Gi, real* gh, const real* whh,
                       const real* wp, const real* bias_rz, const real* b_in, const real* b_hn,
                       const real* h0, real* hseq, real* hn,
                       const unsigned char* mask, bint store, const real* rm,
                       real* hm, const real* x=NULL, Py_ssize_t I=0,
                       const real* wpx=NULL, int pa=0, int pb=ALL_PANELS,
                       fr_team_barrier* bar=NULL, int nsync=1) noexcept nogil:
    """gh: (B, 3H) workspace; hn: (T, B, H) or NULL (inference).
    wpx != NULL: the fused steps compute the input projections of x (T, B, I)
    themselves (W_ih packed in wpx); Gi is then only written (the gates, if `store`).
    Hidden-unit split (bar != NULL, nsync threads): panels [pa, pb) of every step,
    then a barrier (every thread reads all of h_t at t + 1; fused path only, no rm).
    rm: (B, H) recurrent-dropout mask or NULL (needs `store`); then the thread's
    rows of hm (B, H) receive h_{t-1} * rm, the product's input, at every step."""
    cdef Py_ssize_t GH = 3 * H, t
    cdef real* gi
    cdef const real* gin
    cdef const real* xt = NULL
    cdef real* ghr = gh + b0 * GH
    cdef const real* hp
    cdef const real* hx
    cdef const unsigned char* m = NULL
    for t in range(T):
        gi = Gi + (t * B + b0) * GH
        hp = h0 + b0 * H if t == 0 else hseq + ((t - 1) * B + b0) * H
        if mask != NULL:
            m = mask + t * B + b0
        hx = hp
        if rm != NULL:
            hx = hm + b0 * H
            rdrop_mul(nb * H, hp, rm + b0 * H, hm + b0 * H)
        gin = gi
        if wpx != NULL:
            gin = NULL                     # projection computed in the step's tiles
            xt = x + (t * B + b0) * I
        if wp != NULL:
            # fused: every register tile of h W_hh^T gets its pointwise update in L1
            gru_step(nb, H, pa, pb, hx, wp, gin, xt, I, I, wpx, bias_rz, b_in, b_hn,
                     hseq + (t * B + b0) * H, gi if store else NULL,
                     hn + (t * B + b0) * H if store else NULL, m)
            if bar != NULL:
                team_barrier(bar, nsync)
            if rm != NULL:
                # the step used hx in h_t = n + z * (h_{t-1} - n) too: redo that term
                # with the unmasked state from the stored z, n
                rdrop_gru_carry(nb, H, hp, gi, hseq + (t * B + b0) * H, m)
        else:
            recur_fwd(nb, GH, H, hx, whh, NULL, ghr, 0)
            gru_fwd_pw(nb, H, gi, ghr, bias_rz, b_in, b_hn, hp, hseq + (t * B + b0) * H,
                       gi if store else NULL,
                       hn + (t * B + b0) * H if store else NULL, m)


cdef struct gru_fwd_ctx:
    # gru_fwd_rows's arguments (real* as void*: float if is_f, else double)
    bint is_f
    Py_ssize_t T, B, H
    void* Gi
    void* gh
    const void* whh
    const void* bias_rz
    const void* b_in
    const void* b_hn
    const void* h0
    void* hseq
    void* hn
    const unsigned char* mask
    bint store
    const void* rm
    void* hm
    const void* x
    Py_ssize_t I


cdef void gru_fwd_cb(void* p, const void* wp, const void* wpx, Py_ssize_t b0,
                     Py_ssize_t nb, int pa, int pb, fr_team_barrier* bar,
                     int nsync) noexcept nogil:
    """forward_sequence's callback (common.pxd): gru_fwd_rows on the context."""
    cdef gru_fwd_ctx* c = <gru_fwd_ctx*>p
    if c.is_f:
        gru_fwd_rows(c.T, c.B, b0, nb, c.H, <float*>c.Gi, <float*>c.gh,
                     <const float*>c.whh, <const float*>wp, <const float*>c.bias_rz,
                     <const float*>c.b_in, <const float*>c.b_hn, <const float*>c.h0,
                     <float*>c.hseq, <float*>c.hn, c.mask, c.store, <const float*>c.rm,
                     <float*>c.hm, <const float*>c.x, c.I, <const float*>wpx, pa, pb, bar,
                     nsync)
    else:
        gru_fwd_rows(c.T, c.B, b0, nb, c.H, <double*>c.Gi, <double*>c.gh,
                     <const double*>c.whh, <const double*>wp, <const double*>c.bias_rz,
                     <const double*>c.b_in, <const double*>c.b_hn, <const double*>c.h0,
                     <double*>c.hseq, <double*>c.hn, c.mask, c.store, <const double*>c.rm,
                     <double*>c.hm, <const double*>c.x, c.I, <const double*>wpx, pa, pb,
                     bar, nsync)


def gru_forward(const real[:, :, ::1] x, const real[:, ::1] h0,
                const real[:, ::1] w_ih, const real[:, ::1] w_hh,
                const real[::1] b_ih, const real[::1] b_hh, const real[::1] bias_rz,
                real[:, :, ::1] Gi, real[:, ::1] gh, real[:, :, ::1] hseq,
                real[:, :, ::1] hn, const unsigned char[:, ::1] mask, bint training,
                int nthreads=1, const real[:, ::1] rmask=None, real[:, ::1] hm=None):
    """Fill hseq (T, B, H); training: Gi <- gates (r, z, n), hn <- W_hn h + b_hn.

    bias_rz = (b_ih + b_hh)[:2H]; gh (B, 3H) workspace. rmask (B, H): recurrent
    dropout on h_{t-1} in the product (only with training); hm (B, H) is
    workspace for the masked state."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef Py_ssize_t H = h0.shape[1]
    cdef const unsigned char* mp = NULL
    cdef real* hnp = NULL
    cdef const real* rm = NULL
    cdef real* hmp = NULL
    cdef unsigned int csr
    cdef gru_fwd_ctx ctx
    if T == 0 or B == 0:
        return
    if rmask is not None and not training:
        raise ValueError("gru_forward: rmask needs training=True (the gates it stores)")
    if mask is not None:
        mp = &mask[0, 0]
    if rmask is not None:
        rm = &rmask[0, 0]
        hmp = &hm[0, 0]
    if hn is not None:
        hnp = &hn[0, 0, 0]
    ctx.is_f = real is float
    ctx.T = T
    ctx.B = B
    ctx.H = H
    ctx.Gi = &Gi[0, 0, 0]
    ctx.gh = &gh[0, 0]
    ctx.whh = &w_hh[0, 0]
    ctx.bias_rz = &bias_rz[0]
    ctx.b_in = &b_ih[2 * H]
    ctx.b_hn = &b_hh[2 * H]
    ctx.h0 = &h0[0, 0]
    ctx.hseq = &hseq[0, 0, 0]
    ctx.hn = hnp
    ctx.mask = mp
    ctx.store = training
    ctx.rm = rm
    ctx.hm = hmp
    ctx.x = &x[0, 0, 0]
    ctx.I = I
    with nogil:
        csr = fr_ftz_enter()
        forward_sequence(gru_fwd_cb, &ctx, T, B, I, 3, H, &x[0, 0, 0], &w_ih[0, 0],
                         &w_hh[0, 0], &Gi[0, 0, 0], rm == NULL, nthreads)
        fr_ftz_exit(csr)


cdef void gru_bwd_rows(Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0, Py_ssize_t nb,
                       Py_ssize_t H, const real* gates, const real* hn, const real* hs,
                       const real* dy, const real* whh, const real* wpt, real* dGi, real* dGh,
                       real* dhbuf, real* dh0, const unsigned char* mask, const real* rm,
                       real* rbuf) noexcept nogil:
    """BPTT for rows [b0, b0+nb). rm (B, H) recurrent-dropout mask or NULL; then
    rbuf (B, H) is workspace for dGh[t] @ W_hh, which reaches dh_{t-1} through the
    mask (the direct term dh * z does not)."""
    cdef Py_ssize_t GH = 3 * H, t
    cdef real* cur = dhbuf + b0 * H
    cdef real* other = dhbuf + (B + b0) * H
    cdef real* nxt
    cdef real* dgh
    cdef const unsigned char* m = NULL
    for t in range(T - 1, -1, -1):
        nxt = dh0 + b0 * H if t == 0 else other
        dgh = dGh + (t * B + b0) * GH
        if mask != NULL:
            m = mask + t * B + b0
        gru_bwd_pw(nb, H, gates + (t * B + b0) * GH, hn + (t * B + b0) * H,
                   hs + (t * B + b0) * H,
                   dy + (t * B + b0) * H if dy != NULL else NULL, cur,
                   dGi + (t * B + b0) * GH, dgh, nxt, m)
        if rm != NULL:
            recur_bwd_set(nb, H, GH, dgh, whh, wpt, rbuf + b0 * H)
            rdrop_add(nb * H, rbuf + b0 * H, rm + b0 * H, nxt)
        else:
            recur_bwd(nb, H, GH, dgh, whh, wpt, nxt)
        other = cur
        cur = nxt


cdef struct gru_bwd_ctx:
    # gru_bwd_rows's arguments (real* as void*: float if is_f, else double)
    bint is_f
    Py_ssize_t T, B, H
    const void* gates
    const void* hn
    const void* hs
    const void* dy
    const void* whh
    void* dGi
    void* dGh
    void* dhbuf
    void* dh0
    const unsigned char* mask
    const void* rm
    void* rbuf


cdef void gru_bwd_cb(void* p, const void* wpt, Py_ssize_t b0,
                     Py_ssize_t nb) noexcept nogil:
    """backward_sequence's callback (common.pxd): gru_bwd_rows on the context."""
    cdef gru_bwd_ctx* c = <gru_bwd_ctx*>p
    if c.is_f:
        gru_bwd_rows(c.T, c.B, b0, nb, c.H, <const float*>c.gates, <const float*>c.hn,
                     <const float*>c.hs, <const float*>c.dy, <const float*>c.whh,
                     <const float*>wpt, <float*>c.dGi, <float*>c.dGh, <float*>c.dhbuf,
                     <float*>c.dh0, c.mask, <const float*>c.rm, <float*>c.rbuf)
    else:
        gru_bwd_rows(c.T, c.B, b0, nb, c.H, <const double*>c.gates, <const double*>c.hn,
                     <const double*>c.hs, <const double*>c.dy, <const double*>c.whh,
                     <const double*>wpt, <double*>c.dGi, <double*>c.dGh, <double*>c.dhbuf,
                     <double*>c.dh0, c.mask, <const double*>c.rm, <double*>c.rbuf)


def gru_backward(const real[:, :, ::1] x, const real[:, :, ::1] hs,
                 const real[:, :, ::1] gates, const real[:, :, ::1] hn,
                 const real[:, ::1] w_ih, const real[:, ::1] w_hh,
                 const real[:, :, ::1] dy, real[:, :, ::1] dGi, real[:, :, ::1] dGh,
                 real[:, :, ::1] dhbuf, real[:, ::1] dh0, real[:, :, ::1] dx,
                 real[:, ::1] dw_ih, real[:, ::1] dw_hh, real[::1] db_ih,
                 real[::1] db_hh, const unsigned char[:, ::1] mask, int nthreads=1,
                  size_t blas_local=0, const real[:, ::1] rmask=None,
                  real[:, :, ::1] hm=None, real[:, ::1] rbuf=None):
    """dhbuf[0] = dh_n (zeros when absent) on entry; db_ih, db_hh zeroed.
    Recurrent dropout: rmask (B, H); hm (T, B, H) workspace, filled with
    hs[:T] * rmask for dW_hh = dGh^T hm; rbuf (B, H) workspace."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef Py_ssize_t H = w_hh.shape[1], GH = 3 * w_hh.shape[1]
    cdef const unsigned char* mp = NULL
    cdef const real* dyp = NULL
    cdef const real* rm = NULL
    cdef real* rb = NULL
    cdef const real* hw = NULL
    cdef real* hwm = NULL
    cdef Py_ssize_t t
    cdef unsigned int csr
    cdef gru_bwd_ctx ctx
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
    ctx.T = T
    ctx.B = B
    ctx.H = H
    ctx.gates = &gates[0, 0, 0]
    ctx.hn = &hn[0, 0, 0]
    ctx.hs = &hs[0, 0, 0]
    ctx.dy = dyp
    ctx.whh = &w_hh[0, 0]
    ctx.dGi = &dGi[0, 0, 0]
    ctx.dGh = &dGh[0, 0, 0]
    ctx.dhbuf = &dhbuf[0, 0, 0]
    ctx.dh0 = &dh0[0, 0]
    ctx.mask = mp
    ctx.rm = rm
    ctx.rbuf = rb
    with nogil:
        csr = fr_ftz_enter()
        backward_sequence(gru_bwd_cb, &ctx, B, 3, H, &w_hh[0, 0], nthreads)
        if rm != NULL:
            # dW_hh = dG^T (h_{t-1} * m): the masked states the forward's product saw
            for t in range(T):
                rdrop_mul(B * H, &hs[t, 0, 0], rm, hwm + t * B * H)
        product(T * B, I, GH, &dGi[0, 0, 0], &w_ih[0, 0], I, 1, &dx[0, 0, 0], nthreads)
        weight_grads(T * B, GH, I, H, &dGi[0, 0, 0], &dGh[0, 0, 0], &x[0, 0, 0],
                     hw, &dw_ih[0, 0], &dw_hh[0, 0], nthreads, blas_local)
        colsum_add(T * B, GH, &dGi[0, 0, 0], &db_ih[0])
        colsum_add(T * B, GH, &dGh[0, 0, 0], &db_hh[0])
        fr_ftz_exit(csr)


def _set_isa(int level):
    """Kernel path of this module (set by fastrnn._engine.config, never while
    kernels run). Returns 0, or -1 if the CPU lacks it (unchanged)."""
    return fr_isa_set(level)


def _set_fuse_input(int mode):
    """Test hook: -1 lets the engine's rule decide whether the fused steps compute the
    input projection (common.pxd: fuse_input); 0 / 1 force it off / on in this module."""
    fr_fuse_input_set(mode)
