//! Matrix differentials: the contribution of every occurrence of a variable,
//! each brought to the form tr(Aᵀ dV) and read off as ∂L/∂V += A.
//!
//! Entry point: [`differentiate`]. Walking from the root to an occurrence,
//! the current statement is always `dL = tr(Aᵀ dE) + …` for the subexpression
//! E on the path; each node rewrites it for its child by one identity
//! (product rule with the other factors frozen and a cyclic rotation, the
//! transpose of a trace, linearity). At the variable itself, A is the
//! contribution. Every rewrite is kept as a [`Step`], so explanations are a
//! rendering of the record, not a second derivation.

mod occurrences;
mod rules;
pub mod second;

use std::rc::Rc;

pub use occurrences::Occurrences;

use crate::error::{Error, ErrorKind, Result};
use crate::shape::Typing;
use crate::syntax::{BinOp, Expr, ExprKind, Func, Index, Span, VarName};

/// How the loss L relates to the expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// The expression is the scalar L itself: dL = tr(1ᵀ dL).
    Scalar,
    /// The expression Z is a layer inside some loss, with the upstream
    /// gradient G = ∂L/∂Z: dL = tr(Gᵀ dZ).
    Layer {
        /// The name of the upstream gradient G.
        upstream: VarName,
    },
}

/// The identity applied at one step of the walk to an occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// dL = tr(Gᵀ dZ) (layer) or dL = tr(1ᵀ dL) (scalar).
    Start,
    /// d(A + B) = dA + dB.
    Sum,
    /// d(-A) = -dA.
    Negation,
    /// A scalar s broadcast over a matrix.
    Broadcast,
    /// Product rule with the other factors frozen, then cyclic rotation.
    Product,
    /// A 1×1 factor of a product.
    Scaling,
    /// tr(Aᵀ dFᵀ) = tr((Aᵀ)ᵀ dF).
    Transpose,
    /// a tr(dF) = tr((a I)ᵀ dF).
    Trace,
    /// d(X⁻¹) = -X⁻¹ dX X⁻¹.
    Inverse,
    /// d(Xᵏ) = Σᵢ Xⁱ dX Xᵏ⁻¹⁻ⁱ.
    Power,
    /// d det(X) = det(X) tr(X⁻¹ dX).
    Det,
    /// d logdet(X) = tr(X⁻¹ dX).
    Logdet,
    /// d sum(X) = tr(1ᵀ dX).
    SumEntries,
    /// d norm(X) = tr(Xᵀ dX) / norm(X).
    Norm,
    /// d norm(X)² = 2 tr(Xᵀ dX).
    NormSquared,
    /// d norm1(X) = tr(sign(X)ᵀ dX), away from zero entries.
    Norm1,
    /// d diag(x) = diag(dx) for a vector x: tr(Aᵀ diag(dx)) = tr(diag(A)ᵀ dx).
    DiagOfVector,
    /// d diag(X) = diag(dX) for a square X: tr(aᵀ diag(dX)) = tr(diag(a)ᵀ dX).
    DiagOfMatrix,
    /// d(X ⊙ Y) = dX ⊙ Y + X ⊙ dY.
    Hadamard,
    /// d(X ⊘ Y) = dX ⊘ Y - X ⊙ dY ⊘ Y⊙Y.
    HadamardDiv,
    /// d(X .^ p) = p X .^ (p-1) ⊙ dX.
    HadamardPower,
    /// d(X .^ p) = p X .^ (p-1) ⊙ dX + X .^ p ⊙ log(X) dp, p a scalar expression.
    ScalarPower,
    /// d(X / s) = dX / s - X ds / s².
    Division,
    /// d f(U) = f′(U) ⊙ dU, then tr(Aᵀ(B ⊙ C)) = tr((A ⊙ B)ᵀ C).
    Entrywise(Func),
    /// d max(X, Y) = (1 - step(Y - X)) .* dX + step(Y - X) .* dY.
    Max,
    /// d min(X, Y) = (1 - step(X - Y)) .* dX + step(X - Y) .* dY.
    Min,
    /// prod(F, i=a..b) = prod(F, i=a..j-1) F(j) prod(F, i=j+1..b), a ≤ j ≤ b.
    ProdSplit,
    /// d sum(X, 1) = 1ᵀ dX: tr(Aᵀ 1ᵀ dX) = tr((1 A)ᵀ dX).
    SumColumns,
    /// d sum(X, 2) = dX 1: tr(Aᵀ dX 1) = tr((A 1ᵀ)ᵀ dX).
    SumRows,
    /// Each column: d softmax(z) = (diag(s) - s sᵀ) dz.
    Softmax,
    /// Each column: d logsumexp(z) = softmax(z)ᵀ dz.
    Logsumexp,
    /// Each column: d log(softmax(z)) = dz - 1 softmax(z)ᵀ dz.
    LogSoftmax,
    /// d kron(X, Y) = kron(dX, Y) + kron(X, dY), each read off by summing blocks.
    Kron,
    /// d vec(X) = vec(dX): tr(aᵀ vec(dX)) = tr(unvec(a)ᵀ dX).
    Vec,
}

