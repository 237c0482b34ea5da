//! Where the variables of a program occur, found once for all its
//! gradients: each gradient's walk then visits only the nodes above its
//! variable's occurrences, and at a sum or a product only the terms or
//! factors that hold the variable. (Every gradient once marked the whole
//! program and flattened every sum on its way: a layer summing 10 000
//! variables took 13 s.)

use std::rc::Rc;

use rustc_hash::FxHashMap;

use super::Factor;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::Typing;
use crate::syntax::{BinOp, Expr, ExprKind, VarName};

/// A slot that is not a term or a factor (the child of a transpose, a
/// function, a Hadamard product…).
const CHILD: u32 = u32::MAX;

/// The nodes of a program's expression (each shared node once), how the
/// walk of the calculus goes down through them, and where each variable
/// occurs.
///
/// The walk goes from a sum to its terms and from a product to its factors
/// (flattened through nested sums and products, as [`super::differentiate`]
/// reads them), and from any other node to its children. The nodes it never
/// stands on (the inner nodes of a flattened sum or product) have no place
/// here.
pub struct Occurrences<'p> {
    root: &'p Expr,
    ids: FxHashMap<*const Expr, u32>,
    /// The terms of each sum the walk stands on, by node.
    terms: FxHashMap<u32, Vec<(bool, &'p Expr)>>,
    /// The factors of each product the walk stands on, by node.
    factors: FxHashMap<u32, Vec<Factor<'p>>>,
    /// For each node, the nodes the walk reaches it from and the slot it
    /// fills there (a term's or factor's position, or [`CHILD`]). Most nodes
    /// have one; a shared node has one per place.
    up: Vec<(u32, u32)>,
    more_up: FxHashMap<u32, Vec<(u32, u32)>>,
    /// Variable nodes by variable, and indexed ones by family name.
    by_var: FxHashMap<VarName, Vec<u32>>,
    by_family: FxHashMap<String, Vec<u32>>,
    /// For [`Occurrences::check_target`]: per family, the `prod` nodes whose
    /// factors are its members (with how many times each occurs in the
    /// tree), and its members that occur outside every `prod`.
    prods_of: FxHashMap<String, Vec<(u32, u64)>>,
    loose_of: FxHashMap<String, Vec<u32>>,
    nodes: Vec<&'p Expr>,
    /// The nodes that hold the current gradient's variable carry its
    /// generation (no per-gradient clearing).
    stamp: Vec<u32>,
    generation: u32,
}

/// The nodes above one variable's occurrences, and at each sum or product
/// among them the terms or factors (by position, in order) that hold it.
pub(super) struct Marks {
    pub(super) slots: FxHashMap<u32, Vec<u32>>,
}

impl<'p> Occurrences<'p> {
    /// The index of a typed program's expression (the typing decides which
    /// products are scalar multiples, as the walk does).
    pub fn new(typing: &Typing<'p>) -> Occurrences<'p> {
        let root: &'p Expr = &typing.program.expr;
        let mut ids: FxHashMap<*const Expr, u32> = FxHashMap::default();
        let mut nodes: Vec<&'p Expr> = vec![];
        // Pre-order of first visits (the order of a walk of the tree): a
        // node gets its number when it is popped, and is expanded once.
        let mut stack = vec![root];
        while let Some(e) = stack.pop() {
            if ids.contains_key(&(e as *const Expr)) {
                continue;
            }
            ids.insert(e, nodes.len() as u32);
            nodes.push(e);
            let kids: Vec<&'p Expr> = children(e).collect();
            stack.extend(kids.into_iter().rev());
        }
        let id = |e: &Expr| ids[&(e as *const Expr)];
        let n = nodes.len();

        // A sum inside a sum, and a product inside a product (not as a
        // scalar factor), are read through: they are inner nodes there.
        let inner = |parent: &Expr, child: &Expr| match (&parent.kind, &child.kind) {
            (ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. }, ExprKind::Binary { op, .. }) => {
                matches!(op, BinOp::Add | BinOp::Sub)
            }
            (ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. }, ExprKind::Binary { op: BinOp::Mul, .. }) => {
                let scaling = typing.node_scales(lhs, rhs).unwrap_or(false);
                !(scaling && typing.node_is_scalar(child).unwrap_or(false))
            }
            _ => false,
        };
        // The walk stands on the root, on every node that is not a sum or
        // product, and on a sum or product that some parent does not read
        // through.
        let mut stands = vec![false; n];
        stands[0] = true;
        for (p, e) in nodes.iter().enumerate() {
            for c in children(e) {
                let c_id = id(c) as usize;
                if !inner(e, c) {
                    stands[c_id] = true;
                }
            }
            let chain = matches!(e.kind, ExprKind::Binary { op: BinOp::Add | BinOp::Sub | BinOp::Mul, .. });
            if !chain {
                stands[p] = true;
            }
        }

