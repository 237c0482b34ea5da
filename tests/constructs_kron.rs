//! `kron(A, B)` and `vec(X)` (issue 20): the Kronecker product and the
//! column-major stacking of the columns. Values against hand-computed
//! ones, gradients against finite differences on random sizes and both
//! signs, wrong claims refused, symbolic sizes refused by name, the vec
//! form of matrix Hessians against their map H[dX] on random instances.

mod common;

use matdiff::numeric::{eval, Env, Matrix};
use matdiff::parse as parse_program;
use matdiff::syntax::{parse_expr, parse_var};
use matdiff::verify::verify;

const CASES: &[&str] = &[
    "A : 2x3; B : 3x2; tr(kron(A, B))",
    "X : 2x3; Y : 3x2; C : 6x6; tr(C * kron(X, Y))",
    "X : 3x2; C : 6x6; sum(C * kron(X, X^T))",
    "X : 2x2; Y : 3x1; norm(kron(X, Y))^2",
    "X : 2x3; a : 6; a^T * vec(X)",
    "X : 3x2; norm(vec(X^T*X))^2",
    "X : 2x3; w : 6; sum(tanh(vec(X) .* w))",
    "X : 2x2; Y : 2x2; w : 16; w^T * vec(kron(X, Y * X))",
    "s : scalar; Y : 2x3; sum(exp(kron(s, Y)))",
    // Symbolic sizes where a side is 1: kron of a column and a row.
    "x : n; y : m; A : n x m; tr(A^T * kron(x, y^T))",
    "x : n; y : m; sum(sin(kron(x, y^T)))",
    "x : n; a : n; a^T * vec(x)",
];

#[test]
fn every_case_matches_finite_differences() {
    for case in CASES {
        common::assert_gradients_agree(case, 1..=3, common::Signs::Both);
    }
}

/// Random numeric sizes: kron needs numbers, so the sizes are drawn here.
#[test]
fn random_sizes_match_finite_differences() {
    let mut state = 0x2026_u64;
    let mut draw = |k: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        1 + (state >> 33) % k
    };
    for _ in 0..6 {
        let (m, n, p, q) = (draw(3), draw(3), draw(3), draw(3));
        let (r, c) = (m * p, n * q);
        let case = format!(
            "X : {m}x{n}; Y : {p}x{q}; C : {c}x{r}; w : {}; tr(C * kron(X, Y)) + w^T * vec(X .* X)",
            m * n
        );
        common::assert_gradients_agree(&case, 1..=2, common::Signs::Both);
    }
}

fn env(vars: &[(&str, Matrix)]) -> Env {
    let mut env = Env::default();
    for (name, value) in vars {
        env.vars.insert(parse_var(name).unwrap(), value.clone());
    }
    env
}

/// kron and vec by hand.
#[test]
fn values() {
    let a = Matrix::from_row_slice(2, 2, &[1., 2., 3., 4.]);
    let b = Matrix::from_row_slice(1, 2, &[0., 5.]);
    let env = env(&[("A", a), ("B", b)]);
    let at = |src: &str| eval(&parse_program(src).unwrap().expr, &env, None).unwrap();
    assert_eq!(
        at("A : 2x2; B : 1x2; kron(A, B)"),
        Matrix::from_row_slice(2, 4, &[0., 5., 0., 10., 0., 15., 0., 20.])
    );
    assert_eq!(
        at("A : 2x2; B : 1x2; kron(B, A)"),
        Matrix::from_row_slice(2, 4, &[0., 0., 5., 10., 0., 0., 15., 20.])
    );
    // Column-major: the first column, then the second.
    assert_eq!(at("A : 2x2; vec(A)"), Matrix::from_column_slice(4, 1, &[1., 3., 2., 4.]));
    assert_eq!(at("A : 2x2; vec(A^T)"), Matrix::from_column_slice(4, 1, &[1., 2., 3., 4.]));
    // vec(A X B) = kron(B^T, A) vec(X), the identity the vec form rests on.
    let x = Matrix::from_row_slice(2, 2, &[2., -1., 0.5, 3.]);
    let env2 = {
        let mut e = env.clone();
        e.vars.insert(parse_var("X").unwrap(), x);
        e
    };
    let at2 = |src: &str| eval(&parse_program(src).unwrap().expr, &env2, None).unwrap();
    let lhs = at2("A : 2x2; X : 2x2; vec(A * X * A^T)");
    let rhs = at2("A : 2x2; X : 2x2; kron(A, A) * vec(X)");
    assert!((lhs - rhs).norm() < 1e-12);
}