impl Rule {
    /// The identity, as a user reads it in an explanation.
    pub fn identity(self) -> &'static str {
        match self {
            Rule::Start => "dL = tr(G^T dZ)",
            Rule::Sum => "d(A + B) = dA + dB",
            Rule::Negation => "d(-A) = -dA",
            Rule::Broadcast => "tr(A^T (ds 1)) = ds sum(A)",
            Rule::Product => "tr(A^T P dF S) = tr((P^T A S^T)^T dF)",
            Rule::Scaling => "tr(A^T ds R) = ds tr(A^T R)",
            Rule::Transpose => "tr(A^T dF^T) = tr((A^T)^T dF)",
            Rule::Trace => "a tr(dF) = tr((a I)^T dF)",
            Rule::Inverse => "d(X^-1) = -X^-1 dX X^-1",
            Rule::Power => "d(X^k) = sum_i X^i dX X^(k-1-i)",
            Rule::Det => "d det(X) = det(X) tr(X^-1 dX)",
            Rule::Logdet => "d logdet(X) = tr(X^-1 dX)",
            Rule::SumEntries => "d sum(X) = tr(1^T dX)",
            Rule::Norm => "d norm(X) = tr(X^T dX) / norm(X)",
            Rule::NormSquared => "d norm(X)^2 = 2 tr(X^T dX)",
            Rule::Norm1 => "d norm1(X) = tr(sign(X)^T dX), where no entry of X is 0",
            Rule::DiagOfVector => "tr(A^T diag(dx)) = tr(diag(A)^T dx) for a vector x",
            Rule::DiagOfMatrix => "tr(a^T diag(dX)) = tr(diag(a)^T dX) for a square X",
            Rule::Hadamard => "d(X .* Y) = dX .* Y + X .* dY",
            Rule::HadamardDiv => "d(X ./ Y) = dX ./ Y - X .* dY ./ Y .^ 2",
            Rule::HadamardPower => "d(X .^ p) = p X .^ (p-1) .* dX",
            Rule::ScalarPower => "d(X .^ p) = p X .^ (p-1) .* dX + X .^ p .* log(X) dp   (X > 0 where p varies)",
            Rule::Division => "d(X / s) = dX / s - X ds / s^2",
            Rule::Max => {
                "d max(X, Y) = (1 - step(Y - X)) .* dX + step(Y - X) .* dY   (the larger side; a tie, a kink, to X, or to Y if Y is a constant)"
            }
            Rule::Min => {
                "d min(X, Y) = (1 - step(X - Y)) .* dX + step(X - Y) .* dY   (the smaller side; a tie, a kink, to X, or to Y if Y is a constant)"
            }
            Rule::ProdSplit => "prod(F, i=a..b) = prod(F, i=a..j-1) * F(j) * prod(F, i=j+1..b)",
            Rule::SumColumns => "d sum(X, 1) = ones(m)^T dX, so tr(A^T ones(m)^T dX) = tr((ones(m) A)^T dX)",
            Rule::SumRows => "d sum(X, 2) = dX ones(n), so tr(A^T dX ones(n)) = tr((A ones(n)^T)^T dX)",
            Rule::Softmax => "d softmax(z) = s .* dz - s (s^T dz) for each column z, s = softmax(z)",
            Rule::Logsumexp => "d logsumexp(z) = softmax(z)^T dz for each column z",
            Rule::LogSoftmax => "d log(softmax(z)) = dz - ones(m) softmax(z)^T dz for each column z",
            Rule::Kron => {
                "d kron(X, Y) = kron(dX, Y) + kron(X, dY); tr(A^T kron(dX, Y)) sums each p x q block of A .* kron(ones(m, n), Y), tr(A^T kron(X, dY)) sums the blocks of A .* kron(X, ones(p, q))"
            }
            Rule::Vec => "d vec(X) = vec(dX), so tr(a^T vec(dX)) = tr(unvec(a)^T dX), unvec(a) the m x n matrix of the columns of a",
            Rule::Entrywise(f) => match f {
                Func::Exp => "d exp(U) = exp(U) .* dU",
                Func::Log => "d log(U) = dU ./ U",
                Func::Sqrt => "d sqrt(U) = 0.5 ./ sqrt(U) .* dU",
                Func::Sin => "d sin(U) = cos(U) .* dU",
                Func::Cos => "d cos(U) = -sin(U) .* dU",
                Func::Tanh => "d tanh(U) = (1 - tanh(U) .^ 2) .* dU",
                Func::Sigmoid => "d sigmoid(U) = sigmoid(U) .* (1 - sigmoid(U)) .* dU",
                Func::Relu => "d relu(U) = step(U) .* dU   (relu has a kink at 0, where it has no derivative)",
                Func::Abs => "d abs(U) = sign(U) .* dU   (abs has a kink at 0, where it has no derivative)",
                Func::Sign => "d sign(U) = 0   (sign is constant on each side of 0, where it jumps)",
                Func::Step => "d step(U) = 0   (step is constant on each side of 0, where it jumps)",
                Func::Softplus => "d softplus(U) = sigmoid(U) .* dU",
                Func::Tan => "d tan(U) = (1 + tan(U) .^ 2) .* dU",
                Func::Arcsin => "d arcsin(U) = dU ./ sqrt(1 - U .^ 2)",
                Func::Arccos => "d arccos(U) = -dU ./ sqrt(1 - U .^ 2)",
                Func::Arctan => "d arctan(U) = dU ./ (1 + U .^ 2)",
                Func::Sinh => "d sinh(U) = cosh(U) .* dU",
                Func::Cosh => "d cosh(U) = sinh(U) .* dU",
                Func::Log1p => "d log1p(U) = dU ./ (1 + U)",
                _ => "d f(U) = f'(U) .* dU",
            },
        }
    }
}

