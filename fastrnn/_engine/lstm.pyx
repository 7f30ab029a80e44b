# cython: language_level=3
"""LSTM kernels (float32 / float64 via the fused type `real`).

Design
------
Layout: time-major, C-contiguous. x (T, B, I); states (B, H); gates are
gate-interleaved per row: G (T, B, 4H) with gate order i, f, g, o (PyTorch).
Weights in PyTorch layout: W_ih (4H, I), W_hh (4H, H).

Forward:
  1. the input projection X @ W_ih^T: one GEMM for every step, G = X(T*B, I) @
     W_ih^T, or, when both packed weights fit the caches and every thread has
     >= 4 rows (common.pxd: fuse_input), computed by the fused step itself in
     the same register tiles, so G is never written and read back. The two
     biases are summed once per call (b = b_ih + b_hh) and added in the fused
     pass below, so no step ever touches b_ih / b_hh separately.
  2. per step t: the recurrent product G[t] += h_{t-1} @ W_hh^T (beta = 1;
     GEMV when the row slice has one row), then ONE fused pointwise pass
     (C helper, vectorized activations): bias, sigma/tanh, c_t, h_t, mask.
  The whole sequence runs without the GIL, without allocation, with FTZ/DAZ.
Training caches only what backward needs:
  gates: post-activation i, f, g, o, stored in place of G (T, B, 4H);
  cs:    c_t for every step (T, B, H);
  hs:    h_{-1} = h0 followed by h_0..h_{T-1} (T+1, B, H).
  tanh(c_t) is recomputed in backward.
Backward (BPTT), per step only: the fused pointwise dgates pass (writes
dG[t], carries dc in place) and dh_{t-1} = dG[t] @ W_hh. After the loop:
dX = dG @ W_ih, dW_ih = dG^T @ X, dW_hh = dG^T @ hs[:T] (one GEMM each over
T*B rows) and db = column sums of dG (db_ih == db_hh).
Masked (t, b): state carried, the step gets zero dgates, dh and dc pass
through to t-1.
Recurrent step and threads (shared by the three cells, see common.pxd and
src/fr_kern.c, src/fr_kern_impl.h): W_hh is packed once per call (T > 1),
gate-interleaved, into panels holding every gate of VL hidden units; per step one
fused kernel runs the register-blocked product (AVX-512: 24 zmm accumulators, e.g.
6 rows x i|f|g|o of 16 units; AVX2: 12 ymm) and, while each tile is in L1, the
cell's pointwise update (bias, activations, state update, mask, training cache).
The instruction-set path is chosen once at import by CPUID (FASTRNN_ISA forces a
lower one). Single-step calls on <= 4 rows (streaming) skip the packing: one GEMV
per row, then the separate pointwise pass. The batch is split over OpenMP threads
for the WHOLE sequence (no per-step synchronisation) when every thread gets >= 2
rows and enough work. With fewer rows (B = 1..3) and enough work per step
(common.pxd: split_units_threads) the threads split the hidden units instead:
each packs and computes its panels of every step, so its slice of W_hh stays in
its own L2, computes its share of the input projection's rows in the same region,
and the team meets at a barrier per step. The sequence driver (projection,
packing, thread split) is shared by the three cells: common.pxd forward_sequence /
backward_sequence call this file's per-row recurrences through a callback. Each
thread sets FTZ/DAZ for itself and restores it. The
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
(LSTM: padded rows carry the unmasked h_{t-1}; c is never masked.)

"""
from fastrnn._engine.blas cimport real
from fastrnn._engine.common cimport (fr_ftz_enter, fr_ftz_exit, fr_isa_set,
                              fr_fuse_input_set, colsum_add,
                              lstm_fwd_pw, lstm_step, lstm_bwd_pw, recur_fwd, recur_bwd,
                              product, weight_grads, rdrop_mul, rdrop_add, rdrop_carry,
                              recur_bwd_set, ALL_PANELS, team_barrier, fr_team_barrier,
                              forward_sequence, backward_sequence)