        let mut up = vec![(CHILD, CHILD); n];
        let mut more_up: FxHashMap<u32, Vec<(u32, u32)>> = FxHashMap::default();
        let mut link = |child: u32, parent: u32, slot: u32| {
            if up[child as usize].0 == CHILD {
                up[child as usize] = (parent, slot);
            } else {
                more_up.entry(child).or_default().push((parent, slot));
            }
        };
        let mut terms = FxHashMap::default();
        let mut factors = FxHashMap::default();
        for (p, &e) in nodes.iter().enumerate() {
            if !stands[p] {
                continue;
            }
            let p = p as u32;
            match &e.kind {
                ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. } => {
                    let list = e.sum_terms();
                    for (slot, (_, t)) in list.iter().enumerate() {
                        link(id(t), p, slot as u32);
                    }
                    terms.insert(p, list);
                }
                ExprKind::Binary { op: BinOp::Mul, .. } => {
                    let mut list = vec![];
                    flatten_product(typing, e, &mut list);
                    for (slot, f) in list.iter().enumerate() {
                        link(id(f.expr), p, slot as u32);
                    }
                    factors.insert(p, list);
                }
                _ => {
                    for c in children(e) {
                        link(id(c), p, CHILD);
                    }
                }
            }
        }

        let mut by_var: FxHashMap<VarName, Vec<u32>> = FxHashMap::default();
        let mut by_family: FxHashMap<String, Vec<u32>> = FxHashMap::default();
        for (k, e) in nodes.iter().enumerate() {
            if let ExprKind::Var(v) = &e.kind {
                by_var.entry(VarName::clone(v)).or_default().push(k as u32);
                if v.index.is_some() {
                    by_family.entry(v.name.clone()).or_default().push(k as u32);
                }
            }
        }
        let (prods_of, loose_of) = products(&nodes, &ids);
        Occurrences {
            root,
            ids,
            terms,
            factors,
            up,
            more_up,
            by_var,
            by_family,
            prods_of,
            loose_of,
            stamp: vec![0; n],
            generation: 0,
            nodes,
        }
    }

    /// The program's expression.
    pub(super) fn root(&self) -> &'p Expr {
        self.root
    }

    /// Marks the nodes that hold `v` (for a member `W[j]` of a family:
    /// every member of the family), walking up from its occurrences.
    pub(super) fn mark(&mut self, v: &VarName) -> Marks {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        let generation = self.generation;
        // A member with a symbolic index may be any member; one with a
        // constant index may be a factor of a `prod` over its family.
        let family = v.index.as_ref().is_some_and(|i| i.as_constant().is_none())
            || (v.index.is_some() && self.prods_of.contains_key(&v.name));
        let mut stack: Vec<u32> = vec![];
        let members = family.then(|| self.by_family.get(&v.name)).flatten();
        for &k in self.by_var.get(v).into_iter().flatten().chain(members.into_iter().flatten()) {
            if self.stamp[k as usize] != generation {
                self.stamp[k as usize] = generation;
                stack.push(k);
            }
        }
        let mut slots: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        while let Some(c) = stack.pop() {
            let first = self.up[c as usize];
            if first.0 == CHILD {
                continue; // the root
            }
            let more = self.more_up.get(&c).map(Vec::as_slice).unwrap_or(&[]);
            for &(p, slot) in std::iter::once(&first).chain(more) {
                if slot != CHILD {
                    slots.entry(p).or_default().push(slot);
                }
                if self.stamp[p as usize] != generation {
                    self.stamp[p as usize] = generation;
                    stack.push(p);
                }
            }
        }
        for list in slots.values_mut() {
            list.sort_unstable();
        }
        Marks { slots }
    }

    /// Whether `e` holds the variable last marked.
    pub(super) fn holds(&self, e: &Expr) -> bool {
        self.ids.get(&(e as *const Expr)).is_some_and(|&k| self.stamp[k as usize] == self.generation)
    }

    pub(super) fn id(&self, e: &Expr) -> Option<u32> {
        self.ids.get(&(e as *const Expr)).copied()
    }

    /// The terms of a sum the walk stands on.
    pub(super) fn terms(&self, k: u32) -> Option<&[(bool, &'p Expr)]> {
        self.terms.get(&k).map(Vec::as_slice)
    }

    /// The factors of a product the walk stands on.
    pub(super) fn factors(&self, k: u32) -> Option<&[Factor<'p>]> {
        self.factors.get(&k).map(Vec::as_slice)
    }

    /// Refuses a variable whose gradient cannot be derived (yet): a member
    /// of a family that may also be another occurrence (`W[k]` beside
    /// `W[j]`), or a family used in two products (tied families); matdiff
    /// does not guess.
    pub fn check_target(&self, wrt: &VarName) -> Result<()> {
        if wrt.index.is_none() {
            return Ok(());
        }
        let symbolic = |v: &VarName| v.index.as_ref().is_some_and(|i| i.as_constant().is_none());
        let var = |k: u32| match &self.nodes[k as usize].kind {
            ExprKind::Var(v) => &**v,
            _ => unreachable!("members are variables"),
        };
        let node = |k: u32| self.nodes[k as usize];
        let prods = self.prods_of.get(&wrt.name).map(Vec::as_slice).unwrap_or(&[]);
        let loose = self.loose_of.get(&wrt.name).map(Vec::as_slice).unwrap_or(&[]);
        if let (Some(&(p, _)), Some(&e)) = (prods.first(), loose.first()) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("`{}` may be one of the factors of `{}`; a family used both in and beside a product is not supported yet", node(e), node(p)),
            )
            .label(node(e).span, "here"));
        }
        // Loose members are few but for a sum of many members: the search
        // stops at the first that differs from `wrt`, or at the first
        // symbolic one.
        let other = if symbolic(wrt) {
            loose.iter().find(|&&k| var(k) != wrt)
        } else {
            loose.iter().find(|&&k| symbolic(var(k)))
        };
        if let Some(&e) = other {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("`{}` may be the same matrix as `{wrt}`: members of a family with symbolic indices are not supported yet", node(e)),
            )
            .label(node(e).span, "here"));
        }
        // Each place a product occurs counts (a definition used twice is
        // two products).
        let count: u64 = prods.iter().fold(0u64, |n, &(_, c)| n.saturating_add(c));
        if count > 1 {
            let again = if prods[0].1 > 1 { prods[0].0 } else { prods[1].0 };
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the family `{}` is used in {count} products; tied families are not supported yet",
                    wrt.name
                ),
            )
            .label(node(again).span, "used again here"));
        }
        Ok(())
    }
}