impl Rule {
    /// The identity as LaTeX math, to be set in display or inline math:
    /// what [`Rule::identity`] says, as a textbook writes it.
    pub fn identity_latex(self) -> &'static str {
        match self {
            Rule::Start => r"\mathrm{d}\mathcal{L} = \operatorname{tr}(G^{\top} \mathrm{d}Z)",
            Rule::Sum => r"\mathrm{d}(A + B) = \mathrm{d}A + \mathrm{d}B",
            Rule::Negation => r"\mathrm{d}(-A) = -\mathrm{d}A",
            Rule::Broadcast => {
                r"\operatorname{tr}\bigl(A^{\top} (\mathrm{d}s\, \mathbf{1})\bigr) = \mathrm{d}s \operatorname{sum}(A)"
            }
            Rule::Product => {
                r"\operatorname{tr}(A^{\top} P\, \mathrm{d}F\, S) = \operatorname{tr}\bigl((P^{\top} A S^{\top})^{\top} \mathrm{d}F\bigr)"
            }
            Rule::Scaling => {
                r"\operatorname{tr}(A^{\top} \mathrm{d}s\, R) = \mathrm{d}s \operatorname{tr}(A^{\top} R)"
            }
            Rule::Transpose => {
                r"\operatorname{tr}(A^{\top} \mathrm{d}F^{\top}) = \operatorname{tr}\bigl((A^{\top})^{\top} \mathrm{d}F\bigr)"
            }
            Rule::Trace => {
                r"a \operatorname{tr}(\mathrm{d}F) = \operatorname{tr}\bigl((a I)^{\top} \mathrm{d}F\bigr)"
            }
            Rule::Inverse => r"\mathrm{d}(X^{-1}) = -X^{-1}\, \mathrm{d}X\, X^{-1}",
            Rule::Power => r"\mathrm{d}(X^k) = {\textstyle\sum_{i}} X^i\, \mathrm{d}X\, X^{k-1-i}",
            Rule::Det => r"\mathrm{d}\det X = \det X \operatorname{tr}(X^{-1} \mathrm{d}X)",
            Rule::Logdet => r"\mathrm{d}\log\lvert\det X\rvert = \operatorname{tr}(X^{-1} \mathrm{d}X)",
            Rule::SumEntries => {
                r"\mathrm{d}\operatorname{sum}(X) = \operatorname{tr}(\mathbf{1}^{\top} \mathrm{d}X)"
            }
            Rule::Norm => {
                r"\mathrm{d}\lVert X\rVert_F = \operatorname{tr}(X^{\top} \mathrm{d}X) / \lVert X\rVert_F"
            }
            Rule::NormSquared => r"\mathrm{d}\lVert X\rVert_F^2 = 2 \operatorname{tr}(X^{\top} \mathrm{d}X)",
            Rule::Norm1 => {
                r"\mathrm{d}\lVert X\rVert_1 = \operatorname{tr}\bigl(\operatorname{sign}(X)^{\top} \mathrm{d}X\bigr) \text{ where no entry of } X \text{ is } 0"
            }
            Rule::DiagOfVector => {
                r"\operatorname{tr}\bigl(A^{\top} \operatorname{diag}(\mathrm{d}x)\bigr) = \operatorname{tr}\bigl(\operatorname{diag}(A)^{\top} \mathrm{d}x\bigr) \text{ for a vector } x"
            }
            Rule::DiagOfMatrix => {
                r"\operatorname{tr}\bigl(a^{\top} \operatorname{diag}(\mathrm{d}X)\bigr) = \operatorname{tr}\bigl(\operatorname{diag}(a)^{\top} \mathrm{d}X\bigr) \text{ for a square } X"
            }
            Rule::Hadamard => r"\mathrm{d}(X \odot Y) = \mathrm{d}X \odot Y + X \odot \mathrm{d}Y",
            Rule::HadamardDiv => {
                r"\mathrm{d}(X \oslash Y) = \mathrm{d}X \oslash Y - X \odot \mathrm{d}Y \oslash Y^{\circ 2}"
            }
            Rule::HadamardPower => r"\mathrm{d}(X^{\circ p}) = p\, X^{\circ (p-1)} \odot \mathrm{d}X",
            Rule::ScalarPower => {
                r"\mathrm{d}(X^{\circ p}) = p\, X^{\circ (p-1)} \odot \mathrm{d}X + X^{\circ p} \odot \log(X)\, \mathrm{d}p \text{ (} X > 0 \text{ where } p \text{ varies)}"
            }
            Rule::Division => r"\mathrm{d}(X / s) = \mathrm{d}X / s - X\, \mathrm{d}s / s^2",
            Rule::Max => {
                r"\mathrm{d}\max(X, Y) = (1 - \operatorname{step}(Y - X)) \odot \mathrm{d}X + \operatorname{step}(Y - X) \odot \mathrm{d}Y \text{ (the larger side; a tie, a kink, to } X\text{, or to } Y \text{ if } Y \text{ is a constant)}"
            }
            Rule::Min => {
                r"\mathrm{d}\min(X, Y) = (1 - \operatorname{step}(X - Y)) \odot \mathrm{d}X + \operatorname{step}(X - Y) \odot \mathrm{d}Y \text{ (the smaller side; a tie, a kink, to } X\text{, or to } Y \text{ if } Y \text{ is a constant)}"
            }
            Rule::ProdSplit => {
                r"{\textstyle\prod_{i=a}^{b} F_i = \bigl(\prod_{i=a}^{j-1} F_i\bigr) F_j \bigl(\prod_{i=j+1}^{b} F_i\bigr)}"
            }
            Rule::SumColumns => {
                r"\mathrm{d}\operatorname{sum}(X, 1) = \mathbf{1}_m^{\top} \mathrm{d}X, \text{ so } \operatorname{tr}(A^{\top} \mathbf{1}_m^{\top} \mathrm{d}X) = \operatorname{tr}\bigl((\mathbf{1}_m A)^{\top} \mathrm{d}X\bigr)"
            }
            Rule::SumRows => {
                r"\mathrm{d}\operatorname{sum}(X, 2) = \mathrm{d}X\, \mathbf{1}_n, \text{ so } \operatorname{tr}(A^{\top} \mathrm{d}X\, \mathbf{1}_n) = \operatorname{tr}\bigl((A \mathbf{1}_n^{\top})^{\top} \mathrm{d}X\bigr)"
            }
            Rule::Softmax => {
                r"\mathrm{d}\operatorname{softmax}(z) = s \odot \mathrm{d}z - s\, (s^{\top} \mathrm{d}z),\ s = \operatorname{softmax}(z) \text{ for each column } z"
            }
            Rule::Logsumexp => {
                r"\mathrm{d}\operatorname{logsumexp}(z) = \operatorname{softmax}(z)^{\top} \mathrm{d}z \text{ for each column } z"
            }
            Rule::LogSoftmax => {
                r"\mathrm{d}\log\operatorname{softmax}(z) = \mathrm{d}z - \mathbf{1}_m \operatorname{softmax}(z)^{\top} \mathrm{d}z \text{ for each column } z"
            }
            Rule::Kron => {
                r"\mathrm{d}(X \otimes Y) = \mathrm{d}X \otimes Y + X \otimes \mathrm{d}Y, \text{ each read off by summing the blocks of } A \odot (\mathbf{1} \otimes Y) \text{ and } A \odot (X \otimes \mathbf{1})"
            }
            Rule::Vec => {
                r"\mathrm{d}\operatorname{vec}(X) = \operatorname{vec}(\mathrm{d}X), \text{ so } \operatorname{tr}\bigl(a^{\top} \operatorname{vec}(\mathrm{d}X)\bigr) = \operatorname{tr}\bigl(\operatorname{unvec}(a)^{\top} \mathrm{d}X\bigr)"
            }
            Rule::Entrywise(f) => match f {
                Func::Exp => r"\mathrm{d}\exp(U) = \exp(U) \odot \mathrm{d}U",
                Func::Log => r"\mathrm{d}\log(U) = \mathrm{d}U \oslash U",
                Func::Sqrt => r"\mathrm{d}\sqrt{U} = \tfrac{1}{2} \sqrt{U}^{\circ -1} \odot \mathrm{d}U",
                Func::Sin => r"\mathrm{d}\sin(U) = \cos(U) \odot \mathrm{d}U",
                Func::Cos => r"\mathrm{d}\cos(U) = -\sin(U) \odot \mathrm{d}U",
                Func::Tanh => r"\mathrm{d}\tanh(U) = (1 - \tanh(U)^{\circ 2}) \odot \mathrm{d}U",
                Func::Sigmoid => r"\mathrm{d}\sigma(U) = \sigma(U) \odot (1 - \sigma(U)) \odot \mathrm{d}U",
                Func::Relu => {
                    r"\mathrm{d}\operatorname{relu}(U) = \operatorname{step}(U) \odot \mathrm{d}U \text{ (no derivative at the kink } 0\text{)}"
                }
                Func::Abs => {
                    r"\mathrm{d}\lvert U\rvert = \operatorname{sign}(U) \odot \mathrm{d}U \text{ (no derivative at the kink } 0\text{)}"
                }
                Func::Sign => {
                    r"\mathrm{d}\operatorname{sign}(U) = 0 \text{ (constant on each side of } 0\text{, where it jumps)}"
                }
                Func::Step => {
                    r"\mathrm{d}\operatorname{step}(U) = 0 \text{ (constant on each side of } 0\text{, where it jumps)}"
                }
                Func::Softplus => r"\mathrm{d}\operatorname{softplus}(U) = \sigma(U) \odot \mathrm{d}U",
                Func::Tan => r"\mathrm{d}\tan(U) = (1 + \tan(U)^{\circ 2}) \odot \mathrm{d}U",
                Func::Arcsin => r"\mathrm{d}\arcsin(U) = \mathrm{d}U \oslash \sqrt{1 - U^{\circ 2}}",
                Func::Arccos => r"\mathrm{d}\arccos(U) = -\mathrm{d}U \oslash \sqrt{1 - U^{\circ 2}}",
                Func::Arctan => r"\mathrm{d}\arctan(U) = \mathrm{d}U \oslash (1 + U^{\circ 2})",
                Func::Sinh => r"\mathrm{d}\sinh(U) = \cosh(U) \odot \mathrm{d}U",
                Func::Cosh => r"\mathrm{d}\cosh(U) = \sinh(U) \odot \mathrm{d}U",
                Func::Log1p => r"\mathrm{d}\operatorname{log1p}(U) = \mathrm{d}U \oslash (1 + U)",
                _ => r"\mathrm{d}f(U) = f'(U) \odot \mathrm{d}U",
            },
        }
    }
}