cdef void lstm_fwd_rows(Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0, Py_ssize_t nb,
                        Py_ssize_t H, real* G, const real* whh, const real* wp,
                        const real* bias, const real* h0, const real* c0, real* hseq,
                        real* cseq,
                        real* cbuf, real* cn, const unsigned char* mask,
                        bint store, const real* rm, real* hm, const real* x=NULL,
                        Py_ssize_t I=0, const real* wpx=NULL, int pa=0,
                        int pb=ALL_PANELS, fr_team_barrier* bar=NULL, int nsync=1) noexcept nogil:
    """Recurrence for batch rows [b0, b0+nb) over the whole sequence.

    Hidden-unit split (bar != NULL, nsync threads): this thread computes panels
    [pa, pb) of every step (its units of h_t, c_t and the gates) and waits at a
    barrier after each step, since every thread reads all of h_t at t + 1 (fused
    path only, no rm).

    G: (T, B, 4H) input projections (overwritten: gates if `store`). wpx != NULL: the
    fused steps compute the projections of x (T, B, I) themselves, with W_ih packed
    in wpx; G is then only written (the gates, if `store`).
    hseq: (T, B, H) h_t output. cseq: (T, B, H) c_t (training) or NULL, then
    cbuf (2, B, H) ping-pongs c and the last step writes cn (B, H).
    rm: (B, H) recurrent-dropout mask or NULL; then the thread's rows of hm (B, H)
    receive h_{t-1} * rm, the product's input, at every step.
    """
    cdef Py_ssize_t GH = 4 * H, t
    cdef real* g
    cdef const real* gin
    cdef const real* xt = NULL
    cdef const real* hp
    cdef const real* hx
    cdef const real* cp
    cdef real* co
    cdef const unsigned char* m = NULL
    for t in range(T):
        g = G + (t * B + b0) * GH
        if t == 0:
            hp = h0 + b0 * H
            cp = c0 + b0 * H
        else:
            hp = hseq + ((t - 1) * B + b0) * H
            if cseq != NULL:
                cp = cseq + ((t - 1) * B + b0) * H
            else:
                cp = cbuf + (((t - 1) & 1) * B + b0) * H
        if cseq != NULL:
            co = cseq + (t * B + b0) * H
        elif t == T - 1:
            co = cn + b0 * H
        else:
            co = cbuf + ((t & 1) * B + b0) * H
        if mask != NULL:
            m = mask + t * B + b0
        hx = hp
        if rm != NULL:
            hx = hm + b0 * H
            rdrop_mul(nb * H, hp, rm + b0 * H, hm + b0 * H)
        gin = g
        if wpx != NULL:
            gin = NULL                     # projection computed in the step's tiles
            xt = x + (t * B + b0) * I
        if wp != NULL:
            # fused: every register tile of h W_hh^T gets its pointwise update in L1
            lstm_step(nb, H, pa, pb, hx, wp, gin, xt, I, I, wpx, bias, cp,
                      hseq + (t * B + b0) * H, co, g if store else NULL, m)
            if bar != NULL:
                team_barrier(bar, nsync)
            if rm != NULL and m != NULL:
                # padded rows copied hx: they carry the unmasked state
                rdrop_carry(nb, H, hp, hseq + (t * B + b0) * H, m)
        else:
            recur_fwd(nb, GH, H, hx, whh, NULL, g, 1)
            lstm_fwd_pw(nb, H, g, bias, hp, cp, hseq + (t * B + b0) * H, co,
                        g if store else NULL, m)


cdef struct lstm_fwd_ctx:
    # lstm_fwd_rows's arguments (real* as void*: float if is_f, else double)
    bint is_f
    Py_ssize_t T, B, H
    void* G
    const void* whh
    const void* bias
    const void* h0
    const void* c0
    void* hseq
    void* cseq
    void* cbuf
    void* cn
    const unsigned char* mask
    bint store
    const void* rm
    void* hm
    const void* x
    Py_ssize_t I


cdef void lstm_fwd_cb(void* p, const void* wp, const void* wpx, Py_ssize_t b0,
                      Py_ssize_t nb, int pa, int pb, fr_team_barrier* bar,
                      int nsync) noexcept nogil:
    """forward_sequence's callback (common.pxd): lstm_fwd_rows on the context."""
    cdef lstm_fwd_ctx* c = <lstm_fwd_ctx*>p
    if c.is_f:
        lstm_fwd_rows(c.T, c.B, b0, nb, c.H, <float*>c.G, <const float*>c.whh,
                      <const float*>wp, <const float*>c.bias, <const float*>c.h0,
                      <const float*>c.c0, <float*>c.hseq, <float*>c.cseq, <float*>c.cbuf,
                      <float*>c.cn, c.mask, c.store, <const float*>c.rm, <float*>c.hm,
                      <const float*>c.x, c.I, <const float*>wpx, pa, pb, bar, nsync)
    else:
        lstm_fwd_rows(c.T, c.B, b0, nb, c.H, <double*>c.G, <const double*>c.whh,
                      <const double*>wp, <const double*>c.bias, <const double*>c.h0,
                      <const double*>c.c0, <double*>c.hseq, <double*>c.cseq,
                      <double*>c.cbuf, <double*>c.cn, c.mask, c.store, <const double*>c.rm,
                      <double*>c.hm, <const double*>c.x, c.I, <const double*>wpx, pa, pb,
                      bar, nsync)


