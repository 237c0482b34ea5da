//! Writing the lowered graph out as [`PlanStep`]s in dependency order, with
//! their multiply-adds, and naming them (`value`, `dW1`, `S1`, `H1`, `T1`).

use std::collections::{HashMap, HashSet};

use rustc_hash::FxHashMap;

use super::cost;
use super::lower::{Atom, Graph, Node, NodeId};
use super::schedule::{Role, Schedule, Term};
use super::{Cost, Op, Operand, Plan, PlanInput, PlanStep, Value};
use crate::shape::Shape;
use crate::syntax::{Func, VarName};

/// Writes the graph out as steps.
pub(super) struct Writer<'a> {
    graph: &'a Graph,
    schedule: &'a Schedule,
    pub(super) inputs: Vec<PlanInput>,
    pub(super) steps: Vec<PlanStep>,
    values: FxHashMap<NodeId, Operand>,
    prod_steps: FxHashMap<u32, usize>,
    counters: HashMap<&'static str, usize>,
    taken: HashSet<String>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(graph: &'a Graph, schedule: &'a Schedule) -> Writer<'a> {
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

    pub(super) fn atom(&self, a: Atom) -> Operand {
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
        self.steps.push(PlanStep { out, op, shape, madds });
        Operand { value: Value::Step(self.steps.len() - 1), transposed: false }
    }

    pub(super) fn node(&mut self, n: NodeId) {
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
                self.inputs.push(PlanInput { var: v.clone(), shape });
                Operand { value: Value::Input(self.inputs.len() - 1), transposed: false }
            }
            Node::Num(bits) => Operand { value: Value::Num(f64::from_bits(*bits)), transposed: false },
            Node::Identity(_) => self.push("T", Op::Identity, shape, madds),
            Node::Ones(..) => self.push("T", Op::Ones, shape, madds),
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
                    Node::Max(x, y) => Op::Max(a(self, x), a(self, y)),
                    Node::Power(x, y) => Op::Power(a(self, x), a(self, y)),
                    Node::Min(x, y) => Op::Min(a(self, x), a(self, y)),
                    Node::Kron(x, y) => Op::Kron(a(self, x), a(self, y)),
                    Node::HadamardPower(x, p) => Op::HadamardPower(a(self, x), f64::from_bits(*p)),
                    Node::Div(x, y) => Op::Div(a(self, x), a(self, y)),
                    Node::Call(f, x) => Op::Call(*f, a(self, x)),
                    Node::Inverse(x) => Op::Inverse(a(self, x)),
                    Node::ScaleRows(v, x) => Op::ScaleRows(a(self, v), a(self, x)),
                    Node::ScaleCols(x, v) => Op::ScaleCols(a(self, x), a(self, v)),
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
            Term::Product(p, transposed) => {
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
                    Term::Product(r, _) if !self.prod_steps.contains_key(&r) => Some(r),
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
pub(super) fn identifier(v: &VarName) -> String {
    match &v.index {
        None => v.name.clone(),
        Some(i) => format!("{}_{}", v.name, i.to_string().replace('-', "m").replace('+', "p")),
    }
}

/// Gives each output's step the output's name (`value`, `dW1`) when the
/// output is that step as it is, then numbers the other steps of each kind
/// (`S`, `H`, `T`) from 1 in order.
pub(super) fn name_outputs(plan: &mut Plan) {
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

/// The multiply-adds of a node other than a chain, as interned dimensions:
/// entrywise products, scalings and divisions cost one per entry (a norm
/// one per entry of its argument); an inverse and a determinant (an LU
/// factorisation) n³; additions and entrywise functions are not counted.
pub(super) fn node_madds(graph: &Graph, n: NodeId) -> Option<[u32; 3]> {
    let [r, c] = graph.atom_dims(Atom::plain(n));
    match &graph.nodes[n as usize] {
        Node::Scale(..)
        | Node::Kron(..)
        | Node::Hadamard(..)
        | Node::HadamardDiv(..)
        | Node::HadamardPower(..)
        | Node::Power(..)
        | Node::ScaleRows(..)
        | Node::ScaleCols(..)
        | Node::Div(..) => Some([r, c, cost::NONE]),
        Node::Inverse(_) => Some([r, r, r]),
        Node::Call(Func::Det | Func::Logdet, x) => {
            let [k, _] = graph.atom_dims(*x);
            Some([k, k, k])
        }
        Node::Call(Func::Norm | Func::Norm1 | Func::Norm2, x) => {
            let [xr, xc] = graph.atom_dims(*x);
            Some([xr, xc, cost::NONE])
        }
        _ => None,
    }
}
