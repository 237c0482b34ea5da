//! Shared names: a subexpression that occurs more than once across a
//! derivation's gradients is printed once, as a definition
//! (`T1 = sigmoid(W * x + b)`), and the formulas in terms of it
//! (docs/cli.md, Shared names). The gradients themselves stay expanded:
//! this is a second, printed form beside them.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::syntax::{BinOp, Expr, ExprKind, Program};

/// Whether repeated subexpressions are given names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sharing {
    /// A subexpression that occurs at least twice is named once (`T1`, `T2`, …).
    #[default]
    Named,
    /// Every formula written out in full.
    Expanded,
}

/// One definition `name = expr`; `expr` may use the names defined before it.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedName {
    /// `T1`, `T2`, …: no name the program uses.
    pub name: String,
    /// What it stands for, in terms of the earlier names.
    pub expr: Expr,
}

/// The gradients written with shared names.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The definitions, each after the names it uses (innermost first).
    pub definitions: Vec<SharedName>,
    /// Each gradient in terms of the names, in the derivation's order.
    pub gradients: Vec<Expr>,
}

impl Shared {
    /// The definitions as a program's definitions, `T1 = …` one per line:
    /// pasted before a formula of [`Shared`], they make it the expanded one.
    pub fn definitions_text(&self) -> String {
        self.definitions.iter().map(|d| format!("{} = {}\n", d.name, d.expr)).collect()
    }
}

/// Formulas larger than this together (as printed) are left expanded: the
/// search is linear per name, but a name saves little in a formula no one reads.
pub const MAX_SHARED_NODES: usize = 100_000;

/// `total` plus the nodes of `e`, or `None` once that passes
/// [`MAX_SHARED_NODES`]: the one measure of which gradients are too large
/// to share names ([`share`], [`one_order_per_sum`], and the streamed
/// derivation, which relies on both leaving such gradients as they are).
pub(super) fn add_size(total: usize, e: &Expr) -> Option<usize> {
    e.size_within(MAX_SHARED_NODES.checked_sub(total)?).map(|n| total + n)
}

/// Most names given in one derivation.
pub const MAX_NAMES: usize = 40;

/// The fewest printed nodes a name must save (see [`share`]): a name for
/// `G * W^T` used twice saves 2 and reads worse than the formula.
pub const MIN_SAVING: usize = 3;

