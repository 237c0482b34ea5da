//! Second order: Hessians, their mixed blocks and Jacobians, derived by the
//! first-order calculus applied twice, so that every identity stays in one
//! place (`calculus::rules`).
//!
//! - The Hessian of a scalar L with respect to V, applied to a direction
//!   dV, is the gradient of `tr(dVᵀ ∂L/∂V)` with respect to V: the derived
//!   gradient is taken as a layer whose upstream gradient is dV (H is
//!   symmetric, so this vector–Hessian product is `H[dV]`). With respect to
//!   U instead, it is the mixed block ∂²L/∂U∂V applied to dV.
//! - The Jacobian of Z with respect to X: the first derivation gives the
//!   vector–Jacobian product `Jᵀ[G]`; its gradient with respect to G, with
//!   upstream dX, is the transpose of that map, `J[dX] = dZ`.
//! - Where the direction is a column (V a vector), the map is read off as a
//!   matrix, `H[dV] = M dV` ([`crate::calculus::second::matrix_of`]).

use std::collections::BTreeSet;

use crate::calculus::second::matrix_of;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{self, Dim, Shape};
use crate::simplify;
use crate::syntax::{self, BinOp, Declaration, DimSpec, Expr, ExprKind, Program, ShapeSpec, Span, VarName};
use crate::{derive, Control, DeriveOptions, Steps};

mod verdicts;

pub use verdicts::{check, verify, Compared, SecondCheck, SecondVerdict};

/// Which second-order derivative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ∂²L/∂V² of a scalar L.
    Hessian,
    /// ∂²L/∂V∂U of a scalar L, two different variables.
    Mixed,
    /// ∂Z/∂X of a matrix-valued (or vector-valued) Z.
    Jacobian,
}

/// A second-order derivative: the linear map in a direction symbol, and
/// its matrix where the direction is a column.
#[derive(Clone, Debug)]
pub struct SecondOrder {
    /// Which derivative.
    pub kind: Kind,
    /// The variable the result has the shape of (V of ∂²L/∂V∂U, X of a Jacobian's rows' source… see `along`).
    pub wrt: VarName,
    /// The variable whose direction the map takes (U of ∂²L/∂V∂U; V of a
    /// Hessian; X of a Jacobian).
    pub along: VarName,
    /// The direction symbol, `d` and the name of `along` (`dx`).
    pub direction: VarName,
    /// The shape of the direction, `along`'s.
    pub direction_shape: Shape,
    /// The first-order result differentiated again: ∂L/∂U, or for a
    /// Jacobian the vector–Jacobian product in the upstream `upstream`.
    pub first: Expr,
    /// For a Jacobian, the name of the upstream gradient in `first`.
    pub upstream: Option<VarName>,
    /// The program of the second derivation: `first` as the expression,
    /// every variable in it declared with its shape and domain.
    pub program: Program,
    /// The variable the second derivation differentiates by (`wrt`, or
    /// for a Jacobian the upstream).
    pub second_wrt: VarName,
    /// The upstream gradient of the second derivation: the direction,
    /// unless the first result is 1×1 (then it is differentiated as a loss).
    pub second_upstream: Option<VarName>,
    /// The map applied to the direction (`H[dV]`, or `dZ`), simplified.
    pub map: Expr,
    /// The shape of the map's value.
    pub map_shape: Shape,
    /// The matrix M of `map = M * direction`, simplified, when the
    /// direction is a column (or 1×1) and the map's value too.
    pub matrix: Option<Expr>,
    /// M's shape.
    pub matrix_shape: Option<Shape>,
    /// Why there is no matrix, when the direction is a column but the map
    /// has no matrix form here.
    pub no_matrix: Option<String>,
    /// For a matrix direction dV, the matrix K of `vec(H[dV]) = K vec(dV)`
    /// (vec column-major, as the Matrix Cookbook's): where the map is a sum
    /// of terms `c P dV Q` (and `P (S .* dV) Q`), `K = Σ c kron(Qᵀ, P)`
    /// (`kron(Qᵀ, P) diag(vec(S))`), an identity written `diag(ones(k))`.
    pub vec_form: Option<Expr>,
    /// K's shape: its rows and columns, each a size of the map's value or
    /// the direction times the other of its sides.
    pub vec_shape: Option<[VecSize; 2]>,
    /// Why there is no vec form for a matrix direction (a term with dVᵀ
    /// needs the commutation matrix, which the language does not have).
    pub no_vec_form: Option<String>,
    /// Whether the second derivation's simplification saturated.
    pub saturated: bool,
    /// The caller's control, which every derivation made for this result
    /// polls ([`SecondOrder::second_options`]): Ctrl-C in the REPL stops it.
    pub control: Control,
}

