//! Second derivatives judged: `check` (the first derivative against
//! differences of the expression, the second against differences of the
//! first, the matrix against the map) and `verify` of a claimed Hessian,
//! mixed block or Jacobian (as its matrix, its map applied to the
//! direction, or its vec form). Both return data; the front ends render it.

use std::collections::BTreeMap;

use super::{value_name, Kind, SecondOrder};
use crate::error::{Error, ErrorKind, Result};
use crate::numeric::{CheckOptions, CheckReport};
use crate::shape::{Dim, Shape};
use crate::syntax::{self, DomainSpec, Program, VarName};
use crate::verify::{Verdict, VerifyOptions};
use crate::{derive, Control, DeriveOptions, Steps};

/// What `check` of a second derivative found.
#[derive(Clone, Debug)]
pub struct SecondCheck {
    /// Which derivative.
    pub kind: Kind,
    /// The first derivative (for a Jacobian, the vector–Jacobian product)
    /// against finite differences of the expression.
    pub first: CheckReport,
    /// The map (`H[dV]`, `dZ`) against finite differences of the derived
    /// first derivative; `None` where the first does not depend on the
    /// variable (the second derivative is 0).
    pub second: Option<CheckReport>,
    /// The matrix read off the map, where there is one, against the map.
    pub matrix: Option<Verdict>,
}

impl SecondCheck {
    /// Whether every part agrees.
    pub fn ok(&self) -> bool {
        self.first.ok()
            && self.second.as_ref().is_none_or(|r| r.ok())
            && self.matrix.as_ref().is_none_or(|v| v.equivalent())
    }
}

/// `check --order 2` / `check --jacobian`: the first derivative against
/// differences of the expression, the second against differences of the
/// first, and the matrix, when there is one, against the map.
///
/// ```
/// let p = matdiff::parse("x : n; A : n x n; x^T*A*x").unwrap();
/// let x = matdiff::syntax::parse_var("x").unwrap();
/// let s = matdiff::hessian::hessian(&p, &[x], &Default::default()).unwrap();
/// let found = matdiff::hessian::check(&p, &s, &Default::default()).unwrap();
/// assert!(found.ok() && found.matrix.is_some());
/// ```
pub fn check(program: &Program, s: &SecondOrder, options: &CheckOptions) -> Result<SecondCheck> {
    let first_options = DeriveOptions { control: options.control.clone(), ..s.first_options(Steps::Skip) };
    let first = crate::numeric::check(&derive(program, &first_options)?, options)?;
    let mut second_options = options.clone();
    second_options.domains.retain(|v, _| s.program.expr.mentions(v));
    let second = if s.program.expr.mentions(&s.second_wrt) {
        let second = derive(&s.program, &s.second_options(Steps::Skip))?;
        Some(crate::numeric::check(&second, &second_options)?)
    } else {
        None
    };
    let matrix = match &s.matrix {
        Some(m) if second.is_some() => {
            Some(verify_matrix(s, &m.to_string(), &second_options.domains, &options.control)?)
        }
        _ => None,
    };
    Ok(SecondCheck { kind: s.kind, first, second, matrix })
}

/// How a claimed second derivative was read, and so what it was compared
/// with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compared {
    /// A matrix of the vec form's shape, against the derived vec form.
    VecForm,
    /// A formula in the direction, against the derived map.
    Map,
    /// A matrix C, as the map `C * d` against the derived map.
    MatrixAsMap,
    /// A matrix, against the derived matrix (the first derivative is 1×1).
    Matrix,
}

/// A verdict on a claimed second derivative, and how the claim was read.
#[derive(Clone, Debug)]
pub struct SecondVerdict {
    /// The verdict, as [`crate::verify::verify`]'s.
    pub verdict: Verdict,
    /// What the claim was compared with.
    pub compared: Compared,
}

/// `verify --order 2` / `verify --jacobian`: whether `claim` is the second
/// derivative `s`, read as the matrix (a Hessian, a mixed block, a
/// Jacobian), or, where it mentions the direction, as the map applied to
/// it (`H[dX]`, `dZ`), or, where it has the vec form's shape, as that.
///
/// ```
/// let p = matdiff::parse("x : n; A : n x n; x^T*A*x").unwrap();
/// let x = matdiff::syntax::parse_var("x").unwrap();
/// let s = matdiff::hessian::hessian(&p, &[x], &Default::default()).unwrap();
/// let no_domains = Default::default();
/// let control = Default::default();
/// assert!(matdiff::hessian::verify(&s, "A + A^T", &no_domains, &control).unwrap().verdict.equivalent());
/// assert!(!matdiff::hessian::verify(&s, "2*A", &no_domains, &control).unwrap().verdict.equivalent());
/// ```
pub fn verify(
    s: &SecondOrder,
    claim: &str,
    domains: &BTreeMap<VarName, DomainSpec>,
    control: &Control,
) -> Result<SecondVerdict> {
    let claim_expr = syntax::parse_expr(claim)?;
    let is_map = claim_expr.mentions(&s.direction);
    // A matrix of the vec form's shape (`kron(I, A + A^T)`) is the vec form.
    if !is_map && is_vec_claim(s, &claim_expr) {
        return Ok(SecondVerdict {
            verdict: verify_vec(s, claim, domains, control)?,
            compared: Compared::VecForm,
        });
    }
    if !is_map {
        let compared = if s.second_upstream.is_some() { Compared::MatrixAsMap } else { Compared::Matrix };
        return Ok(SecondVerdict { verdict: verify_matrix(s, claim, domains, control)?, compared });
    }
    if s.second_upstream.is_none() {
        // A 1×1 first result: the map is M * d, the claim's d taken out.
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "give the claim as a matrix, without `{}`: here the map is that matrix times `{}`",
                s.direction, s.direction
            ),
        ));
    }
    Ok(SecondVerdict { verdict: verify_map(s, claim, domains, control)?, compared: Compared::Map })
}