/// Names the subexpressions that occur at least twice across `gradients`,
/// the largest first (so a part that occurs only inside a named whole is
/// not named again), until none is worth a name; `None` when none is, or
/// `sharing` is [`Sharing::Expanded`].
///
/// A subexpression qualifies when it is not a decorated leaf (a variable,
/// number, `I` or `ones(…)` under any transposes, powers and negations:
/// `X^T^-1` reads as well as a name), nor a negation or a multiple `c * A`
/// by a number (its operand is named instead), has a variable, and has no
/// `I` (sized by its context), `prod(…)` or indexed variable (`W[j]`: a
/// definition has no index). It is worth a name when it occurs k ≥ 2 times
/// and the name saves at least [`MIN_SAVING`] printed nodes: k·s − s − k,
/// for s nodes (the definition once, the name k times). Names are `T1`,
/// `T2`, … numbered in the order printed, skipping every name `program`
/// uses.
pub fn share(program: &Program, gradients: &[Expr], sharing: Sharing) -> Option<Shared> {
    if sharing == Sharing::Expanded {
        return None;
    }
    let mut total = 0usize;
    for e in gradients {
        total = add_size(total, e)?;
    }
    let mut exprs: Vec<Expr> = gradients.to_vec();
    let roots = exprs.len();
    // Placeholders: names no program can have (`#0`), renamed at the end.
    let mut found = 0usize;
    while found < MAX_NAMES {
        let Some(target) = most_repeated(&exprs, total) else { break };
        // `T1^T` reads better than a name for a transpose: name the inside.
        let target = match &target.kind {
            ExprKind::Transpose(inner) => (**inner).clone(),
            _ => target,
        };
        let placeholder = Rc::new(Expr::var(&format!("#{found}")));
        exprs = exprs.iter().map(|e| (*replace(e, &target, &placeholder)).clone()).collect();
        // `b - a` beside `T1 = a - b` is `-T1`; with transposes at the
        // leaves (the simplifier's form), `a^T - b^T` is `T1^T` and
        // `b^T - a^T` is `-T1^T`.
        let transposed = Rc::new(Expr::transpose(placeholder.clone()));
        let mut variants = vec![(leaves_transposed(&target), transposed.clone())];
        if let Some(swapped) = swapped_difference(&target) {
            variants.push((leaves_transposed(&swapped), Rc::new(Expr::negate(transposed))));
            variants.push((Some(swapped), Rc::new(Expr::negate(placeholder.clone()))));
        }
        for (variant, with) in variants {
            if let Some(variant) = variant.filter(|v| *v != target) {
                exprs = exprs.iter().map(|e| (*replace(e, &variant, &with)).clone()).collect();
            }
        }
        // A name's sign stands before the product it is a factor of:
        // `-S^-1 * T1`, not `S^-1 * -T1`.
        exprs = exprs.iter().map(|e| (*signs_out(e)).clone()).collect();
        exprs.push(target);
        found += 1;
    }
    // A name that ended up standing for a decorated name (`T2 = T1^T`,
    // once the inside of `softmax(…)^T` was named too) is written out again.
    let mut dropped = vec![false; found];
    for k in 0..found {
        if decorated_leaf(&exprs[roots + k]) {
            let placeholder = Expr::var(&format!("#{k}"));
            let with = Rc::new(exprs[roots + k].clone());
            exprs = exprs.iter().map(|e| (*replace(e, &placeholder, &with)).clone()).collect();
            dropped[k] = true;
        }
    }
    if dropped.iter().all(|d| *d) {
        return None;
    }
    // Order: each definition after those it uses, the smaller first.
    let deps: Vec<Vec<usize>> = exprs[roots..].iter().map(placeholders_in).collect();
    let mut order = Vec::with_capacity(found);
    let mut done = vec![false; found];
    fn visit(k: usize, deps: &[Vec<usize>], done: &mut [bool], order: &mut Vec<usize>) {
        if done[k] {
            return;
        }
        done[k] = true;
        for &d in &deps[k] {
            visit(d, deps, done, order);
        }
        order.push(k);
    }
    for k in (0..found).rev() {
        visit(k, &deps, &mut done, &mut order);
    }
    order.retain(|&k| !dropped[k]);
    let used = used_names(program, &exprs[..roots]);
    let mut names = (1..).map(|i| format!("T{i}")).filter(|n| !used.contains(n));
    let mut rename: HashMap<String, Rc<Expr>> = HashMap::new();
    for &k in &order {
        rename.insert(format!("#{k}"), Rc::new(Expr::var(&names.next().expect("names are endless"))));
    }
    let renamed: Vec<Expr> = exprs.iter().map(|e| (*rename_in(e, &rename)).clone()).collect();
    let definitions = order
        .iter()
        .map(|&k| SharedName { name: rename[&format!("#{k}")].to_string(), expr: renamed[roots + k].clone() })
        .collect();
    Some(Shared { definitions, gradients: renamed[..roots].to_vec() })
}

/// The gradients with each sum written in one order of its terms: a sum
/// that recurs with its terms reordered (`T2 + X - Y` and `X + T2 - Y`,
/// from two gradients simplified apart) takes the order it was first
/// written in, so that it reads as one sum and is named once. Sums are
/// compared by their signed terms as a multiset, inner sums first.
/// Gradients together above [`MAX_SHARED_NODES`] nodes are left as they are.
pub(super) fn one_order_per_sum(exprs: &[Expr]) -> Vec<Expr> {
    let mut total = 0usize;
    for e in exprs {
        match add_size(total, e) {
            Some(sum) => total = sum,
            None => return exprs.to_vec(),
        }
    }
    fn walk(e: &Expr, seen: &mut HashMap<Vec<(bool, String)>, Rc<Expr>>) -> Rc<Expr> {
        crate::stack::ensure(|| {
            if e.children().next().is_none() {
                return Rc::new(e.clone());
            }
            let e = e.map_children(|c| walk(c, seen));
            if !matches!(e.kind, ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. }) {
                return Rc::new(e);
            }
            let mut key: Vec<(bool, String)> =
                e.sum_terms().iter().map(|(neg, t)| (*neg, t.to_string())).collect();
            key.sort();
            seen.entry(key).or_insert_with(|| Rc::new(e)).clone()
        })
    }
    let mut seen = HashMap::new();
    let sum = |x: &Expr| matches!(x.kind, ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. });
    // A formula without a sum (every gradient of a chain) is left as it
    // is, not rebuilt.
    exprs.iter().map(|e| if e.any(sum) { (*walk(e, &mut seen)).clone() } else { e.clone() }).collect()
}