/// A side of a vec form's shape: the number of entries of a matrix, a
/// [`Dim`] where it can write it, else the product of two symbolic sizes
/// (`m*n`), which it cannot.
#[derive(Clone, Debug, PartialEq)]
pub enum VecSize {
    /// A size as any other: a number, a symbol, or `n` times 1.
    Dim(Dim),
    /// Rows times columns, symbolic both.
    Product(Dim, Dim),
}

impl VecSize {
    /// The number of entries of a matrix of shape `s`.
    pub fn of(s: &Shape) -> VecSize {
        s.rows.times(&s.cols).map_or_else(|| VecSize::Product(s.rows.clone(), s.cols.clone()), VecSize::Dim)
    }
}

impl std::fmt::Display for VecSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VecSize::Dim(d) => write!(f, "{d}"),
            VecSize::Product(a, b) => write!(f, "{a}*{b}"),
        }
    }
}

/// As a [`Dim`]: a number when known, else its text (`"m*n"`).
impl serde::Serialize for VecSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            VecSize::Dim(d) => d.serialize(serializer),
            VecSize::Product(..) => serializer.collect_str(self),
        }
    }
}

/// A vec form's shape as text, as [`Shape`]'s: `6x6`, `m*n x m*n`.
pub fn vec_shape_text([rows, cols]: &[VecSize; 2]) -> String {
    match (rows, cols) {
        (VecSize::Dim(Dim::Const(r)), VecSize::Dim(Dim::Const(c))) => format!("{r}x{c}"),
        (r, c) => format!("{r} x {c}"),
    }
}

impl Kind {
    /// `hessian`, `mixed` or `jacobian`, as the JSON names it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hessian => "hessian",
            Kind::Mixed => "mixed",
            Kind::Jacobian => "jacobian",
        }
    }
}

/// The name of a program's value, `Z` unless it names it (`Y = …`).
pub fn value_name(program: &Program) -> String {
    program.name.clone().unwrap_or_else(|| "Z".to_string())
}

impl SecondOrder {
    /// The name of the matrix: `d2L/dx2`, `d2L/dx dy^T`, `dZ/dx` (`z` the
    /// value's name).
    pub fn matrix_name(&self, z: &str) -> String {
        match self.kind {
            Kind::Hessian => format!("d2L/d{} d{}^T", self.wrt, self.wrt),
            Kind::Mixed => format!("d2L/d{} d{}^T", self.wrt, self.along),
            Kind::Jacobian => format!("d{z}/d{}", self.wrt),
        }
    }

    /// The name of the map applied to the direction: `H[dx]`, `dZ`.
    pub fn map_name(&self, z: &str) -> String {
        match self.kind {
            Kind::Hessian => format!("H[{}]", self.direction),
            Kind::Mixed => format!("H_{}{}[{}]", self.wrt, self.along, self.direction),
            Kind::Jacobian => format!("d{z}"),
        }
    }

    /// The name of the vec form: `vec(H[dX]) = K vec(dX)` is written by
    /// its matrix, `d2L/dvec(X) dvec(X)^T` (as the matrix of a vector is
    /// `d2L/dx dx^T`), `d2L/dvec(X) dvec(U)^T`; a Jacobian's
    /// `vec(dZ) = K vec(dX)`, `dvec(Z)/dvec(X)` (as `dZ/dx`).
    pub fn vec_name(&self, z: &str) -> String {
        match self.kind {
            Kind::Jacobian => format!("dvec({z})/dvec({})", self.wrt),
            _ => format!("d2L/dvec({}) dvec({})^T", self.wrt, self.along),
        }
    }