/// Shapes: products of numbers, and a side of 1 through symbols.
#[test]
fn shapes() {
    let shape = |src: &str| matdiff::shape::infer(&parse_program(src).unwrap()).unwrap().shape().to_string();
    assert_eq!(shape("A : 2x3; B : 4x5; kron(A, B)"), "8x15");
    assert_eq!(shape("x : n; y : m; kron(x, y^T)"), "n x m");
    assert_eq!(shape("X : 3x4; vec(X)"), "12x1");
    assert_eq!(shape("x : n; vec(x)"), "n x 1");
    assert_eq!(shape("x : n; vec(x^T)"), "n x 1");
}

/// Every printed form reads back as itself.
#[test]
fn forms_read_back() {
    for case in CASES {
        let program = parse_program(case).unwrap();
        let text = program.expr.to_string();
        assert_eq!(parse_expr(&text).unwrap(), program.expr, "{text}");
        let d = matdiff::derive(&program, &Default::default()).unwrap();
        for g in &d.gradients {
            let text = g.expr.to_string();
            assert_eq!(parse_expr(&text).unwrap().to_string(), text, "{case}: {text}");
        }
    }
}

/// The derived gradient is accepted; one transposed or doubled is not.
#[test]
fn claims() {
    for (src, wrt, claim, want) in [
        ("x : n; y : m; A : n x m; tr(A^T * kron(x, y^T))", "x", "A * y", true),
        ("x : n; y : m; A : n x m; tr(A^T * kron(x, y^T))", "x", "2 * A * y", false),
        ("x : n; y : m; A : n x m; tr(A^T * kron(x, y^T))", "y", "A^T * x", true),
        ("x : n; y : m; A : n x n; tr(A^T * kron(x, y^T) * kron(y, x^T))", "y", "0 * y", false),
        ("X : 2x3; a : 6; a^T * vec(X)", "a", "vec(X)", true),
        ("X : 2x3; a : 6; a^T * vec(X)", "a", "vec(X^T)", false),
        ("A : 2x2; X : 2x2; B : 2x2; tr(B * kron(A, X))", "A", "2 * A", false),
    ] {
        let program = parse_program(src).unwrap();
        let v = verify(&program, &parse_var(wrt).unwrap(), claim, &Default::default());
        let equivalent = v.as_ref().map(|v| v.equivalent()).unwrap_or(false);
        assert_eq!(equivalent, want, "{src}, d/d{wrt} claimed {claim}: {:?}", v.map(|v| v.detail));
    }
}

/// Symbolic products and unsized identities are refused by name, at the operand.
#[test]
fn errors() {
    for (src, says) in [
        ("X : n x n; B : 2x2; kron(X, B)", "kron multiplies sizes, and the size n of `X` is not a number"),
        ("X : n x m; vec(X)", "vec multiplies sizes"),
        ("B : 2x2; kron(I, B)", "the size of `I` is not known here"),
        ("B : 2x2; kron(B)", "`kron` takes 2 arguments, found 1"),
    ] {
        let e = parse_program(src).and_then(|p| matdiff::shape::infer(&p).map(|_| ())).unwrap_err();
        let shown = matdiff::cli::render_error(&e, "<expr>", src);
        assert!(shown.contains(says), "{src}: {shown}");
    }
}

