//! The numeric plan: the forward value and every gradient compiled into one
//! straight-line program of matrix operations that computes each common
//! product once.
//!
//! Entry point: [`compile`]. Expressions are lowered into one shared graph
//! (`lower`: hash-consing, transposes on the edges, products as chains of
//! factors), the chains are bracketed jointly (`schedule`: two sweeps per
//! family of chains, cut where they are cheapest), and the graph is written
//! out as [`PlanStep`]s in dependency order, each with its multiply-adds
//! ([`Cost`], a polynomial in the symbolic dimensions).

mod cost;
mod emit;
mod ir;
mod looped;
mod lower;
mod schedule;
mod symbolic;
mod text;
mod writer;

use std::collections::{HashMap, HashSet};

pub use cost::Cost;
pub use emit::{jax, jax_loops, numpy, numpy_loops, pytorch, pytorch_loops};
pub use ir::{Op, Operand, Output, Plan, PlanInput, PlanStep, Sweeps, Value};
pub use looped::{compile_loops, Chain, LoopPlan};
pub use lower::MAX_FACTORS;
pub use schedule::{Strategy, DP_LIMIT};
pub use symbolic::{recurrences, Recurrence, Recurrences, SymbolicPlan};

use crate::calculus::Mode;
use crate::derive::Derivation;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Shape, Typer};
use crate::syntax::{Expr, ExprKind, Index, VarName};
use cost::Tally;
use lower::{Atom, Graph, Node, NodeId};
use schedule::{Sizes, Use};
use writer::{identifier, name_outputs, node_madds, Writer};

/// Most factors the `prod` ranges of one plan may expand to, all its
/// targets together (each product [`MAX_FACTORS`] at most): the n
/// gradients of a chain of length n expand to about n² factors.
pub const MAX_PLAN_FACTORS: usize = 2_000_000;

/// Most factors the integer powers of one plan may expand to, all its
/// targets together (each product [`MAX_FACTORS`] at most): the power rule
/// makes many terms of high powers (the gradient of `tr(A^2^39^6^-46)`
/// expands to 4.7·10⁸ factors). A factor of a power costs a few
/// nanoseconds, one of a range a microsecond: hence two budgets.
pub const MAX_PLAN_POWER_FACTORS: usize = 10_000_000;

/// Most terms a printed cost polynomial may have.
pub const MAX_COST_TERMS: usize = 20_000;

/// How to compile.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Sizes of symbolic dimensions (`d0=64`, `B=65536`) and index symbols (`n=8`).
    pub dims: HashMap<String, u64>,
    /// Size assumed, for choosing, for the dimensions `dims` does not give.
    pub default_size: f64,
    /// How the products are ordered.
    pub strategy: Strategy,
    /// Stops the compilation, with an [`ErrorKind::Interrupted`] error, once
    /// interrupted: polled between its phases and its targets, which it reports.
    pub control: crate::Control,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            dims: HashMap::new(),
            default_size: 64.0,
            strategy: Strategy::Auto,
            control: crate::Control::default(),
        }
    }
}

/// One expression to compile.
#[derive(Clone, Debug)]
pub struct PlanTarget {
    /// The variable of the gradient; None for the forward value.
    pub wrt: Option<VarName>,
    /// The expression to compute.
    pub expr: Expr,
    /// Its shape.
    pub shape: Shape,
}