    /// The options that derive the first derivative from the original
    /// program: by `along`, for a Jacobian with the upstream `upstream`.
    pub fn first_options(&self, steps: Steps) -> DeriveOptions {
        DeriveOptions {
            wrt: vec![self.along.clone()],
            upstream: self.upstream.as_ref().map(|u| u.to_string()),
            steps,
            sharing: crate::Sharing::Expanded,
            control: self.control.clone(),
        }
    }

    /// The options that derive the second derivation from
    /// [`SecondOrder::program`]: by `second_wrt`, with the direction as
    /// the upstream gradient unless the first result is 1×1.
    pub fn second_options(&self, steps: Steps) -> DeriveOptions {
        DeriveOptions {
            wrt: vec![self.second_wrt.clone()],
            upstream: self.second_upstream.as_ref().map(|d| d.to_string()),
            steps,
            sharing: crate::Sharing::Expanded,
            control: self.control.clone(),
        }
    }

    /// The derivation `plan --order 2` compiles: the second derivation,
    /// whose value is the gradient and whose one gradient is the
    /// Hessian-vector product, or ([`Planned::Matrix`]) the Hessian matrix
    /// in its place. A map without a matrix form is refused by name.
    pub fn planned(&self, form: Planned) -> Result<crate::Derivation<'_>> {
        let mut second = derive(&self.program, &self.second_options(Steps::Skip))?;
        if form == Planned::Matrix {
            let (Some(m), Some(shape)) = (&self.matrix, &self.matrix_shape) else {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!(
                        "the second derivative with respect to `{}` has no matrix form here (it is the map {} of the direction {}); plan the Hessian-vector product without --full",
                        self.wrt, self.map, self.direction
                    ),
                ));
            };
            // The matrix in place of the product: one output of its shape.
            second.gradients[0].expr = m.clone();
            second.gradients[0].shape = shape.clone();
        }
        Ok(second)
    }
}

/// What a plan of a second derivative computes beside the gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planned {
    /// The Hessian-vector product `H[dV]`.
    Product,
    /// The Hessian matrix of a vector variable (`--full`).
    Matrix,
}

/// The Hessian (`wrt` one variable) or the mixed second derivative (`wrt`
/// two: ∂²L/∂V∂U, the map from a direction dU to the shape of V) of the
/// program's scalar expression.
///
/// ```
/// let p = matdiff::parse("x : n; A : n x n; x^T*A*x").unwrap();
/// let x = matdiff::syntax::parse_var("x").unwrap();
/// let h = matdiff::hessian::hessian(&p, &[x], &Default::default()).unwrap();
/// assert_eq!(h.matrix.unwrap().to_string(), "A + A^T");
/// ```
pub fn hessian(program: &Program, wrt: &[VarName], control: &Control) -> Result<SecondOrder> {
    let (v, u) = match wrt {
        [v] => (v, v),
        [v, u] => (v, u),
        _ => {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("a Hessian is taken with respect to one or two variables, not {}", wrt.len()),
            )
            .note("`--wrt V` for ∂²L/∂V², `--wrt V --wrt U` for the mixed ∂²L/∂V∂U"))
        }
    };
    let typing = shape::infer(program)?;
    if !typing.shape().is_scalar() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("a Hessian is of a scalar expression, and this one is {}", typing.shape()),
        )
        .label(program.expr.span, "this expression")
        .note("for a vector-valued expression, `jacobian` gives its first derivative as a matrix"));
    }
    drop(typing);
    for x in [v, u] {
        refuse_member(x)?;
    }
    let first = derive(
        program,
        &DeriveOptions {
            wrt: vec![u.clone()],
            steps: Steps::Skip,
            sharing: crate::Sharing::Expanded,
            control: control.clone(),
            ..Default::default()
        },
    )?;
    let g = first.gradients[0].expr.clone();
    let u_shape = first.gradients[0].shape.clone();
    let v_shape = first.typing.var_shape(v).ok_or_else(|| not_a_variable(v, &first.typing))?;
    let direction = fresh_direction(u, &first.typing);
    let second_program = program_of(&first, g.clone(), &[])?;
    drop(first);
    let kind = if u == v { Kind::Hessian } else { Kind::Mixed };
    finish(Parts {
        kind,
        wrt: v.clone(),
        along: u.clone(),
        direction,
        direction_shape: u_shape,
        first: g,
        upstream: None,
        program: second_program,
        second_wrt: v.clone(),
        result_shape: v_shape,
        control: control.clone(),
    })
}