/// A leaf under transposes, powers and negations.
fn decorated_leaf(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Var(_) | ExprKind::Num(_) | ExprKind::Identity | ExprKind::Ones(_) => true,
        ExprKind::Neg(a) | ExprKind::Transpose(a) | ExprKind::Power(a, _) | ExprKind::HadamardPower(a, _) => {
            decorated_leaf(a)
        }
        _ => false,
    }
}

/// A node's class: its own data and its children's classes.
#[derive(Clone, Copy)]
struct Class {
    size: usize,
    count: usize,
    /// Has a variable.
    var: bool,
    /// Has an `I`, a `prod` or an indexed variable.
    barred: bool,
    /// A leaf under transposes, powers and negations.
    decorated: bool,
    qualifies: bool,
}

/// The largest qualifying subexpression that occurs at least twice.
/// `nodes` is their number (at most [`MAX_SHARED_NODES`]), to size the table.
fn most_repeated(exprs: &[Expr], nodes: usize) -> Option<Expr> {
    let mut ids: rustc_hash::FxHashMap<(NodeKey, crate::syntax::Kids<usize>), usize> =
        rustc_hash::FxHashMap::with_capacity_and_hasher(nodes, Default::default());
    let mut classes: Vec<Class> = Vec::with_capacity(nodes);
    let mut first: Vec<&Expr> = Vec::with_capacity(nodes);
    // Post-order, children left to right (as `Expr::fold`), with its own
    // stack: the nodes are borrowed, not cloned, and no level recurses.
    let mut todo: Vec<(&Expr, bool)> = Vec::new();
    let mut done: Vec<usize> = Vec::new();
    for e in exprs {
        todo.push((e, false));
        while let Some((node, expanded)) = todo.pop() {
            if !expanded {
                todo.push((node, true));
                let at = todo.len();
                todo.extend(node.children().map(|c| (c, false)));
                todo[at..].reverse();
                continue;
            }
            let arity = node.children().count();
            let kids: crate::syntax::Kids<usize> = done.drain(done.len() - arity..).collect();
            let key = (node_key(node), kids);
            if let Some(&id) = ids.get(&key) {
                classes[id].count += 1;
                done.push(id);
                continue;
            }
            let kid = |i: usize| classes[key.1[i]];
            let size = 1 + key.1.iter().map(|&k| classes[k].size).sum::<usize>();
            let (var, barred) = match &node.kind {
                ExprKind::Var(v) => (true, v.index.is_some()),
                ExprKind::Identity | ExprKind::Prod(_) => (false, true),
                _ => (key.1.iter().any(|&k| classes[k].var), key.1.iter().any(|&k| classes[k].barred)),
            };
            let decorated = match &node.kind {
                ExprKind::Var(_) | ExprKind::Num(_) | ExprKind::Identity | ExprKind::Ones(_) => true,
                ExprKind::Neg(_)
                | ExprKind::Transpose(_)
                | ExprKind::Power(..)
                | ExprKind::HadamardPower(..) => kid(0).decorated,
                _ => false,
            };
            let qualifies = var
                && !barred
                && !decorated
                && match &node.kind {
                    ExprKind::Neg(_) => false,
                    ExprKind::Binary { op: BinOp::Mul, lhs, .. } => !matches!(lhs.kind, ExprKind::Num(_)),
                    _ => true,
                };
            let id = classes.len();
            classes.push(Class { size, count: 1, var, barred, decorated, qualifies });
            first.push(node);
            ids.insert(key, id);
            done.push(id);
        }
    }
    // `a - b` and `b - a` are one name, negated: each counts the other's
    // occurrences.
    let mut counts: Vec<usize> = classes.iter().map(|c| c.count).collect();
    for ((key, kids), &id) in &ids {
        if let ([l, r], NodeKey::Binary(BinOp::Sub)) = (kids.as_slice(), key) {
            if let Some(&other) = ids.get(&(key.clone(), smallvec::smallvec![*r, *l])) {
                counts[id] += classes[other].count;
            }
        }
    }
    let best = (0..classes.len())
        .filter(|&k| {
            let Class { size, qualifies, .. } = classes[k];
            let count = counts[k];
            qualifies && count >= 2 && count * size >= size + count + MIN_SAVING
        })
        .max_by_key(|&k| (classes[k].size, classes[k].count, std::cmp::Reverse(k)))?;
    Some(first[best].clone())
}