/// Compiles a derivation's forward value and gradients into one plan.
/// Dimensions named in `options.dims` become numbers; index symbols (`n`)
/// named there fix the length of `prod` ranges.
pub fn compile(derivation: &Derivation, options: &PlanOptions) -> Result<Plan> {
    let typing = &derivation.typing;
    // The --dims entries that name index symbols (`n`), not dimensions.
    let mut symbols = HashSet::new();
    index_symbols(&typing.program.expr, &mut symbols);
    for g in &derivation.gradients {
        index_symbols(&g.expr, &mut symbols);
        for d in [&g.shape.rows, &g.shape.cols] {
            if let crate::shape::Dim::Indexed(_, i) = d {
                symbols.extend(i.terms.keys().cloned());
            }
        }
    }
    let indices: Vec<(String, i64)> = options
        .dims
        .iter()
        .filter(|(k, _)| symbols.contains(*k))
        .map(|(k, &v)| (k.clone(), v as i64))
        .collect();
    let bind =
        |e: &Expr| indices.iter().try_fold(e.clone(), |e, (k, v)| e.subst_index(k, &Index::constant(*v)));
    let bind_shape = |s: &Shape| -> Result<Shape> {
        let dim = |d: &crate::shape::Dim| {
            indices.iter().try_fold(d.clone(), |d, (k, v)| d.subst(k, &Index::constant(*v)))
        };
        Ok(Shape::new(dim(&s.rows)?, dim(&s.cols)?))
    };
    let value = bind(&typing.program.expr)?;
    let mut targets = vec![PlanTarget { wrt: None, expr: value, shape: bind_shape(&typing.shape())? }];
    for g in &derivation.gradients {
        options.control.check()?;
        let index = g.wrt.index.as_ref().map(|i| bind_index(i, &indices)).transpose()?;
        let free = index.as_ref().and_then(|i| i.terms.keys().next().cloned());
        let Some(name) = free else {
            let wrt = VarName { name: g.wrt.name.clone(), index };
            targets.push(PlanTarget { wrt: Some(wrt), expr: bind(&g.expr)?, shape: bind_shape(&g.shape)? });
            continue;
        };
        // `W[j]` of a product of known length: one gradient per member.
        // (Checked: bounds and offsets come from the input, anywhere in i64.)
        let range = g.differential.conditions.iter().find(|c| c.at.mentions(&name)).and_then(|c| {
            let off =
                bind_index(&c.at.subst(&name, &Index::constant(0)).ok()?, &indices).ok()?.as_constant()?;
            let lo = bind_index(&c.lo, &indices).ok()?.as_constant()?;
            let hi = bind_index(&c.hi, &indices).ok()?.as_constant()?;
            Some((lo.checked_sub(off)?, hi.checked_sub(off)?))
        });
        let Some((lo, hi)) = range else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("the gradient with respect to `{}` is for a product whose length is not known; a numeric plan needs the length", g.wrt),
            )
            .hint(crate::Hint::GiveSize("n=8".into())));
        };
        for k in product_members(&typing.program.expr, &g.wrt.name, lo, hi)? {
            let value = Index::constant(k);
            let wrt = VarName {
                name: g.wrt.name.clone(),
                index: index.as_ref().map(|i| i.subst(&name, &value)).transpose()?,
            };
            let expr = bind(&g.expr)?.subst_index(&name, &value)?;
            let shape = bind_shape(&Shape::new(
                g.shape.rows.subst(&name, &value)?,
                g.shape.cols.subst(&name, &value)?,
            ))?;
            targets.push(PlanTarget { wrt: Some(wrt), expr, shape });
        }
    }
    let mut typer = typing.typer().clone();
    for (name, value) in &indices {
        typer.bind_index(name, *value)?;
    }
    let typer = &typer;
    let upstream = match &derivation.mode {
        Mode::Layer { upstream } => Some(upstream.clone()),
        Mode::Scalar => None,
    };
    let upstream = upstream.as_ref();
    options.control.check()?;
    let compiled = compile_graph(&targets, typer, upstream, options)?;
    options.control.check()?;
    let mut plan = compiled.write(&typing.program.expr, &targets, options.strategy);
    if options.strategy == Strategy::Auto {
        options.control.check()?;
        plan = lowest_peak(plan, |cut| compiled.write(&typing.program.expr, &targets, Strategy::Cut(cut)));
    }
    // Each target on its own: the same graph, only what the target reaches.
    // (Past MAX_COST_TERMS terms the polynomial is dropped: products are counted.)
    let mut separate = Some(Tally::default());
    for (k, root) in compiled.roots.iter().enumerate() {
        options.control.check()?;
        let (alone, products) = compiled.alone(*root, separate.is_some());
        if k == 0 {
            plan.forward = alone.cost(&compiled.graph.dims);
        }
        if let Some(s) = &mut separate {
            s.merge(&alone);
            if s.len() > MAX_COST_TERMS {
                separate = None;
            }
        }
        plan.separate_products += products;
    }
    plan.separate = separate.map(|s| s.cost(&compiled.graph.dims));
    Ok(plan)
}

