//! Bracketing every chain of the graph, jointly, so that products are
//! shared across outputs.
//!
//! The search space. The chains of a gradient set are, most of the time,
//! arcs of one cycle: the gradients of tr(Gᵀ W1⋯WnX) are the cycle
//! W1, …, Wn, X, Gᵀ with one element left out (transposed), and the forward
//! value is the arc without Gᵀ. Such a *family* is found from the words
//! alone (two chains are neighbours when one, shifted by a factor, is the
//! other). A family is computed by two sweeps that meet at a *cut* between
//! two neighbours c_e | c_{e+1} of the cycle: the left sweep builds the arcs
//! ending at c_e one factor at a time, the right sweep those starting at
//! c_{e+1}, and each target is one product of an arc from each (or an arc
//! itself). Every one of the m cuts is priced exactly, in O(m) each; the
//! cut beside the upstream gradient is standard backprop, the cut beside the
//! batch-contracting product `G Xᵀ` is "batch first". Chains outside
//! families are bracketed by the matrix-chain dynamic programme, where a
//! product that is already computed costs nothing. The planner builds both
//! the best-cut plan and the chain-by-chain plan and keeps the cheaper.
//!
//! Limits: a single cut per family (no plan that sweeps twice), and
//! chains longer than [`DP_LIMIT`] outside families are multiplied left to
//! right, right to left or outward from their narrowest inner dimension,
//! whichever is cheapest, sharing only the whole chain.

use std::collections::HashMap;

use rustc_hash::{FxHashMap, FxHashSet};

use super::cost::Tally;

use super::lower::{Atom, DimRef, Graph, Node, NodeId};
use crate::shape::Dim;

/// Longest chain bracketed by the O(L³) dynamic programme.
pub const DP_LIMIT: usize = 96;

/// A matrix value in a schedule: a factor of a chain, or a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Term {
    Atom(Atom),
    /// A product, transposed or not.
    Product(u32, bool),
}

impl Term {
    pub fn transposed(self) -> Term {
        match self {
            Term::Atom(a) => Term::Atom(a.transposed()),
            Term::Product(p, t) => Term::Product(p, !t),
        }
    }
}

/// Which sweep a product belongs to, for naming its step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The sweep towards the cut from the left (the forward sweep of backprop).
    Left,
    /// The sweep from the right of the cut (the backward sweep of backprop).
    Right,
    Other,
}

/// One binary matrix product, with its dimensions (rows, inner, columns).
#[derive(Clone, Debug)]
pub struct Product {
    pub left: Term,
    pub right: Term,
    pub role: Role,
    pub dims: [DimRef; 3],
}

/// How to bracket the chains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// The cheaper of the best cut of every family and chain by chain.
    #[default]
    Auto,
    /// Every family cut after its cycle element number `e` (mod its length).
    Cut(usize),
    /// Each chain bracketed on its own, reusing products already computed.
    ChainByChain,
}

/// What the planner chose for one family.
#[derive(Clone, Debug)]
pub struct FamilyChoice {
    pub cycle: Vec<Atom>,
    /// The chosen cut: between `cycle[cut]` and `cycle[cut + 1]`.
    pub cut: usize,
    /// The multiply-adds of each cut's products, as priced with the sizes.
    pub prices: Vec<f64>,
}

/// The bracketing of every chain.
#[derive(Debug)]
pub struct Schedule {
    pub prods: Vec<Product>,
    pub chains: FxHashMap<NodeId, Term>,
    pub families: Vec<FamilyChoice>,
    /// A schedule that is not written keeps the products of long chains
    /// here, as counts (when asked for a tally), instead of in `prods`.
    pub extra: Tally,
    extra_price: f64,
    extra_products: u128,
}

/// What a schedule is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// To be written out as steps: every product kept.
    Write,
    /// Only its price and number of products.
    Price,
    /// Its price, products, and a tally of their dimensions.
    Tally,
}