/// One equality of the walk: dL = tr(adjointᵀ · d(target)) + (other terms).
#[derive(Clone, Debug)]
pub struct Step {
    /// The identity applied.
    pub rule: Rule,
    /// The expression whose differential this step looks at.
    pub target: Expr,
    /// The A of tr(Aᵀ d(target)).
    pub adjoint: Expr,
    /// For a product: its differential with the other factors frozen (as in
    /// `W1 * dW2 * W3 * X`).
    pub frozen: Option<Frozen>,
}

impl Step {
    /// The step with the index symbol `var` replaced by `value` (a step
    /// inside the factor of a split `prod`, read at that factor).
    fn at_index(&mut self, var: &str, value: &Index) -> Result<()> {
        self.target = self.target.subst_index(var, value)?;
        self.adjoint = self.adjoint.subst_index(var, value)?;
        if let Some(f) = &mut self.frozen {
            for x in &mut f.factors {
                *x = x.subst_index(var, value)?;
            }
        }
        Ok(())
    }
}

/// A product's differential with every factor but one frozen:
/// `factors[..at] · d(factors[at]) · factors[at + 1..]`. The differential is
/// a position, not a node: only explanations print it.
#[derive(Clone, Debug)]
pub struct Frozen {
    /// The factors, in order.
    pub factors: Vec<Expr>,
    /// The factor under the differential.
    pub at: usize,
}

/// What one occurrence of the variable contributes to its gradient.
#[derive(Clone, Debug)]
pub struct Contribution {
    /// Where the occurrence stands in the source.
    pub occurrence: Span,
    /// The equalities of the walk, from dL down to the occurrence.
    pub steps: Vec<Step>,
    /// The A of tr(Aᵀ dV), before simplification.
    pub adjoint: Expr,
    /// The adjoint's nodes as printed ([`Expr::size_within`]), counted by
    /// the calculus against its limit.
    pub size: usize,
}

/// A side condition `lo <= at <= hi` on index expressions.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The constrained index.
    pub at: Index,
    /// Its lower bound (inclusive).
    pub lo: Index,
    /// Its upper bound (inclusive).
    pub hi: Index,
}

impl Condition {
    /// Whether the condition holds, when the indices decide it: `Some`
    /// when both bounds are decided (each by a constant difference).
    pub fn holds(&self) -> Option<bool> {
        match (self.lower_holds(), self.upper_holds()) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }
    }

    /// Whether `lo <= at` is decided by the indices, and how.
    fn lower_holds(&self) -> Option<bool> {
        self.at.minus(&self.lo).ok()?.as_constant().map(|d| d >= 0)
    }

    /// Whether `at <= hi` is decided by the indices, and how.
    fn upper_holds(&self) -> Option<bool> {
        self.hi.minus(&self.at).ok()?.as_constant().map(|d| d >= 0)
    }
}

/// `lo <= at <= hi`, a side that always holds left out (`W[2]` of
/// `prod(W[i], i=1..n)` holds when `2 <= n`).
impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.lower_holds(), self.upper_holds()) {
            (Some(true), Some(false) | None) => write!(f, "{} <= {}", self.at, self.hi),
            (Some(false) | None, Some(true)) => write!(f, "{} <= {}", self.lo, self.at),
            _ => write!(f, "{} <= {} <= {}", self.lo, self.at, self.hi),
        }
    }
}

/// The raw gradient of one variable: the sum of its contributions.
#[derive(Clone, Debug)]
pub struct Differential {
    /// The variable the gradient is with respect to.
    pub wrt: VarName,
    /// One contribution per occurrence of the variable.
    pub contributions: Vec<Contribution>,
    /// Side conditions under which the gradient holds (`1 <= j <= n`).
    pub conditions: Vec<Condition>,
}

impl Differential {
    /// ∂L/∂V as the plain sum of the contributions (not simplified).
    /// No contribution (`A^0`) is the zero gradient, `0`.
    pub fn sum(&self) -> Expr {
        self.contributions
            .iter()
            .map(|c| c.adjoint.clone())
            .reduce(Expr::plus)
            .unwrap_or_else(|| Expr::num(0.0))
    }
}

/// Whether a walk records the derivation steps (only explanations read them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Steps {
    /// Keep the steps of the first [`RECORDED_OCCURRENCES`] occurrences.
    #[default]
    Record,
    /// Keep none.
    Skip,
}

/// Most nodes the contributions of one gradient may have together: a
/// 2000-fold tied product would print 4 million factors.
pub const MAX_GRADIENT_NODES: usize = 2_000_000;

/// Occurrences whose derivation steps are recorded (an explanation shows
/// no more): each holds a trail as long as its depth, and a thousand
/// occurrences a thousand levels deep would hold a million steps.
pub const RECORDED_OCCURRENCES: usize = 10;

/// The differential of the typed program's expression with respect to `wrt`,
/// with the steps of its first [`RECORDED_OCCURRENCES`] occurrences.
///
/// ```
/// use matdiff::{calculus, shape, syntax};
/// let p = syntax::parse_program("A : 3x4; X : 4x5; B : 5x3; tr(A*X*B)").unwrap();
/// let t = shape::infer(&p).unwrap();
/// let d = calculus::differentiate(&t, &syntax::parse_var("X").unwrap(), &calculus::Mode::Scalar).unwrap();
/// assert_eq!(d.contributions.len(), 1);
/// assert_eq!(d.sum().to_string(), "A^T * B^T");
/// ```
pub fn differentiate(typing: &Typing, wrt: &VarName, mode: &Mode) -> Result<Differential> {
    Occurrences::new(typing).differentiate(typing, wrt, mode, Steps::Record)
}