/// Most cuts of the same multiply-adds as the chosen one written out to
/// compare their peak memory: a chain whose sizes are all equal ties at
/// every one of its cuts, and is left at the chosen one.
const MAX_TIED_CUTS: usize = 8;

/// Among the cuts of the plan's family (where it has one, and its sizes are
/// numbers) that cost the same multiply-adds as the chosen one, the one
/// whose steps hold the fewest entries at their peak ([`Plan::peak_entries`]);
/// the chosen one where none holds fewer, or more than [`MAX_TIED_CUTS`] tie.
/// `write(e)` writes the plan cut after the family's element `e`.
fn lowest_peak(plan: Plan, write: impl Fn(usize) -> Plan) -> Plan {
    let [family] = &plan.sweeps[..] else { return plan };
    let (Some(mut lowest), Some(total)) = (plan.peak_entries(), plan.total.as_number()) else {
        return plan;
    };
    let chosen = family.prices[family.cut];
    let tied: Vec<usize> = (0..family.prices.len())
        .filter(|&e| e != family.cut && family.prices[e] <= chosen * (1.0 + 1e-12))
        .collect();
    if tied.len() > MAX_TIED_CUTS {
        return plan;
    }
    let mut best = plan;
    for cut in tied {
        let other = write(cut);
        // Priced the same in its family, but the whole plan must be too.
        if other.total.as_number() != Some(total) {
            continue;
        }
        if let Some(peak) = other.peak_entries().filter(|&peak| peak < lowest) {
            lowest = peak;
            best = other;
        }
    }
    best
}

/// The members `lo..=hi` of a product of numeric length, counted before
/// any is made: a product longer than [`MAX_FACTORS`] can be neither
/// planned nor evaluated, and one target or matrix per member of a range
/// of 10¹¹ took every byte there was.
///
/// ```
/// assert_eq!(matdiff::plan::members(1, 3).unwrap().count(), 3);
/// let e = matdiff::plan::members(1, 99_999_999_999).unwrap_err();
/// assert!(e.message.contains("99999999999 members"));
/// ```
pub fn members(lo: i64, hi: i64) -> Result<std::ops::RangeInclusive<i64>> {
    let count = i128::from(hi) - i128::from(lo) + 1;
    if count > MAX_FACTORS as i128 {
        return Err(Error::new(
            ErrorKind::Limit,
            format!("a product of {count} members ({lo}..{hi}) is longer than the limit of {MAX_FACTORS} factors in one product"),
        )
        .note("give its range fewer members")
        .hint(crate::Hint::SmallerLength));
    }
    Ok(lo..=hi)
}

/// [`members`], the error pointing at the first `prod` over the family
/// `name` in `root`.
pub(crate) fn product_members(
    root: &Expr,
    name: &str,
    lo: i64,
    hi: i64,
) -> Result<std::ops::RangeInclusive<i64>> {
    members(lo, hi).map_err(|e| match product_span(root, name) {
        Some(span) => e.label(span, "this product"),
        None => e,
    })
}

/// Where the first `prod` over the family `name` stands in the source.
pub(crate) fn product_span(root: &Expr, name: &str) -> Option<crate::syntax::Span> {
    // Shared subtrees once: a definition can be used many times.
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        if !seen.insert(e as *const Expr) {
            continue;
        }
        if let ExprKind::Prod(p) = &e.kind {
            if p.body.mentions_family(name) {
                return Some(e.span);
            }
        }
        stack.extend(e.children().collect::<Vec<_>>().into_iter().rev());
    }
    None
}