/// Brackets the chains (given children before parents). A schedule that is
/// not for [`Use::Write`] does not keep the inner products of long chains,
/// so it cannot be written out.
pub fn schedule(graph: &Graph, chains: &[NodeId], sizes: &Sizes, strategy: Strategy, usage: Use) -> Schedule {
    match strategy {
        // With one chain there is no family: both ways are one.
        Strategy::Auto if chains.len() <= 1 => Planner::new(graph, sizes, usage).run(chains, None),
        Strategy::Auto => {
            let joint = Planner::new(graph, sizes, usage).run(chains, Some(None));
            let alone = Planner::new(graph, sizes, Use::Price).run(chains, None);
            if alone.price(sizes) < joint.price(sizes) {
                Planner::new(graph, sizes, usage).run(chains, None)
            } else {
                joint
            }
        }
        Strategy::Cut(e) => Planner::new(graph, sizes, usage).run(chains, Some(Some(e))),
        Strategy::ChainByChain => Planner::new(graph, sizes, usage).run(chains, None),
    }
}

/// Sizes for pricing: a number for every interned dimension of the graph
/// (given, or a default), and the nodes that may seed a sweep when prices
/// tie, best first (the upstream `G`, then computed values such as a
/// residual; never a variable being differentiated).
pub struct Sizes {
    pub values: Vec<f64>,
    pub seeds: Vec<NodeId>,
}

impl Sizes {
    pub fn new(graph: &Graph, known: &HashMap<String, f64>, default: f64, seeds: Vec<NodeId>) -> Sizes {
        let values = graph
            .dims
            .iter()
            .map(|d| match d {
                Dim::Const(n) => *n as f64,
                d => known.get(&d.to_string()).copied().unwrap_or(default),
            })
            .collect();
        Sizes { values, seeds }
    }

    fn dim(&self, d: DimRef) -> f64 {
        self.values[d as usize]
    }
}

impl Schedule {
    /// Multiply-adds of all products, priced with the sizes.
    fn price(&self, sizes: &Sizes) -> f64 {
        let kept: f64 =
            self.prods.iter().map(|p| p.dims.iter().map(|&d| sizes.dim(d)).product::<f64>()).sum();
        kept + self.extra_price
    }

    /// The number of matrix products, kept or counted.
    pub fn products(&self) -> u128 {
        self.prods.len() as u128 + self.extra_products
    }

    /// Every product, kept or counted, as a tally of dimensions.
    pub fn tally(&self) -> Tally {
        let mut t = self.extra.clone();
        for p in &self.prods {
            t.add(p.dims);
        }
        t
    }
}

/// Rows and columns of a term.
pub fn term_dims(graph: &Graph, prods: &[Product], t: Term) -> [DimRef; 2] {
    match t {
        Term::Atom(a) => graph.atom_dims(a),
        Term::Product(p, t) => {
            let [r, _, c] = prods[p as usize].dims;
            if t {
                [c, r]
            } else {
                [r, c]
            }
        }
    }
}

/// A rolling hash of a word: `h(a1..ak) = Σ c(ai)·B^(k-i)` (wrapping).
const BASE: u64 = 0x9E37_79B9_7F4A_7C15;

