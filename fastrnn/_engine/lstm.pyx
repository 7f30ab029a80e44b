# cython: language_level=3
"""LSTM kernels (float32 / float64 via the fused type `real`).

Design
------
Layout: time-major, C-contiguous. x (T, B, I); states (B, H); gates are
gate-interleaved per row: G (T, B, 4H) with gate order i, f, g, o (PyTorch).
Weights in PyTorch layout: W_ih (4H, I), W_hh (4H, H).

Forward:
  1. one GEMM for the input projection of every step: G = X(T*B, I) @ W_ih^T;
     the two biases are summed once per call (b = b_ih + b_hh) and added in
     the fused pass below, so no step ever touches b_ih / b_hh separately.
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
each computes its panels of every step, so its slice of W_hh stays in its own
L2, and the team meets at a barrier per step. Each thread sets FTZ/DAZ for
itself and restores it. The
input projection and dX use the engine's packed GEMM (measured >= OpenBLAS on
these shapes; rows split over the threads); the two weight-gradient GEMMs call
BLAS single-threaded per OpenMP thread, so only one thread pool is ever active.
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
from libc.stdlib cimport free
from cython.parallel cimport parallel, threadid
from fastrnn._engine.blas cimport real, gemm_rm
from fastrnn._engine.common cimport (team_size, fr_ftz_enter, fr_ftz_exit, fr_isa_set,
                              colsum_add, lstm_fwd_pw, lstm_step, pack_cell_new, use_fused,
                              lstm_bwd_pw, pack_new, recur_fwd, recur_bwd, pick_threads,
                              product, weight_grads, rdrop_mul, rdrop_add, rdrop_carry,
                              recur_bwd_set, ALL_PANELS, cell_panels, team_barrier,
                              fr_team_barrier, split_units_threads)


cdef void lstm_fwd_rows(Py_ssize_t T, Py_ssize_t B, Py_ssize_t b0, Py_ssize_t nb,
                        Py_ssize_t H, real* G, const real* whh, const real* wp,
                        const real* bias, const real* h0, const real* c0, real* hseq,
                        real* cseq,
                        real* cbuf, real* cn, const unsigned char* mask,
                        bint store, const real* rm, real* hm, int pa=0,
                        int pb=ALL_PANELS, fr_team_barrier* bar=NULL, int nsync=1) noexcept nogil:
    """Recurrence for batch rows [b0, b0+nb) over the whole sequence.

    Hidden-unit split (bar != NULL, nsync threads): this thread computes panels
    [pa, pb) of every step (its units of h_t, c_t and the gates) and waits at a
    barrier after each step, since every thread reads all of h_t at t + 1 (fused
    path only, no rm).

    G: (T, B, 4H) input projections (overwritten: gates if `store`).
    hseq: (T, B, H) h_t output. cseq: (T, B, H) c_t (training) or NULL, then
    cbuf (2, B, H) ping-pongs c and the last step writes cn (B, H).
    rm: (B, H) recurrent-dropout mask or NULL; then the thread's rows of hm (B, H)
    receive h_{t-1} * rm, the product's input, at every step.
    """
    cdef Py_ssize_t GH = 4 * H, t
    cdef real* g
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
        if wp != NULL:
            # fused: every register tile of h W_hh^T gets its pointwise update in L1
            lstm_step(nb, H, pa, pb, hx, wp, g, bias, cp, hseq + (t * B + b0) * H, co,
                      g if store else NULL, m)
            if bar != NULL:
                team_barrier(bar, nsync)
            if rm != NULL and m != NULL:
                # padded rows copied hx: they carry the unmasked state
                rdrop_carry(nb, H, hp, hseq + (t * B + b0) * H, m)
        else:
            recur_fwd(nb, GH, H, hx, whh, NULL, g, 1)
            lstm_fwd_pw(nb, H, g, bias, hp, cp, hseq + (t * B + b0) * H, co,
                        g if store else NULL, m)


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
    cdef unsigned int csr, csr_t = 0
    cdef real* wp = NULL
    cdef int nthr, tid = 0, nteam = 1, nsplit = 1, npan = 0, p0 = 0, p1 = 0
    cdef fr_team_barrier bar
    cdef Py_ssize_t b0 = 0, b1 = 0
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
    with nogil:
        csr = fr_ftz_enter()
        product(T * B, 4 * H, I, &x[0, 0, 0], &w_ih[0, 0], I, 0, &G[0, 0, 0], nthreads)
        nthr = pick_threads(B, 4, H, nthreads)
        if use_fused(T, B):
            wp = pack_cell_new(4, H, &w_hh[0, 0])
            if wp == NULL:
                nthr = 1
        if wp != NULL and rm == NULL and T > 1:
            npan = cell_panels(4, H, real is float)
            nsplit = split_units_threads(B, 4, H, nthreads, nthr, npan)
        if nsplit > 1:
            bar.count = 0
            bar.gen = 0
            with parallel(num_threads=nsplit):
                tid = threadid()
                nteam = team_size()
                p0 = (tid * npan) // nteam
                p1 = ((tid + 1) * npan) // nteam
                csr_t = fr_ftz_enter()
                lstm_fwd_rows(T, B, 0, B, H, &G[0, 0, 0], &w_hh[0, 0], wp,
                              &bias[0], &h0[0, 0], &c0[0, 0], &hseq[0, 0, 0], cs, cb,
                              &cn[0, 0], mp, training, rm, hmp, p0, p1, &bar, nteam)
                fr_ftz_exit(csr_t)
        elif nthr > 1:
            with parallel(num_threads=nthr):
                tid = threadid()
                # split by the team the runtime actually gave (OMP_THREAD_LIMIT,
                # OMP_DYNAMIC may give fewer threads than asked)
                nteam = team_size()
                b0 = (tid * B) // nteam
                b1 = ((tid + 1) * B) // nteam
                csr_t = fr_ftz_enter()
                lstm_fwd_rows(T, B, b0, b1 - b0, H, &G[0, 0, 0], &w_hh[0, 0], wp,
                              &bias[0], &h0[0, 0], &c0[0, 0], &hseq[0, 0, 0], cs, cb,
                              &cn[0, 0], mp, training, rm, hmp)
                fr_ftz_exit(csr_t)
        else:
            lstm_fwd_rows(T, B, 0, B, H, &G[0, 0, 0], &w_hh[0, 0], wp, &bias[0],
                          &h0[0, 0], &c0[0, 0], &hseq[0, 0, 0], cs, cb, &cn[0, 0],
                          mp, training, rm, hmp)
        free(wp)
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
    cdef unsigned int csr, csr_t = 0
    cdef real* wpt = NULL
    cdef int nthr, tid = 0, nteam = 1
    cdef Py_ssize_t b0 = 0, b1 = 0
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
    with nogil:
        csr = fr_ftz_enter()
        nthr = pick_threads(B, 4, H, nthreads)
        if B > 1:
            wpt = pack_new(H, GH, &w_hh[0, 0], H, 1)
            if wpt == NULL:
                nthr = 1
        if nthr > 1:
            with parallel(num_threads=nthr):
                tid = threadid()
                # split by the team the runtime actually gave (OMP_THREAD_LIMIT,
                # OMP_DYNAMIC may give fewer threads than asked)
                nteam = team_size()
                b0 = (tid * B) // nteam
                b1 = ((tid + 1) * B) // nteam
                csr_t = fr_ftz_enter()
                lstm_bwd_rows(T, B, b0, b1 - b0, H, &gates[0, 0, 0], &cseq[0, 0, 0],
                              &c0[0, 0], dyp, &w_hh[0, 0], wpt, &dG[0, 0, 0],
                              &dhbuf[0, 0, 0], &dc[0, 0], &dh0[0, 0], mp, rm, rb)
                fr_ftz_exit(csr_t)
        else:
            lstm_bwd_rows(T, B, 0, B, H, &gates[0, 0, 0], &cseq[0, 0, 0], &c0[0, 0],
                          dyp, &w_hh[0, 0], wpt, &dG[0, 0, 0], &dhbuf[0, 0, 0],
                          &dc[0, 0], &dh0[0, 0], mp, rm, rb)
        free(wpt)
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
