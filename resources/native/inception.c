/* MesoInception-4's two inception stages on the CPU, fused per face.

   mesolive builds this file on first use (mesolive/backends/native.py) with the
   machine's C compiler and -O3 -march=native; ONNX Runtime runs the rest of the
   network. One face at a time and one stage at a time it computes, as the authors'
   Keras model does: each branch's 1x1 convolution + ReLU into a zero-bordered
   plane, the 3x3 convolution (dilation 1, 2 or 3) + ReLU two rows by 32 columns at
   a time with the sums in vector registers, the BatchNorm's scale and shift, and
   the 2x2 max-pool, written straight to the pooled output. Nothing else is
   rounded differently from a plain float32 convolution except the order of the
   sums (docs/cpu.md measures the difference against ONNX Runtime).

   Parameters of one stage with cin input channels and branch widths n[0..3]
   (mesolive/models/inception_native.py packs them), float32, in this order:
     for k = 0..3: the 1x1 weights (n[k], cin), then their bias (n[k]);
     for k = 1..3: the 3x3 weights (n[k], n[k], 3, 3) OIHW, then their bias (n[k]);
     the BatchNorm scale (sum n), then its shift (sum n).
   The first stage's 1x1 weights read the uint8 pixels as they are (0..255, the
   crop's channel order): the model's colour order and value range are folded in. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define P 3 /* zero border of the planes a 3x3 reads: the largest dilation */

/* VW floats per vector register, XB output columns per register block: a block's sums
   (up to 4 channels x 2 rows x XB / VW vectors) and its inputs must fit the registers, or
   the compiler spills them. Measured on a Zen 4 (docs/cpu.md): a 512-bit vector type built
   for AVX2 ran 6x slower than this choice; with 16 vector registers (AVX2, SSE) one vector
   per row is fastest, with AVX-512's 32 two. */
#if defined(__AVX512F__)
#define VW 16
#define XB 32
#elif defined(__AVX__)
#define VW 8
#define XB 8
#else
#define VW 4
#define XB 4
#endif
#define NV (XB / VW)

typedef float vec __attribute__((vector_size(VW * sizeof(float))));

static inline vec load(const float *p) {
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* 1x1 convolution + ReLU of in (cin, H, W) into the interior of out (cout, H+2P, OW). */
static void conv1x1(const float *in, int cin, int H, int W, const float *w, const float *bias,
                    int cout, float *out, int OW) {
    float acc[256];
    for (int co = 0; co < cout; co++)
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) acc[x] = bias[co];
            for (int ci = 0; ci < cin; ci++) {
                const float *row = in + ((size_t)ci * H + y) * W;
                const float wv = w[co * cin + ci];
                for (int x = 0; x < W; x++) acc[x] += wv * row[x];
            }
            float *o = out + ((size_t)co * (H + 2 * P) + y + P) * OW + P;
            for (int x = 0; x < W; x++) o[x] = acc[x] > 0.f ? acc[x] : 0.f;
        }
}

/* 3x3 convolution (dilation D) + ReLU + scale/shift + 2x2 max-pool, C channels in and out:
   in is (C, H+2P, OW) with a zero border, out (C, H/2, W/2). */
