//! The plan's intermediate representation: a straight-line program of
//! [`PlanStep`]s over [`PlanInput`]s, with its [`Output`]s and the [`Sweeps`] the
//! planner chose.

use super::Cost;
use crate::shape::{Dim, Shape};
use crate::syntax::{Expr, Func, VarName};

/// A value a step reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// The plan's input number k.
    Input(usize),
    /// The result of step number k.
    Step(usize),
    /// A literal number.
    Num(f64),
}

/// A value, used as it is or transposed (a transpose costs nothing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Operand {
    /// The value read.
    pub value: Value,
    /// Whether it is read transposed.
    pub transposed: bool,
}

/// One matrix operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A matrix product.
    MatMul(Operand, Operand),
    /// A 1×1 value times a matrix.
    Scale(Operand, Operand),
    /// A sum.
    Add(Operand, Operand),
    /// A difference.
    Sub(Operand, Operand),
    /// A negation.
    Neg(Operand),
    /// An entrywise product.
    Hadamard(Operand, Operand),
    /// An entrywise quotient.
    HadamardDiv(Operand, Operand),
    /// The entrywise maximum.
    Max(Operand, Operand),
    /// `a .^ b`, every entry of a to the 1×1 power b.
    Power(Operand, Operand),
    /// The entrywise minimum.
    Min(Operand, Operand),
    /// The Kronecker product.
    Kron(Operand, Operand),
    /// An entrywise power.
    HadamardPower(Operand, f64),
    /// Division by a 1×1 value.
    Div(Operand, Operand),
    /// A function applied to one operand.
    Call(Func, Operand),
    /// The inverse of a square matrix.
    Inverse(Operand),
    /// `diag(v) * M`: the column v (n×1) scaling the rows of M.
    ScaleRows(Operand, Operand),
    /// `M * diag(v)`: the column v (n×1) scaling the columns of M.
    ScaleCols(Operand, Operand),
    /// The identity of the step's shape.
    Identity,
    /// The matrix of ones of the step's shape.
    Ones,
}

impl Op {
    /// The values the operation reads, in order.
    pub fn operands(&self) -> Vec<Operand> {
        match self {
            Op::MatMul(a, b)
            | Op::Scale(a, b)
            | Op::Add(a, b)
            | Op::Sub(a, b)
            | Op::Hadamard(a, b)
            | Op::HadamardDiv(a, b)
            | Op::Max(a, b)
            | Op::Power(a, b)
            | Op::Min(a, b)
            | Op::Kron(a, b)
            | Op::ScaleRows(a, b)
            | Op::ScaleCols(a, b)
            | Op::Div(a, b) => vec![*a, *b],
            Op::Neg(a) | Op::HadamardPower(a, _) | Op::Call(_, a) | Op::Inverse(a) => vec![*a],
            Op::Identity | Op::Ones => vec![],
        }
    }
}

/// One line of a plan: `out = op`, with the result's shape and the
/// multiply-adds it takes.
#[derive(Clone, Debug)]
pub struct PlanStep {
    /// The name of the result (`t1`, `dW1`).
    pub out: String,
    /// The operation.
    pub op: Op,
    /// The result's shape.
    pub shape: Shape,
    /// The step's multiply-adds.
    pub madds: Cost,
}

/// A variable the plan reads.
#[derive(Clone, Debug)]
pub struct PlanInput {
    /// The variable.
    pub var: VarName,
    /// Its shape.
    pub shape: Shape,
}