/// The symbolic plan of every gradient with respect to a member `W[j]` of a
/// family whose product has symbolic length: its two recurrences.
pub fn compile_symbolic(derivation: &Derivation) -> Result<SymbolicPlan> {
    let upstream = match &derivation.mode {
        Mode::Layer { upstream } => Some(upstream.name.as_str()),
        Mode::Scalar => None,
    };
    let mut out = vec![];
    for g in &derivation.gradients {
        let Some(index) = &g.wrt.index else { continue };
        let Some(j) = index.terms.keys().next() else { continue };
        let Some(c) = g.differential.conditions.iter().find(|c| c.at == Index::symbol(j)) else { continue };
        out.push(recurrences(&g.expr, &g.wrt, j, &c.lo, &c.hi, derivation.typing.typer(), upstream)?);
    }
    if out.is_empty() {
        return Err(Error::new(ErrorKind::Usage, "no gradient with respect to a member W[j] of a product"));
    }
    Ok(SymbolicPlan { expr: derivation.typing.program.expr.clone(), gradients: out })
}

/// The languages [`code`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// A NumPy function returning the value and the gradients ([`numpy`]).
    Numpy,
    /// A `torch.autograd.Function` and its module ([`pytorch`]).
    Pytorch,
    /// A `jax.custom_vjp` function ([`jax`]).
    Jax,
}

/// The plan of a derivation as code in `language`, its function named
/// `name` (or by default). A product of symbolic length is written as a loop
/// over the list of its members, whether or not `options.dims` gives the
/// length (then checked); one the loop cannot take is unrolled when the
/// length is given. (`plan --emit` of the command line, and the web playground.)
pub fn code(d: &Derivation, options: &PlanOptions, language: Language, name: Option<&str>) -> Result<String> {
    let header = d.typing.program.expr.to_string();
    if symbolic_length(d, &Default::default()) {
        match compile_loops(d, options) {
            Ok(lp) => {
                return match language {
                    Language::Pytorch => pytorch_loops(&lp, &header, name),
                    Language::Numpy => numpy_loops(&lp, &header, name),
                    Language::Jax => jax_loops(&lp, &header, name),
                };
            }
            Err(e) if symbolic_length(d, &options.dims) => return Err(e),
            Err(e) if e.kind != ErrorKind::Unsupported => return Err(e),
            Err(_) => {}
        }
    }
    let plan = compile(d, options)?;
    let upstream = match &d.mode {
        Mode::Layer { upstream } => Some(upstream),
        Mode::Scalar => None,
    };
    match language {
        Language::Pytorch => pytorch(&plan, &header, upstream, name),
        Language::Numpy => numpy(&plan, &header, name),
        Language::Jax => jax(&plan, &header, upstream, name),
    }
}

/// The index symbols an expression's members and ranges use.
fn index_symbols(e: &Expr, out: &mut HashSet<String>) {
    e.for_each(|e| match &e.kind {
        ExprKind::Var(v) => {
            if let Some(i) = &v.index {
                out.extend(i.terms.keys().cloned());
            }
        }
        ExprKind::Prod(prod) => {
            let crate::syntax::Prod { lo, hi, .. } = &**prod;
            out.extend(lo.terms.keys().cloned());
            out.extend(hi.terms.keys().cloned());
        }
        _ => {}
    })
}

/// Whether a `prod` range of the expression has a length that `dims` does
/// not fix (then [`compile`] cannot run and [`compile_symbolic`] answers).
pub fn symbolic_length(derivation: &Derivation, dims: &HashMap<String, u64>) -> bool {
    let values: Vec<(String, i64)> = dims.iter().map(|(k, &v)| (k.clone(), v as i64)).collect();
    // An index out of range is not symbolic: `compile` names it.
    let symbolic = |i: &Index| matches!(bind_index(i, &values), Ok(i) if i.as_constant().is_none());
    derivation.typing.program.expr.any(|e| match &e.kind {
        ExprKind::Prod(prod) => symbolic(&prod.lo) || symbolic(&prod.hi),
        _ => false,
    })
}

