//! Random instances of a derivation: sizes for the symbolic dimensions,
//! values for the index symbols, and matrices for every variable, drawn
//! from the domain each needs, on which the expression and its gradients
//! are finite and well conditioned.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{
    domain_of, domains, eval, gradient_value, norm, size_of, CheckOptions, Deadline, Domain, Env, Matrix,
    Sign, Structure,
};
use crate::calculus::Mode;
use crate::derive::Derivation;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{Plan, PlanOptions, PlanTarget};
use crate::shape::{Dim, Shape, Typer};
use crate::syntax::{BinOp, Expr, ExprKind, Func, Index, VarName};

/// A random instance of a derivation: sizes for the symbolic dimensions and
/// values for every variable (and the upstream gradient), drawn from each
/// variable's domain, on which the expression and its gradients are finite.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The size drawn for each symbolic dimension.
    pub sizes: BTreeMap<String, usize>,
    /// Values of the index symbols (`n`, `j`).
    pub indices: BTreeMap<String, i64>,
    /// The values of the variables.
    pub env: Env,
    /// Variables drawn from a restricted domain (the others: both signs, uniform in [-s, s] for the instance's scale s).
    pub domains: BTreeMap<VarName, Domain>,
    /// Draws discarded because something was not finite on them.
    pub redraws: usize,
    /// The scale the values were drawn at (see [`scale_of`]).
    pub scale: f64,
}

impl Instance {
    /// Draws an instance (seeded). Index symbols (`n` of a product's range,
    /// `j` of a family member) get values first, within the gradients' side
    /// conditions; then every dimension a size, 2..=5. `options.dims` fixes
    /// any of them by name (`n=4`, `d0=3`, `d[2]=5`).
    pub fn draw(derivation: &Derivation, options: &CheckOptions) -> Result<Instance> {
        Instance::draw_within(
            derivation,
            options,
            0,
            &Deadline::after(options.time_limit).polling(&options.control),
        )
    }