fn code(a: Atom) -> u64 {
    // splitmix64 of the atom, so that neighbouring ids spread.
    let mut z = (u64::from(a.node) << 1 | u64::from(a.t)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fingerprint(word: &[Atom]) -> u64 {
    word.iter().fold(0u64, |h, &a| h.wrapping_mul(BASE).wrapping_add(code(a)))
}

/// Prefix hashes of a word: the fingerprint of any interval in O(1).
struct Prefix {
    hashes: Vec<u64>,
    powers: Vec<u64>,
}

impl Prefix {
    fn new(word: &[Atom]) -> Prefix {
        let mut hashes = vec![0u64];
        let mut powers = vec![1u64];
        for &a in word {
            hashes.push(hashes.last().expect("seeded").wrapping_mul(BASE).wrapping_add(code(a)));
            powers.push(powers.last().expect("seeded").wrapping_mul(BASE));
        }
        Prefix { hashes, powers }
    }

    /// The fingerprint of `word[i..=j]`.
    fn interval(&self, i: usize, j: usize) -> u64 {
        self.hashes[j + 1].wrapping_sub(self.hashes[i].wrapping_mul(self.powers[j + 1 - i]))
    }
}

fn reversed(word: &[Atom]) -> Vec<Atom> {
    word.iter().rev().map(|a| a.transposed()).collect()
}

/// A family: a cycle, and the chains that are arcs of it missing one element.
struct Family {
    cycle: Vec<Atom>,
    /// (chain, the element it misses, whether the chain reads the arc backwards).
    targets: Vec<(NodeId, usize, bool)>,
}

struct Planner<'g> {
    graph: &'g Graph,
    sizes: &'g Sizes,
    prods: Vec<Product>,
    words: FxHashMap<Vec<Atom>, Term>,
    /// Fingerprints of `words`, so that the programme asks about each of a
    /// chain's O(L²) intervals in O(1) (a miss here is a miss there).
    fingerprints: FxHashSet<u64>,
    usage: Use,
    extra: Tally,
    extra_price: f64,
    extra_products: u128,
}

impl<'g> Planner<'g> {
    fn new(graph: &'g Graph, sizes: &'g Sizes, usage: Use) -> Planner<'g> {
        Planner {
            graph,
            sizes,
            prods: vec![],
            words: FxHashMap::default(),
            fingerprints: FxHashSet::default(),
            usage,
            extra: Tally::default(),
            extra_price: 0.0,
            extra_products: 0,
        }
    }

    fn word(&self, chain: NodeId) -> &'g [Atom] {
        match &self.graph.nodes[chain as usize] {
            Node::Chain(w) => w,
            _ => unreachable!("a chain node"),
        }
    }

    /// `cut`: None for chain by chain; Some(None) for the best cut of each
    /// family; Some(Some(e)) for cut e everywhere.
    fn run(mut self, chains: &[NodeId], cut: Option<Option<usize>>) -> Schedule {
        let mut terms = FxHashMap::default();
        let mut families = vec![];
        if let Some(cut) = cut {
            for family in self.families(chains) {
                let prices = self.prices(&family);
                let e = match cut {
                    Some(e) => e % family.cycle.len(),
                    None => self.best_cut(&family, &prices),
                };
                self.sweep(&family, e, &mut terms);
                families.push(FamilyChoice { cycle: family.cycle, cut: e, prices });
            }
        }
        for &c in chains {
            if let std::collections::hash_map::Entry::Vacant(slot) = terms.entry(c) {
                slot.insert(self.bracket(self.word(c)));
            }
        }
        Schedule {
            prods: self.prods,
            chains: terms,
            families,
            extra: self.extra,
            extra_price: self.extra_price,
            extra_products: self.extra_products,
        }
    }

    /// The product `l · r` whose factors are `word`, or the one already made.
    fn product(&mut self, l: Term, r: Term, word: Vec<Atom>, role: Role) -> Term {
        if let Some(&t) = self.words.get(&word) {
            return t;
        }
        let Term::Product(id, _) = self.unshared(l, r, role) else { unreachable!("a product") };
        let back = reversed(&word);
        if back != word {
            self.fingerprints.insert(fingerprint(&back));
            self.words.insert(back, Term::Product(id, true));
        }
        self.fingerprints.insert(fingerprint(&word));
        self.words.insert(word, Term::Product(id, false));
        Term::Product(id, false)
    }

    /// The product `l · r`, not registered for sharing (the inner products
    /// of a long chain, which nothing else could reuse at a price worth the
    /// memory of remembering them).
    fn unshared(&mut self, l: Term, r: Term, role: Role) -> Term {
        let [rows, inner] = term_dims(self.graph, &self.prods, l);
        let [_, cols] = term_dims(self.graph, &self.prods, r);
        let id = self.prods.len() as u32;
        self.prods.push(Product { left: l, right: r, role, dims: [rows, inner, cols] });
        Term::Product(id, false)
    }

    fn dims(&self, a: Atom) -> (f64, f64) {
        let [r, c] = self.graph.atom_dims(a);
        (self.sizes.dim(r), self.sizes.dim(c))
    }

    /// Groups chains of equal length into families.
    fn families(&self, chains: &[NodeId]) -> Vec<Family> {
        let mut by_len: FxHashMap<usize, Vec<NodeId>> = FxHashMap::default();
        for &c in chains {
            by_len.entry(self.word(c).len()).or_default().push(c);
        }
        let mut lengths: Vec<_> = by_len.into_iter().filter(|(_, cs)| cs.len() >= 2).collect();
        lengths.sort_by_key(|(l, _)| std::cmp::Reverse(*l));
        let mut out = vec![];
        for (len, group) in lengths {
            // Each orientation of each chain, by its first len-1 factors.
            let mut heads: FxHashMap<&[Atom], Vec<(NodeId, bool)>> = FxHashMap::default();
            let backs: FxHashMap<NodeId, Vec<Atom>> =
                group.iter().map(|&c| (c, reversed(self.word(c)))).collect();
            for &c in &group {
                heads.entry(&self.word(c)[..len - 1]).or_default().push((c, false));
                heads.entry(&backs[&c][..len - 1]).or_default().push((c, true));
            }
            let mut assigned: FxHashSet<NodeId> = FxHashSet::default();
            for &a in &group {
                if assigned.contains(&a) {
                    continue;
                }
                let orientations = [self.word(a), &backs[&a][..]];
                let next = orientations.iter().find_map(|w| {
                    let tail = &w[1..];
                    let (b, back) = heads.get(tail)?.iter().find(|(b, _)| *b != a)?;
                    let bw = if *back { &backs[b][..] } else { self.word(*b) };
                    Some((w.to_vec(), bw[len - 1]))
                });
                let Some((mut cycle, missing)) = next else { continue };
                // `a` misses the element after its last; put it first.
                cycle.insert(0, missing);
                let m = cycle.len();
                let mut arcs: FxHashMap<Vec<Atom>, usize> = FxHashMap::default();
                for k in (0..m).rev() {
                    let arc: Vec<Atom> = (1..m).map(|s| cycle[(k + s) % m]).collect();
                    arcs.insert(arc, k);
                }
                let mut targets = vec![];
                for &b in &group {
                    if assigned.contains(&b) {
                        continue;
                    }
                    let hit = arcs
                        .get(self.word(b))
                        .map(|&k| (k, false))
                        .or_else(|| arcs.get(&backs[&b]).map(|&k| (k, true)));
                    if let Some((k, back)) = hit {
                        targets.push((b, k, back));
                    }
                }
                if targets.len() >= 2 {
                    assigned.extend(targets.iter().map(|t| t.0));
                    out.push(Family { cycle, targets });
                }
            }
        }
        out
    }

    /// The multiply-adds of the plan cut after each element: O(m) per cut.
    fn prices(&self, f: &Family) -> Vec<f64> {
        let m = f.cycle.len();
        let dims: Vec<(f64, f64)> = f.cycle.iter().map(|&a| self.dims(a)).collect();
        let at = |i: isize| dims[i.rem_euclid(m as isize) as usize];
        (0..m as isize)
            .map(|e| {
                let (mut left, mut right, mut meets) = (0, 0, 0.0);
                for &(_, k, _) in &f.targets {
                    let a = (e - k as isize).rem_euclid(m as isize) as usize;
                    let b = m - 1 - a;
                    left = left.max(a);
                    right = right.max(b);
                    if a > 0 && b > 0 {
                        meets += at(k as isize + 1).0 * at(e).1 * at(k as isize - 1).1;
                    }
                }
                let sweep_left: f64 =
                    (2..=left as isize).map(|l| at(e - l + 1).0 * at(e - l + 1).1 * at(e).1).sum();
                let sweep_right: f64 =
                    (2..=right as isize).map(|l| at(e + 1).0 * at(e + l).0 * at(e + l).1).sum();
                sweep_left + sweep_right + meets
            })
            .collect()
    }

    /// The cheapest cut; among equal prices, the one whose right side
    /// starts at the best seed (standard backprop when sizes are unknown).
    fn best_cut(&self, f: &Family, prices: &[f64]) -> usize {
        let m = f.cycle.len();
        let min = prices.iter().copied().fold(f64::INFINITY, f64::min);
        let tied = |e: &usize| prices[*e] <= min * (1.0 + 1e-12);
        let rank = |e: &usize| {
            let node = f.cycle[(*e + 1) % m].node;
            let seed = self.sizes.seeds.iter().position(|&s| s == node);
            (seed.unwrap_or(usize::MAX), *e)
        };
        (0..m).filter(tied).min_by_key(rank).unwrap_or(0)
    }

    /// The two sweeps of a family cut after element `e`, and its targets.
    fn sweep(&mut self, f: &Family, e: usize, terms: &mut FxHashMap<NodeId, Term>) {
        let m = f.cycle.len();
        let c = |i: isize| f.cycle[i.rem_euclid(m as isize) as usize];
        let e = e as isize;
        let lengths = |k: usize| {
            let a = (e - k as isize).rem_euclid(m as isize) as usize;
            (a, m - 1 - a)
        };
        let left_len = f.targets.iter().map(|t| lengths(t.1).0).max().unwrap_or(0);
        let right_len = f.targets.iter().map(|t| lengths(t.1).1).max().unwrap_or(0);

        // Arcs ending at c_e (left) and starting at c_{e+1} (right), in cycle
        // orientation; each stored with its seed untransposed.
        let mut left = vec![(Term::Atom(c(e)), vec![c(e)])];
        for l in 2..=left_len as isize {
            let (prev, prev_word) = left.last().expect("seeded").clone();
            let new = c(e - l + 1);
            let mut word = vec![new];
            word.extend_from_slice(&prev_word);
            let t = if c(e).t {
                self.product(prev.transposed(), Term::Atom(new.transposed()), reversed(&word), Role::Left)
                    .transposed()
            } else {
                self.product(Term::Atom(new), prev, word.clone(), Role::Left)
            };
            left.push((t, word));
        }
        let mut right = vec![(Term::Atom(c(e + 1)), vec![c(e + 1)])];
        for l in 2..=right_len as isize {
            let (prev, prev_word) = right.last().expect("seeded").clone();
            let new = c(e + l);
            let mut word = prev_word;
            word.push(new);
            let t = if c(e + 1).t {
                self.product(Term::Atom(new.transposed()), prev.transposed(), reversed(&word), Role::Right)
                    .transposed()
            } else {
                self.product(prev, Term::Atom(new), word.clone(), Role::Right)
            };
            right.push((t, word));
        }
        for &(chain, k, back) in &f.targets {
            let (a, b) = lengths(k);
            let t = match (a, b) {
                (0, b) => right[b - 1].0,
                (a, 0) => left[a - 1].0,
                (a, b) => {
                    let (l, lw) = &left[a - 1];
                    let (r, rw) = &right[b - 1];
                    let mut word = lw.clone();
                    word.extend_from_slice(rw);
                    if back {
                        let t = self.product(r.transposed(), l.transposed(), reversed(&word), Role::Other);
                        terms.insert(chain, t);
                        continue;
                    }
                    self.product(*l, *r, word, Role::Other)
                }
            };
            terms.insert(chain, if back { t.transposed() } else { t });
        }
    }

    /// One chain on its own: the matrix-chain programme, where a product
    /// already made costs nothing.
    fn bracket(&mut self, w: &[Atom]) -> Term {
        let n = w.len();
        if n > DP_LIMIT {
            return self.sequential(w);
        }
        let dims: Vec<(f64, f64)> = w.iter().map(|&a| self.dims(a)).collect();
        let prefix = Prefix::new(w);
        // cost[i][j], split[i][j] over factors i..=j.
        let mut cost = vec![vec![0.0f64; n]; n];
        let mut split = vec![vec![usize::MAX; n]; n];
        for len in 2..=n {
            for i in 0..=n - len {
                let j = i + len - 1;
                if self.fingerprints.contains(&prefix.interval(i, j)) && self.words.contains_key(&w[i..=j]) {
                    continue; // made already: cost 0, no split
                }
                let mut best = (f64::INFINITY, i);
                for k in i..j {
                    let c = cost[i][k] + cost[k + 1][j] + dims[i].0 * dims[k].1 * dims[j].1;
                    if c < best.0 {
                        best = (c, k);
                    }
                }
                cost[i][j] = best.0;
                split[i][j] = best.1;
            }
        }
        self.build(w, 0, n - 1, &split)
    }

    fn build(&mut self, w: &[Atom], i: usize, j: usize, split: &[Vec<usize>]) -> Term {
        // Explicit recursion: this walks the table of splits, not an `Expr`.
        crate::stack::ensure(|| {
            if i == j {
                return Term::Atom(w[i]);
            }
            if split[i][j] == usize::MAX {
                if let Some(&t) = self.words.get(&w[i..=j]) {
                    return t;
                }
            }
            let k = split[i][j];
            let l = self.build(w, i, k, split);
            let r = self.build(w, k + 1, j, split);
            self.product(l, r, w[i..=j].to_vec(), Role::Other)
        })
    }

    /// A long chain: left to right, right to left, or outward from its
    /// narrowest inner dimension (both sides grown from there, as backprop
    /// does), the cheapest. Only the whole chain is shared; a planner that
    /// does not write counts the inner products.
    fn sequential(&mut self, w: &[Atom]) -> Term {
        let n = w.len();
        if let Some(&t) = self.words.get(w) {
            return t;
        }
        let dims: Vec<[DimRef; 2]> = w.iter().map(|&a| self.graph.atom_dims(a)).collect();
        // The products of each order, as (rows, inner, columns).
        let ltr: Vec<[DimRef; 3]> = (1..n).map(|k| [dims[0][0], dims[k][0], dims[k][1]]).collect();
        let rtl: Vec<[DimRef; 3]> =
            (0..n - 1).rev().map(|k| [dims[k][0], dims[k][1], dims[n - 1][1]]).collect();
        let p = (0..n - 1)
            .min_by(|&a, &b| self.sizes.dim(dims[a][1]).total_cmp(&self.sizes.dim(dims[b][1])))
            .expect("two factors or more");
        let mut outward: Vec<[DimRef; 3]> =
            (0..p).rev().map(|k| [dims[k][0], dims[k][1], dims[p][1]]).collect();
        outward.extend((p + 2..n).map(|k| [dims[p + 1][0], dims[k][0], dims[k][1]]));
        outward.push([dims[0][0], dims[p][1], dims[n - 1][1]]);
        let price = |order: &[[DimRef; 3]]| -> f64 {
            order.iter().map(|d| d.iter().map(|&x| self.sizes.dim(x)).product::<f64>()).sum()
        };
        let orders = [(price(&ltr), 0), (price(&rtl), 1), (price(&outward), 2)];
        let (best, which) = orders.into_iter().min_by(|a, b| a.0.total_cmp(&b.0)).expect("three orders");
        if self.usage != Use::Write {
            if self.usage == Use::Tally {
                for d in [&ltr, &rtl, &outward][which] {
                    self.extra.add(*d);
                }
            }
            self.extra_price += best;
            self.extra_products += n as u128 - 1;
            // Never written out: a placeholder that shares the whole chain.
            let t = Term::Atom(w[0]);
            self.fingerprints.insert(fingerprint(w));
            self.words.insert(w.to_vec(), t);
            return t;
        }
        let atom = |k: usize| Term::Atom(w[k]);
        match which {
            0 => {
                let mut t = atom(0);
                for k in 1..n - 1 {
                    t = self.unshared(t, atom(k), Role::Other);
                }
                self.product(t, atom(n - 1), w.to_vec(), Role::Other)
            }
            1 => {
                let mut t = atom(n - 1);
                for k in (1..n - 1).rev() {
                    t = self.unshared(atom(k), t, Role::Other);
                }
                self.product(atom(0), t, w.to_vec(), Role::Other)
            }
            _ => {
                let mut left = atom(p);
                for k in (0..p).rev() {
                    left = self.unshared(atom(k), left, Role::Other);
                }
                let mut right = atom(p + 1);
                for k in p + 2..n {
                    right = self.unshared(right, atom(k), Role::Other);
                }
                self.product(left, right, w.to_vec(), Role::Other)
            }
        }
    }
}