fn bind_index(i: &Index, values: &[(String, i64)]) -> Result<Index> {
    values.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v)))
}

/// Compiles expressions whose variables `typer` knows (the first target is
/// the forward value), pricing the forward value alone but not the
/// alternatives: `separate` is left zero.
pub fn compile_targets(
    targets: &[PlanTarget],
    typer: &Typer,
    upstream: Option<&VarName>,
    options: &PlanOptions,
) -> Result<Plan> {
    let Some(value) = targets.first() else {
        return Err(Error::new(ErrorKind::Internal, "a plan needs the forward value as its first target"));
    };
    let compiled = compile_graph(targets, typer, upstream, options)?;
    let mut plan = compiled.write(&value.expr, targets, options.strategy);
    // What a numeric check spends per evaluation of the expression.
    if let Some(root) = compiled.roots.first() {
        plan.forward = compiled.alone(*root, true).0.cost(&compiled.graph.dims);
    }
    Ok(plan)
}

/// The targets lowered into one graph, with the sizes that price it.
struct Compiled {
    graph: Graph,
    roots: Vec<Atom>,
    sizes: Sizes,
}

fn compile_graph(
    targets: &[PlanTarget],
    typer: &Typer,
    upstream: Option<&VarName>,
    options: &PlanOptions,
) -> Result<Compiled> {
    // Counted before any is expanded: the n gradients of a product of
    // length n expand to n² factors together, and the power rule makes
    // many terms of high powers.
    let (ranges, powers) = targets
        .iter()
        .map(|t| lower::expansion(&t.expr))
        .fold((0usize, 0usize), |(r, p), (a, b)| (r.saturating_add(a), p.saturating_add(b)));
    if ranges > MAX_PLAN_FACTORS {
        return Err(Error::new(
            ErrorKind::Limit,
            format!(
                "the plan's {} targets expand their products to {ranges} factors together, more than the limit of {MAX_PLAN_FACTORS}",
                targets.len()
            ),
        )
        .note("a numeric plan writes out the gradient of every member of a product, each as long as the product; a shorter product has fewer")
        .hint(crate::Hint::SmallerLength));
    }
    if powers > MAX_PLAN_POWER_FACTORS {
        return Err(Error::new(
            ErrorKind::Limit,
            format!(
                "the plan's {} targets expand their powers to {powers} factors together, more than the limit of {MAX_PLAN_POWER_FACTORS}",
                targets.len()
            ),
        )
        .note("a numeric plan writes out every power A^k as k factors; fewer gradients have fewer")
        .hint(crate::Hint::FewerTargets));
    }
    let mut graph = Graph::new(options.dims.clone());
    let mut typer = typer.clone();
    let mut roots = vec![];
    for (k, t) in targets.iter().enumerate() {
        let what = || match &t.wrt {
            Some(v) => format!("planning d/d{v} ({} of {})", k + 1, targets.len()),
            None => format!("planning the value (1 of {})", targets.len()),
        };
        options.control.step(what, k, targets.len())?;
        roots.push(graph.lower(&t.expr, &mut typer, Some(&t.shape))?);
    }
    // Seeds, best first: the upstream gradient, then computed values, then
    // inputs not being differentiated.
    let wrt: HashSet<&VarName> = targets.iter().filter_map(|t| t.wrt.as_ref()).collect();
    let mut seeds: Vec<(u8, NodeId)> = (0..graph.nodes.len() as NodeId)
        .filter_map(|n| match &graph.nodes[n as usize] {
            Node::Input(v) if upstream == Some(v) => Some((0, n)),
            Node::Input(v) if wrt.contains(v) => None,
            Node::Input(_) => Some((2, n)),
            _ => Some((1, n)),
        })
        .collect();
    seeds.sort();
    let seeds = seeds.into_iter().map(|(_, n)| n).collect();
    let known = options.dims.iter().map(|(k, &v)| (k.clone(), v as f64)).collect();
    let sizes = Sizes::new(&graph, &known, options.default_size, seeds);
    Ok(Compiled { graph, roots, sizes })
}