/// The Jacobian of the program's expression Z with respect to `wrt`: the
/// differential `dZ` in the direction `dX`, and the matrix ∂Z/∂X where Z
/// and X are columns (or 1×1).
///
/// ```
/// let p = matdiff::parse("W : m x n; x : n; tanh(W*x)").unwrap();
/// let x = matdiff::syntax::parse_var("x").unwrap();
/// let j = matdiff::hessian::jacobian(&p, &x, &Default::default()).unwrap();
/// assert_eq!(j.matrix.unwrap().to_string(), "diag(1 - tanh(W * x) .^ 2) * W");
/// ```
pub fn jacobian(program: &Program, wrt: &VarName, control: &Control) -> Result<SecondOrder> {
    refuse_member(wrt)?;
    let typing = shape::infer(program)?;
    let z_shape = typing.shape();
    let upstream = fresh_name(&["G", "U", "G2", "G3"], &typing, program);
    drop(typing);
    let options = DeriveOptions {
        wrt: vec![wrt.clone()],
        upstream: Some(upstream.to_string()),
        steps: Steps::Skip,
        sharing: crate::Sharing::Expanded,
        control: control.clone(),
    };
    let first = derive(program, &options)?;
    let x_shape = first.gradients[0].shape.clone();
    let direction = fresh_direction(wrt, &first.typing);
    let vjp = first.gradients[0].expr.clone();
    if z_shape.is_scalar() {
        // dZ = tr(gᵀ dX): the gradient is the only derivation needed.
        let map = Expr::call(syntax::Func::Tr, Expr::product(Expr::transpose(vjp.clone()), var(&direction)));
        let program2 = program_of(&first, vjp.clone(), &[])?;
        let mut t = first.typing.clone();
        t.insert_var(direction.clone(), &x_shape);
        let (map, saturated) = simplified(&mut t, &map, &Shape::scalar())?;
        let column = x_shape.cols == Dim::Const(1);
        let matrix = column.then(|| Expr::transpose(vjp.clone()));
        let matrix = match matrix {
            Some(m) => Some(simplified(&mut t, &m, &Shape::new(Dim::Const(1), x_shape.rows.clone()))?.0),
            None => None,
        };
        return Ok(SecondOrder {
            kind: Kind::Jacobian,
            wrt: wrt.clone(),
            along: wrt.clone(),
            direction,
            direction_shape: x_shape.clone(),
            first: vjp,
            upstream: None,
            program: program2,
            second_wrt: wrt.clone(),
            second_upstream: None,
            map,
            map_shape: Shape::scalar(),
            matrix_shape: matrix.as_ref().map(|_| Shape::new(Dim::Const(1), x_shape.rows.clone())),
            matrix,
            no_matrix: None,
            vec_form: None,
            vec_shape: None,
            no_vec_form: None,
            saturated,
            control: control.clone(),
        });
    }
    let program2 = program_of(&first, vjp.clone(), &[(upstream.clone(), z_shape.clone())])?;
    drop(first);
    finish(Parts {
        kind: Kind::Jacobian,
        wrt: wrt.clone(),
        along: wrt.clone(),
        direction,
        direction_shape: x_shape,
        first: vjp,
        upstream: Some(upstream.clone()),
        program: program2,
        second_wrt: upstream,
        result_shape: z_shape,
        control: control.clone(),
    })
}

struct Parts {
    kind: Kind,
    wrt: VarName,
    along: VarName,
    direction: VarName,
    direction_shape: Shape,
    first: Expr,
    upstream: Option<VarName>,
    program: Program,
    second_wrt: VarName,
    /// The shape of the map's value.
    result_shape: Shape,
    control: Control,
}

