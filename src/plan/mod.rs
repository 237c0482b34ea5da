//! The numeric plan: the forward value and every gradient compiled into one
//! straight-line program of matrix operations that computes each common
//! product once.
//!
//! Entry point: [`compile`]. Expressions are lowered into one shared graph
//! ([`lower`]: hash-consing, transposes on the edges, products as chains of
//! factors), the chains are bracketed jointly ([`schedule`]: two sweeps per
//! family of chains, cut where they are cheapest), and the graph is written
//! out as [`Step`]s in dependency order, each with its multiply-adds
//! ([`Cost`], a polynomial in the symbolic dimensions).

mod cost;
mod emit;
mod lower;
mod schedule;
mod symbolic;

use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashMap;
use std::fmt;

pub use cost::Cost;
pub use emit::{numpy, pytorch};
pub use lower::MAX_FACTORS;
pub use schedule::{Strategy, DP_LIMIT};
pub use symbolic::{recurrences, Recurrence, Recurrences};

use crate::calculus::Mode;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Shape, Typer};
use crate::syntax::{format_number, Expr, ExprKind, Func, Index, VarName};
use crate::Derivation;
use cost::Tally;
use lower::{Atom, Graph, Node, NodeId};
use schedule::{Role, Schedule, Sizes, Term, Use};

/// A value a step reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// The plan's input number k.
    Input(usize),
    /// The result of step number k.
    Step(usize),
    Num(f64),
}

/// A value, used as it is or transposed (a transpose costs nothing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Operand {
    pub value: Value,
    pub transposed: bool,
}

/// One matrix operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    MatMul(Operand, Operand),
    /// A 1×1 value times a matrix.
    Scale(Operand, Operand),
    Add(Operand, Operand),
    Sub(Operand, Operand),
    Neg(Operand),
    Hadamard(Operand, Operand),
    HadamardDiv(Operand, Operand),
    HadamardPower(Operand, f64),
    /// Division by a 1×1 value.
    Div(Operand, Operand),
    Call(Func, Operand),
    Inverse(Operand),
    /// The identity of the step's shape.
    Identity,
}

impl Op {
    pub fn operands(&self) -> Vec<Operand> {
        match self {
            Op::MatMul(a, b)
            | Op::Scale(a, b)
            | Op::Add(a, b)
            | Op::Sub(a, b)
            | Op::Hadamard(a, b)
            | Op::HadamardDiv(a, b)
            | Op::Div(a, b) => vec![*a, *b],
            Op::Neg(a) | Op::HadamardPower(a, _) | Op::Call(_, a) | Op::Inverse(a) => vec![*a],
            Op::Identity => vec![],
        }
    }
}

/// One line of a plan: `out = op`, with the result's shape and the
/// multiply-adds it takes.
#[derive(Clone, Debug)]
pub struct Step {
    pub out: String,
    pub op: Op,
    pub shape: Shape,
    pub madds: Cost,
}

/// A variable the plan reads.
#[derive(Clone, Debug)]
pub struct Input {
    pub var: VarName,
    pub shape: Shape,
}

/// A result of the plan: the forward value (`wrt` is None) or a gradient.
#[derive(Clone, Debug)]
pub struct Output {
    pub wrt: Option<VarName>,
    pub operand: Operand,
    pub shape: Shape,
    /// Whether the output is a step of its own name (`dW1`).
    pub named: bool,
}

/// A family of chains the planner computed by two sweeps.
#[derive(Clone, Debug)]
pub struct Sweeps {
    /// The cycle's factors (`W1`, `X`, `G^T`).
    pub cycle: Vec<Operand>,
    /// The sweeps meet between `cycle[cut]` and `cycle[cut + 1]` (mod its length).
    pub cut: usize,
    /// The multiply-adds of the plan at every cut, priced with the sizes.
    pub prices: Vec<f64>,
}