    /// [`Instance::draw`] under a deadline, counting `skipped` draws as done
    /// already: the same sizes, and the values of the next draws.
    pub fn draw_within(
        derivation: &Derivation,
        options: &CheckOptions,
        skipped: usize,
        deadline: &Deadline,
    ) -> Result<Instance> {
        let typing = &derivation.typing;
        let mut rng = StdRng::seed_from_u64(options.seed);
        let indices = draw_indices(derivation, options, &mut rng)?;
        // Checked: bounds and offsets come from the input, anywhere in i64.
        let bind =
            |i: &Index| indices.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v)));
        let concrete = |v: &VarName| -> Result<VarName> {
            Ok(VarName { name: v.name.clone(), index: v.index.as_ref().map(bind).transpose()? })
        };

        // The variables, the members of families that products use, and G.
        let mut typer = typing.typer().clone();
        let mut vars: Vec<(VarName, Shape)> = vec![];
        for v in typing.variables() {
            vars.push((concrete(v)?, typing.var_shape(v).expect("typed")));
        }
        for (family, lo, hi, body) in product_ranges(&typing.program.expr) {
            let (lo, hi) = (bind(&lo)?.as_constant(), bind(&hi)?.as_constant());
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Err(Error::new(ErrorKind::Usage, "a product's range has no value")
                    .note("give the symbols of its range values (`n=4`)"));
            };
            for k in crate::plan::product_members(&typing.program.expr, &family, lo, hi)? {
                let member = VarName { name: family.clone(), index: Some(Index::constant(k)) };
                let s = typer.var(&member)?;
                let mut shape = typer.resolve(s);
                // An undeclared family: the product typed its factor `W[i]`
                // with one shape (square, as factor i chains into i+1),
                // which every member has.
                if open(&shape) {
                    shape = typing
                        .var_shape(&body)
                        .filter(|s| !open(s))
                        .ok_or_else(|| undetermined(&typing.program.expr, &family, &body))?;
                    typer.insert_var(member.clone(), &shape);
                }
                vars.push((member, shape));
            }
        }
        if let Mode::Layer { upstream } = &derivation.mode {
            vars.push((upstream.clone(), typing.var_shape(upstream).expect("typed")));
        }
        let mut sizes = BTreeMap::new();
        let mut size = |d: &Dim, rng: &mut StdRng| -> Result<usize> {
            if let Dim::Const(_) | Dim::Unknown(_) = d {
                return size_of(d, &BTreeMap::new());
            }
            let key = dim_key(d, &bind)?;
            let n = *sizes.entry(key.clone()).or_insert_with(|| {
                options.dims.get(&key).copied().unwrap_or_else(|| rng.random_range(2..=5))
            });
            Ok(n)
        };
        let mut shapes = vec![];
        for (v, shape) in &vars {
            let (r, c) = (size(&shape.rows, &mut rng)?, size(&shape.cols, &mut rng)?);
            if r.saturating_mul(c) > 1_000_000 {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!("a {r}x{c} matrix is too large to check numerically"),
                ));
            }
            shapes.push((v.clone(), r, c));
        }
        for name in options.dims.keys() {
            if !sizes.contains_key(name) && !indices.iter().any(|(k, _)| k == name) {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("a size is given for `{name}`, which is not a dimension of the expression"),
                )
                .note(format!(
                    "its dimensions are: {}",
                    sizes.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        // What evaluating costs at these sizes, before anything is evaluated.
        let named: Vec<(String, usize)> = sizes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let plan = instance_plan(derivation, &shapes, &indices, &named)?;
        if let Some(madds) = plan.total.as_number().filter(|m| *m > MAX_EVALUATION_MADDS) {
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "one evaluation of the expression and its gradients at these sizes takes {madds} multiply-adds, more than the {MAX_EVALUATION_MADDS} a numeric check may spend on one"
                ),
            )
            .note("check at smaller sizes: declare smaller shapes, or give symbolic dimensions small sizes"));
        }
        let domains = domains(typing, &options.domains)?;
        let mut redraws = skipped;
        // The values of the draws skipped.
        for _ in 0..skipped {
            for (v, r, c) in &shapes {
                domain_of(&domains, v).draw(*r, *c, &mut rng);
            }
        }
        loop {
            deadline.check()?;
            let scale = scale_of(options.instance, redraws - skipped);
            // The terms of a sum under an inverse are drawn with dominant
            // diagonals of their sign in the sum, so that the sum is
            // invertible; on every other instance they are all negated, so
            // that `(S + T)^-1` takes both signs. (A sum with a constant,
            // `I + S`, may be singular so: its redraw is not negated.)
            let negate_dominant = options.instance % 2 == 1 && (redraws - skipped).is_multiple_of(2);
            let mut env = Env { indices: indices.clone(), sizes: named.clone(), ..Env::default() };
            for (v, r, c) in &shapes {
                let d = domain_of(&domains, v);
                let mut m = d.draw(*r, *c, &mut rng);
                pattern_sign(&mut m, d, v, options);
                let dominant =
                    matches!(d.structure, Structure::DominantPositive | Structure::DominantNegative);
                if negate_dominant && dominant && matches!(d.sign, Sign::Any | Sign::NonZero) {
                    m.neg_mut();
                }
                // One-hot columns are labels, not magnitudes: never scaled.
                let m = if d.structure == Structure::OneHot { m } else { m * scale };
                env.vars.insert(v.clone(), m);
            }
            let trouble = trouble_with(derivation, &env, scale, deadline)?;
            if trouble.is_none() {
                let domains = domains.into_iter().filter(|(_, d)| *d != Domain::ANY).collect();
                let indices = indices.into_iter().collect();
                return Ok(Instance { sizes, env, domains, redraws, indices, scale });
            }
            redraws += 1;
            if redraws >= skipped + MAX_DRAWS {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "found no well-conditioned instance in {MAX_DRAWS} draws (the last: {})",
                        trouble.unwrap_or_default()
                    ),
                )
                .note("declare the domain the expression needs (`X : 3x3 positive`, `S : n x n spd`)"));
            }
        }
    }
}

/// Whether a shape has a dimension inference left open.
fn open(s: &Shape) -> bool {
    matches!(s.rows, Dim::Unknown(_)) || matches!(s.cols, Dim::Unknown(_))
}