def lstm_forward(const real[:, :, ::1] x, const real[:, ::1] h0,
                 const real[:, ::1] c0, const real[:, ::1] w_ih,
                 const real[:, ::1] w_hh, const real[::1] bias,
                 real[:, :, ::1] G, real[:, :, ::1] hseq, real[:, :, ::1] cseq,
                 real[:, :, ::1] cbuf, real[:, ::1] cn,
                 const unsigned char[:, ::1] mask, bint training, int nthreads=1,
                 const real[:, ::1] rmask=None, real[:, ::1] hm=None):
    """Fill hseq (T,B,H) and cn (B,H); training: G <- gates, cseq <- c_t.

    bias = b_ih + b_hh (4H,). rmask (B, H): recurrent dropout on h_{t-1} in the
    product; hm (B, H) is workspace for the masked state. Shapes are trusted
    (validated in Python)."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef Py_ssize_t H = h0.shape[1]
    cdef const unsigned char* mp = NULL
    cdef real* cs = NULL
    cdef real* cb = NULL
    cdef const real* rm = NULL
    cdef real* hmp = NULL
    cdef unsigned int csr
    cdef lstm_fwd_ctx ctx
    if T == 0 or B == 0:
        return
    if mask is not None:
        mp = &mask[0, 0]
    if rmask is not None:
        rm = &rmask[0, 0]
        hmp = &hm[0, 0]
    if cseq is not None:
        cs = &cseq[0, 0, 0]
    if cbuf is not None:
        cb = &cbuf[0, 0, 0]
    ctx.is_f = real is float
    ctx.T = T
    ctx.B = B
    ctx.H = H
    ctx.G = &G[0, 0, 0]
    ctx.whh = &w_hh[0, 0]
    ctx.bias = &bias[0]
    ctx.h0 = &h0[0, 0]
    ctx.c0 = &c0[0, 0]
    ctx.hseq = &hseq[0, 0, 0]
    ctx.cseq = cs
    ctx.cbuf = cb
    ctx.cn = &cn[0, 0]
    ctx.mask = mp
    ctx.store = training
    ctx.rm = rm
    ctx.hm = hmp
    ctx.x = &x[0, 0, 0]
    ctx.I = I
    with nogil:
        csr = fr_ftz_enter()
        forward_sequence(lstm_fwd_cb, &ctx, T, B, I, 4, H, &x[0, 0, 0], &w_ih[0, 0],
                         &w_hh[0, 0], &G[0, 0, 0], rm == NULL, nthreads)
        fr_ftz_exit(csr)


cdef void lstm_bwd_rows(Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0, Py_ssize_t nb,
                        Py_ssize_t H, const real* gates, const real* cseq,
                        const real* c0, const real* dy, const real* whh,
                        const real* wpt, real* dG, real* dhbuf, real* dc, real* dh0,
                        const unsigned char* mask, const real* rm,
                        real* rbuf) noexcept nogil:
    """BPTT for rows [b0, b0+nb). dhbuf (2, B, H): buffer 0 holds dh_n on entry;
    dc (B, H) holds dc_n on entry and dc0 on exit; dh0 (B, H) receives dh0.
    rm (B, H) recurrent-dropout mask or NULL; then rbuf (B, H) is workspace for
    dG[t] @ W_hh, which reaches dh_{t-1} through the mask."""
    cdef Py_ssize_t GH = 4 * H, t
    cdef real* cur = dhbuf + b0 * H
    cdef real* other = dhbuf + (B + b0) * H
    cdef real* nxt
    cdef real* dg
    cdef const real* cp
    cdef const unsigned char* m = NULL
    for t in range(T - 1, -1, -1):
        nxt = dh0 + b0 * H if t == 0 else other
        cp = c0 + b0 * H if t == 0 else cseq + ((t - 1) * B + b0) * H
        dg = dG + (t * B + b0) * GH
        if mask != NULL:
            m = mask + t * B + b0
        lstm_bwd_pw(nb, H, gates + (t * B + b0) * GH, cseq + (t * B + b0) * H, cp,
                    dy + (t * B + b0) * H if dy != NULL else NULL, cur,
                    dc + b0 * H, dg, nxt, m)
        if rm != NULL:
            recur_bwd_set(nb, H, GH, dg, whh, wpt, rbuf + b0 * H)
            rdrop_add(nb * H, rbuf + b0 * H, rm + b0 * H, nxt)
        else:
            recur_bwd(nb, H, GH, dg, whh, wpt, nxt)
        other = cur
        cur = nxt


cdef struct lstm_bwd_ctx:
    # lstm_bwd_rows's arguments (real* as void*: float if is_f, else double)
    bint is_f
    Py_ssize_t T, B, H
    const void* gates
    const void* cseq
    const void* c0
    const void* dy
    const void* whh
    void* dG
    void* dhbuf
    void* dc
    void* dh0
    const unsigned char* mask
    const void* rm
    void* rbuf


cdef void lstm_bwd_cb(void* p, const void* wpt, Py_ssize_t b0,
                      Py_ssize_t nb) noexcept nogil:
    """backward_sequence's callback (common.pxd): lstm_bwd_rows on the context."""
    cdef lstm_bwd_ctx* c = <lstm_bwd_ctx*>p
    if c.is_f:
        lstm_bwd_rows(c.T, c.B, b0, nb, c.H, <const float*>c.gates, <const float*>c.cseq,
                      <const float*>c.c0, <const float*>c.dy, <const float*>c.whh,
                      <const float*>wpt, <float*>c.dG, <float*>c.dhbuf, <float*>c.dc,
                      <float*>c.dh0, c.mask, <const float*>c.rm, <float*>c.rbuf)
    else:
        lstm_bwd_rows(c.T, c.B, b0, nb, c.H, <const double*>c.gates, <const double*>c.cseq,
                      <const double*>c.c0, <const double*>c.dy, <const double*>c.whh,
                      <const double*>wpt, <double*>c.dG, <double*>c.dhbuf, <double*>c.dc,
                      <double*>c.dh0, c.mask, <const double*>c.rm, <double*>c.rbuf)


