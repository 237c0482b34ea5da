//! `check` at real sizes (issue 25): the seed problem's 8-factor layer at
//! widths 64 and batch 64, and a 3-layer MLP loss at widths 128, 192 and
//! 256, compared along random directions as `CheckMethod::Auto` chooses
//! there. Results: BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use matdiff::numeric::{check, CheckOptions, Compared};
use matdiff::syntax::parse_program;

fn layer(width: usize) -> String {
    let mut src: String = (1..=8).map(|k| format!("W{k} : {width} x {width}; ")).collect();
    src.push_str(&format!("X : {width} x {width}; W1*W2*W3*W4*W5*W6*W7*W8*X"));
    src
}

fn mlp(width: usize) -> String {
    let w = width;
    format!("W1 : {w} x {w}; W2 : {w} x {w}; W3 : {w} x {w}; X : {w} x {w}; Y : {w} x {w}; norm(W3*tanh(W2*tanh(W1*X)) - Y)^2")
}

fn checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    let cases = [
        ("layer8", 64, layer(64)),
        ("mlp3", 128, mlp(128)),
        ("mlp3", 192, mlp(192)),
        ("mlp3", 256, mlp(256)),
    ];
    for (name, width, src) in cases {
        let program = parse_program(&src).unwrap();
        let d = matdiff::derive(&program, &Default::default()).unwrap();
        group.bench_with_input(BenchmarkId::new(name, width), &d, |b, d| {
            b.iter(|| {
                let report = check(black_box(d), &CheckOptions { seed: 1, ..Default::default() }).unwrap();
                assert!(
                    report.ok()
                        && report.results.iter().all(|r| matches!(r.compared, Compared::Directions(_)))
                );
                black_box(report)
            })
        });
    }
    group.finish();
}

/// The evaluator's matrix product (nalgebra, through matrixmultiply,
/// single-threaded) at the sizes above, against which
/// `benches/matmul_openblas.py` times NumPy's OpenBLAS on one thread.
fn products(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_nalgebra");
    for n in [64usize, 128, 256, 512] {
        let a = matdiff::numeric::Matrix::from_fn(n, n, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = matdiff::numeric::Matrix::from_fn(n, n, |i, j| ((i * 5 + j * 2) % 13) as f64 - 6.0);
        group.bench_with_input(BenchmarkId::from_parameter(n), &(a, b), |bench, (a, b)| {
            bench.iter(|| black_box(a) * black_box(b))
        });
    }
    group.finish();
}

criterion_group!(benches, checks, products);
criterion_main!(benches);