/// The error for a family whose members' shapes nothing determines,
/// pointing at its product and naming the declaration that would.
fn undetermined(root: &Expr, family: &str, body: &VarName) -> Error {
    let error = Error::new(
        ErrorKind::Usage,
        format!("the shape of the members of `{family}` is undetermined: nothing in the program gives the size of `{body}`"),
    )
    .note(format!("declare the family: `{family}[i] : d[i-1] x d[i]` (a chain of any widths) or `{family}[i] : d x d`"));
    match crate::plan::product_span(root, family) {
        Some(span) => error.label(span, "this product"),
        None => error,
    }
}

/// Instances tried before giving up on finding one where the expression is
/// defined and well conditioned.
pub const MAX_DRAWS: usize = 20;

/// Most multiply-adds one evaluation of the expression and its gradients
/// may take on an instance: past it (a chain of sixty 1000x1000 matrices),
/// drawing the instance alone would take minutes, and is refused first.
pub const MAX_EVALUATION_MADDS: u128 = 2_000_000_000;

/// The scales of the instances of one check or verdict, in turn: values
/// within ±1 keep `1 - y` positive and `cos` of them positive, so a claim
/// such as `|1 - y|` or `|cos(X)|` would pass there.
/// Past the first four they move outward, for values that only decide
/// at some scale (a huge loss that rounds off a small gradient).
pub const SCALES: [f64; 10] = [1.0, 0.5, 2.0, 4.0, 0.25, 0.125, 8.0, 0.0625, 16.0, 0.03125];

/// The scale of the `redraw`-th draw of the `instance`-th instance: the
/// instance's own scale ([`SCALES`]), then on redraws (the values were not
/// finite or ill-conditioned there) alternately smaller and larger ones,
/// ×1/2, ×2, ×1/4, ×4, …: `sigmoid(-norm(P) * norm(M)^2)` underflows at
/// scale 1, `log(1 - sigmoid(X*w))` at scale 4.
pub fn scale_of(instance: usize, redraw: usize) -> f64 {
    let step = (redraw as i32 + 1) / 2 * if redraw % 2 == 1 { -1 } else { 1 };
    SCALES[instance % SCALES.len()] * 2f64.powi(step.clamp(-1000, 1000))
}

/// Largest condition number accepted under an inverse, `det` or `logdet`.
pub const MAX_CONDITION: f64 = 1e8;
/// Smallest magnitude accepted under `log`, `sqrt`, a divisor or a
/// fractional power, absolutely and relative to the argument's size.
const MIN_MAGNITUDE: f64 = 1e-6;
const MIN_RELATIVE_MAGNITUDE: f64 = 1e-3;
/// Smallest distance of an argument from a kink (relu, abs, sign, step at
/// 0; max and min at a tie), relative to the argument's size or the
/// instance's scale: the shorter steps of finite differences stay on one side.
const KINK_MARGIN: f64 = 1e-2;

/// The plan of a derivation at concrete sizes: index symbols bound, every
/// variable (`shapes`: name, rows, columns) of its size, every named
/// dimension (`sizes`) of its number.
pub fn instance_plan(
    derivation: &Derivation,
    shapes: &[(VarName, usize, usize)],
    indices: &[(String, i64)],
    sizes: &[(String, usize)],
) -> Result<Plan> {
    let bind =
        |e: &Expr| indices.iter().try_fold(e.clone(), |e, (k, v)| e.subst_index(k, &Index::constant(*v)));
    let concrete = |r: usize, c: usize| Shape::new(Dim::Const(r as u64), Dim::Const(c as u64));
    let mut typer = Typer::new();
    for (v, r, c) in shapes {
        typer.insert_var(v.clone(), &concrete(*r, *c));
    }
    for (name, n) in sizes {
        typer.size_open_name(name, *n as u64);
    }
    // The value has the upstream gradient's shape, or is a scalar.
    let (r, c) =
        match &derivation.mode {
            Mode::Layer { upstream } => shapes
                .iter()
                .find(|(v, _, _)| v == upstream)
                .map(|(_, r, c)| (*r, *c))
                .ok_or_else(|| Error::new(ErrorKind::Internal, format!("no size for `{upstream}`")))?,
            Mode::Scalar => (1, 1),
        };
    let value = bind(&derivation.typing.program.expr)?;
    let mut targets = vec![PlanTarget { wrt: None, expr: value, shape: concrete(r, c) }];
    for g in &derivation.gradients {
        let wrt = VarName {
            name: g.wrt.name.clone(),
            index: g
                .wrt
                .index
                .as_ref()
                .map(|i| indices.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v))))
                .transpose()?,
        };
        let &(_, r, c) = shapes
            .iter()
            .find(|(v, _, _)| *v == wrt)
            .ok_or_else(|| Error::new(ErrorKind::Internal, format!("no size for `{wrt}`")))?;
        targets.push(PlanTarget { wrt: Some(wrt), expr: bind(&g.expr)?, shape: concrete(r, c) });
    }
    let upstream = match &derivation.mode {
        Mode::Layer { upstream } => Some(upstream),
        Mode::Scalar => None,
    };
    crate::plan::compile_targets(&targets, &typer, upstream, &PlanOptions::default())
}

