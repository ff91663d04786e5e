//! Micro-benchmarks behind design choices of the cloud model; `#[ignore]`d, run with
//! `cargo test --release -p netgpt-models --test cloud_perf -- --ignored --nocapture`.

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

fn time_matmul(w: &QMatMul, x: &Tensor, iters: usize) -> f64 {
    for _ in 0..10 {
        w.forward(x).unwrap();
    }
    let t = Instant::now();
    for _ in 0..iters {
        w.forward(x).unwrap();
    }
    t.elapsed().as_secs_f64() * 1e6 / iters as f64
}

#[test]
#[ignore]
fn q8_0_gemv_k576_versus_padded_k768() {
    let dev = Device::Cpu;
    for (n, k, kp) in [(960usize, 576usize, 768usize), (3072, 576, 768), (576, 1536, 1536), (49152, 576, 768)] {
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        let wp = Tensor::cat(&[&w, &Tensor::zeros((n, kp - k), candle_core::DType::F32, &dev).unwrap()], 1).unwrap();
        for dt in [GgmlDType::Q8_0, GgmlDType::Q4_1] {
            let q = QMatMul::from_qtensor(QTensor::quantize(&w, dt).unwrap()).unwrap();
            let qp = QMatMul::from_qtensor(QTensor::quantize(&wp, dt).unwrap()).unwrap();
            for m in [1usize, 8] {
                let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
                let xp = Tensor::randn(0f32, 1.0, (m, kp), &dev).unwrap();
                let iters = if n > 10_000 { 20 } else { 200 };
                println!(
                    "{dt:?} n={n} k={k} m={m}: {:.1} us   padded k={kp}: {:.1} us",
                    time_matmul(&q, &x, iters),
                    time_matmul(&qp, &xp, iters)
                );
            }
        }
    }
}
