//! The rewrite rules of the e-graph, and the cost that extracts the
//! textbook form.
//!
//! Pattern rules handle binary structure (transposes, traces, sums,
//! scalars); [`NodeRule`]s work on whole factor lists of n-ary products.
//! A rule whose validity depends on shapes asks the analysis.

use egg::{
    rewrite as rw, Applier, CostFunction, Id, Language, PatternAst, Rewrite, SearchMatches, Searcher, Subst,
    Symbol, Var,
};

use super::egraph::{is_atom, Constant, Exponent, Mat, MatGraph, Shapes};

fn is_scalar(var: &str) -> impl Fn(&mut MatGraph, Id, &Subst) -> bool {
    let var: Var = var.parse().expect("a pattern variable");
    move |egraph, _, subst| egraph[subst[var]].data.shape.as_ref().is_some_and(|s| s.is_scalar())
}

fn same_shape(a: &str, b: &str) -> impl Fn(&mut MatGraph, Id, &Subst) -> bool {
    let (a, b): (Var, Var) = (a.parse().expect("var"), b.parse().expect("var"));
    move |egraph, _, subst| {
        let (x, y) = (&egraph[subst[a]].data.shape, &egraph[subst[b]].data.shape);
        x.is_some() && x == y
    }
}

fn is_vector(var: &str) -> impl Fn(&mut MatGraph, Id, &Subst) -> bool {
    let var: Var = var.parse().expect("a pattern variable");
    move |egraph, _, subst| {
        let one = crate::shape::Dim::Const(1);
        egraph[subst[var]].data.shape.as_ref().is_some_and(|s| s.rows == one || s.cols == one)
    }
}

fn is_column(var: &str) -> impl Fn(&mut MatGraph, Id, &Subst) -> bool {
    let var: Var = var.parse().expect("a pattern variable");
    move |egraph, _, subst| {
        egraph[subst[var]].data.shape.as_ref().is_some_and(|s| s.cols == crate::shape::Dim::Const(1))
    }
}