/// Gives a scalar variable, or the determinant of an invertible one, the
/// sign its pattern says for this instance: each variable has a pattern of
/// three signs with both in it (from the seed and its name), so three
/// consecutive instances see both signs of each, where random signs would
/// miss one a quarter of the time (`det(S)` against `|det(S)|`).
fn pattern_sign(m: &mut Matrix, d: Domain, v: &VarName, options: &CheckOptions) {
    use super::{Sign, Structure};
    let free_sign = matches!(d.sign, Sign::Any | Sign::NonZero);
    let scalar = m.len() == 1 && d.structure == Structure::General && free_sign;
    let invertible = m.is_square() && m.nrows() > 0 && d.structure == Structure::Invertible && free_sign;
    if !scalar && !invertible {
        return;
    }
    // FNV-1a of the seed and the name: a pattern among 001..110.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in options.seed.to_le_bytes().iter().chain(v.to_string().as_bytes()) {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let pattern = 1 + h % 6;
    let negative = pattern >> (options.instance % 3) & 1 == 1;
    let value = if scalar { m[(0, 0)] } else { m.determinant() };
    if (value < 0.0) != negative {
        m.row_mut(0).neg_mut();
    }
}

/// The name of a symbolic dimension under values of the index symbols
/// (`d[j+1]` with j = 2 is `d[3]`).
fn dim_key(d: &Dim, bind: &dyn Fn(&Index) -> Result<Index>) -> Result<String> {
    Ok(match d {
        Dim::Indexed(name, i) => format!("{name}[{}]", bind(i)?),
        d => d.to_string(),
    })
}

/// Why an instance is a poor one: something not finite, or a poorly
/// conditioned argument. `None` when fine.
fn trouble_with(
    derivation: &Derivation,
    env: &Env,
    scale: f64,
    deadline: &Deadline,
) -> Result<Option<String>> {
    let finite = |m: &Matrix| m.iter().all(|x| x.is_finite());
    match eval(&derivation.typing.program.expr, env, None) {
        Ok(m) if finite(&m) => {}
        _ => return Ok(Some("the expression is not finite".to_string())),
    }
    for g in &derivation.gradients {
        deadline.check()?;
        match gradient_value(g, env) {
            Ok(m) if finite(&m) => {}
            Ok(_) => return Ok(Some(format!("d/d{} is not finite", g.wrt))),
            Err(_) => return Ok(Some(format!("d/d{} cannot be evaluated", g.wrt))),
        }
    }
    Ok(trouble(&derivation.typing.program.expr, env, scale))
}