/// The second derivation, and the matrix read off its map.
fn finish(p: Parts) -> Result<SecondOrder> {
    let mut out = SecondOrder {
        kind: p.kind,
        wrt: p.wrt,
        along: p.along,
        direction: p.direction,
        direction_shape: p.direction_shape,
        first: p.first,
        upstream: p.upstream,
        program: p.program,
        second_wrt: p.second_wrt,
        second_upstream: None,
        map: Expr::num(0.0),
        map_shape: p.result_shape,
        matrix: None,
        matrix_shape: None,
        no_matrix: None,
        vec_form: None,
        vec_shape: None,
        no_vec_form: None,
        saturated: true,
        control: p.control,
    };
    let direction_column = out.direction_shape.cols == Dim::Const(1);
    let value_column = out.map_shape.cols == Dim::Const(1);
    let matrix_shape = Shape::new(out.map_shape.rows.clone(), out.direction_shape.rows.clone());
    if !out.program.expr.mentions(&out.second_wrt) {
        // The first result does not depend on it: the zero map.
        if direction_column && value_column {
            out.matrix = Some(Expr::num(0.0));
            out.matrix_shape = Some(matrix_shape);
        }
        return Ok(out);
    }
    let scalar_first = shape::infer(&out.program)?.shape().is_scalar();
    if !scalar_first {
        out.second_upstream = Some(out.direction.clone());
    }
    let options = out.second_options(Steps::Skip);
    let second = derive(&out.program, &options)?;
    let mut typing = second.typing.clone();
    let result = second.gradients[0].expr.clone();
    out.saturated = second.gradients[0].saturated;
    drop(second);
    if !typing.variables().contains(&out.direction) {
        typing.insert_var(out.direction.clone(), &out.direction_shape);
    }
    if scalar_first {
        // A 1×1 first result s: its gradient is the matrix, ds = M d(along).
        out.map =
            simplified(&mut typing, &Expr::product(result.clone(), var(&out.direction)), &out.map_shape)?.0;
        if direction_column && value_column {
            out.matrix = Some(result);
            out.matrix_shape = Some(matrix_shape);
        }
        return Ok(out);
    }
    // Printed with `sum(dx)` for `dx^T * ones(n)`, once the matrix is read
    // off the form the read-off knows (`1^T d`).
    let summed = typing.scratch(|typer| {
        sums_of_columns(&result, &mut |x| {
            typer.scratch(|t| t.infer(x).map(|s| t.resolve(s))).is_ok_and(|s| s.cols == Dim::Const(1))
        })
    });
    out.map = result;
    // The vec form, where the matrix cannot be read off: a matrix
    // direction or a matrix value (`Z = x * y^T`: vec(dZ) = kron(y, I) dx).
    if !(direction_column && value_column) {
        let vec = typing.scratch(|typer| {
            let mut shape_of = |e: &Expr| typer.scratch(|t| t.infer(e).map(|s| t.resolve(s)));
            vec_form(&out.map, &out.direction, &out.direction_shape, &mut shape_of)
        })?;
        match vec {
            Ok(k) => {
                out.vec_shape = Some([VecSize::of(&out.map_shape), VecSize::of(&out.direction_shape)]);
                out.vec_form = Some(k);
            }
            Err(why) => out.no_vec_form = Some(why),
        }
    }
    if !(direction_column && value_column) {
        out.map = summed;
        return Ok(out);
    }
    let read = typing.scratch(|typer| {
        let mut shape_of = |e: &Expr| typer.scratch(|t| t.infer(e).map(|s| t.resolve(s)));
        matrix_of(&out.map, &out.direction, &mut shape_of)
    });
    match read {
        Ok(m) => {
            let m = m.unwrap_or_else(|| Expr::num(0.0));
            let mut m = simplified(&mut typing, &m, &matrix_shape)?.0;
            if let Some(absorbed) = crate::calculus::second::absorb_ones(&m) {
                m = simplified(&mut typing, &absorbed, &matrix_shape)?.0;
            }
            out.matrix = Some(m);
            out.matrix_shape = Some(matrix_shape);
        }
        Err(e) if e.kind == ErrorKind::Unsupported => out.no_matrix = Some(e.message.clone()),
        Err(e) => return Err(e),
    }
    out.map = summed;
    Ok(out)
}