/// Every rule of the simplifier.
pub fn rules() -> Vec<Rewrite<Mat, Shapes>> {
    let mut rules: Vec<Rewrite<Mat, Shapes>> = vec![
        // Transposes.
        rw!("transpose-transpose"; "(T (T ?a))" => "?a"),
        rw!("transpose-sum"; "(T (+ ?a ?b))" => "(+ (T ?a) (T ?b))"),
        rw!("transpose-neg"; "(T (neg ?a))" => "(neg (T ?a))"),
        rw!("transpose-scale"; "(T (scale ?s ?a))" => "(scale ?s (T ?a))"),
        rw!("transpose-inverse"; "(T (^ ?a k-1))" => "(^ (T ?a) k-1)"),
        rw!("inverse-transpose"; "(^ (T ?a) k-1)" => "(T (^ ?a k-1))"),
        rw!("transpose-identity"; "(T (I ?n))" => "(I ?n)"),
        rw!("transpose-scalar"; "(T ?a)" => "?a" if is_scalar("?a")),
        rw!("transpose-hadamard"; "(T (.* ?a ?b))" => "(.* (T ?a) (T ?b))"),
        // Traces.
        rw!("trace-transpose"; "(tr (T ?a))" => "(tr ?a)"),
        // Not over a broadcast sum: tr(s + M) is n·s + tr(M).
        rw!("trace-sum"; "(tr (+ ?a ?b))" => "(+ (tr ?a) (tr ?b))" if same_shape("?a", "?b")),
        rw!("trace-neg"; "(tr (neg ?a))" => "(neg (tr ?a))"),
        rw!("trace-scale"; "(tr (scale ?s ?a))" => "(scale ?s (tr ?a))"),
        rw!("trace-scalar"; "(tr ?a)" => "?a" if is_scalar("?a")),
        // Sums and scalars.
        rw!("add-commute"; "(+ ?a ?b)" => "(+ ?b ?a)"),
        rw!("add-associate"; "(+ (+ ?a ?b) ?c)" => "(+ ?a (+ ?b ?c))"),
        rw!("add-self"; "(+ ?a ?a)" => "(scale 2 ?a)"),
        rw!("neg-neg"; "(neg (neg ?a))" => "?a"),
        rw!("neg-scale"; "(neg ?a)" => "(scale -1 ?a)"),
        rw!("scale-minus-one"; "(scale -1 ?a)" => "(neg ?a)"),
        rw!("scale-one"; "(scale 1 ?a)" => "?a"),
        rw!("scale-scale"; "(scale ?s (scale ?t ?a))" => "(scale (scale ?s ?t) ?a)"),
        rw!("collect"; "(+ (scale ?s ?a) (scale ?t ?a))" => "(scale (+ ?s ?t) ?a)"),
        rw!("collect-one"; "(+ (scale ?s ?a) ?a)" => "(scale (+ ?s 1) ?a)"),
        rw!("cancel"; "(+ ?a (neg ?a))" => "(scale 0 ?a)"),
        rw!("add-zero"; "(+ ?a (scale 0 ?b))" => "?a" if same_shape("?a", "?b")),
        rw!("scale-add"; "(scale ?s (+ ?a ?b))" => "(+ (scale ?s ?a) (scale ?s ?b))"),
        rw!("factor-scale"; "(+ (scale ?s ?a) (scale ?s ?b))" => "(scale ?s (+ ?a ?b))"),
        rw!("scale-commute"; "(scale ?s ?t)" => "(scale ?t ?s)" if is_scalar("?t")),
        // Entrywise operations.
        rw!("hadamard-commute"; "(.* ?a ?b)" => "(.* ?b ?a)"),
        rw!("max-commute"; "(max ?a ?b)" => "(max ?b ?a)"),
        rw!("min-commute"; "(min ?a ?b)" => "(min ?b ?a)"),
        rw!("max-self"; "(max ?a ?a)" => "?a"),
        rw!("min-self"; "(min ?a ?a)" => "?a"),
        rw!("hadamard-scalar"; "(.* ?s ?a)" => "(scale ?s ?a)" if is_scalar("?s")),
        // Entrywise division by a scalar is division by it (the reciprocal's
        // powers then cancel, `a^2 * (1 ./ a)` = `a`).
        rw!("hadamard-div-scalar"; "(./ ?a ?s)" => "(/ ?a ?s)" if is_scalar("?s")),
        rw!("hadamard-ones"; "(.* (.^ ?x 0) ?a)" => "?a" if same_shape("?x", "?a")),
        // Inverses and powers.
        rw!("inverse-inverse"; "(^ (^ ?a k-1) k-1)" => "?a"),
        rw!("inverse-identity"; "(^ (I ?n) k-1)" => "(I ?n)"),
        rw!("power-transpose"; "(^ (T ?a) ?k)" => "(T (^ ?a ?k))"),
        rw!("transpose-power"; "(T (^ ?a ?k))" => "(^ (T ?a) ?k)"),
        rw!("det-identity"; "(det (I ?n))" => "1"),
        rw!("logdet-identity"; "(logdet (I ?n))" => "0"),
        rw!("det-transpose"; "(det (T ?a))" => "(det ?a)"),
        rw!("logdet-transpose"; "(logdet (T ?a))" => "(logdet ?a)"),
        // Diagonals: a square matrix and its transpose share theirs, and a
        // vector and its transpose make one diagonal matrix.
        rw!("diag-transpose"; "(diag (T ?a))" => "(diag ?a)"),
        rw!("diag-of-transpose"; "(diag ?a)" => "(diag (T ?a))"),
        rw!("transpose-diag"; "(T (diag ?x))" => "(diag ?x)" if is_vector("?x")),
        // tr(diag(x)) = sum(x): diag(x) is square only for a vector x.
        rw!("trace-diag"; "(tr (diag ?x))" => "(sum ?x)"),
        rw!("diag-diag"; "(diag (diag ?x))" => "?x" if is_column("?x")),
        rw!("diag-scale"; "(diag (scale ?s ?a))" => "(scale ?s (diag ?a))"),
        rw!("diag-neg"; "(diag (neg ?a))" => "(neg (diag ?a))"),
        rw!("norm2-is-norm"; "(norm2 ?x)" => "(norm ?x)"),
        // The logistic function, as the derivative of log(1 + exp(a)) leaves it.
        rw!("sigmoid-of-exp"; "(.* (exp ?a) (./ 1 (+ 1 (exp ?a))))" => "(sigmoid ?a)"),
        rw!("sigmoid-of-exp-div"; "(./ (exp ?a) (+ 1 (exp ?a)))" => "(sigmoid ?a)"),
        // A B - A C = A (B - C), B and C of one shape (a scalar C would broadcast).
        rw!("factor-left-neg"; "(+ (* ?a ?b) (neg (* ?a ?c)))" => "(* ?a (+ ?b (neg ?c)))" if same_shape("?b", "?c")),
    ];
    let is_mul = |n: &Mat| matches!(n, Mat::Mul(_));
    let is_add = |n: &Mat| matches!(n, Mat::Add(_));
    rules.extend([
        NodeRule::rewrite("transpose-product", |n| matches!(n, Mat::Trans(_)), transpose_product),
        NodeRule::rewrite("inverse-product", |n| matches!(n, Mat::Pow(_)), inverse_product),
        NodeRule::rewrite("trace-rotate", |n| matches!(n, Mat::Tr(_)), trace_rotations),
        NodeRule::rewrite("trace-identity", |n| matches!(n, Mat::Tr(_)), trace_identity),
        NodeRule::rewrite("product-flatten", is_mul, flatten_product),
        NodeRule::rewrite("product-identity", is_mul, drop_identity),
        NodeRule::rewrite("product-inverse-pair", is_mul, cancel_inverse),
        NodeRule::rewrite("product-power", is_mul, adjacent_power),
        NodeRule::rewrite("product-scalars-out", is_mul, scalars_out),
        NodeRule::rewrite("product-scalar-powers", is_mul, scalar_powers),
        NodeRule::rewrite("scale-divided", |n| matches!(n, Mat::Scale(_)), scale_divided),
        NodeRule::rewrite("divided-scale", |n| matches!(n, Mat::Div(_)), divided_scale),
        NodeRule::rewrite("factor-left", is_add, factor_left),
        NodeRule::rewrite("factor-right", is_add, factor_right),
        NodeRule::rewrite("distribute", is_mul, distribute),
    ]);
    rules
}