/// Why an instance is a poor place for finite differences: a matrix that is
/// inverted while ill-conditioned, an entry near zero where the expression
/// divides by it or takes its log, near a pole of tan or the edge of the
/// domain of arcsin, arccos, log1p, or near a kink (relu, abs, sign, step
/// at 0, max and min where the two sides tie), where finite differences
/// straddle it. `None` when it is fine.
fn trouble(e: &Expr, env: &Env, scale: f64) -> Option<String> {
    let value = |x: &Expr| eval(x, env, None).ok();
    let ill_conditioned = |x: &Expr, what: &str| {
        let m = value(x).filter(|m| m.is_square() && m.nrows() > 0)?;
        let s = m.singular_values();
        let cond = s.max() / s.min();
        let fine = cond.is_finite() && cond <= MAX_CONDITION;
        (!fine).then(|| format!("`{x}` has condition number {cond:.1e}, under {what}"))
    };
    let near_zero = |x: &Expr, what: &str| {
        let m = value(x)?;
        let typical = norm(&m) / (m.len().max(1) as f64).sqrt();
        let smallest = m.iter().fold(f64::INFINITY, |a, v| a.min(v.abs()));
        (smallest < MIN_MAGNITUDE.max(MIN_RELATIVE_MAGNITUDE * typical))
            .then(|| format!("an entry of `{x}` is {smallest:.1e}, under {what}"))
    };
    // An argument keeps at least KINK_MARGIN of its typical size, or of the
    // instance's scale (a scalar argument has its own size), from a kink.
    let kink = |x: &Expr, what: &str| {
        let m = value(x)?;
        let typical = (norm(&m) / (m.len().max(1) as f64).sqrt()).max(scale);
        // An entry exactly 0 is where the argument is constant (relu(relu(a) -
        // relu(b)) for negative a and b): a draw at a kink has probability 0.
        let smallest = m.iter().filter(|v| **v != 0.0).fold(f64::INFINITY, |a, v| a.min(v.abs()));
        (smallest < KINK_MARGIN * typical)
            .then(|| format!("an entry of `{x}` is {smallest:.1e}, near the kink of {what}"))
    };
    let one = || Rc::new(Expr::num(1.0));
    // The nodes in preorder, by a worklist; `prod` bodies are not entered.
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        let here = match &e.kind {
            ExprKind::Power(x, k) if *k < 0 => ill_conditioned(x, "an inverse"),
            ExprKind::Call(Func::Det | Func::Logdet, x) => ill_conditioned(x, "det"),
            ExprKind::Call(Func::Log, x) => near_zero(x, "log"),
            ExprKind::Call(Func::Sqrt, x) => near_zero(x, "sqrt"),
            // The kink of norm1 at 0.
            ExprKind::Call(Func::Norm1, x) => near_zero(x, "norm1"),
            ExprKind::Binary { op: BinOp::HadamardDiv | BinOp::Div, rhs, .. } => near_zero(rhs, "a division"),
            ExprKind::HadamardPower(x, p) if p.fract() != 0.0 || *p < 0.0 => {
                near_zero(x, "a fractional power")
            }
            ExprKind::Binary { op: BinOp::Power, lhs, .. } => {
                near_zero(lhs, "a power by a scalar expression")
            }
            ExprKind::Call(f @ (Func::Relu | Func::Abs | Func::Sign | Func::Step), x) => kink(x, f.name()),
            ExprKind::Binary { op: op @ (BinOp::Max | BinOp::Min), lhs, rhs, .. } => {
                kink(&Expr::minus(lhs.clone(), rhs.clone()), op.symbol())
            }
            ExprKind::Call(Func::Tan, x) => near_zero(&Expr::call(Func::Cos, x.clone()), "tan"),
            ExprKind::Call(f @ (Func::Arcsin | Func::Arccos), x) => {
                let square = Expr::synthetic(ExprKind::HadamardPower(x.clone(), 2.0));
                near_zero(&Expr::minus(one(), square), f.name())
            }
            ExprKind::Call(Func::Log1p, x) => near_zero(&Expr::plus(one(), x.clone()), "log1p"),
            _ => None,
        };
        if here.is_some() {
            return here;
        }
        if !matches!(e.kind, ExprKind::Prod(_)) {
            let at = stack.len();
            stack.extend(e.children());
            stack[at..].reverse();
        }
    }
    None
}