impl<'p> Occurrences<'p> {
    /// [`differentiate`] on this index of `typing`'s program, which every
    /// gradient of the program shares. Without `steps`, no derivation step
    /// is recorded (only explanations read them); with them, those of the
    /// first [`RECORDED_OCCURRENCES`] occurrences.
    pub fn differentiate(
        &mut self,
        typing: &Typing<'p>,
        wrt: &VarName,
        mode: &Mode,
        steps: Steps,
    ) -> Result<Differential> {
        self.check_target(wrt)?;
        self.differentiate_checked(typing, wrt, mode, steps)
    }

    /// [`Occurrences::differentiate`] of a target that has passed
    /// [`Occurrences::check_target`].
    pub fn differentiate_checked(
        &mut self,
        typing: &Typing<'p>,
        wrt: &VarName,
        mode: &Mode,
        steps: Steps,
    ) -> Result<Differential> {
        let root = self.root();
        let start = match mode {
            Mode::Scalar => Expr::num(1.0),
            Mode::Layer { upstream } => Expr::synthetic(ExprKind::Var(Rc::new(upstream.clone()))),
        };
        let marks = self.mark(wrt);
        let record = match steps {
            Steps::Record => RECORDED_OCCURRENCES,
            Steps::Skip => 0,
        };
        let mut walk = Walk {
            typing,
            occ: self,
            marks,
            wrt,
            out: vec![],
            conditions: vec![],
            nodes: 0,
            record,
            in_prod: None,
        };
        let start_step =
            Step { rule: Rule::Start, target: root.clone(), adjoint: start.clone(), frozen: None };
        let trail = Rc::new(Trail { step: start_step, prev: None });
        walk.visit(root, start, trail)?;
        Ok(Differential { wrt: wrt.clone(), contributions: walk.out, conditions: walk.conditions })
    }
}

struct Walk<'t, 'p> {
    typing: &'t Typing<'p>,
    /// Where the variable occurs, and the nodes above it ([`Occurrences::mark`]).
    occ: &'t Occurrences<'p>,
    marks: occurrences::Marks,
    wrt: &'t VarName,
    out: Vec<Contribution>,
    conditions: Vec<Condition>,
    /// Nodes of the contributions so far, against MAX_GRADIENT_NODES.
    nodes: usize,
    /// Occurrences whose steps are kept.
    record: usize,
    /// Inside the factor of a split `prod`: its binder and the index of the
    /// factor that holds the variable.
    in_prod: Option<(String, Index)>,
}

/// The steps from the root to the current node, shared between branches.
struct Trail {
    step: Step,
    prev: Option<Rc<Trail>>,
}

impl Trail {
    fn steps(trail: &Rc<Trail>) -> Vec<Step> {
        let mut out = vec![];
        let mut at = Some(trail);
        while let Some(t) = at {
            out.push(t.step.clone());
            at = t.prev.as_ref();
        }
        out.reverse();
        out
    }
}

/// A trail is as long as the expression is deep; it is freed link by link.
impl Drop for Trail {
    fn drop(&mut self) {
        let mut prev = self.prev.take();
        while let Some(link) = prev {
            prev = Rc::into_inner(link).and_then(|mut t| t.prev.take());
        }
    }
}

/// A factor of a flattened product, and whether it multiplies as a scalar.
pub(crate) struct Factor<'p> {
    pub(crate) expr: &'p Rc<Expr>,
    pub(crate) scalar: bool,
    /// The program's node that is the product of the factors up to this
    /// one, where the product is nested to the left (`W1*W2*…` as parsed):
    /// an adjoint's left part, `(M1⋯Mi)ᵀ`, shares it instead of building it
    /// again (a chain's gradients would build n²/2 nodes).
    pub(crate) prefix: Option<&'p Rc<Expr>>,
}

impl<'t, 'p> Walk<'t, 'p> {
    fn is_scalar(&self, e: &Expr) -> bool {
        self.typing.node_is_scalar(e).unwrap_or(false)
    }

    fn holds(&self, e: &Expr) -> bool {
        self.occ.holds(e)
    }

    /// The positions of the terms or factors of the node `e` that hold the
    /// variable, in order.
    fn slots(&self, e: &Expr) -> &[u32] {
        self.occ.id(e).and_then(|k| self.marks.slots.get(&k)).map(Vec::as_slice).unwrap_or(&[])
    }

    fn limit(&self, at: Span, what: String) -> Error {
        Error::new(
            ErrorKind::Limit,
            format!(
                "the gradient with respect to `{}` would have more than {MAX_GRADIENT_NODES} nodes",
                self.wrt
            ),
        )
        .label(at, what)
        .note("a gradient is printed whole, so its size is bounded")
        .hint(crate::Hint::FewerTargets)
    }