/// A rewrite written in Rust: for a node of an e-class, the ids of
/// equivalent expressions it builds (through `egraph.add`).
type NodeFn = fn(&mut MatGraph, Id, &Mat) -> Vec<Id>;

/// The kind of node a [`NodeRule`] looks at.
type NodeKind = fn(&Mat) -> bool;

#[derive(Clone)]
struct NodeRule {
    kind: NodeKind,
    f: NodeFn,
}

impl NodeRule {
    fn rewrite(name: &str, kind: NodeKind, f: NodeFn) -> Rewrite<Mat, Shapes> {
        let rule = NodeRule { kind, f };
        Rewrite::new(name, rule.clone(), rule).expect("a node rule binds no variables")
    }
}

impl Searcher<Mat, Shapes> for NodeRule {
    fn search_eclass_with_limit(
        &self,
        egraph: &MatGraph,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, Mat>> {
        let found = egraph[eclass].nodes.iter().any(self.kind);
        (found && limit > 0).then(|| SearchMatches { eclass, substs: vec![Subst::default()], ast: None })
    }

    fn vars(&self) -> Vec<Var> {
        vec![]
    }
}

impl Applier<Mat, Shapes> for NodeRule {
    fn apply_one(
        &self,
        egraph: &mut MatGraph,
        eclass: Id,
        _: &Subst,
        _: Option<&PatternAst<Mat>>,
        _: Symbol,
    ) -> Vec<Id> {
        let nodes: Vec<Mat> = egraph[eclass].nodes.iter().filter(|n| (self.kind)(n)).cloned().collect();
        let mut changed = vec![];
        for node in &nodes {
            for id in (self.f)(egraph, eclass, node) {
                if egraph.union(eclass, id) {
                    changed.push(eclass);
                }
            }
        }
        changed
    }
}

fn mul(egraph: &mut MatGraph, factors: Vec<Id>) -> Id {
    match factors.len() {
        1 => factors[0],
        _ => egraph.add(Mat::Mul(factors.into_boxed_slice())),
    }
}

fn factors_of(egraph: &MatGraph, id: Id) -> Option<Vec<Id>> {
    // A product that holds its own class (`A = A I` once `A I` merged with
    // `A`) is no factorisation: unfolding it grows the graph without end.
    let root = egraph.find(id);
    egraph[id].nodes.iter().find_map(|n| match n {
        Mat::Mul(fs) if !fs.iter().any(|f| egraph.find(*f) == root) => Some(fs.to_vec()),
        _ => None,
    })
}

fn shape_square(egraph: &MatGraph, id: Id) -> bool {
    egraph[id].data.shape.as_ref().is_some_and(|s| s.rows == s.cols)
}

/// tr(I) = n for an identity of a known size n. (A symbolic n cannot be
/// written as a value; extraction avoids `tr(I)` then, see [`TextbookCost`].)
fn trace_identity(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Tr(x) = node else { return vec![] };
    let size = egraph[*x].nodes.iter().find_map(|n| match n {
        Mat::Ident(s) => egraph[*s].nodes.iter().find_map(|m| match m {
            Mat::Size(size) => size.value(),
            _ => None,
        }),
        _ => None,
    });
    // Only a size a double holds exactly: past 2^53, `n as f64` rounds.
    match size {
        Some(n) if n <= 1 << f64::MANTISSA_DIGITS => {
            vec![egraph.add(Mat::Num(Constant::new(n as f64)))]
        }
        _ => vec![],
    }
}

/// (F1 ⋯ Fn)ᵀ = Fnᵀ ⋯ F1ᵀ.
fn transpose_product(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Trans(x) = node else { return vec![] };
    let Some(fs) = factors_of(egraph, *x) else { return vec![] };
    let ts: Vec<Id> = fs.iter().rev().map(|f| egraph.add(Mat::Trans(*f))).collect();
    vec![mul(egraph, ts)]
}

/// (F1 ⋯ Fn)⁻¹ = Fn⁻¹ ⋯ F1⁻¹ when every factor is square.
fn inverse_product(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Pow([x, k]) = node else { return vec![] };
    if !is_exponent(egraph, *k, -1) {
        return vec![];
    }
    let Some(fs) = factors_of(egraph, *x) else { return vec![] };
    if !fs.iter().all(|f| shape_square(egraph, *f)) {
        return vec![];
    }
    let invs: Vec<Id> = fs.iter().rev().map(|f| egraph.add(Mat::Pow([*f, *k]))).collect();
    vec![mul(egraph, invs)]
}

/// tr(F1 ⋯ Fn) = tr(Fk ⋯ Fn F1 ⋯ F(k−1)): every rotation is defined, since
/// the product is square.
fn trace_rotations(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Tr(x) = node else { return vec![] };
    let Some(fs) = factors_of(egraph, *x) else { return vec![] };
    if fs.len() > 16 {
        return vec![];
    }
    (1..fs.len())
        .map(|k| {
            let rotated: Vec<Id> = fs[k..].iter().chain(&fs[..k]).copied().collect();
            let p = mul(egraph, rotated);
            egraph.add(Mat::Tr(p))
        })
        .collect()
}

/// Products inside products are one product.
fn flatten_product(egraph: &mut MatGraph, eclass: Id, node: &Mat) -> Vec<Id> {
    let Mat::Mul(fs) = node else { return vec![] };
    let mut out = vec![];
    let mut nested = false;
    // A factor equal to I is dropped, not unfolded (`A I B` would become
    // `A W W^-1 B`, and that again, without end).
    // Nor is a factor whose factors hold this product's own class (`B = A^T
    // C A^T` and `C = A^-T B A^-T`): unfolding it would nest B in itself.
    let root = egraph.find(eclass);
    let holds = |g: &MatGraph, inner: &[Id]| inner.iter().any(|x| g.find(*x) == root);
    for f in fs.iter() {
        match factors_of(egraph, *f) {
            Some(inner) if inner.len() > 1 && !is_identity(egraph, f) && !holds(egraph, &inner) => {
                nested = true;
                out.extend(inner);
            }
            _ => out.push(*f),
        }
    }
    if nested && out.len() <= egraph.analysis.longest {
        vec![mul(egraph, out)]
    } else {
        vec![]
    }
}

/// Whether the class is (equal to) an identity.
fn is_identity(egraph: &MatGraph, id: &Id) -> bool {
    egraph[*id].nodes.iter().any(|n| matches!(n, Mat::Ident(_)))
}

/// `A I` = `A`: an identity among other factors goes.
fn drop_identity(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Mul(fs) = node else { return vec![] };
    if !fs.iter().any(|f| is_identity(egraph, f)) {
        return vec![];
    }
    let kept: Vec<Id> = fs.iter().copied().filter(|f| !is_identity(egraph, f)).collect();
    if kept.len() == fs.len() || kept.is_empty() {
        return vec![];
    }
    vec![mul(egraph, kept)]
}

/// Whether the class is the integer exponent `k`.
fn is_exponent(egraph: &MatGraph, id: Id, k: i64) -> bool {
    egraph[id].nodes.contains(&Mat::Exponent(Exponent(k)))
}

fn inverse_of(egraph: &MatGraph, f: Id, g: Id) -> bool {
    egraph[f].nodes.iter().any(
        |n| matches!(n, Mat::Pow([x, k]) if egraph.find(*x) == egraph.find(g) && is_exponent(egraph, *k, -1)),
    )
}

/// A⁻¹ A = A A⁻¹ = I: an adjacent pair goes (the identity stays when nothing
/// else is left, with A's size).
fn cancel_inverse(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Mul(fs) = node else { return vec![] };
    for i in 0..fs.len() - 1 {
        let (f, g) = (fs[i], fs[i + 1]);
        if inverse_of(egraph, f, g) || inverse_of(egraph, g, f) {
            let mut rest = fs.to_vec();
            rest.drain(i..i + 2);
            if rest.is_empty() {
                let size = egraph[f].data.shape.as_ref().map(|s| s.rows.to_string());
                let Some(size) = size else { return vec![] };
                let n = egraph.add(Mat::Size(super::egraph::Size::named(&size)));
                return vec![egraph.add(Mat::Ident(n))];
            }
            return vec![mul(egraph, rest)];
        }
    }
    vec![]
}

/// A A = A^2 for adjacent equal factors, and A^j A^k = A^(j+k) for integer
/// powers of one base (`X^T X^T^-2 = X^T^-1`: a negative power exists only
/// where A is invertible, and then the rule holds for every sign). A sum of
/// 0 is left to [`cancel_inverse`] (for -1 and 1) or kept.
fn adjacent_power(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Mul(fs) = node else { return vec![] };
    for i in 0..fs.len() - 1 {
        for (bf, kf) in powers_of(egraph, fs[i]) {
            for (bg, kg) in powers_of(egraph, fs[i + 1]) {
                let k = kf.saturating_add(kg);
                if egraph.find(bf) != egraph.find(bg) || k == 0 || k == i64::MAX || k == i64::MIN {
                    continue;
                }
                let power = if k == 1 {
                    bf
                } else {
                    let e = egraph.add(Mat::Exponent(Exponent(k)));
                    egraph.add(Mat::Pow([bf, e]))
                };
                let mut rest = fs.to_vec();
                rest.splice(i..i + 2, [power]);
                return vec![mul(egraph, rest)];
            }
        }
    }
    vec![]
}

/// The class as `base^k`: itself to the first, each integer power in it,
/// and for a scalar `s`, `1 / s` as `s^-1` and `s .^ k` as `s^k`.
fn powers_of(egraph: &MatGraph, id: Id) -> Vec<(Id, i64)> {
    let mut out = vec![(id, 1)];
    for n in &egraph[id].nodes {
        if let Mat::HadPow([x, p]) = n {
            let scalar = egraph[*x].data.shape.as_ref().is_some_and(|s| s.is_scalar());
            let k = egraph[*p].nodes.iter().find_map(|m| match m {
                Mat::Num(c) if c.value().fract() == 0.0 && c.value().abs() <= 64.0 => Some(c.value() as i64),
                _ => None,
            });
            if let (true, Some(k)) = (scalar, k) {
                out.push((*x, k));
            }
        }
        if let Mat::Div([one, x]) = n {
            if egraph[*one].nodes.iter().any(|m| *m == Mat::Num(Constant::new(1.0))) {
                out.push((*x, -1));
            }
        }
        if let Mat::Pow([x, k]) = n {
            if let Some(Mat::Exponent(Exponent(k))) =
                egraph[*k].nodes.iter().find(|n| matches!(n, Mat::Exponent(_)))
            {
                out.push((*x, *k));
            }
        }
    }
    out
}

/// In a product, the 1×1 factors commute: two powers of one scalar base
/// merge wherever they stand (`2 (1 / a) a x^T x` is `2 x^T x`), and a power
/// meets a division by one (`a^2 (u / a^2)` is `u`), as [`scale_divided`].
fn scalar_powers(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Mul(fs) = node else { return vec![] };
    let scalar = |g: &MatGraph, q: Id| g[q].data.shape.as_ref().is_some_and(|s| s.is_scalar());
    for i in 0..fs.len() {
        if !scalar(egraph, fs[i]) {
            continue;
        }
        for j in 0..fs.len() {
            if i == j {
                continue;
            }
            let (ps, qs) = (powers_of(egraph, fs[i]), powers_of(egraph, fs[j]));
            // Two powers of one base, both factors scalars.
            if i < j && scalar(egraph, fs[j]) {
                let merged = ps.iter().find_map(|&(b, k)| {
                    qs.iter()
                        .find(|&&(c, _)| egraph.find(b) == egraph.find(c))
                        .map(|&(_, l)| (b, k.checked_add(l)))
                });
                if let Some((b, Some(k))) = merged {
                    let mut rest = fs.to_vec();
                    rest.remove(j);
                    if k == 0 {
                        rest.remove(i);
                    } else {
                        rest[i] = power(egraph, b, k);
                    }
                    return vec![product_or_one(egraph, rest)];
                }
            }
            // A power meets a division by a power of its base: `s^k (A / s^l)`.
            let divisions: Vec<(Id, Id)> = egraph[fs[j]]
                .nodes
                .iter()
                .filter_map(|n| match n {
                    Mat::Div([a, d]) => Some((*a, *d)),
                    _ => None,
                })
                .collect();
            for (a, d) in divisions {
                for (b, l) in powers_of(egraph, d) {
                    let k = ps
                        .iter()
                        .find(|&&(c, k)| k >= l && egraph.find(b) == egraph.find(c))
                        .map(|&(_, k)| k);
                    if let (Some(k), true) = (k, l >= 1) {
                        let mut rest = fs.to_vec();
                        rest[j] = a;
                        if k == l {
                            rest.remove(i);
                        } else {
                            rest[i] = power(egraph, b, k - l);
                        }
                        return vec![product_or_one(egraph, rest)];
                    }
                }
            }
        }
    }
    vec![]
}

/// `b^k`, `b` itself for k = 1.
fn power(egraph: &mut MatGraph, b: Id, k: i64) -> Id {
    if k == 1 {
        return b;
    }
    let e = egraph.add(Mat::Exponent(Exponent(k)));
    egraph.add(Mat::Pow([b, e]))
}

/// The product of `factors`, 1 when none is left.
fn product_or_one(egraph: &mut MatGraph, factors: Vec<Id>) -> Id {
    match factors.is_empty() {
        true => egraph.add(Mat::Num(Constant::new(1.0))),
        false => mul(egraph, factors),
    }
}

/// `s^k (A / s^j) = s^(k-j) A` for a scalar s and k ≥ j ≥ 1 (`3 norm(x)^2 (x /
/// norm(x))` is `3 norm(x) x`), the power maybe scaled by other scalars.
/// Where s is 0 the left side is undefined; the right side is its
/// continuous extension, equal wherever the left side is defined.
fn scale_divided(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Scale([p, d]) = node else { return vec![] };
    let divisions: Vec<(Id, Id)> = egraph[*d]
        .nodes
        .iter()
        .filter_map(|n| match n {
            Mat::Div([a, s]) => Some((*a, *s)),
            _ => None,
        })
        .collect();
    for (a, divisor) in divisions {
        for (s, j) in powers_of(egraph, divisor) {
            if let Some((c, k)) = scaled_power_of(egraph, *p, s).filter(|&(_, k)| j >= 1 && k >= j) {
                return vec![times_power(egraph, c, s, k - j, a)];
            }
        }
    }
    vec![]
}

/// `(c s^k A) / s^j = c s^(k-j) A` and `c s^k / s^j = c s^(k-j)` for k ≥ j ≥ 1,
/// as [`scale_divided`].
fn divided_scale(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Div([n, divisor]) = node else { return vec![] };
    let one = egraph.add(Mat::Num(Constant::new(1.0)));
    let scaled: Vec<(Id, Id)> = egraph[*n]
        .nodes
        .iter()
        .filter_map(|m| match m {
            Mat::Scale([p, a]) => Some((*p, *a)),
            _ => None,
        })
        .collect();
    for (s, j) in powers_of(egraph, *divisor) {
        if j < 1 {
            continue;
        }
        if let Some((c, k)) = scaled_power_of(egraph, *n, s).filter(|&(_, k)| k >= j) {
            return vec![times_power(egraph, c, s, k - j, one)];
        }
        for &(p, a) in &scaled {
            if let Some((c, k)) = scaled_power_of(egraph, p, s).filter(|&(_, k)| k >= j) {
                return vec![times_power(egraph, c, s, k - j, a)];
            }
        }
    }
    vec![]
}

/// The class `p` as `c s^k` with k ≥ 1: `c` the other factors of a scaled
/// power or a product, all scalars (none for `s^k` itself).
fn scaled_power_of(egraph: &MatGraph, p: Id, s: Id) -> Option<(Vec<Id>, i64)> {
    let scalar = |q: Id| egraph[q].data.shape.as_ref().is_some_and(|s| s.is_scalar());
    if !scalar(p) {
        return None;
    }
    let s = egraph.find(s);
    let power = |q: Id| powers_of(egraph, q).into_iter().find(|&(b, k)| k >= 1 && egraph.find(b) == s);
    if let Some((_, k)) = power(p) {
        return Some((vec![], k));
    }
    egraph[p].nodes.iter().find_map(|n| {
        let fs: &[Id] = match n {
            Mat::Scale(pair) => pair,
            Mat::Mul(fs) => fs,
            _ => return None,
        };
        fs.iter().enumerate().find_map(|(i, &f)| {
            let (_, k) = power(f)?;
            let rest: Vec<Id> = fs.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &g)| g).collect();
            rest.iter().all(|&g| scalar(g)).then_some((rest, k))
        })
    })
}