/// `b - a` for the difference `a - b`.
fn swapped_difference(e: &Expr) -> Option<Expr> {
    match &e.kind {
        ExprKind::Binary { op: BinOp::Sub, lhs, rhs, .. } => Some(Expr::minus(rhs.clone(), lhs.clone())),
        _ => None,
    }
}

/// `e^T` with the transposes pushed to the leaves, as the simplifier
/// prints it (`(a - b)^T` is `a^T - b^T`, `(A*B)^T` is `B^T * A^T`);
/// `None` for a node it does not push through.
fn leaves_transposed(e: &Expr) -> Option<Expr> {
    match &e.kind {
        ExprKind::Var(_) => Some(Expr::transpose(Rc::new(e.clone()))),
        ExprKind::Transpose(a) => Some((**a).clone()),
        ExprKind::Neg(a) => Some(Expr::negate(leaves_transposed(a)?)),
        ExprKind::Binary { op: op @ (BinOp::Add | BinOp::Sub | BinOp::Hadamard), lhs, rhs, .. } => {
            Some(Expr::binary(*op, leaves_transposed(lhs)?, leaves_transposed(rhs)?))
        }
        ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
            Some(Expr::product(leaves_transposed(rhs)?, leaves_transposed(lhs)?))
        }
        _ => None,
    }
}

/// `e` with the sign of each negated operand of a product (`.*` too)
/// moved to the product's first factor (`-S^-1 * T1`, not `S^-1 * -T1`),
/// and `--a` read as `a`, `a + -b` as `a - b` and `a - -b` as `a + b`.
fn signs_out(e: &Expr) -> Rc<Expr> {
    if e.children().next().is_none() {
        return Rc::new(e.clone());
    }
    let e = crate::stack::ensure(|| e.map_children(|c| signs_out(c)));
    let negated = |x: &Rc<Expr>| match &x.kind {
        ExprKind::Neg(inner) => Some(inner.clone()),
        _ => None,
    };
    let out = match &e.kind {
        ExprKind::Neg(a) => negated(a).map(|inner| (*inner).clone()),
        ExprKind::Binary { op: op @ (BinOp::Mul | BinOp::Hadamard), lhs, rhs, .. } => {
            match (negated(lhs), negated(rhs)) {
                (Some(l), Some(r)) => Some(Expr::binary(*op, l, r)),
                (None, Some(r)) => Some(Expr::binary(*op, negate_first(lhs), r)),
                _ => None,
            }
        }
        ExprKind::Binary { op: BinOp::Add, lhs, rhs, .. } => {
            negated(rhs).map(|r| Expr::minus(lhs.clone(), r))
        }
        ExprKind::Binary { op: BinOp::Sub, lhs, rhs, .. } => negated(rhs).map(|r| Expr::plus(lhs.clone(), r)),
        _ => None,
    };
    Rc::new(out.unwrap_or(e))
}

/// `-e`, the sign on `e`'s first factor: `-2 * A` for `2 * A` (a literal is
/// never negative: the sign is a negation of it).
fn negate_first(e: &Expr) -> Rc<Expr> {
    Rc::new(match &e.kind {
        ExprKind::Binary { op: op @ (BinOp::Mul | BinOp::Hadamard), lhs, rhs, .. } => {
            Expr::binary(*op, negate_first(lhs), rhs.clone())
        }
        ExprKind::Neg(a) => (**a).clone(),
        _ => Expr::negate(Rc::new(e.clone())),
    })
}