/// A compiled plan.
///
/// ```
/// let p = matdiff::syntax::parse_program("W1*W2*W3*X").unwrap();
/// let d = matdiff::derive(&p, &Default::default()).unwrap();
/// let plan = matdiff::plan::compile(&d, &Default::default()).unwrap();
/// // Two sweeps: 3 forward products, 3 backward, 3 meets.
/// let products = plan.steps.iter().filter(|s| matches!(s.op, matdiff::plan::Op::MatMul(..))).count();
/// assert_eq!(products, 9);
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    pub inputs: Vec<Input>,
    pub steps: Vec<Step>,
    pub outputs: Vec<Output>,
    /// Multiply-adds of all steps.
    pub total: Cost,
    /// Multiply-adds of the forward value alone.
    pub forward: Cost,
    /// Multiply-adds of computing the value and each gradient on its own;
    /// None when that polynomial would have more than [`MAX_COST_TERMS`]
    /// terms (a long chain with symbolic sizes has one per pair of factors).
    pub separate: Option<Cost>,
    /// Matrix products of computing the value and each gradient on its own.
    pub separate_products: u128,
    pub sweeps: Vec<Sweeps>,
}

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
    pub strategy: Strategy,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions { dims: HashMap::new(), default_size: 64.0, strategy: Strategy::Auto }
    }
}