/// `c s^k a` for k ≥ 0, with `s^0 a = a` and `s^1 = s`.
fn times_power(egraph: &mut MatGraph, c: Vec<Id>, s: Id, k: i64, a: Id) -> Id {
    let powered = match k {
        0 => a,
        _ => {
            let factor = if k == 1 {
                s
            } else {
                let e = egraph.add(Mat::Exponent(Exponent(k)));
                egraph.add(Mat::Pow([s, e]))
            };
            egraph.add(Mat::Scale([factor, a]))
        }
    };
    if c.is_empty() {
        return powered;
    }
    let c = mul(egraph, c);
    egraph.add(Mat::Scale([c, powered]))
}

/// A scalar multiple inside a product moves out: A (s B) C = s (A B C).
fn scalars_out(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Mul(fs) = node else { return vec![] };
    for (i, f) in fs.iter().enumerate() {
        let scaled = egraph[*f].nodes.iter().find_map(|n| match n {
            Mat::Scale([s, x]) => Some((*s, *x)),
            _ => None,
        });
        if let Some((s, x)) = scaled {
            let mut inner = fs.to_vec();
            inner[i] = x;
            let p = mul(egraph, inner);
            return vec![egraph.add(Mat::Scale([s, p]))];
        }
    }
    vec![]
}

