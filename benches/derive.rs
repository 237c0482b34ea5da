//! Derivation benchmarks: all gradients of an n-factor layer chain, derived,
//! simplified (e-graph) and printed; the Matrix Cookbook-like set; verify.
//! Results: BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use matdiff::syntax::{parse_program, parse_var};

fn chain(n: usize) -> String {
    (1..=n).map(|i| format!("W{i}")).chain(["X".to_string()]).collect::<Vec<_>>().join("*")
}

fn layer_chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("chain_all_gradients");
    group.sample_size(10);
    for n in [4, 16, 64, 256, 1024] {
        let src = chain(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &src, |b, src| {
            b.iter(|| {
                let program = parse_program(black_box(src)).unwrap();
                // As `matdiff derive` without --steps: the steps are not kept.
                let options = matdiff::DeriveOptions { steps: matdiff::Steps::Skip, ..Default::default() };
                let d = matdiff::derive(&program, &options).unwrap();
                assert!(d.gradients.iter().all(|g| g.saturated));
                let text: usize = d.gradients.iter().map(|g| g.expr.to_string().len()).sum();
                black_box(text)
            })
        });
    }
    group.finish();
}

const SET: &[&str] = &[
    "x : n; A : n x n; x^T*A*x",
    "A : n x n; X : n x n; B : n x n; tr(A*X^-1*B)",
    "X : n x n; logdet(X)",
    "W : 3x4; X : 4x6; Y : 3x6; norm(W*X - Y)^2",
    "W1 : 4x3; W2 : 2x4; X : 3x5; Y : 2x5; sum(Y .* tanh(W2*tanh(W1*X)))",
    "B : m x k; X : n x m; C : n x n; tr(B^T * X^T * C * X * X^T * C * X * B)",
];

/// Parsing alone: the cookbook set, and a 1024-factor chain.
fn parsing(c: &mut Criterion) {
    c.bench_function("parse_cookbook_set", |b| {
        b.iter(|| {
            SET.iter().map(|src| parse_program(black_box(src)).unwrap().declarations.len()).sum::<usize>()
        })
    });
    let src = chain(1024);
    c.bench_function("parse_chain_1024", |b| b.iter(|| parse_program(black_box(&src)).unwrap()));
}

fn cookbook_like(c: &mut Criterion) {
    c.bench_function("cookbook_like_set", |b| {
        b.iter(|| {
            for src in SET {
                let program = parse_program(black_box(src)).unwrap();
                black_box(matdiff::derive(&program, &Default::default()).unwrap());
            }
        })
    });
}

/// ∂L/∂W[j] of a chain of symbolic length, for every j.
fn symbolic_length(c: &mut Criterion) {
    let src = "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X";
    c.bench_function("symbolic_length_chain", |b| {
        b.iter(|| {
            let program = parse_program(black_box(src)).unwrap();
            let d = matdiff::derive(&program, &Default::default()).unwrap();
            black_box(d.gradients.len())
        })
    });
}

fn verify(c: &mut Criterion) {
    let program = parse_program("W1*W2*W3*X").unwrap();
    let w2 = parse_var("W2").unwrap();
    c.bench_function("verify_true_symbolic", |b| {
        b.iter(|| {
            matdiff::verify::verify(&program, &w2, black_box("W1^T*G*X^T*W3^T"), &Default::default()).unwrap()
        })
    });
    let program = parse_program("x : n; A : n x n; x^T*A*x").unwrap();
    let x = parse_var("x").unwrap();
    c.bench_function("verify_false_numeric", |b| {
        b.iter(|| matdiff::verify::verify(&program, &x, black_box("2*A*x"), &Default::default()).unwrap())
    });
}

criterion_group!(benches, parsing, layer_chain, cookbook_like, symbolic_length, verify);
criterion_main!(benches);