fn chains_of(graph: &Graph, order: &[NodeId]) -> Vec<NodeId> {
    order.iter().copied().filter(|&n| matches!(graph.nodes[n as usize], Node::Chain(_))).collect()
}

impl Compiled {
    /// The plan of every target together.
    fn write(&self, expr: &Expr, targets: &[PlanTarget], strategy: Strategy) -> Plan {
        let graph = &self.graph;
        let order = topological(graph, &self.roots);
        let schedule =
            schedule::schedule(graph, &chains_of(graph, &order), &self.sizes, strategy, Use::Write);
        let mut writer = Writer::new(graph, &schedule);
        for &n in &order {
            writer.node(n);
        }
        let mut outputs = vec![];
        for (t, root) in targets.iter().zip(&self.roots) {
            let shape = graph.fix_shape(&t.shape);
            outputs.push(Output { wrt: t.wrt.clone(), operand: writer.atom(*root), shape, named: false });
        }
        let sweeps = schedule
            .families
            .iter()
            .map(|f| Sweeps {
                cycle: f.cycle.iter().map(|&a| writer.atom(a)).collect(),
                cut: f.cut,
                prices: f.prices.clone(),
            })
            .collect();
        let mut plan = Plan {
            expr: expr.clone(),
            inputs: writer.inputs,
            steps: writer.steps,
            outputs,
            total: Cost::zero(),
            forward: Cost::zero(),
            separate: None,
            separate_products: 0,
            sweeps,
        };
        plan.total = plan.steps.iter().map(|s| s.madds.clone()).sum();
        name_outputs(&mut plan);
        plan
    }

    /// The number of matrix products of one target computed on its own,
    /// and (when `tally`) its multiply-adds.
    fn alone(&self, root: Atom, tally: bool) -> (Tally, u128) {
        let graph = &self.graph;
        let order = topological(graph, &[root]);
        let usage = if tally { Use::Tally } else { Use::Price };
        let schedule =
            schedule::schedule(graph, &chains_of(graph, &order), &self.sizes, Strategy::Auto, usage);
        let products = schedule.products();
        if !tally {
            return (Tally::default(), products);
        }
        let mut tally = schedule.tally();
        for &n in &order {
            if let Some(dims) = node_madds(graph, n) {
                tally.add(dims);
            }
        }
        (tally, products)
    }
}

/// Nodes reachable from the roots, children first (iteratively: sweeps nest
/// as deep as a chain is long).
fn topological(graph: &Graph, roots: &[Atom]) -> Vec<NodeId> {
    let mut seen = vec![false; graph.nodes.len()];
    let mut order = vec![];
    let mut stack: Vec<(NodeId, bool)> = roots.iter().rev().map(|a| (a.node, false)).collect();
    while let Some((n, expanded)) = stack.pop() {
        if expanded {
            order.push(n);
            continue;
        }
        if seen[n as usize] {
            continue;
        }
        seen[n as usize] = true;
        stack.push((n, true));
        for a in children(&graph.nodes[n as usize]).into_iter().rev() {
            if !seen[a.node as usize] {
                stack.push((a.node, false));
            }
        }
    }
    order
}

fn children(node: &Node) -> Vec<Atom> {
    match node {
        Node::Input(_) | Node::Num(_) | Node::Identity(_) | Node::Ones(..) => vec![],
        Node::Chain(w) => w.clone(),
        Node::Scale(a, b)
        | Node::Add(a, b)
        | Node::Sub(a, b)
        | Node::Hadamard(a, b)
        | Node::HadamardDiv(a, b)
        | Node::Max(a, b)
        | Node::Min(a, b)
        | Node::Kron(a, b)
        | Node::Power(a, b)
        | Node::Div(a, b)
        | Node::ScaleRows(a, b)
        | Node::ScaleCols(a, b) => vec![*a, *b],
        Node::Neg(a) | Node::HadamardPower(a, _) | Node::Call(_, a) | Node::Inverse(a) => vec![*a],
    }
}