/// A B + A C = A (B + C).
fn factor_left(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    factor(egraph, node, true)
}

/// B A + C A = (B + C) A.
fn factor_right(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    factor(egraph, node, false)
}

fn same_shapes(egraph: &MatGraph, a: Id, b: Id) -> bool {
    let (x, y) = (&egraph[a].data.shape, &egraph[b].data.shape);
    x.is_some() && x == y
}

fn factor(egraph: &mut MatGraph, node: &Mat, left: bool) -> Vec<Id> {
    let Mat::Add([a, b]) = node else { return vec![] };
    if !same_shapes(egraph, *a, *b) {
        return vec![]; // a scalar broadcast over a matrix is no product term
    }
    let (Some(fa), Some(fb)) = (factors_of(egraph, *a), factors_of(egraph, *b)) else { return vec![] };
    let (ca, cb) = if left { (fa[0], fb[0]) } else { (fa[fa.len() - 1], fb[fb.len() - 1]) };
    if egraph.find(ca) != egraph.find(cb) {
        return vec![];
    }
    let (ra, rb) = if left {
        (fa[1..].to_vec(), fb[1..].to_vec())
    } else {
        (fa[..fa.len() - 1].to_vec(), fb[..fb.len() - 1].to_vec())
    };
    let (ra, rb) = (mul(egraph, ra), mul(egraph, rb));
    let sum = egraph.add(Mat::Add([ra, rb]));
    vec![mul(egraph, if left { vec![ca, sum] } else { vec![sum, ca] })]
}

