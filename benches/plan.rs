//! Plan benchmarks: compiling the plan of an n-factor chain (derivation
//! done beforehand), and running a plan on nalgebra. Results: BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use matdiff::numeric::{run_plan, Env, Matrix};
use matdiff::plan::{compile, PlanOptions};
use matdiff::syntax::{parse_program, parse_var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn chain(n: usize) -> String {
    (1..=n).map(|i| format!("W{i}")).chain(["X".to_string()]).collect::<Vec<_>>().join("*")
}

/// Planning only: lowering, families, pricing every cut, writing the steps,
/// and pricing the forward and every gradient on its own.
fn planning(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_chain");
    group.sample_size(10);
    for n in [8, 64, 256, 512, 1000] {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            // Derived here, so that a filtered run derives only what it plans.
            let program = parse_program(&chain(n)).unwrap();
            let d = matdiff::derive(&program, &Default::default()).unwrap();
            b.iter(|| {
                let plan = compile(black_box(&d), &PlanOptions::default()).unwrap();
                assert_eq!(plan.products(), 3 * n);
                black_box(plan)
            })
        });
    }
    group.finish();
}

/// The seed chain with widths `w` and batch `batch`, as a plan and an instance.
fn instance(n: usize, w: usize, batch: usize) -> (matdiff::plan::Plan, Env) {
    let src = chain(n);
    let program = parse_program(&src).unwrap();
    let d = matdiff::derive(&program, &Default::default()).unwrap();
    let mut dims: HashMap<String, u64> = (0..n).map(|i| (format!("d{i}"), w as u64)).collect();
    dims.insert(format!("d{n}"), w as u64);
    dims.insert(format!("d{}", n + 1), batch as u64);
    let plan = compile(&d, &PlanOptions { dims, ..Default::default() }).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let mut random = |r: usize, c: usize| Matrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0));
    let mut env = Env::default();
    for i in 1..=n {
        env.vars.insert(parse_var(&format!("W{i}")).unwrap(), random(w, w));
    }
    env.vars.insert(parse_var("X").unwrap(), random(w, batch));
    env.vars.insert(parse_var("G").unwrap(), random(w, batch));
    (plan, env)
}

/// All gradients of the chain through the plan, on nalgebra.
fn evaluation(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_eval_nalgebra");
    group.sample_size(10);
    for (n, w, batch) in [(8, 64, 64), (8, 256, 256), (32, 128, 32), (4, 64, 4096)] {
        let id = format!("n{n}_w{w}_b{batch}");
        group.bench_function(id, |b| {
            let (plan, env) = instance(n, w, batch);
            b.iter(|| black_box(run_plan(&plan, black_box(&env)).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, planning, evaluation);
criterion_main!(benches);