/// Whether `claim`, a matrix, is the matrix of `s`'s map: `claim * d`
/// against the map, by `verify`.
fn verify_matrix(
    s: &SecondOrder,
    claim: &str,
    domains: &BTreeMap<VarName, DomainSpec>,
    control: &Control,
) -> Result<Verdict> {
    let applied = match &s.second_upstream {
        Some(d) => format!("({claim}) * {d}"),
        None => claim.to_string(),
    };
    verify_map(s, &applied, domains, control)
}

/// The number of entries of a matrix of shape `sh`, where it is a [`Dim`].
fn entries(sh: &Shape) -> Option<Dim> {
    sh.rows.times(&sh.cols)
}

/// Whether `claim` has the shape of the vec form (the map's value's size
/// by the direction's), where there is one to give: a matrix direction or
/// value, sizes numbers.
fn is_vec_claim(s: &SecondOrder, claim: &syntax::Expr) -> bool {
    let column = |sh: &Shape| sh.cols == Dim::Const(1);
    if column(&s.direction_shape) && column(&s.map_shape) {
        return false;
    }
    let (Some(rows), Some(cols)) = (entries(&s.map_shape), entries(&s.direction_shape)) else { return false };
    let program = Program {
        declarations: s.program.declarations.clone(),
        definitions: vec![],
        expr: claim.clone(),
        name: None,
    };
    crate::shape::infer(&program).is_ok_and(|t| {
        let shape = t.shape();
        shape.rows == rows && shape.cols == cols
    })
}

/// Whether `claim`, a matrix of the vec form's shape, is the derived vec
/// form K (`vec(map) = K vec(direction)`): as the gradient of `tr(P^T K)`
/// by a fresh P of K's shape, by `verify` (the e-graph, then the numbers).
/// K itself is checked against the map by the tests (constructs_kron).
fn verify_vec(
    s: &SecondOrder,
    claim: &str,
    domains: &BTreeMap<VarName, DomainSpec>,
    control: &Control,
) -> Result<Verdict> {
    let z = value_name(&s.program);
    let Some(k) = &s.vec_form else {
        let why = s.no_vec_form.clone().unwrap_or_else(|| "it is not derived here".to_string());
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the claim has the shape of a vec form, but there is none to compare it with: {why}; give the claim as the map {} in `{}`",
                s.map_name(&z),
                s.direction
            ),
        ));
    };
    let (Some(Dim::Const(rows)), Some(Dim::Const(cols))) =
        (entries(&s.map_shape), entries(&s.direction_shape))
    else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "a vec form is compared only where its sizes are numbers",
        ));
    };
    let taken = |n: &str| {
        s.program.declarations.iter().any(|d| d.name == n) || s.program.expr.mentions(&VarName::plain(n))
    };
    let p = ["P", "P_vec", "K_vec"]
        .iter()
        .map(|c| c.to_string())
        .chain((1..).map(|k| format!("P{k}")))
        .find(|n| !taken(n))
        .expect("an unbounded supply of names");
    let mut declarations = s.program.declarations.clone();
    declarations.push(syntax::Declaration {
        name: p.clone(),
        binder: None,
        shape: syntax::ShapeSpec::Matrix(syntax::DimSpec::Const(rows), syntax::DimSpec::Const(cols)),
        domain: None,
        span: syntax::Span::SYNTHETIC,
    });
    let p = VarName::plain(&p);
    let expr = syntax::Expr::call(
        syntax::Func::Tr,
        syntax::Expr::product(syntax::Expr::transpose(syntax::Expr::var(&p.name)), k.clone()),
    );
    let program = Program { declarations, definitions: vec![], expr, name: None };
    let options = VerifyOptions {
        domains: domains.iter().filter(|(v, _)| k.mentions(v)).map(|(v, d)| (v.clone(), *d)).collect(),
        name: Some(s.vec_name(&z)),
        control: control.clone(),
        ..Default::default()
    };
    crate::verify::verify(&program, &p, claim, &options)
}

/// Whether `claim`, a formula in the direction, is the derived map.
fn verify_map(
    s: &SecondOrder,
    claim: &str,
    domains: &BTreeMap<VarName, DomainSpec>,
    control: &Control,
) -> Result<Verdict> {
    if !s.program.expr.mentions(&s.second_wrt) {
        // The zero map: the program has nothing to differentiate.
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("the first derivative does not depend on `{}`: the second derivative is 0", s.second_wrt),
        ));
    }
    let options = VerifyOptions {
        upstream: s.second_upstream.as_ref().map(|d| d.to_string()),
        domains: domains
            .iter()
            .filter(|(v, _)| s.program.expr.mentions(v))
            .map(|(v, d)| (v.clone(), *d))
            .collect(),
        name: Some(s.map_name("Z")),
        control: control.clone(),
        ..Default::default()
    };
    crate::verify::verify(&s.program, &s.second_wrt, claim, &options)
}