#define CONV3(C)                                                                             \
    static void conv3_##C(const float *in, int H, int W, int OW, int D, const float *w,     \
                          const float *bias, const float *sc, const float *sh, float *out) { \
        const int Hp = H + 2 * P;                                                           \
        for (int y = 0; y < H; y += 2)                                                      \
            for (int x0 = 0; x0 < W; x0 += XB) {                                            \
                vec acc[C][2][NV];                                                          \
                for (int co = 0; co < C; co++)                                              \
                    for (int r = 0; r < 2; r++)                                             \
                        for (int j = 0; j < NV; j++) acc[co][r][j] = (vec){0} + bias[co];    \
                for (int ci = 0; ci < C; ci++)                                              \
                    for (int ky = 0; ky < 3; ky++)                                          \
                        for (int kx = 0; kx < 3; kx++) {                                    \
                            const float *ip = in + ((size_t)ci * Hp + y + (ky - 1) * D + P) * OW \
                                              + x0 + (kx - 1) * D + P;                      \
                            vec v[2][NV];                                                   \
                            for (int r = 0; r < 2; r++)                                     \
                                for (int j = 0; j < NV; j++) v[r][j] = load(ip + r * OW + VW * j); \
                            for (int co = 0; co < C; co++) {                                \
                                const float wv = w[((co * C + ci) * 3 + ky) * 3 + kx];      \
                                for (int r = 0; r < 2; r++)                                 \
                                    for (int j = 0; j < NV; j++) acc[co][r][j] += wv * v[r][j]; \
                            }                                                               \
                        }                                                                   \
                for (int co = 0; co < C; co++) {                                            \
                    float t[2][XB];                                                         \
                    for (int r = 0; r < 2; r++)                                             \
                        for (int j = 0; j < NV; j++) memcpy(&t[r][VW * j], &acc[co][r][j], sizeof(vec)); \
                    for (int r = 0; r < 2; r++)                                             \
                        for (int x = 0; x < XB; x++)                                        \
                            t[r][x] = (t[r][x] > 0.f ? t[r][x] : 0.f) * sc[co] + sh[co];    \
                    float *o = out + ((size_t)co * (H / 2) + y / 2) * (W / 2) + x0 / 2;     \
                    for (int x = 0; x < XB / 2; x++) {                                      \
                        float m0 = t[0][2 * x] > t[0][2 * x + 1] ? t[0][2 * x] : t[0][2 * x + 1]; \
                        float m1 = t[1][2 * x] > t[1][2 * x + 1] ? t[1][2 * x] : t[1][2 * x + 1]; \
                        o[x] = m0 > m1 ? m0 : m1;                                           \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
    }
CONV3(1)
CONV3(2)
CONV3(4)

static int width_ok(int n) { return n == 1 || n == 2 || n == 4; }

/* One inception stage of one face: in (cin, H, W) planar; scratch (4, H+2P, W+2P) with a
   zero border; out (sum n, H/2, W/2). */
static void stage(const float *in, int cin, int H, int W, const int n[4], const float *params,
                  float *scratch, float *out) {
    static const int dilation[4] = {0, 1, 2, 3};
    const int OW = W + 2 * P;
    const size_t plane = (size_t)(H / 2) * (W / 2);
    const float *w1[4], *b1[4], *w3[4] = {0}, *b3[4] = {0};
    const float *p = params;
    for (int k = 0; k < 4; k++) {
        w1[k] = p;
        p += n[k] * cin;
        b1[k] = p;
        p += n[k];
    }
    for (int k = 1; k < 4; k++) {
        w3[k] = p;
        p += n[k] * n[k] * 9;
        b3[k] = p;
        p += n[k];
    }
    const float *sc = p, *sh = p + n[0] + n[1] + n[2] + n[3];
    /* branch 1: the 1x1 convolution alone, then scale/shift and pool */
    conv1x1(in, cin, H, W, w1[0], b1[0], n[0], scratch, OW);
    for (int co = 0; co < n[0]; co++) {
        const float *s = scratch + (size_t)co * (H + 2 * P) * OW;
        float *o = out + co * plane;
        for (int y = 0; y < H; y += 2)
            for (int x = 0; x < W; x += 2) {
                const float *r0 = s + (size_t)(y + P) * OW + x + P, *r1 = r0 + OW;
                const float v[4] = {r0[0], r0[1], r1[0], r1[1]};
                float m = v[0] * sc[co] + sh[co];
                for (int i = 1; i < 4; i++) {
                    const float t = v[i] * sc[co] + sh[co];
                    m = t > m ? t : m;
                }
                o[(y / 2) * (W / 2) + x / 2] = m;
            }
    }
    int ch = n[0];
    for (int k = 1; k < 4; k++) {
        conv1x1(in, cin, H, W, w1[k], b1[k], n[k], scratch, OW);
        float *o = out + ch * plane;
        if (n[k] == 4) conv3_4(scratch, H, W, OW, dilation[k], w3[k], b3[k], sc + ch, sh + ch, o);
        else if (n[k] == 2) conv3_2(scratch, H, W, OW, dilation[k], w3[k], b3[k], sc + ch, sh + ch, o);
        else conv3_1(scratch, H, W, OW, dilation[k], w3[k], b3[k], sc + ch, sh + ch, o);
        ch += n[k];
    }
}

typedef struct {
    const unsigned char *pixels; /* (count, S, S, 3) uint8 */
    int S, first, count, step;
    const int *n1, *n2;
    const float *p1, *p2;
    float *out; /* (count, sum n2, S/4, S/4) */
    int status;
} Job;

static void *run(void *arg) {
    Job *job = arg;
    const int S = job->S, H2 = S / 2;
    const int c1 = job->n1[0] + job->n1[1] + job->n1[2] + job->n1[3];
    const int c2 = job->n2[0] + job->n2[1] + job->n2[2] + job->n2[3];
    const size_t side1 = (size_t)(S + 2 * P), side2 = (size_t)(H2 + 2 * P);
    float *planes = malloc(sizeof(float) * 3 * S * S);
    float *mid = malloc(sizeof(float) * c1 * H2 * H2);
    float *scratch1 = calloc(4 * side1 * side1, sizeof(float));
    float *scratch2 = calloc(4 * side2 * side2, sizeof(float));
    if (!planes || !mid || !scratch1 || !scratch2) {
        job->status = -1;
    } else {
        const size_t plane = (size_t)S * S;
        for (int i = job->first; i < job->count; i += job->step) {
            const unsigned char *px = job->pixels + (size_t)i * plane * 3;
            for (size_t j = 0; j < plane; j++) {
                planes[j] = px[3 * j];
                planes[plane + j] = px[3 * j + 1];
                planes[2 * plane + j] = px[3 * j + 2];
            }
            stage(planes, 3, S, S, job->n1, job->p1, scratch1, mid);
            stage(mid, c1, H2, H2, job->n2, job->p2, scratch2,
                  job->out + (size_t)i * c2 * (S / 4) * (S / 4));
        }
        job->status = 0;
    }
    free(planes);
    free(mid);
    free(scratch1);
    free(scratch2);
    return NULL;
}

/* The two inception stages of count faces on up to threads threads.
   pixels: (count, S, S, 3) uint8; n1, n2: the stages' branch widths (each 1, 2 or 4);
   out: (count, sum n2, S/4, S/4) float32. Returns 0, -1 (out of memory) or -2 (a shape this
   kernel does not compute: S must be a multiple of 128 and at most 256). */
int mesolive_inception(const unsigned char *pixels, int count, int S, const int n1[4],
                       const float *p1, const int n2[4], const float *p2, float *out,
                       int threads) {
    if (S <= 0 || S % 128 != 0 || S > 256) return -2;
    for (int k = 1; k < 4; k++)
        if (!width_ok(n1[k]) || !width_ok(n2[k])) return -2;
    if (count <= 0) return 0;
    if (threads > count) threads = count;
    if (threads < 1) threads = 1;
    Job jobs[64];
    pthread_t ids[64];
    int started[64] = {0};
    if (threads > 64) threads = 64;
    for (int t = 0; t < threads; t++)
        jobs[t] = (Job){pixels, S, t, count, threads, n1, n2, p1, p2, out, -1};
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&ids[t], NULL, run, &jobs[t]) == 0;
    run(&jobs[0]);
    int status = jobs[0].status;
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else run(&jobs[t]); /* no thread to be had: do its share here */
        if (jobs[t].status) status = jobs[t].status;
    }
    return status;
}