/// The children of a node, as the walk sees them (a `prod`'s body too).
fn children(e: &Expr) -> impl Iterator<Item = &Expr> {
    e.children()
}

/// The factors of a product, flattened through nested products; a 1×1
/// side of a scalar multiple is one scalar factor. `e` is a product of the
/// program; its factors are shared, not copied, into the formulas made from
/// them.
pub(super) fn flatten_product<'p>(typing: &Typing, e: &'p Expr, out: &mut Vec<Factor<'p>>) {
    let ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } = &e.kind else {
        unreachable!("flatten_product of a product")
    };
    let sides = |lhs: &'p Rc<Expr>, rhs: &'p Rc<Expr>| {
        let scaling = typing.node_scales(lhs, rhs).expect("typed nodes");
        [lhs, rhs].map(|side| Factor {
            expr: side,
            scalar: scaling && typing.node_is_scalar(side).unwrap_or(false),
            prefix: None,
        })
    };
    // A worklist of sides, left to right: a product side is read further.
    let mut stack: Vec<Factor<'p>> = sides(lhs, rhs).into_iter().rev().collect();
    while let Some(f) = stack.pop() {
        let expr: &'p Rc<Expr> = f.expr;
        match &expr.kind {
            ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } if !f.scalar => {
                let [l, r] = sides(lhs, rhs);
                stack.push(r);
                stack.push(l);
            }
            _ => out.push(f),
        }
    }
    // The left spine's nodes: while a node's right side is its last factor,
    // its left side is the product of the factors before.
    let (mut node, mut end) = (e, out.len());
    while let ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } = &node.kind {
        if end < 2 || !Rc::ptr_eq(out[end - 1].expr, rhs) {
            break;
        }
        end -= 1;
        out[end - 1].prefix = Some(lhs);
        node = lhs;
    }
}