/// Values for the free index symbols: those of product ranges and of
/// declared dimensions first (1..=5), then the gradients' own indices,
/// within their side conditions.
fn draw_indices(d: &Derivation, options: &CheckOptions, rng: &mut StdRng) -> Result<Vec<(String, i64)>> {
    let mut outer = BTreeSet::new();
    for (_, lo, hi, _) in product_ranges(&d.typing.program.expr) {
        outer.extend(lo.terms.keys().cloned());
        outer.extend(hi.terms.keys().cloned());
    }
    for v in d.typing.variables() {
        let s = d.typing.var_shape(v).expect("typed");
        for dim in [s.rows, s.cols] {
            if let Dim::Indexed(_, i) = dim {
                outer.extend(i.terms.keys().cloned());
            }
        }
    }
    let mut values: Vec<(String, i64)> = vec![];
    for name in outer {
        // A constant member's side condition bounds the range (`W[2]` of
        // `prod(W[i], i=1..n)` needs 2 <= n).
        let (mut from, mut to) = (1i64, 5i64);
        for c in d.gradients.iter().flat_map(|g| &g.differential.conditions) {
            let Some(at) = c.at.as_constant() else { continue };
            let offset = |bound: &Index| bound.minus(&Index::symbol(&name)).ok()?.as_constant();
            if let Some(k) = offset(&c.hi).and_then(|k| at.checked_sub(k)) {
                from = from.max(k);
                to = to.max(from);
            }
            if let Some(k) = offset(&c.lo).and_then(|k| at.checked_sub(k)) {
                to = to.min(k);
            }
        }
        let v = match options.dims.get(&name) {
            Some(&n) => n as i64,
            None if from <= to => rng.random_range(from..=to),
            None => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("no value of `{name}` satisfies the side conditions of the gradients"),
                ))
            }
        };
        values.push((name, v));
    }
    let bind = |i: &Index, values: &[(String, i64)]| {
        values.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v)))
    };
    for g in &d.gradients {
        let Some(index) = &g.wrt.index else { continue };
        for name in index.terms.keys() {
            if values.iter().any(|(k, _)| k == name) {
                continue;
            }
            // The condition lo <= at <= hi, with at = name + c.
            // (Checked: bounds and offsets come from the input, anywhere in i64.)
            let range = g.differential.conditions.iter().find(|c| c.at.mentions(name)).and_then(|c| {
                let c0 = c.at.subst(name, &Index::constant(0)).ok()?;
                let (lo, hi, off) = (bind(&c.lo, &values), bind(&c.hi, &values), bind(&c0, &values));
                let (lo, hi, off) =
                    (lo.ok()?.as_constant()?, hi.ok()?.as_constant()?, off.ok()?.as_constant()?);
                Some((lo.checked_sub(off)?, hi.checked_sub(off)?))
            });
            let v = match (options.dims.get(name), range) {
                (Some(&n), _) => n as i64,
                (None, Some((lo, hi))) if lo <= hi => rng.random_range(lo..=hi),
                (None, Some(_)) => {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        format!("no value of `{name}` satisfies its side condition"),
                    ));
                }
                (None, None) => rng.random_range(1..=5),
            };
            values.push((name.clone(), v));
        }
    }
    Ok(values)
}

/// Every `prod(F, i=lo..hi)` as (a family its body uses, the first and the
/// last member's index, the body's member): the range of the members, not of
/// `i`, so that `prod(W[i+1], i=0..n-1)` has the members W[1]..W[n].
pub(super) fn product_ranges(e: &Expr) -> Vec<(String, Index, Index, VarName)> {
    let mut out = vec![];
    e.for_each(|e| {
        if let ExprKind::Prod(prod) = &e.kind {
            let crate::syntax::Prod { body, var, lo, hi } = &**prod;
            let mut members = vec![];
            collect_families(body, var, &mut members);
            for member in members {
                let index = member.index.clone().expect("a member is indexed");
                let (Ok(first), Ok(last)) = (index.subst(var, lo), index.subst(var, hi)) else { continue };
                // W[n-i] counts down: its first member is that of i = hi.
                let down = index.terms.get(var).is_some_and(|c| *c < 0);
                let (first, last) = if down { (last, first) } else { (first, last) };
                out.push((member.name.clone(), first, last, member));
            }
        }
    });
    out
}

fn collect_families(e: &Expr, var: &str, out: &mut Vec<VarName>) {
    e.for_each(|e| {
        if let ExprKind::Var(v) = &e.kind {
            if v.index.as_ref().is_some_and(|i| i.mentions(var)) && !out.iter().any(|m| m.name == v.name) {
                out.push(VarName::clone(v));
            }
        }
    })
}