/// The matrix K of vec(map) = K vec(d) for a map that is a sum of terms
/// ± c P d Q (c 1×1 factors, P and Q products that do not hold d, either
/// one absent for an identity) or ± c P (S .* d) Q: vec(P d Q) =
/// kron(Qᵀ, P) vec(d), vec(S .* d) = diag(vec(S)) vec(d). `Err` says why
/// the map has no such form (a dᵀ, which needs the commutation matrix; d
/// inside anything else). The outer `Result` is a failure of the shapes.
fn vec_form(
    map: &Expr,
    d: &VarName,
    d_shape: &Shape,
    shape_of: &mut dyn FnMut(&Expr) -> Result<Shape>,
) -> Result<std::result::Result<Expr, String>> {
    use crate::syntax::Func;
    let eye = |dim: &Dim| -> Option<Expr> {
        let k = match dim {
            Dim::Const(n) => DimSpec::Const(*n),
            Dim::Symbol(s) => DimSpec::Symbol(s.clone()),
            Dim::Indexed(s, i) => DimSpec::Indexed(s.clone(), i.clone()),
            Dim::Unknown(_) => return None,
        };
        Some(Expr::call(Func::Diag, Expr::ones(k, DimSpec::Const(1))))
    };
    let (Some(eye_rows), Some(eye_cols)) = (eye(&d_shape.rows), eye(&d_shape.cols)) else {
        return Ok(Err(format!("the size of `{d}` is not known")));
    };
    let is_d = |e: &Expr| matches!(&e.kind, ExprKind::Var(v) if **v == *d);
    let mut total: Option<Expr> = None;
    for (negative, term) in map.sum_terms_through_neg() {
        let factors = term.factors();
        let mut at = None;
        let mut mask = None;
        for (i, f) in factors.iter().enumerate() {
            if !f.mentions(d) {
                continue;
            }
            if at.is_some() {
                return Ok(Err(format!("the term `{term}` holds `{d}` more than once")));
            }
            at = Some(i);
            match &f.kind {
                _ if is_d(f) => {}
                ExprKind::Transpose(x) if is_d(x) => {
                    return Ok(Err(format!(
                        "the term `{term}` holds `{d}^T`, and vec({d}^T) needs the commutation matrix, which the language does not have"
                    )))
                }
                ExprKind::Binary { op: BinOp::Hadamard, lhs, rhs, .. }
                    if (is_d(lhs) && !rhs.mentions(d)) || (is_d(rhs) && !lhs.mentions(d)) =>
                {
                    let s = if is_d(lhs) { rhs } else { lhs };
                    // A 1×1 S broadcast is a scaling, not a mask.
                    mask = Some(if shape_of(s)?.is_scalar() {
                        (true, (**s).clone())
                    } else {
                        (false, Expr::call(Func::Diag, Expr::call(Func::Vec, (**s).clone())))
                    });
                }
                _ => return Ok(Err(format!("in the term `{term}`, `{f}` is not `{d}` times matrices"))),
            }
        }
        let Some(at) = at else { continue };
        let mut scalars = vec![];
        let (mut left, mut right) = (vec![], vec![]);
        for (i, f) in factors.iter().enumerate() {
            if i == at {
                continue;
            }
            if shape_of(f)?.is_scalar() {
                scalars.push((*f).clone());
            } else if i < at {
                left.push((*f).clone());
            } else {
                right.push((*f).clone());
            }
        }
        // vec(c dV) and vec(S .* dV) need no kron of two identities.
        let whole = d_shape.rows.times(&d_shape.cols).and_then(|n| eye(&n));
        let mut k = match whole.filter(|_| left.is_empty() && right.is_empty()) {
            Some(whole) => match mask {
                Some((false, m)) => m,
                Some((true, m)) => {
                    scalars.push(m);
                    whole
                }
                None => whole,
            },
            None => {
                let p = Expr::product_of(left);
                let q = Expr::product_of(right.iter().rev().map(transposed));
                // kron(Q^T, 1) = Q^T and kron(1, P) = P: a column dV needs
                // no identity of size 1 (vec(P dv) = P dv).
                let one = |dim: &Dim| *dim == Dim::Const(1);
                let k = match (p, q) {
                    (Some(p), None) if one(&d_shape.cols) => p,
                    (None, Some(q)) if one(&d_shape.rows) => q,
                    (p, q) => Expr::binary(
                        BinOp::Kron,
                        q.unwrap_or_else(|| eye_cols.clone()),
                        p.unwrap_or_else(|| eye_rows.clone()),
                    ),
                };
                match mask {
                    Some((true, m)) => {
                        scalars.push(m);
                        k
                    }
                    Some((false, m)) => Expr::product(k, m),
                    None => k,
                }
            }
        };
        if let Some(c) = Expr::product_of(scalars) {
            k = Expr::product(c, k);
        }
        total = Some(match (total, negative) {
            (None, false) => k,
            (None, true) => Expr::negate(k),
            (Some(t), false) => Expr::plus(t, k),
            (Some(t), true) => Expr::minus(t, k),
        });
    }
    Ok(Ok(total.unwrap_or_else(|| Expr::num(0.0))))
}