def lstm_backward(const real[:, :, ::1] x, const real[:, :, ::1] hs,
                  const real[:, :, ::1] gates, const real[:, :, ::1] cseq,
                  const real[:, ::1] c0, const real[:, ::1] w_ih,
                  const real[:, ::1] w_hh, const real[:, :, ::1] dy,
                  real[:, :, ::1] dG, real[:, :, ::1] dhbuf, real[:, ::1] dc,
                  real[:, ::1] dh0, real[:, :, ::1] dx, real[:, ::1] dw_ih,
                  real[:, ::1] dw_hh, real[::1] db,
                  const unsigned char[:, ::1] mask, int nthreads=1,
                  size_t blas_local=0, const real[:, ::1] rmask=None,
                  real[:, :, ::1] hm=None, real[:, ::1] rbuf=None):
    """dhbuf[0] = dh_n and dc = dc_n on entry (zeros when absent); db zeroed.
    Recurrent dropout: rmask (B, H); hm (T, B, H) workspace, filled with
    hs[:T] * rmask for dW_hh = dG^T hm; rbuf (B, H) workspace."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef Py_ssize_t H = c0.shape[1], GH = 4 * c0.shape[1]
    cdef const unsigned char* mp = NULL
    cdef const real* dyp = NULL
    cdef const real* rm = NULL
    cdef real* rb = NULL
    cdef const real* hw = NULL
    cdef real* hwm = NULL
    cdef Py_ssize_t t
    cdef unsigned int csr
    cdef lstm_bwd_ctx ctx
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
    ctx.cseq = &cseq[0, 0, 0]
    ctx.c0 = &c0[0, 0]
    ctx.dy = dyp
    ctx.whh = &w_hh[0, 0]
    ctx.dG = &dG[0, 0, 0]
    ctx.dhbuf = &dhbuf[0, 0, 0]
    ctx.dc = &dc[0, 0]
    ctx.dh0 = &dh0[0, 0]
    ctx.mask = mp
    ctx.rm = rm
    ctx.rbuf = rb
    with nogil:
        csr = fr_ftz_enter()
        backward_sequence(lstm_bwd_cb, &ctx, B, 4, H, &w_hh[0, 0], nthreads)
        if rm != NULL:
            # dW_hh = dG^T (h_{t-1} * m): the masked states the forward's product saw
            for t in range(T):
                rdrop_mul(B * H, &hs[t, 0, 0], rm, hwm + t * B * H)
        # weight / input gradients: one GEMM each over all T*B rows
        product(T * B, I, GH, &dG[0, 0, 0], &w_ih[0, 0], I, 1, &dx[0, 0, 0], nthreads)
        weight_grads(T * B, GH, I, H, &dG[0, 0, 0], &dG[0, 0, 0], &x[0, 0, 0],
                     hw, &dw_ih[0, 0], &dw_hh[0, 0], nthreads, blas_local)
        colsum_add(T * B, GH, &dG[0, 0, 0], &db[0])
        fr_ftz_exit(csr)


def _set_isa(int level):
    """Kernel path of this module (set by fastrnn._engine.config, never while
    kernels run). Returns 0, or -1 if the CPU lacks it (unchanged)."""
    return fr_isa_set(level)


def _set_fuse_input(int mode):
    """Test hook: -1 lets the engine's rule decide whether the fused steps compute the
    input projection (common.pxd: fuse_input); 0 / 1 force it off / on in this module."""
    fr_fuse_input_set(mode)