/// A (B + C) = A B + A C, one sum factor at a time.
fn distribute(egraph: &mut MatGraph, _: Id, node: &Mat) -> Vec<Id> {
    let Mat::Mul(fs) = node else { return vec![] };
    if fs.len() > 8 {
        return vec![];
    }
    for (i, f) in fs.iter().enumerate() {
        let sum = egraph[*f].nodes.iter().find_map(|n| match n {
            Mat::Add([x, y]) if same_shapes(egraph, *x, *y) => Some((*x, *y)),
            _ => None,
        });
        if let Some((x, y)) = sum {
            let mut with_x = fs.to_vec();
            with_x[i] = x;
            let mut with_y = fs.to_vec();
            with_y[i] = y;
            let (px, py) = (mul(egraph, with_x), mul(egraph, with_y));
            return vec![egraph.add(Mat::Add([px, py]))];
        }
    }
    vec![]
}

/// What extraction minimises, in order: transposes of anything but a leaf,
/// identities and zero multiples left over, traces of an identity, then
/// the number of nodes.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct ExtractionCost {
    penalty: u32,
    size: u32,
    atom: bool,
    identity: bool,
}

pub struct TextbookCost<'g> {
    pub egraph: &'g MatGraph,
}

impl CostFunction<Mat> for TextbookCost<'_> {
    type Cost = ExtractionCost;

    fn cost<C>(&mut self, enode: &Mat, mut costs: C) -> ExtractionCost
    where
        C: FnMut(Id) -> ExtractionCost,
    {
        let kids: Vec<ExtractionCost> = enode.children().iter().map(|c| costs(*c)).collect();
        let mut penalty: u32 = kids.iter().map(|c| c.penalty).fold(0, u32::saturating_add);
        let size: u32 = kids.iter().map(|c| c.size).fold(1, u32::saturating_add);
        match enode {
            Mat::Trans(_) if !kids[0].atom => penalty += 1,
            Mat::Mul(_) if kids.iter().any(|k| k.identity) => penalty += 1,
            // Its size cannot be told from the printed formula.
            Mat::Tr(_) if kids[0].identity => penalty += 1,
            Mat::Scale([s, _]) if self.egraph[*s].data.constant.is_some_and(|x| x == 0.0 || x == 1.0) => {
                penalty += 1
            }
            _ => {}
        }
        let atom = is_atom(enode) || matches!(enode, Mat::Trans(_)) && kids[0].atom;
        ExtractionCost { penalty, size, atom, identity: matches!(enode, Mat::Ident(_)) }
    }
}