/// `e` with the inner product of a column x and a ones column written
/// `sum(x)`, as a textbook does: `xᵀ * ones(n)`, `ones(n)ᵀ * x` and
/// `ones(1, n) * x` for a column x (then the product is 1×1, the sum of x's
/// entries; for a matrix x it would be a row of column sums, so the shape
/// is asked).
fn sums_of_columns(e: &Expr, is_column: &mut dyn FnMut(&Expr) -> bool) -> Expr {
    use crate::syntax::Func;
    let one = DimSpec::Const(1);
    e.fold(&mut |node: &Expr, kids: crate::syntax::Kids<Expr>| {
        let mut kids = kids.into_iter();
        let node = node.map_children(|_| kids.next().expect("a child").into());
        let ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } = &node.kind else { return node };
        let ones_column = |x: &Expr| matches!(&x.kind, ExprKind::Ones(d) if d.1 == one);
        let summed = match (&lhs.kind, &rhs.kind) {
            (ExprKind::Transpose(x), _) if ones_column(rhs) && is_column(x) => Some(x.clone()),
            (ExprKind::Transpose(o), _) if ones_column(o) && is_column(rhs) => Some(rhs.clone()),
            (ExprKind::Ones(d), _) if d.0 == one && is_column(rhs) => Some(rhs.clone()),
            _ => None,
        };
        match summed {
            Some(x) => Expr::call(Func::Sum, x),
            None => node,
        }
    })
}

/// `eᵀ` with the transpose taken in one level where that reads better
/// (`(Vᵀ)ᵀ = V`, `Xᵀ`, `(a + b)ᵀ = aᵀ + bᵀ`).
fn transposed(e: &Expr) -> Expr {
    crate::calculus::second::transpose_inward(e).unwrap_or_else(|| Expr::transpose(e.clone()))
}

/// `e` simplified as a value of shape `want`, and checked to have it.
fn simplified(typing: &mut shape::Typing, e: &Expr, want: &Shape) -> Result<(Expr, bool)> {
    let symmetric = simplify::Symmetric::declared_in(typing.program);
    let mut s = simplify::Simplifier::default().with_symmetric(symmetric);
    let out = typing.scratch(|typer| s.simplify_gradient(e, typer, want))?;
    typing.scratch(|typer| {
        if out.expr.kind == ExprKind::Num(0.0) {
            return Ok(());
        }
        let w = typer.lift(want);
        let got = typer.infer_as(&out.expr, w)?;
        if got.fits {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Internal,
                format!("the second derivative `{}` does not have the shape {want}", out.expr),
            ))
        }
    })?;
    Ok((positive_first(&out.expr), out.saturated))
}

/// A sum whose first term is subtracted begins with a term that is not
/// (`-a + 1` is `1 - a`), as a textbook writes it.
fn positive_first(e: &Expr) -> Expr {
    e.fold(&mut |node: &Expr, kids: crate::syntax::Kids<Expr>| {
        let mut kids = kids.into_iter();
        let rebuilt = match &node.kind {
            ExprKind::Binary { op, op_span, .. } => {
                let (l, r) = (kids.next().expect("lhs"), kids.next().expect("rhs"));
                Expr::new(
                    ExprKind::Binary { op: *op, op_span: *op_span, lhs: l.into(), rhs: r.into() },
                    node.span,
                )
            }
            _ => node.map_children(|_| kids.next().expect("a child").into()),
        };
        if !matches!(&rebuilt.kind, ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. }) {
            return rebuilt;
        }
        let mut terms: Vec<(bool, Expr)> = rebuilt
            .sum_terms()
            .into_iter()
            .map(|(negative, t)| match &t.kind {
                ExprKind::Neg(x) => (!negative, (**x).clone()),
                _ => (negative, t.clone()),
            })
            .collect();
        let Some(first) = terms.iter().position(|(negative, _)| !negative) else { return rebuilt };
        if first == 0 {
            return rebuilt;
        }
        let lead = terms.remove(first);
        terms.insert(0, lead);
        let mut it = terms.into_iter();
        let (_, head) = it.next().expect("a term");
        it.fold(head, |acc, (negative, t)| if negative { Expr::minus(acc, t) } else { Expr::plus(acc, t) })
    })
}