/// A result of the plan: the forward value (`wrt` is None) or a gradient.
#[derive(Clone, Debug)]
pub struct Output {
    /// The variable this is the gradient with respect to; None for the forward value.
    pub wrt: Option<VarName>,
    /// Where the result is.
    pub operand: Operand,
    /// The result's shape.
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
    /// The expression planned, as the program wrote it.
    pub expr: Expr,
    /// The variables the plan reads; `Value::Input(k)` is `inputs[k]`.
    pub inputs: Vec<PlanInput>,
    /// The steps, in order; `Value::Step(k)` is `steps[k]`.
    pub steps: Vec<PlanStep>,
    /// The results: the forward value and the gradients.
    pub outputs: Vec<Output>,
    /// Multiply-adds of all steps.
    pub total: Cost,
    /// Multiply-adds of the forward value alone.
    pub forward: Cost,
    /// Multiply-adds of computing the value and each gradient on its own;
    /// None when that polynomial would have more than [`MAX_COST_TERMS`](super::MAX_COST_TERMS)
    /// terms (a long chain with symbolic sizes has one per pair of factors).
    pub separate: Option<Cost>,
    /// Matrix products of computing the value and each gradient on its own.
    pub separate_products: u128,
    /// The chain families computed by two sweeps.
    pub sweeps: Vec<Sweeps>,
}

impl Plan {
    /// The number of matrix products.
    pub fn products(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s.op, Op::MatMul(..))).count()
    }

    /// Multiply-adds of the forward value's steps that read `var`, directly or
    /// through other steps: what evaluating the value again costs when that
    /// variable alone changes and everything else is held. The whole forward
    /// cost for a variable the plan does not read.
    pub fn forward_varying(&self, var: &VarName) -> Cost {
        let (Some(input), Some(forward)) =
            (self.inputs.iter().position(|i| &i.var == var), self.outputs.iter().find(|o| o.wrt.is_none()))
        else {
            return self.forward.clone();
        };
        let n = self.steps.len();
        let mut needed = vec![false; n];
        if let Value::Step(k) = forward.operand.value {
            needed[k] = true;
        }
        for k in (0..n).rev() {
            if needed[k] {
                for o in self.steps[k].op.operands() {
                    if let Value::Step(j) = o.value {
                        needed[j] = true;
                    }
                }
            }
        }
        let mut reads = vec![false; n];
        for (k, s) in self.steps.iter().enumerate() {
            reads[k] = s.op.operands().iter().any(|o| match o.value {
                Value::Input(i) => i == input,
                Value::Step(j) => reads[j],
                Value::Num(_) => false,
            });
        }
        self.steps
            .iter()
            .enumerate()
            .filter(|(k, _)| needed[*k] && reads[*k])
            .map(|(_, s)| s.madds.clone())
            .sum()
    }

    /// For each step k, the steps whose values are dead once k has run:
    /// those k reads last, and k itself if no step reads it; never an
    /// output. What an evaluator frees as it goes.
    pub fn dead_after(&self) -> Vec<Vec<usize>> {
        let n = self.steps.len();
        let mut last: Vec<usize> = (0..n).collect();
        for (k, s) in self.steps.iter().enumerate() {
            for o in s.op.operands() {
                if let Value::Step(j) = o.value {
                    last[j] = last[j].max(k);
                }
            }
        }
        let mut kept = vec![false; n];
        for o in &self.outputs {
            if let Value::Step(j) = o.operand.value {
                kept[j] = true;
            }
        }
        let mut dead = vec![vec![]; n];
        for j in (0..n).filter(|&j| !kept[j]) {
            dead[last[j]].push(j);
        }
        dead
    }

    /// The most entries the steps' values hold at once, each freed after
    /// its last read ([`Plan::dead_after`]) and the outputs kept to the
    /// end; `None` where a step's size is not a number, or the count passes
    /// u128. (The inputs, held throughout, are not counted.)
    pub fn peak_entries(&self) -> Option<u128> {
        let size = |k: usize| -> Option<u128> {
            let s = &self.steps[k].shape;
            match (&s.rows, &s.cols) {
                (Dim::Const(r), Dim::Const(c)) => u128::from(*r).checked_mul(u128::from(*c)),
                _ => None,
            }
        };
        let (mut live, mut peak) = (0u128, 0u128);
        for (k, dead) in self.dead_after().iter().enumerate() {
            live = live.checked_add(size(k)?)?;
            peak = peak.max(live);
            for &j in dead {
                live -= size(j)?;
            }
        }
        Some(peak)
    }
}