/// Per family: the `prod` nodes whose body mentions a member (in order of
/// first occurrence, with the number of places each stands in the tree),
/// and the members that occur outside every `prod`.
#[allow(clippy::type_complexity)]
fn products(
    nodes: &[&Expr],
    ids: &FxHashMap<*const Expr, u32>,
) -> (FxHashMap<String, Vec<(u32, u64)>>, FxHashMap<String, Vec<u32>>) {
    let mut prods_of: FxHashMap<String, Vec<(u32, u64)>> = FxHashMap::default();
    let mut loose_of: FxHashMap<String, Vec<u32>> = FxHashMap::default();
    let has_prod = nodes.iter().any(|e| matches!(e.kind, ExprKind::Prod(_)));
    let has_member = nodes.iter().any(|e| matches!(&e.kind, ExprKind::Var(v) if v.index.is_some()));
    if !has_member {
        return (prods_of, loose_of);
    }
    // The number of paths from the root to each node, and whether one of
    // them passes no `prod`: parents before children (Kahn's order).
    let n = nodes.len();
    let mut parents = vec![0u32; n];
    for e in nodes {
        for c in e.children() {
            parents[ids[&(c as *const Expr)] as usize] += 1;
        }
    }
    let mut paths = vec![0u64; n];
    let mut outside = vec![false; n];
    paths[0] = 1;
    outside[0] = true;
    let mut ready = vec![0u32];
    while let Some(p) = ready.pop() {
        let e = nodes[p as usize];
        let through = outside[p as usize] && !matches!(e.kind, ExprKind::Prod(_));
        for c in e.children() {
            let c = ids[&(c as *const Expr)] as usize;
            paths[c] = paths[c].saturating_add(paths[p as usize]);
            outside[c] |= through;
            parents[c] -= 1;
            if parents[c] == 0 {
                ready.push(c as u32);
            }
        }
    }
    for (k, e) in nodes.iter().enumerate() {
        match &e.kind {
            ExprKind::Var(v) if v.index.is_some() && outside[k] => {
                loose_of.entry(v.name.clone()).or_default().push(k as u32);
            }
            ExprKind::Prod(prod) if has_prod => {
                let mut families = vec![];
                families_of(&prod.body, &mut families);
                for f in families {
                    prods_of.entry(f).or_default().push((k as u32, paths[k]));
                }
            }
            _ => {}
        }
    }
    (prods_of, loose_of)
}

/// The families whose members occur in `e`, each once.
fn families_of(e: &Expr, out: &mut Vec<String>) {
    e.for_each(|e| {
        if let ExprKind::Var(v) = &e.kind {
            if v.index.is_some() && !out.contains(&v.name) {
                out.push(v.name.clone());
            }
        }
    })
}