/// A node's own data, its children aside: equal keys and equal children
/// make equal subexpressions.
fn node_key(e: &Expr) -> NodeKey {
    match &e.kind {
        ExprKind::Var(v) => NodeKey::Var(v.clone()),
        ExprKind::Identity => NodeKey::Identity,
        ExprKind::Num(x) => NodeKey::Num(x.to_bits()),
        ExprKind::Ones(d) => NodeKey::Ones(d.clone()),
        ExprKind::Neg(_) => NodeKey::Neg,
        ExprKind::Binary { op, .. } => NodeKey::Binary(*op),
        ExprKind::Transpose(_) => NodeKey::Transpose,
        ExprKind::Power(_, k) => NodeKey::Power(*k),
        ExprKind::HadamardPower(_, p) => NodeKey::HadamardPower(p.to_bits()),
        ExprKind::Call(f, _) => NodeKey::Call(*f),
        ExprKind::Prod(p) => NodeKey::Prod(p.var.clone(), p.lo.clone(), p.hi.clone()),
    }
}

/// A node's own data, its children aside ([`node_key`]): what hash-consing
/// tells nodes apart by. (Variables and sizes are shared, not copied.)
#[derive(Clone, PartialEq, Eq, Hash)]
enum NodeKey {
    Var(Rc<crate::syntax::VarName>),
    Identity,
    Num(u64),
    Ones(Rc<(crate::syntax::DimSpec, crate::syntax::DimSpec)>),
    Neg,
    Binary(BinOp),
    Transpose,
    Power(i64),
    HadamardPower(u64),
    Call(crate::syntax::Func),
    Prod(String, crate::syntax::Index, crate::syntax::Index),
}

/// `e` with every subexpression equal to `target` replaced by `with`.
fn replace(e: &Expr, target: &Expr, with: &Rc<Expr>) -> Rc<Expr> {
    if e == target {
        return with.clone();
    }
    if e.children().next().is_none() {
        return Rc::new(e.clone());
    }
    Rc::new(crate::stack::ensure(|| e.map_children(|c| replace(c, target, with))))
}

/// `e` with each placeholder variable renamed.
fn rename_in(e: &Expr, names: &HashMap<String, Rc<Expr>>) -> Rc<Expr> {
    if let ExprKind::Var(v) = &e.kind {
        if let Some(n) = names.get(&v.name) {
            return n.clone();
        }
    }
    if e.children().next().is_none() {
        return Rc::new(e.clone());
    }
    Rc::new(e.map_children(|c| rename_in(c, names)))
}

/// The placeholders (`#k`) `e` uses, as k.
fn placeholders_in(e: &Expr) -> Vec<usize> {
    let mut out = Vec::new();
    e.for_each(|x| {
        if let ExprKind::Var(v) = &x.kind {
            if let Some(k) = v.name.strip_prefix('#').and_then(|k| k.parse().ok()) {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    });
    out
}

/// Every name the program or the formulas use: variables, index symbols,
/// bound variables, declared names and dimensions, definitions.
fn used_names(program: &Program, exprs: &[Expr]) -> HashSet<String> {
    let mut text = String::new();
    for e in std::iter::once(&program.expr).chain(exprs) {
        e.for_each(|x| match &x.kind {
            ExprKind::Var(v) => text.push_str(&format!(" {v} ")),
            ExprKind::Ones(d) => text.push_str(&format!(" {d:?} ")),
            ExprKind::Prod(p) => text.push_str(&format!(" {} {} {} ", p.var, p.lo, p.hi)),
            _ => {}
        });
    }
    for d in &program.declarations {
        text.push_str(&format!(" {} {:?} {:?} ", d.name, d.binder, d.shape));
    }
    for d in &program.definitions {
        text.push_str(&format!(" {} ", d.name));
    }
    if let Some(n) = &program.name {
        text.push_str(&format!(" {n} "));
    }
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}