fn var(v: &VarName) -> Expr {
    Expr::synthetic(ExprKind::Var(std::rc::Rc::new(v.clone())))
}

/// A member of a family (`W[j]`) is refused: its second derivative
/// would need the split of `prod` twice.
fn refuse_member(v: &VarName) -> Result<()> {
    if v.index.is_some() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("second derivatives with respect to a member of a family (`{v}`) are not supported"),
        )
        .note("write the product out with plain variables (`W1*W2*W3`) to take its second derivative"));
    }
    Ok(())
}

fn not_a_variable(v: &VarName, typing: &shape::Typing) -> Error {
    let known: Vec<String> = typing.variables().iter().map(|v| v.to_string()).collect();
    Error::new(ErrorKind::Usage, format!("`{v}` does not occur in the expression"))
        .note(format!("its variables are: {}", known.join(", ")))
}

/// `dV` for the variable V, or `dV_2`, … if the program uses that name.
fn fresh_direction(v: &VarName, typing: &shape::Typing) -> VarName {
    let base = format!("d{}", v.name);
    let taken = |n: &str| typing.variables().iter().any(|w| w.name == n);
    let name = std::iter::once(base.clone())
        .chain((2..).map(|k| format!("{base}_{k}")))
        .find(|n| !taken(n))
        .expect("an unbounded supply of names");
    VarName::plain(&name)
}

fn fresh_name(candidates: &[&str], typing: &shape::Typing, program: &Program) -> VarName {
    let taken = |n: &str| {
        typing.variables().iter().any(|w| w.name == n) || program.declarations.iter().any(|d| d.name == n)
    };
    let name = candidates
        .iter()
        .map(|c| c.to_string())
        .chain((4..).map(|k| format!("G{k}")))
        .find(|n| !taken(n))
        .expect("an unbounded supply of names");
    VarName::plain(&name)
}

/// The program whose expression is `expr`, a formula derived from
/// `first`'s program: each variable it mentions declared with the shape
/// inferred for it (so that the second derivation types as the first did)
/// and the domain declared for it; `extra` are variables of the derivation
/// that the program did not have (the upstream gradient).
fn program_of(first: &crate::Derivation, expr: Expr, extra: &[(VarName, Shape)]) -> Result<Program> {
    let mut names = BTreeSet::new();
    expr.for_each(|e| {
        if let ExprKind::Var(v) = &e.kind {
            names.insert((**v).clone());
        }
    });
    let old = first.typing.program;
    let mut declarations = Vec::new();
    for v in &names {
        let shape = match extra.iter().find(|(w, _)| w == v) {
            Some((_, s)) => s.clone(),
            None => first.typing.var_shape(v).ok_or_else(|| {
                Error::new(ErrorKind::Internal, format!("`{v}` of a derived formula has no shape"))
            })?,
        };
        let domain = old.declarations.iter().rev().find(|d| d.name == v.name).and_then(|d| d.domain);
        declarations.push(Declaration {
            name: v.name.clone(),
            binder: None,
            shape: shape_spec(&shape, v)?,
            domain,
            span: Span::SYNTHETIC,
        });
    }
    Ok(Program { declarations, definitions: vec![], expr, name: old.name.clone() })
}

fn shape_spec(s: &Shape, v: &VarName) -> Result<ShapeSpec> {
    let dim = |d: &Dim| match d {
        Dim::Const(n) => Ok(DimSpec::Const(*n)),
        Dim::Symbol(s) => Ok(DimSpec::Symbol(s.clone())),
        Dim::Indexed(s, i) => Ok(DimSpec::Indexed(s.clone(), i.clone())),
        Dim::Unknown(_) => Err(Error::new(
            ErrorKind::Unsupported,
            format!("the shape of `{v}` is not determined, and a second derivative needs it"),
        )
        .note(format!("declare it (`{v} : m x n`)"))),
    };
    Ok(ShapeSpec::Matrix(dim(&s.rows)?, dim(&s.cols)?))
}