/// The vec form K of a Hessian (vec(H[D]) = K vec(D)) and of a Jacobian
/// (vec(dZ) = K vec(D)) for random D, on random values, for sizes given as
/// numbers and as symbols.
#[test]
fn vec_forms_agree_with_the_map() {
    let cases = [
        ("X : n x m; A : n x n; tr(X^T*A*X)", "X", None, "kron(diag(ones(m)), A + A^T)"),
        ("X : 3x2; A : 3x3; B : 2x2; tr(A*X*B*X^T)", "X", None, "kron(B^T, A) + kron(B, A^T)"),
        ("X : 3x2; sum(exp(X))", "X", None, "diag(vec(exp(X)))"),
        ("Y : m x n; U : m x k; V : k x n; norm(Y - U*V)^2", "U", None, "2 * kron(V * V^T, diag(ones(m)))"),
        ("X : 3x2; Y : 3x2; A : 3x3; tr(X^T*A*Y)", "X", Some("Y"), "kron(diag(ones(2)), A)"),
        ("X : 2x3; B : 3x3; norm(X * B)^2 - 3 * sum(X .* X)", "X", None, ""),
    ];
    let mut state = 7_u64;
    let mut random = |r: usize, c: usize| {
        Matrix::from_fn(r, c, |_, _| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
    };
    // Jacobians (`None` for the second variable, "J"): vec(dZ) = K vec(dX),
    // a matrix direction or a matrix value.
    let jacobians = [
        ("W : 3x4; X : 4x5; W*X", "X", "kron(diag(ones(5)), W)"),
        ("W : 3x4; X : 4x5; W*X", "W", "kron(X^T, diag(ones(3)))"),
        ("x : 3; y : 4; x * y^T", "x", "kron(y, diag(ones(3)))"),
        ("A : 3x3; x : 3; A * x", "A", "kron(x^T, diag(ones(3)))"),
        ("X : 3x2; tanh(X)", "X", "diag(vec(1 - tanh(X) .^ 2))"),
        ("A : 3x3; X : 3x4; B : 4x4; A * X * B - 2 * X .* X", "X", ""),
    ];
    let cases = cases.iter().map(|&(src, v, u, want)| (src, v, u, want, false));
    let cases = cases.chain(jacobians.iter().map(|&(src, v, want)| (src, v, None, want, true)));
    for (src, v, u, want, jacobian) in cases {
        let program = parse_program(src).unwrap();
        let mut wrt = vec![parse_var(v).unwrap()];
        wrt.extend(u.map(|u| parse_var(u).unwrap()));
        let h = if jacobian {
            matdiff::hessian::jacobian(&program, &wrt[0], &Default::default()).unwrap()
        } else {
            matdiff::hessian::hessian(&program, &wrt, &Default::default()).unwrap()
        };
        let k = h.vec_form.clone().unwrap_or_else(|| panic!("{src}: no vec form: {:?}", h.no_vec_form));
        if !want.is_empty() {
            assert_eq!(k.to_string(), want, "{src}");
        }
        let sizes = [("n", 3usize), ("m", 4), ("k", 2)];
        let typing = matdiff::shape::infer(&program).unwrap();
        let size = |d: &matdiff::shape::Dim| match d {
            matdiff::shape::Dim::Const(n) => *n as usize,
            d => sizes.iter().find(|(s, _)| *s == d.to_string()).unwrap().1,
        };
        let mut env =
            Env { sizes: sizes.iter().map(|(s, n)| (s.to_string(), *n)).collect(), ..Env::default() };
        for var in typing.variables() {
            let s = typing.var_shape(var).unwrap();
            env.vars.insert(var.clone(), random(size(&s.rows), size(&s.cols)));
        }
        let ds = &h.direction_shape;
        let dir = random(size(&ds.rows), size(&ds.cols));
        env.vars.insert(h.direction.clone(), dir.clone());
        let map = eval(&h.map, &env, Some((size(&h.map_shape.rows), size(&h.map_shape.cols)))).unwrap();
        let kv = eval(&k, &env, None).unwrap();
        let vec = |m: &Matrix| Matrix::from_column_slice(m.len(), 1, m.as_slice());
        let by_k = &kv * vec(&dir);
        let err = (&by_k - vec(&map)).norm() / (1.0 + vec(&map).norm());
        assert!(err < 1e-10, "{src}: K vec(D) differs from vec(H[D]) by {err}");
        // A K with a factor wrong is told apart.
        let off = (&kv * 2.0 * vec(&dir) - vec(&map)).norm() / (1.0 + vec(&map).norm());
        assert!(off > 1e-3, "{src}: a doubled K passes");
    }
}

/// `verify --order 2` and `--jacobian` take a claim of the vec form's
/// shape as the vec form, and tell a factor in the wrong order, a missing
/// term and a transposed factor from it; where there is no vec form, the
/// claim is refused by name (exit 2), never judged.
#[test]
fn vec_form_claims_are_decided() {
    let run = |args: &[&str]| {
        let mut argv = vec!["matdiff", "verify"];
        argv.extend_from_slice(args);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = matdiff::cli::run(argv, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap() + &String::from_utf8(err).unwrap())
    };
    let quadratic = "X : 3x2; A : 3x3; tr(X^T*A*X)";
    let sandwich = "X : 3x2; A : 3x3; B : 2x2; tr(A*X*B*X^T)";
    let layer = "W : 3x4; X : 4x5; W*X";
    let second = ["--order", "2"];
    let cases: &[(&str, &str, &[&str], &str, i32)] = &[
        (quadratic, "X", &second, "kron(diag(ones(2)), A + A^T)", 0),
        (quadratic, "X", &second, "kron(diag(ones(2)), A) + kron(diag(ones(2)), A^T)", 0),
        (quadratic, "X", &second, "kron(diag(ones(2)), 2 * A)", 1),
        (quadratic, "X", &second, "kron(diag(ones(2)), A)", 1),
        (sandwich, "X", &second, "kron(B^T, A) + kron(B, A^T)", 0),
        (sandwich, "X", &second, "kron(B, A) + kron(B^T, A^T)", 1),
        (sandwich, "X", &second, "kron(A, B^T) + kron(A^T, B)", 1),
        (layer, "X", &["--jacobian"], "kron(diag(ones(5)), W)", 0),
        (layer, "X", &["--jacobian"], "kron(W, diag(ones(5)))", 1),
        (layer, "W", &["--jacobian"], "kron(X^T, diag(ones(3)))", 0),
        (layer, "W", &["--jacobian"], "kron(diag(ones(3)), X^T)", 1),
    ];
    for (program, v, how, claim, want) in cases {
        let mut args = vec![*program, "--wrt", v, "--claim", claim];
        args.extend_from_slice(how);
        let (code, out) = run(&args);
        assert_eq!(code, *want, "{program} --wrt {v}: {claim}:\n{out}");
        assert!(out.contains("vec form"), "{out}");
        assert!(out.contains(if *want == 0 { "equivalent" } else { "not equivalent" }), "{out}");
    }
    // tr(X * X) has a dX^T term: no vec form to compare a 9x9 claim with.
    let (code, out) = run(&[
        "X : 3x3; tr(X * X)",
        "--wrt",
        "X",
        "--order",
        "2",
        "--claim",
        "kron(diag(ones(3)), diag(ones(3)))",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("commutation matrix") && out.contains("give the claim as the map H[dX]"), "{out}");
}

/// A dX^T term has no vec form without the commutation matrix: said, not printed.
#[test]
fn transposed_directions_have_no_vec_form() {
    let program = parse_program("X : 3x3; tr(X * X)").unwrap();
    let h = matdiff::hessian::hessian(&program, &[parse_var("X").unwrap()], &Default::default()).unwrap();
    assert!(h.vec_form.is_none());
    assert!(h.no_vec_form.unwrap().contains("commutation matrix"));
}

/// What users see.
#[test]
fn printed() {
    let mut text = String::new();
    let runs: &[&[&str]] = &[
        &["derive", "X : 2x3; Y : 3x2; C : 6x6; tr(C * kron(X, Y))"],
        &["derive", "x : n; y : m; A : n x m; tr(A^T * kron(x, y^T))"],
        &["derive", "X : 2x3; a : 6; a^T * vec(X)", "--latex"],
        &["latex", "A : 2x2; B : 2x2; C : 3x3; X : 2x3; kron(A + B, C) * vec(X^T)"],
        &["hessian", "X : n x m; A : n x n; tr(X^T*A*X)", "--wrt", "X"],
        &["hessian", "X : 3x2; A : 3x3; B : 2x2; tr(A*X*B*X^T)", "--wrt", "X", "--latex"],
        &["hessian", "X : 3x3; tr(X * X)", "--wrt", "X"],
        &["jacobian", "W : 3x4; X : 4x5; W*X", "--wrt", "W"],
        &["jacobian", "x : n; y : m; x * y^T", "--wrt", "x", "--latex"],
        &["derive", "X : n x n; B : 2x2; sum(kron(X, B))"],
        &["derive", "B : 2x2; sum(kron(I, B))"],
        &["derive", "X : n x m; vec(X)"],
    ];
    for args in runs {
        text.push_str(&common::transcript(args));
    }
    common::snapshots().bind(|| insta::assert_snapshot!("constructs_kron", text));
}