    fn visit(&mut self, e: &'p Expr, adjoint: Expr, trail: Rc<Trail>) -> Result<()> {
        // Not a fold: the adjoint flows down from the root, and only the
        // children that hold the variable are entered.
        crate::stack::ensure(|| {
            if !self.holds(e) {
                return Ok(());
            }
            if let ExprKind::Var(_) = e.kind {
                // Counted as printed, and only up to the limit: the adjoint
                // shares its parts, and may print 2^28 nodes from a few hundred.
                let left = MAX_GRADIENT_NODES - self.nodes;
                let Some(size) = adjoint.size_within(left) else {
                    let what = format!("occurrence {} of `{}`", self.out.len() + 1, self.wrt);
                    return Err(self.limit(e.span, what));
                };
                self.nodes += size;
                let mut steps = if self.out.len() < self.record { Trail::steps(&trail) } else { vec![] };
                let mut adjoint = adjoint;
                if let Some((var, at)) = &self.in_prod {
                    // Read off inside a prod's factor: the binder is the split's index.
                    adjoint = adjoint.subst_index(var, at)?;
                    for s in &mut steps {
                        s.at_index(var, at)?;
                    }
                }
                self.out.push(Contribution { occurrence: e.span, steps, adjoint, size });
                return Ok(());
            }
            match &e.kind {
                ExprKind::Prod(_) => return self.visit_prod(e, adjoint, trail),
                ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. } => {
                    return self.visit_sum(e, adjoint, trail)
                }
                ExprKind::Binary { op: BinOp::Mul, .. } => return self.visit_product(e, adjoint, trail),
                _ => {}
            }
            for (rule, child, adj) in self.descend(e, &adjoint)? {
                if self.holds(child) {
                    self.step(rule, child, adj, None, &trail)?;
                }
            }
            Ok(())
        })
    }

    /// Goes on to `child` with its adjoint, one step further on the trail.
    fn step(
        &mut self,
        rule: Rule,
        child: &'p Expr,
        adj: Expr,
        frozen: Option<Frozen>,
        trail: &Rc<Trail>,
    ) -> Result<()> {
        let step = Step { rule, target: child.clone(), adjoint: adj.clone(), frozen };
        self.visit(child, adj, Rc::new(Trail { step, prev: Some(trail.clone()) }))
    }

    /// Whether the steps of the occurrences still to come are kept.
    fn recording(&self) -> bool {
        self.out.len() < self.record
    }

    /// A sum: each term that holds the variable gets ±A (a broadcast
    /// scalar, sum(±A)).
    fn visit_sum(&mut self, e: &'p Expr, a: Expr, trail: Rc<Trail>) -> Result<()> {
        let occ = self.occ;
        let Some(terms) = occ.id(e).and_then(|k| occ.terms(k)) else {
            unreachable!("the walk stands on sums the index lists")
        };
        for slot in self.slots(e).to_vec() {
            let (negative, term) = terms[slot as usize];
            let signed = if negative { Expr::negate(a.clone()) } else { a.clone() };
            let (rule, adj) = if self.is_scalar(term) && !self.is_scalar(e) {
                (Rule::Broadcast, self.broadcast_adjoint(e, term, signed)?)
            } else {
                (Rule::Sum, signed)
            };
            self.step(rule, term, adj, None, &trail)?;
        }
        Ok(())
    }

    /// A product: each factor that holds the variable gets its adjoint,
    /// the other factors frozen. Each such adjoint holds every other factor,
    /// so k occurrences among m factors make k adjoints of m − 1 factors:
    /// that is counted before any is built.
    fn visit_product(&mut self, e: &'p Expr, a: Expr, trail: Rc<Trail>) -> Result<()> {
        let occ = self.occ;
        let Some(factors) = occ.id(e).and_then(|k| occ.factors(k)) else {
            unreachable!("the walk stands on products the index lists")
        };
        let slots = self.slots(e).to_vec();
        // (A literal 1 is left out of an adjoint.)
        let ones = factors.iter().filter(|f| f.expr.kind == ExprKind::Num(1.0)).count();
        let each = factors.len().saturating_sub(1 + ones).max(1);
        if slots.len().saturating_mul(each) > MAX_GRADIENT_NODES - self.nodes {
            let what = format!(
                "{} occurrences of `{}` among these {} factors, each with the others beside it",
                slots.len(),
                self.wrt,
                factors.len()
            );
            return Err(self.limit(e.span, what));
        }
        for slot in slots {
            let i = slot as usize;
            let (rule, adj) = if factors[i].scalar {
                (Rule::Scaling, rules::scaling(factors, i, &a))
            } else {
                (Rule::Product, rules::product(factors, i, &a))
            };
            let frozen = self.recording().then(|| frozen(factors, i));
            self.step(rule, factors[i].expr, adj, frozen, &trail)?;
        }
        Ok(())
    }

    /// W[j] inside prod(F(W[i]), i=a..b): split the product at the factor
    /// that holds W[j], under the side condition a ≤ j - c ≤ b (c the
    /// offset of the member, `W[i + c]`), and walk on into the factor's body
    /// with the adjoint Lᵀ A Rᵀ; what the walk reads off there is in the
    /// binder i, which becomes j - c at the occurrence (`in_prod`).
    fn visit_prod(&mut self, e: &'p Expr, adjoint: Expr, trail: Rc<Trail>) -> Result<()> {
        let ExprKind::Prod(prod) = &e.kind else { unreachable!("a prod") };
        let crate::syntax::Prod { body, var, lo, hi } = &**prod;
        let refuse = |why: &str| {
            Error::new(ErrorKind::Unsupported, format!("derivative of prod(...) {why} is not supported yet"))
                .label(e.span, format!("`{}` occurs here", self.wrt))
        };
        if !body.mentions_family(&self.wrt.name) {
            return Err(refuse("with respect to a matrix inside its factors"));
        }
        if self.in_prod.is_some() {
            return Err(refuse("nested in the factor of another prod(...)"));
        }
        // The family's one member in the body, and no inner `prod` over it.
        let mut members = vec![];
        let mut nested = false;
        body.for_each(|x| match &x.kind {
            ExprKind::Var(v) if v.name == self.wrt.name && v.index.is_some() => {
                members.push(VarName::clone(v))
            }
            ExprKind::Prod(p) if p.body.mentions_family(&self.wrt.name) => nested = true,
            _ => {}
        });
        if nested {
            return Err(refuse("nested in the factor of another prod(...)"));
        }
        let [member] = &members[..] else {
            return Err(refuse(&format!("whose factor holds the family `{}` more than once", self.wrt.name)));
        };
        let (Some(j), Some(idx)) = (&self.wrt.index, &member.index) else {
            return Err(refuse("with respect to a matrix inside its factors"));
        };
        // The member's index is i + c; W[j] is the factor at i = j - c.
        let in_prod = |err: Error| err.label(e.span, "splitting this product");
        let offset = idx.minus(&Index::symbol(var)).map_err(in_prod)?;
        if offset.as_constant().is_none() || j.mentions(var) {
            return Err(refuse("over factors W[f(i)] other than W[i + c]"));
        }
        if self.mentions_index(&adjoint, var) {
            return Err(refuse(&format!("inside an expression that uses `{var}` as an index too")));
        }
        let at = j.minus(&offset).map_err(in_prod)?;
        let condition = Condition { at: at.clone(), lo: lo.clone(), hi: hi.clone() };
        if condition.holds() == Some(false) {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("`{}` is not a factor of this product: {var} runs over {lo}..{hi}", self.wrt),
            )
            .label(e.span, "this product"));
        }
        let one = Index::constant(1);
        let part = |lo: &Index, hi: &Index| Expr::prod(body.clone(), var.clone(), lo.clone(), hi.clone());
        let (left, right) =
            (part(lo, &at.minus(&one).map_err(in_prod)?), part(&at.plus(&one).map_err(in_prod)?, hi));
        let factor = body.subst_index(var, &at).map_err(in_prod)?;
        let inner = Expr::product(
            Expr::product(Expr::transpose(left.clone()), adjoint),
            Expr::transpose(right.clone()),
        );
        let frozen = self.recording().then(|| Frozen { factors: vec![left, factor, right], at: 1 });
        if condition.holds().is_none() && !self.conditions.contains(&condition) {
            self.conditions.push(condition);
        }
        self.in_prod = Some((var.clone(), at));
        let walked = self.step(Rule::ProdSplit, body, inner, frozen, &trail);
        self.in_prod = None;
        walked
    }

    /// Whether the index symbol `var` occurs free in `e`.
    fn mentions_index(&self, e: &Expr, var: &str) -> bool {
        e.subst_index(var, &Index::constant(0)).map_or(true, |x| x != *e)
    }

    /// The children of `e` with their adjoints, given the adjoint of `e`:
    /// tr(Aᵀ dE) rewritten as a sum of tr(Aᵢᵀ dCᵢ) by one identity per node.
    fn descend(&self, e: &'p Expr, a: &Expr) -> Result<Vec<(Rule, &'p Expr, Expr)>> {
        let scalar = |x: &Expr| self.is_scalar(x);
        Ok(match &e.kind {
            ExprKind::Var(_) | ExprKind::Num(_) | ExprKind::Identity | ExprKind::Ones(_) => vec![],
            ExprKind::Neg(x) => vec![(Rule::Negation, &**x, Expr::negate(a.clone()))],
            ExprKind::Transpose(x) => vec![(Rule::Transpose, &**x, Expr::transpose(a.clone()))],
            ExprKind::Binary { op: BinOp::Add | BinOp::Sub | BinOp::Mul, .. } => {
                unreachable!("sums and products are walked by visit_sum and visit_product")
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let broadcast = |x: &Expr| scalar(x) && !scalar(e);
                let (l, r) = (&**lhs, &**rhs);
                match op {
                    BinOp::Hadamard => vec![
                        (Rule::Hadamard, l, rules::sum_if(broadcast(l), rules::hadamard_factor(a, r))),
                        (Rule::Hadamard, r, rules::sum_if(broadcast(r), rules::hadamard_factor(a, l))),
                    ],
                    BinOp::HadamardDiv => vec![
                        (Rule::HadamardDiv, l, rules::sum_if(broadcast(l), rules::div_numerator(a, r))),
                        (Rule::HadamardDiv, r, rules::div_denominator(a, l, r, broadcast(r))),
                    ],
                    BinOp::Div => vec![
                        (Rule::Division, l, rules::div_numerator(a, r)),
                        (Rule::Division, r, rules::div_denominator(a, l, r, !scalar(l))),
                    ],
                    BinOp::Max | BinOp::Min => {
                        let (rule, wins) = match op {
                            BinOp::Max => (Rule::Max, rules::Winner::Larger),
                            _ => (Rule::Min, rules::Winner::Smaller),
                        };
                        // max(X, X) is X, tied everywhere: all of it to one side.
                        if l == r {
                            return Ok(vec![(rule, l, a.clone())]);
                        }
                        // Ties go to the left side, or to a constant right side
                        // (max(X, 0) and max(0, X) both give step(X) to X).
                        let constant = |x: &Expr| !x.any(|n| matches!(n.kind, ExprKind::Var(_)));
                        let (lt, rt) = if constant(r) && !constant(l) {
                            (rules::Tie::Other, rules::Tie::This)
                        } else {
                            (rules::Tie::This, rules::Tie::Other)
                        };
                        vec![
                            (rule, l, rules::extremum(a, l, r, wins, lt, broadcast(l))),
                            (rule, r, rules::extremum(a, r, l, wins, rt, broadcast(r))),
                        ]
                    }
                    BinOp::Kron => {
                        let sizes = self.kron_sizes(e, l, r)?;
                        vec![
                            (Rule::Kron, l, rules::kron_left(a, r, &sizes)),
                            (Rule::Kron, r, rules::kron_right(a, l, &sizes)),
                        ]
                    }
                    BinOp::Power => vec![
                        (Rule::ScalarPower, l, rules::power_base(a, l, r)),
                        (Rule::ScalarPower, r, rules::power_exponent(a, e, l, !scalar(e))),
                    ],
                    BinOp::Add | BinOp::Sub | BinOp::Mul => unreachable!("handled above"),
                }
            }
            ExprKind::Power(x, 2) if matches!(&x.kind, ExprKind::Call(Func::Norm | Func::Norm2, _)) => {
                let ExprKind::Call(_, inner) = &x.kind else { unreachable!("matched above") };
                vec![(Rule::NormSquared, &**inner, rules::norm_squared(a, inner))]
            }
            ExprKind::Power(x, k) => {
                let rule = if *k == -1 { Rule::Inverse } else { Rule::Power };
                // `unsigned_abs`: |i64::MIN| does not fit an i64 (`abs` wrapped
                // it to a negative number, under the limit).
                if k.unsigned_abs() > rules::MAX_POWER.unsigned_abs() {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        format!(
                            "the derivative of a power is expanded term by term up to |k| = {}",
                            rules::MAX_POWER
                        ),
                    )
                    .label(e.span, format!("power {k}")));
                }
                rules::power_rule(a, x, *k, scalar(x)).map(|adj| vec![(rule, &**x, adj)]).unwrap_or_default()
            }
            ExprKind::HadamardPower(x, p) => {
                // X .^ (p - 1) is printed: a rounded p - 1 would be another formula
                // (`.^ 1e17` gave `.^ 1e17` back, `.^ 1e-20` gave `.^ -1`).
                let Some(q) = crate::syntax::exact_minus_one(*p) else {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        format!(
                            "the derivative of `.^ {}` needs the exponent {} - 1, which no double is exactly",
                            crate::syntax::format_number(*p),
                            crate::syntax::format_number(*p)
                        ),
                    )
                    .label(e.span, "this power")
                    .note("p - 1 must be a number a double holds as written: true of integers up to 2^53 and of short decimals like 0.1 or 2.25"));
                };
                rules::hadamard_power(a, x, *p, q)
                    .map(|adj| vec![(Rule::HadamardPower, &**x, adj)])
                    .unwrap_or_default()
            }
            // log ∘ softmax in one step: its adjoint has no 1 ./ softmax(Z).
            ExprKind::Call(Func::Log, s) if matches!(&s.kind, ExprKind::Call(Func::Softmax, _)) => {
                let ExprKind::Call(_, z) = &s.kind else { unreachable!("matched above") };
                vec![(Rule::LogSoftmax, &**z, rules::log_softmax(a, s, self.ones(e, z, true)?))]
            }
            ExprKind::Call(f, x) => {
                let x = &**x;
                let (rule, adj) = match f {
                    Func::Tr => (Rule::Trace, rules::times_expr(a, Expr::identity())),
                    Func::Det => (Rule::Det, rules::det(a, e, x)),
                    Func::Logdet => (Rule::Logdet, rules::logdet(a, x)),
                    Func::Sum => (Rule::SumEntries, rules::sum_entries(a, x, scalar(x))),
                    Func::Norm | Func::Norm2 => (Rule::Norm, rules::norm(a, e, x)),
                    Func::Norm1 => (Rule::Norm1, rules::norm1(a, x)),
                    Func::Diag => {
                        let one = crate::shape::Dim::Const(1);
                        let (rows_one, cols_one) = self
                            .typing
                            .node_shape(x)
                            .map_or((false, false), |s| (s.rows == one, s.cols == one));
                        if !(rows_one || cols_one) {
                            (Rule::DiagOfMatrix, rules::diag(a, false))
                        } else if let Some((negative, c)) = self.identity_multiple(a) {
                            // diag(c I) = c 𝟙, written as sum's is (`x .^ 0`).
                            let ones = rules::sum_entries(&c, x, false);
                            (Rule::DiagOfVector, if negative { Expr::negate(ones) } else { ones })
                        } else {
                            (Rule::DiagOfVector, rules::diag(a, rows_one && !cols_one))
                        }
                    }
                    Func::Vec => {
                        let [m, n] = self.sizes(e, x)?;
                        (Rule::Vec, rules::vec(a, m, n))
                    }
                    Func::SumCols => (Rule::SumColumns, rules::sum_columns(a, self.ones(e, x, true)?)),
                    Func::SumRows => (Rule::SumRows, rules::sum_rows(a, self.ones(e, x, false)?)),
                    Func::Softmax => (Rule::Softmax, rules::softmax(a, e, self.ones(e, x, true)?)),
                    Func::Logsumexp => {
                        (Rule::Logsumexp, rules::logsumexp(a, x, self.ones(e, x, true)?, scalar(e)))
                    }
                    f => (Rule::Entrywise(*f), rules::entrywise(a, *f, e, x, scalar(x) && scalar(a))),
                };
                vec![(rule, x, adj)]
            }
            ExprKind::Prod(_) => return Err(refusal(e)),
        })
    }

    /// The sizes of `x` (an argument of `e`) as the language writes them.
    fn sizes(&self, e: &Expr, x: &Expr) -> Result<[crate::syntax::DimSpec; 2]> {
        let column = self.ones(e, x, true)?;
        let row = self.ones(e, x, false)?;
        let (ExprKind::Ones(c), ExprKind::Ones(r)) = (&column.kind, &row.kind) else {
            unreachable!("ones builds ones")
        };
        Ok([c.0.clone(), r.1.clone()])
    }

    /// The sizes of the operands of `kron(l, r)`, the node `e`.
    fn kron_sizes(&self, e: &Expr, l: &Expr, r: &Expr) -> Result<rules::KronSizes> {
        let [m, n] = self.sizes(e, l)?;
        let [p, q] = self.sizes(e, r)?;
        Ok(rules::KronSizes { m, n, p, q })
    }

    /// The ones vector along an axis of `x` (an argument of `e`): `ones(m)`
    /// for its rows (`rows`), else `ones(1, n)` for its columns.
    fn ones(&self, e: &Expr, x: &Expr, rows: bool) -> Result<Expr> {
        use crate::shape::Dim;
        use crate::syntax::DimSpec;
        let shape = self.typing.node_shape(x);
        let dim = shape.map(|s| if rows { s.rows } else { s.cols });
        let size = match dim {
            Some(Dim::Const(n)) => DimSpec::Const(n),
            Some(Dim::Symbol(s)) => DimSpec::Symbol(s),
            Some(Dim::Indexed(s, i)) => DimSpec::Indexed(s, i),
            _ => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("the size of `{x}` along this axis is not known, and its gradient needs it"),
                )
                .label(e.span, "here")
                .note("declare the shape of the variables (`X : m x n`)"))
            }
        };
        let one = DimSpec::Const(1);
        Ok(if rows { Expr::ones(size, one) } else { Expr::ones(one, size) })
    }

    /// sum(A) for a scalar broadcast over the sum `whole`. When A is c·I
    /// (from a trace), sum(c·I) = n·c: the size n must be a number, since the
    /// language has no way to write a symbolic dimension.
    fn broadcast_adjoint(&self, whole: &Expr, term: &Expr, adjoint: Expr) -> Result<Expr> {
        let Some((negative, c)) = self.identity_multiple(&adjoint) else {
            return Ok(Expr::call(Func::Sum, adjoint));
        };
        let n = match self.typing.node_shape(whole).map(|s| s.rows) {
            Some(crate::shape::Dim::Const(n)) => n,
            other => {
                let n = other.map(|d| d.to_string()).unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("this gradient is {n} times a scalar, and a symbolic dimension cannot be written in a formula; declare a number for `{n}`"),
                )
                .label(term.span, "a scalar broadcast inside a trace"));
            }
        };
        // The size becomes a literal: only one a double holds exactly.
        if n > 1 << f64::MANTISSA_DIGITS {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("this gradient is {n} times a scalar, and {n} is past 2^53, where a number literal is no longer exact"),
            )
            .label(term.span, "a scalar broadcast inside a trace"));
        }
        let scaled = Expr::product(Expr::num(n as f64), c);
        Ok(if negative { Expr::negate(scaled) } else { scaled })
    }

    /// c·I up to negations, transposes and scalar factors, as the trace rule
    /// makes it: the sign and c (1 for a bare I).
    fn identity_multiple(&self, e: &Expr) -> Option<(bool, Expr)> {
        // Not a fold: it reads one child or the other, by shape, and stops
        // at the first node that is not a multiple of I.
        crate::stack::ensure(|| {
            let scalar = |x: &Expr| {
                let mut typer = self.typing.typer().clone();
                typer.infer(x).is_ok_and(|s| typer.is_scalar(s))
            };
            match &e.kind {
                ExprKind::Identity => Some((false, Expr::num(1.0))),
                ExprKind::Transpose(x) => self.identity_multiple(x),
                ExprKind::Neg(x) => self.identity_multiple(x).map(|(negative, c)| (!negative, c)),
                ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                    if scalar(lhs) {
                        let (negative, c) = self.identity_multiple(rhs)?;
                        Some((negative, Expr::product((**lhs).clone(), c)))
                    } else if scalar(rhs) {
                        let (negative, c) = self.identity_multiple(lhs)?;
                        Some((negative, Expr::product(c, (**rhs).clone())))
                    } else {
                        // (a I)(b I) = (a b) I: nested traces make `I * I`,
                        // the outer one's I of size 1.
                        let (nl, a) = self.identity_multiple(lhs)?;
                        let (nr, b) = self.identity_multiple(rhs)?;
                        Some((nl != nr, Expr::product(a, b)))
                    }
                }
                // (c I) / s and (c I) ./ s are (c / s) I; s .* (c I) is (s c) I.
                ExprKind::Binary {
                    op: op @ (BinOp::Div | BinOp::HadamardDiv | BinOp::Hadamard),
                    lhs,
                    rhs,
                    ..
                } => {
                    if scalar(rhs) {
                        let (negative, c) = self.identity_multiple(lhs)?;
                        Some((negative, Expr::binary(*op, c, rhs.clone())))
                    } else if *op == BinOp::Hadamard && scalar(lhs) {
                        let (negative, c) = self.identity_multiple(rhs)?;
                        Some((negative, Expr::binary(*op, lhs.clone(), c)))
                    } else {
                        None
                    }
                }
                _ => None,
            }
        })
    }
}

/// d(product) with every factor but factor `i` frozen.
fn frozen(factors: &[Factor], i: usize) -> Frozen {
    Frozen { factors: factors.iter().map(|f| Expr::clone(f.expr)).collect(), at: i }
}

/// Names the construct whose derivative is not derived (yet).
fn refusal(e: &Expr) -> Error {
    Error::new(ErrorKind::Unsupported, "derivative of prod(...) is not supported yet")
        .label(e.span, "the variable occurs inside this product of symbolic length")
}
