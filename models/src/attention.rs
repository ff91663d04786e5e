//! Causal grouped-query attention on the CPU, over per-sequence KV caches held as plain
//! `f32` buffers.
//!
//! Batched decoding feeds one new token per sequence, and each sequence attends to its own
//! history at its own position. Done with tensor ops, that is some twenty small candle ops
//! per sequence and layer (narrow, RoPE, cache write, two matmuls, softmax, reshapes), whose
//! fixed cost dwarfs the arithmetic at one token: at 32 sequences the per-op overhead took
//! more time than the weight matmuls. Here RoPE, the cache append and the attention of every
//! token of every sequence run as one pass over raw slices, rows in parallel on candle's
//! barrier pool: the same threads as the quantized matmuls, whose workers would otherwise
//! spin for their next job while another pool's threads compete with them for the cores.

/// Keys and values of one layer of one sequence: position-major `[len, kv_heads * head_dim]`,
/// so appending a token is a `Vec` extend and never moves the history.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerKv {
    k: Vec<f32>,
    v: Vec<f32>,
}

impl LayerKv {
    /// Positions held.
    fn len(&self, kv: usize) -> usize {
        self.k.len() / kv
    }

    /// Drops the positions from `len` on (used when a prefill fails half way).
    pub(crate) fn truncate(&mut self, len: usize, kv: usize) {
        self.k.truncate(len * kv);
        self.v.truncate(len * kv);
    }
}

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` is a multiple).
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// RoPE pairs `(2i, 2i+1)` (GGUF) instead of `(i, i + head_dim/2)` (Hugging Face).
    pub interleaved: bool,
}

impl Dims {
    fn d(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// Rotates each head of `x` (`[heads * head_dim]`) to position `pos`.
fn rope(x: &mut [f32], dims: Dims, cos: &[f32], sin: &[f32], pos: usize) {
    let hd = dims.head_dim;
    let half = hd / 2;
    let (cos, sin) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
    for head in x.chunks_exact_mut(hd) {
        for i in 0..half {
            let (a, b) = if dims.interleaved {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

/// One layer's attention for a batch of sequences.
///
/// `qkv` is `[T, d + 2 kv]` (queries, keys, values of every new token, sequences one after
/// another, `lens[s]` tokens each). Keys and values are rotated/appended to `caches[s]`, and
/// the output `[T, d]` holds each token's attention over its sequence's history up to itself.
pub(crate) fn attend(
    qkv: &mut [f32],
    lens: &[usize],
    caches: &mut [&mut LayerKv],
    dims: Dims,
    cos: &[f32],
    sin: &[f32],
) -> Vec<f32> {
    let (d, kv) = (dims.d(), dims.kv());
    let width = d + 2 * kv;
    let t_all: usize = lens.iter().sum();
    debug_assert_eq!(qkv.len(), t_all * width);

    // RoPE on queries and keys, and the cache append, sequence by sequence.
    let mut rows = Vec::with_capacity(t_all); // (sequence, position) of every token
    let mut off = 0;
    for (s, (&n, cache)) in lens.iter().zip(caches.iter_mut()).enumerate() {
        let pos0 = cache.len(kv);
        cache.k.reserve(n * kv);
        cache.v.reserve(n * kv);
        for t in 0..n {
            let row = &mut qkv[(off + t) * width..][..width];
            let (q, kvs) = row.split_at_mut(d);
            let (k, v) = kvs.split_at_mut(kv);
            rope(q, dims, cos, sin, pos0 + t);
            rope(k, dims, cos, sin, pos0 + t);
            cache.k.extend_from_slice(k);
            cache.v.extend_from_slice(v);
            rows.push((s, pos0 + t));
        }
        off += n;
    }

    let caches: Vec<&LayerKv> = caches.iter().map(|c| &**c).collect();
    let qkv: &[f32] = qkv;
    let mut out = vec![0f32; t_all * d];
    let out_ptr = out.as_mut_ptr() as usize;
    let work = |range: std::ops::Range<usize>| {
        for r in range {
            let (s, pos) = rows[r];
            let q = &qkv[r * width..][..d];
            // SAFETY: every row index is handed to exactly one call, so the rows written
            // are disjoint, and `out` outlives the pool's execution.
            let y = unsafe { std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(r * d), d) };
            attend_row(q, caches[s], pos, dims, y);
        }
    };
    // Below a few rows the pool's hand-off costs more than the work.
    if t_all * (rows.iter().map(|r| r.1).max().unwrap_or(0) + 1) < 4096 {
        work(0..t_all);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(t_all, work);
    }
    out
}

/// Attention of one query token at `pos` over `cache[0..=pos]`, every head, into `y` (`[d]`).
fn attend_row(q: &[f32], cache: &LayerKv, pos: usize, dims: Dims, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { attend_row_avx2(q, cache, pos, dims, y) };
            return;
        }
    }
    attend_row_generic(q, cache, pos, dims, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_row_avx2(q: &[f32], cache: &LayerKv, pos: usize, dims: Dims, y: &mut [f32]) {
    // The same code, compiled with 256-bit vectors.
    attend_row_generic(q, cache, pos, dims, y)
}
#[inline(always)]
fn attend_row_generic(q: &[f32], cache: &LayerKv, pos: usize, dims: Dims, y: &mut [f32]) {
    let (hd, kv) = (dims.head_dim, dims.kv());
    let rep = dims.heads / dims.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let n = pos + 1;
    // The `rep` query heads sharing a kv head go over its keys and values together, so each
    // cached row is read once per group, not once per query head.
    let mut scores = vec![0f32; rep * n];
    for g in 0..dims.kv_heads {
        for j in 0..n {
            let kj = &cache.k[j * kv + g * hd..][..hd];
            for r in 0..rep {
                let qh = &q[(g * rep + r) * hd..][..hd];
                scores[r * n + j] = dot(qh, kj) * scale;
            }
        }
        for s in scores.chunks_exact_mut(n) {
            let max = s
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            let mut sum = 0f32;
            for v in s.iter_mut() {
                *v = fast_exp(*v - max);
                sum += *v;
            }
            let inv = 1.0 / sum;
            s.iter_mut().for_each(|v| *v *= inv);
        }
        let yg = &mut y[g * rep * hd..][..rep * hd];
        for j in 0..n {
            let vj = &cache.v[j * kv + g * hd..][..hd];
            for (r, yh) in yg.chunks_exact_mut(hd).enumerate() {
                axpy(yh, scores[r * n + j], vj);
            }
        }
    }
}

/// `e^x` for `x <= 0` (softmax after subtracting the maximum), to about 2 ulp: a degree-6
/// polynomial on the reduced argument, scaled by a power of two built from the exponent
/// bits. Unlike a libm call, it vectorises.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.max(-87.0);
    let n = (x * LOG2E + MAGIC) - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_452 + r * 0.001_388_949)))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Dot product with eight independent accumulators (so it vectorises without reassociating).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a * x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain attention over explicit (already rotated) keys and values, for comparison.
    fn reference(q: &[f32], ks: &[Vec<f32>], vs: &[Vec<f32>], dims: Dims) -> Vec<f32> {
        let hd = dims.head_dim;
        let rep = dims.heads / dims.kv_heads;
        let mut y = vec![0f32; dims.d()];
        for h in 0..dims.heads {
            let g = h / rep;
            let s: Vec<f32> = ks
                .iter()
                .map(|k| {
                    (0..hd).map(|i| q[h * hd + i] * k[g * hd + i]).sum::<f32>() / (hd as f32).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f32 = e.iter().sum();
            for (p, v) in e.iter().zip(vs) {
                for i in 0..hd {
                    y[h * hd + i] += p / z * v[g * hd + i];
                }
            }
        }
        y
    }

    #[test]
    fn batched_prefill_and_decode_match_reference_attention() {
        let dims = Dims {
            heads: 4,
            kv_heads: 2,
            head_dim: 8,
            interleaved: true,
        };
        let (d, kv) = (dims.d(), dims.kv());
        let w = d + 2 * kv;
        let half = dims.head_dim / 2;
        // No rotation (cos 1, sin 0), so the reference needs no RoPE.
        let cos = vec![1f32; 16 * half];
        let sin = vec![0f32; 16 * half];
        let mut x = 0.37f32;
        let mut next = || {
            x = (x * 7.13 + 0.11).fract();
            x - 0.5
        };
        let lens = [3usize, 1, 2];
        let mut qkv: Vec<f32> = (0..lens.iter().sum::<usize>() * w)
            .map(|_| next())
            .collect();
        let orig = qkv.clone();
        let mut caches = [LayerKv::default(), LayerKv::default(), LayerKv::default()];
        let mut refs: Vec<&mut LayerKv> = caches.iter_mut().collect();
        let y = attend(&mut qkv, &lens, &mut refs, dims, &cos, &sin);
        let mut off = 0;
        for &n in &lens {
            for t in 0..n {
                let row = |r: usize| &orig[(off + r) * w..][..w];
                let ks: Vec<Vec<f32>> = (0..=t).map(|r| row(r)[d..d + kv].to_vec()).collect();
                let vs: Vec<Vec<f32>> = (0..=t).map(|r| row(r)[d + kv..].to_vec()).collect();
                let want = reference(&row(t)[..d], &ks, &vs, dims);
                let got = &y[(off + t) * d..][..d];
                for (a, b) in want.iter().zip(got) {
                    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
                }
            }
            off += n;
        }
        assert_eq!(caches[0].len(kv), 3);
        assert_eq!(caches[1].len(kv), 1);
    }

    #[test]
    fn fast_exp_matches_exp_where_softmax_uses_it() {
        for i in 0..=8_000 {
            let x = -(i as f32) * 0.01;
            let (a, b) = (fast_exp(x), x.exp());
            assert!((a - b).abs() <= 4.0 * f32::EPSILON * b, "{x}: {a} vs {b}");
        }
        assert!(fast_exp(-1000.0) < 1e-37);
    }

    #[test]
    fn rope_layouts_rotate_the_same_pairs() {
        let dims = |interleaved| Dims {
            heads: 1,
            kv_heads: 1,
            head_dim: 4,
            interleaved,
        };
        let (cos, sin) = ([1.0f32, 1.0, 0.0, 0.5], [0.0f32, 0.0, 1.0, 0.5]);
        let mut a = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut a, dims(true), &cos, &sin, 1);
        // Pairs (1,2) and (3,4) by 90 degrees and by (cos .5, sin .5).
        assert_eq!(a, [-2.0, 1.0, 3.0 * 0.5 - 4.0 * 0.5, 3.0 * 0.5 + 4.0 * 0.5]);
        let mut b = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut b, dims(false), &cos, &sin, 1);
        // Pairs (1,3) and (2,4).
        assert_eq!(b, [-3.0, 2.0 * 0.5 - 4.0 * 0.5, 1.0, 2.0 * 0.5 + 4.0 * 0.5]);
    }
}