/// One expression to compile.
#[derive(Clone, Debug)]
pub struct Target {
    pub wrt: Option<VarName>,
    pub expr: Expr,
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
    let mut targets =
        vec![Target { wrt: None, expr: bind(&typing.program.expr)?, shape: bind_shape(&typing.shape())? }];
    for g in &derivation.gradients {
        let index = g.wrt.index.as_ref().map(|i| bind_index(i, &indices)).transpose()?;
        let free = index.as_ref().and_then(|i| i.terms.keys().next().cloned());
        let Some(name) = free else {
            let wrt = VarName { name: g.wrt.name.clone(), index };
            targets.push(Target { wrt: Some(wrt), expr: bind(&g.expr)?, shape: bind_shape(&g.shape)? });
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
            targets.push(Target { wrt: Some(wrt), expr, shape });
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
    let compiled = compile_graph(&targets, typer, upstream, options)?;
    let mut plan = compiled.write(&targets, options.strategy);
    // Each target on its own: the same graph, only what the target reaches.
    // (Past MAX_COST_TERMS terms the polynomial is dropped: products are counted.)
    let mut separate = Some(Tally::default());
    for (k, root) in compiled.roots.iter().enumerate() {
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
fn product_span(root: &Expr, name: &str) -> Option<crate::syntax::Span> {
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
pub fn compile_symbolic(derivation: &Derivation) -> Result<Vec<Recurrences>> {
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
    Ok(out)
}

/// The index symbols an expression's members and ranges use.
fn index_symbols(e: &Expr, out: &mut HashSet<String>) {
    crate::stack::ensure(|| {
        match &e.kind {
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
        }
        for c in e.children() {
            index_symbols(c, out);
        }
    })
}

/// Whether a `prod` range of the expression has a length that `dims` does
/// not fix (then [`compile`] cannot run and [`compile_symbolic`] answers).
pub fn symbolic_length(derivation: &Derivation, dims: &HashMap<String, u64>) -> bool {
    let values: Vec<(String, i64)> = dims.iter().map(|(k, &v)| (k.clone(), v as i64)).collect();
    fn walk(e: &Expr, values: &[(String, i64)]) -> bool {
        crate::stack::ensure(|| {
            if let ExprKind::Prod(prod) = &e.kind {
                let crate::syntax::Prod { lo, hi, .. } = &**prod;
                // An index out of range is not symbolic: `compile` names it.
                let symbolic =
                    |i: &Index| matches!(bind_index(i, values), Ok(i) if i.as_constant().is_none());
                if symbolic(lo) || symbolic(hi) {
                    return true;
                }
            }
            e.children().any(|c| walk(c, values))
        })
    }
    walk(&derivation.typing.program.expr, &values)
}

fn bind_index(i: &Index, values: &[(String, i64)]) -> Result<Index> {
    values.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v)))
}

/// Compiles expressions whose variables `typer` knows (the first target is
/// the forward value), without pricing the alternatives: `forward` and
/// `separate` are left zero.
pub fn compile_targets(
    targets: &[Target],
    typer: &Typer,
    upstream: Option<&VarName>,
    options: &PlanOptions,
) -> Result<Plan> {
    Ok(compile_graph(targets, typer, upstream, options)?.write(targets, options.strategy))
}

/// The targets lowered into one graph, with the sizes that price it.
struct Compiled {
    graph: Graph,
    roots: Vec<Atom>,
    sizes: Sizes,
}

fn compile_graph(
    targets: &[Target],
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
    for t in targets {
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
    fn write(&self, targets: &[Target], strategy: Strategy) -> Plan {
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

/// The multiply-adds of a node other than a chain, as interned dimensions:
/// entrywise products, scalings and divisions cost one per entry (a norm
/// one per entry of its argument); an inverse and a determinant (an LU
/// factorisation) n³; additions and entrywise functions are not counted.
fn node_madds(graph: &Graph, n: NodeId) -> Option<[u32; 3]> {
    let [r, c] = graph.atom_dims(Atom::plain(n));
    match &graph.nodes[n as usize] {
        Node::Scale(..)
        | Node::Hadamard(..)
        | Node::HadamardDiv(..)
        | Node::HadamardPower(..)
        | Node::Div(..) => Some([r, c, cost::NONE]),
        Node::Inverse(_) => Some([r, r, r]),
        Node::Call(Func::Det | Func::Logdet, x) => {
            let [k, _] = graph.atom_dims(*x);
            Some([k, k, k])
        }
        Node::Call(Func::Norm, x) => {
            let [xr, xc] = graph.atom_dims(*x);
            Some([xr, xc, cost::NONE])
        }
        _ => None,
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
        Node::Input(_) | Node::Num(_) | Node::Identity(_) => vec![],
        Node::Chain(w) => w.clone(),
        Node::Scale(a, b)
        | Node::Add(a, b)
        | Node::Sub(a, b)
        | Node::Hadamard(a, b)
        | Node::HadamardDiv(a, b)
        | Node::Div(a, b) => vec![*a, *b],
        Node::Neg(a) | Node::HadamardPower(a, _) | Node::Call(_, a) | Node::Inverse(a) => vec![*a],
    }
}

/// Writes the graph out as steps.
struct Writer<'a> {
    graph: &'a Graph,
    schedule: &'a Schedule,
    inputs: Vec<Input>,
    steps: Vec<Step>,
    values: FxHashMap<NodeId, Operand>,
    prod_steps: FxHashMap<u32, usize>,
    counters: HashMap<&'static str, usize>,
    taken: HashSet<String>,
}

impl<'a> Writer<'a> {
    fn new(graph: &'a Graph, schedule: &'a Schedule) -> Writer<'a> {
        let taken = graph
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Input(v) => Some(identifier(v)),
                _ => None,
            })
            .collect();
        Writer {
            graph,
            schedule,
            inputs: vec![],
            steps: vec![],
            values: FxHashMap::default(),
            prod_steps: FxHashMap::default(),
            counters: HashMap::new(),
            taken,
        }
    }

    fn fresh(&mut self, prefix: &'static str) -> String {
        loop {
            let k = self.counters.entry(prefix).or_insert(0);
            *k += 1;
            let name = format!("{prefix}{k}");
            if !self.taken.contains(&name) {
                self.taken.insert(name.clone());
                return name;
            }
        }
    }

    fn atom(&self, a: Atom) -> Operand {
        let v = self.values[&a.node];
        Operand { value: v.value, transposed: v.transposed ^ a.t }
    }

    fn operand_shape(&self, o: Operand) -> Shape {
        let s = match o.value {
            Value::Input(k) => self.inputs[k].shape.clone(),
            Value::Step(k) => self.steps[k].shape.clone(),
            Value::Num(_) => Shape::scalar(),
        };
        if o.transposed {
            s.transposed()
        } else {
            s
        }
    }

    fn push(&mut self, prefix: &'static str, op: Op, shape: Shape, madds: Cost) -> Operand {
        let out = self.fresh(prefix);
        self.steps.push(Step { out, op, shape, madds });
        Operand { value: Value::Step(self.steps.len() - 1), transposed: false }
    }

    fn node(&mut self, n: NodeId) {
        let shape = self.graph.shapes[n as usize].clone();
        let madds = match node_madds(self.graph, n) {
            Some(dims) => {
                let dims: Vec<_> = dims
                    .iter()
                    .filter(|&&d| d != cost::NONE)
                    .map(|&d| self.graph.dims[d as usize].clone())
                    .collect();
                Cost::product(&dims)
            }
            None => Cost::zero(),
        };
        let a = |w: &Self, x: &Atom| w.atom(*x);
        let value = match &self.graph.nodes[n as usize] {
            Node::Input(v) => {
                self.inputs.push(Input { var: v.clone(), shape });
                Operand { value: Value::Input(self.inputs.len() - 1), transposed: false }
            }
            Node::Num(bits) => Operand { value: Value::Num(f64::from_bits(*bits)), transposed: false },
            Node::Identity(_) => self.push("T", Op::Identity, shape, madds),
            Node::Chain(_) => {
                let term = self.schedule.chains[&n];
                self.term(term)
            }
            node => {
                let op = match node {
                    Node::Scale(x, y) => Op::Scale(a(self, x), a(self, y)),
                    Node::Add(x, y) => Op::Add(a(self, x), a(self, y)),
                    Node::Sub(x, y) => Op::Sub(a(self, x), a(self, y)),
                    Node::Neg(x) => Op::Neg(a(self, x)),
                    Node::Hadamard(x, y) => Op::Hadamard(a(self, x), a(self, y)),
                    Node::HadamardDiv(x, y) => Op::HadamardDiv(a(self, x), a(self, y)),
                    Node::HadamardPower(x, p) => Op::HadamardPower(a(self, x), f64::from_bits(*p)),
                    Node::Div(x, y) => Op::Div(a(self, x), a(self, y)),
                    Node::Call(f, x) => Op::Call(*f, a(self, x)),
                    Node::Inverse(x) => Op::Inverse(a(self, x)),
                    _ => unreachable!("leaves and chains above"),
                };
                self.push("T", op, shape, madds)
            }
        };
        self.values.insert(n, value);
    }

    /// The operand of a scheduled term, writing the products it needs.
    fn term(&mut self, t: Term) -> Operand {
        match t {
            Term::Atom(a) => self.atom(a),
            Term::Prod(p, transposed) => {
                self.prod(p);
                Operand { value: Value::Step(self.prod_steps[&p]), transposed }
            }
        }
    }

    fn prod(&mut self, p: u32) {
        let prods = &self.schedule.prods;
        let mut stack = vec![p];
        while let Some(&q) = stack.last() {
            if self.prod_steps.contains_key(&q) {
                stack.pop();
                continue;
            }
            let pending: Vec<u32> = [prods[q as usize].left, prods[q as usize].right]
                .into_iter()
                .filter_map(|t| match t {
                    Term::Prod(r, _) if !self.prod_steps.contains_key(&r) => Some(r),
                    _ => None,
                })
                .collect();
            if !pending.is_empty() {
                stack.extend(pending);
                continue;
            }
            stack.pop();
            let (l, r) = (self.term(prods[q as usize].left), self.term(prods[q as usize].right));
            let (ls, rs) = (self.operand_shape(l), self.operand_shape(r));
            let madds = Cost::product(&prods[q as usize].dims.map(|d| self.graph.dims[d as usize].clone()));
            let prefix = match prods[q as usize].role {
                Role::Left => "S",
                Role::Right => "H",
                Role::Other => "T",
            };
            let out = self.push(prefix, Op::MatMul(l, r), Shape::new(ls.rows, rs.cols), madds);
            let Value::Step(k) = out.value else { unreachable!("a step") };
            self.prod_steps.insert(q, k);
        }
    }
}

/// A variable as an identifier: `W[2]` is `W_2`.
fn identifier(v: &VarName) -> String {
    match &v.index {
        None => v.name.clone(),
        Some(i) => format!("{}_{}", v.name, i.to_string().replace('-', "m").replace('+', "p")),
    }
}

/// Gives each output's step the output's name (`value`, `dW1`) when the
/// output is that step as it is, then numbers the other steps of each kind
/// (`S`, `H`, `T`) from 1 in order.
fn name_outputs(plan: &mut Plan) {
    let mut taken: HashSet<String> = plan.inputs.iter().map(|i| identifier(&i.var)).collect();
    let mut named = HashSet::new();
    for o in &mut plan.outputs {
        let Operand { value: Value::Step(k), transposed: false } = o.operand else { continue };
        if !named.insert(k) {
            continue;
        }
        o.named = true;
        let mut name = match &o.wrt {
            None => "value".to_string(),
            Some(v) => format!("d{}", identifier(v)),
        };
        while taken.contains(&name) {
            name.push('_');
        }
        taken.insert(name.clone());
        plan.steps[k].out = name;
    }
    let mut counters: HashMap<String, usize> = HashMap::new();
    for (k, step) in plan.steps.iter_mut().enumerate() {
        if named.contains(&k) {
            continue;
        }
        let prefix: String = step.out.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
        let name = loop {
            let n = counters.entry(prefix.clone()).or_insert(0);
            *n += 1;
            let name = format!("{prefix}{n}");
            if !taken.contains(&name) {
                break name;
            }
        };
        taken.insert(name.clone());
        step.out = name;
    }
}

fn operand_text(inputs: &[Input], steps: &[Step], o: Operand) -> String {
    let base = match o.value {
        Value::Input(k) => inputs[k].var.to_string(),
        Value::Step(k) => steps[k].out.clone(),
        Value::Num(x) => format_number(x),
    };
    if o.transposed {
        format!("{base}^T")
    } else {
        base
    }
}

impl Plan {
    /// An operand as text (`S2^T`).
    pub fn operand_text(&self, o: Operand) -> String {
        operand_text(&self.inputs, &self.steps, o)
    }

    /// A step's operation as text, in the expression syntax (`W1^T * H1`).
    pub fn op_text(&self, op: &Op) -> String {
        let t = |o: &Operand| self.operand_text(*o);
        match op {
            Op::MatMul(a, b) | Op::Scale(a, b) => format!("{} * {}", t(a), t(b)),
            Op::Add(a, b) => format!("{} + {}", t(a), t(b)),
            Op::Sub(a, b) => format!("{} - {}", t(a), t(b)),
            Op::Neg(a) => format!("-{}", t(a)),
            Op::Hadamard(a, b) => format!("{} .* {}", t(a), t(b)),
            Op::HadamardDiv(a, b) => format!("{} ./ {}", t(a), t(b)),
            Op::HadamardPower(a, p) => format!("{} .^ {}", t(a), format_number(*p)),
            Op::Div(a, b) => format!("{} / {}", t(a), t(b)),
            Op::Call(f, a) => format!("{}({})", f.name(), t(a)),
            Op::Inverse(a) => format!("{}^-1", t(a)),
            Op::Identity => "I".to_string(),
        }
    }

    /// The factors of a family's cycle, as text, and the two the cut is between.
    pub fn cycle_text(&self, s: &Sweeps) -> (Vec<String>, String, String) {
        let cycle: Vec<String> = s.cycle.iter().map(|o| self.operand_text(*o)).collect();
        let (a, b) = (cycle[s.cut].clone(), cycle[(s.cut + 1) % cycle.len()].clone());
        (cycle, a, b)
    }

    /// The number of matrix products.
    pub fn products(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s.op, Op::MatMul(..))).count()
    }

    /// The output's label: `value`, or `d/dW1`.
    pub fn output_label(o: &Output) -> String {
        match &o.wrt {
            None => "value".to_string(),
            Some(v) => format!("d/d{v}"),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<(String, String, String, String)> = self
            .steps
            .iter()
            .map(|s| (s.out.clone(), self.op_text(&s.op), s.shape.to_string(), s.madds.to_string()))
            .collect();
        // Columns align up to 100 characters: a longer cell (a 64 KiB name)
        // would pad every row to it, and std's formatter panics on a width
        // past u16::MAX.
        let w0 = lines.iter().map(|l| l.0.chars().count()).max().unwrap_or(0).min(100);
        let w1 = lines.iter().map(|l| l.1.chars().count()).max().unwrap_or(0).min(100);
        let w2 = lines.iter().map(|l| l.2.chars().count()).max().unwrap_or(0).min(100);
        for (out, op, shape, madds) in &lines {
            writeln!(f, "  {out:<w0$} = {op:<w1$}   {shape:<w2$}   {madds}")?;
        }
        Ok(())
    }
}
