//! Shapes: dimensions, declarations, and inference by unification.
//!
//! Entry point: [`infer`], which types a parsed [`Program`] and keeps the
//! shape of every node of its expression for the later stages.

mod dim;
mod infer;

use std::collections::{BTreeSet, HashMap, HashSet};

pub use dim::{Dim, Shape};
pub use infer::{Broadcast, DimId, IShape, Inferred, Typer};

use crate::error::{Error, ErrorKind, Result};
use crate::syntax::{Expr, ExprKind, Program, Span, VarName};

/// A typed program: the shape of every variable and of every node of the
/// program's expression.
#[derive(Clone, Debug)]
pub struct Typing<'p> {
    /// The program typed.
    pub program: &'p Program,
    typer: Typer,
    shape: IShape,
    /// Shapes of the nodes of `program.expr`, by address (the tree is
    /// borrowed for as long as the typing lives, so addresses are stable).
    /// Keyed by address: hashed once per node per gradient, so FxHash.
    nodes: rustc_hash::FxHashMap<*const Expr, IShape>,
    variables: Vec<VarName>,
    families: Vec<String>,
}

/// Infers every shape in a program, or reports the first conflict at the
/// operator whose operands disagree.
///
/// ```
/// let p = matdiff::syntax::parse_program("W1 : 3x4; W1*W2*X").unwrap();
/// let t = matdiff::shape::infer(&p).unwrap();
/// assert_eq!(t.shape().to_string(), "3 x d1");
/// let w2 = matdiff::syntax::parse_var("W2").unwrap();
/// assert_eq!(t.var_shape(&w2).unwrap().to_string(), "4 x d0");
/// ```
pub fn infer(program: &Program) -> Result<Typing<'_>> {
    let mut typer = Typer::new();
    let mut domains: HashMap<&str, (crate::syntax::DomainSpec, Span)> = HashMap::new();
    for d in &program.declarations {
        typer.declare(&d.name, d.binder.as_deref(), &d.shape, d.span)?;
        if let Some(domain) = d.domain {
            match domains.get(d.name.as_str()) {
                Some(&(first, at)) if first != domain => {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        format!(
                            "`{}` is declared twice with different domains: {} and {}",
                            d.name,
                            first.name(),
                            domain.name()
                        ),
                    )
                    .label(at, "first declaration")
                    .label(d.span, "second declaration")
                    .note("a variable has one domain; keep the declaration you mean"));
                }
                _ => {
                    domains.insert(&d.name, (domain, d.span));
                }
            }
        }
        if d.domain == Some(crate::syntax::DomainSpec::Spd) {
            square_for_spd(&mut typer, d)?;
        }
    }
    for (k, def) in program.definitions.iter().enumerate() {
        let s = typer.infer(&def.expr)?;
        let name = VarName::plain(&def.name);
        // A definition kept as a variable (`Program::with_definitions_kept`)
        // has the shape of its last definition.
        let last = !program.definitions[k + 1..].iter().any(|d| d.name == def.name);
        if last && typer.declared(&name).is_none() {
            let fresh = typer.var(&name)?;
            typer.unify_shapes(fresh, s);
        }
        if let Some(declared) = typer.declared(&name) {
            if !typer.unify_shapes(declared, s) {
                return Err(Error::new(
                    ErrorKind::Shape,
                    format!(
                        "`{}` is declared {} but defined as {}",
                        def.name,
                        typer.resolve(declared),
                        typer.resolve(s)
                    ),
                )
                .label(def.span, "this definition"));
            }
        }
    }
    let mut nodes = rustc_hash::FxHashMap::default();
    let shape = typer.infer_with(&program.expr, &mut |e, s| {
        nodes.insert(e as *const Expr, s);
    })?;
    let mut taken = HashSet::new();
    collect_names(&program.expr, &mut taken);
    for d in &program.declarations {
        taken.insert(d.name.clone());
    }
    let (mut variables, mut families) = (Vec::new(), Vec::new());
    collect_variables(&program.expr, &mut variables, &mut families);
    typer.name_open_dims(&variables, &taken);
    typer.compress();
    typer.know_nodes(&program.expr);
    Ok(Typing { program, typer, shape, nodes, variables, families })
}

/// The program with every broadcast written out as a product with a ones
/// vector, as NumPy and MATLAB broadcast: `W*X + b` with `b` m×1 and `W*X`
/// m×B is `W*X + b * ones(1, B)`, and a 1×n row `r` against B×n is
/// `ones(B) * r`. A column (row) broadcasts only where the other side's
/// columns (rows) are known not to be 1: a number above 1 or a dimension
/// name; an open dimension is unified instead. A program that does not type
/// is returned as it is, for [`infer`] to report.
pub fn explicit_broadcasts(program: Program) -> Program {
    counted_means(with_broadcasts(program))
}

fn with_broadcasts(mut program: Program) -> Program {
    let mut typer = Typer::broadcasting();
    let typed = (|| -> Result<()> {
        for d in &program.declarations {
            typer.declare(&d.name, d.binder.as_deref(), &d.shape, d.span)?;
        }
        for def in &program.definitions {
            typer.infer(&def.expr)?;
        }
        typer.infer(&program.expr)?;
        Ok(())
    })();
    let sites: HashMap<*const Expr, Broadcast> = typer.take_broadcasts().into_iter().collect();
    if typed.is_err() || sites.is_empty() {
        return program;
    }
    let root = &program.expr as *const Expr;
    program.expr = with_ones(&program.expr, root, &sites);
    for def in &mut program.definitions {
        let root = &def.expr as *const Expr;
        def.expr = with_ones(&def.expr, root, &sites);
    }
    program
}

/// The program with the count of each `mean` (parsed as `sum(A) / sum(A .^ 0)`,
/// along an axis `sum(A, k) ./ sum(A .^ 0, k)`) written as the number it is
/// where the sizes are numbers (`sum(A) / 12`, `sum(A, 1) / 3`). A symbolic
/// size keeps `sum(A .^ 0)`, the sum of A's ones matrix: unlike
/// `sum(ones(m, n))` it is tied to A, so every evaluator sizes it as A is.
fn counted_means(mut program: Program) -> Program {
    let candidate = |e: &Expr| mean_parts(e).is_some();
    if !program.expr.any(candidate) && !program.definitions.iter().any(|d| d.expr.any(candidate)) {
        return program;
    }
    let mut typer = Typer::new();
    let mut nodes: HashMap<*const Expr, IShape> = HashMap::new();
    let typed = (|| -> Result<()> {
        for d in &program.declarations {
            typer.declare(&d.name, d.binder.as_deref(), &d.shape, d.span)?;
        }
        for def in &program.definitions {
            typer.infer_with(&def.expr, &mut |n, s| {
                nodes.insert(n as *const Expr, s);
            })?;
        }
        typer.infer_with(&program.expr, &mut |n, s| {
            nodes.insert(n as *const Expr, s);
        })?;
        Ok(())
    })();
    if typed.is_err() {
        return program;
    }
    // Resolved once the whole program is typed: a dimension bound after the
    // mean (`mean(X) + sum(W * X)`) counts too.
    let shape = |e: &Expr| nodes.get(&(e as *const Expr)).map(|&s| typer.resolve(s));
    program.expr = with_counts(&program.expr, &shape);
    for def in &mut program.definitions {
        def.expr = with_counts(&def.expr, &shape);
    }
    program
}

/// `sum(A) / sum(A .^ 0)` or `sum(A, k) ./ sum(A .^ 0, k)`: A and the sum.
fn mean_parts(e: &Expr) -> Option<(&Expr, crate::syntax::Func)> {
    use crate::syntax::{BinOp, Func};
    let ExprKind::Binary { op, lhs, rhs, .. } = &e.kind else { return None };
    let (ExprKind::Call(f, a), ExprKind::Call(g, ones)) = (&lhs.kind, &rhs.kind) else { return None };
    let ExprKind::HadamardPower(b, p) = &ones.kind else { return None };
    let fits = match f {
        Func::Sum => *op == BinOp::Div,
        Func::SumCols | Func::SumRows => *op == BinOp::HadamardDiv,
        _ => false,
    };
    (fits && f == g && *p == 0.0 && a == b).then_some((&**a, *f))
}

/// `e` with the count of every mean written out where `shape` (of a node of
/// the typed tree) tells it.
fn with_counts(e: &Expr, shape: &dyn Fn(&Expr) -> Option<Shape>) -> Expr {
    use crate::syntax::{BinOp, Func};
    let out = e.map_children(|c| std::rc::Rc::new(with_counts(c, shape)));
    let Some((a, f)) = mean_parts(e) else { return out };
    let Some(s) = shape(a) else { return out };
    let ExprKind::Binary { lhs, .. } = &out.kind else { return out };
    // The dimensions summed over: all of A, its rows (sum(A, 1)) or its columns.
    let summed = match f {
        Func::Sum => vec![s.rows, s.cols],
        Func::SumCols => vec![s.rows],
        _ => vec![s.cols],
    };
    let numbers: Option<u64> = summed.iter().try_fold(1u64, |n, d| match d {
        Dim::Const(k) => n.checked_mul(*k),
        _ => None,
    });
    // A literal only where a double holds it exactly.
    let count = match numbers {
        Some(n) if n <= 1 << f64::MANTISSA_DIGITS => Expr::num(n as f64),
        _ => return out,
    };
    let kind = ExprKind::Binary {
        op: BinOp::Div,
        op_span: crate::syntax::Span::SYNTHETIC,
        lhs: lhs.clone(),
        rhs: std::rc::Rc::new(count),
    };
    Expr::new(kind, out.span)
}

/// `e` (at address `at`) with the broadcasts of `sites` made explicit.
fn with_ones(e: &Expr, at: *const Expr, sites: &HashMap<*const Expr, Broadcast>) -> Expr {
    let out = e.map_children(|c| std::rc::Rc::new(with_ones(c, std::rc::Rc::as_ptr(c), sites)));
    let Some(b) = sites.get(&at) else { return out };
    let ExprKind::Binary { op, op_span, lhs, rhs } = &out.kind else { return out };
    let times = match &b.times {
        Dim::Const(n) => crate::syntax::DimSpec::Const(*n),
        Dim::Symbol(s) => crate::syntax::DimSpec::Symbol(s.clone()),
        Dim::Indexed(s, i) => crate::syntax::DimSpec::Indexed(s.clone(), i.clone()),
        Dim::Unknown(_) => return out,
    };
    let one = crate::syntax::DimSpec::Const(1);
    let spread = |x: &std::rc::Rc<Expr>| -> std::rc::Rc<Expr> {
        let product = if b.column {
            Expr::product(x.clone(), Expr::ones(one.clone(), times.clone()))
        } else {
            Expr::product(Expr::ones(times.clone(), one.clone()), x.clone())
        };
        std::rc::Rc::new(product.at(x.span))
    };
    let (lhs, rhs) = if b.left { (spread(lhs), rhs.clone()) } else { (lhs.clone(), spread(rhs)) };
    Expr::new(ExprKind::Binary { op: *op, op_span: *op_span, lhs, rhs }, out.span)
}

/// A variable declared `spd` is a square matrix.
fn square_for_spd(typer: &mut Typer, d: &crate::syntax::Declaration) -> Result<()> {
    use crate::syntax::ShapeSpec;
    let square = match (&d.shape, &d.binder) {
        (ShapeSpec::Scalar, _) => true,
        (ShapeSpec::Vector(_), _) => false,
        (ShapeSpec::Matrix(r, c), Some(_)) => r == c,
        (ShapeSpec::Matrix(..), None) => {
            let s = typer.declared(&VarName::plain(&d.name)).expect("just declared");
            typer.unify_shapes(s, IShape { rows: s.cols, cols: s.rows })
        }
    };
    if square {
        return Ok(());
    }
    Err(Error::new(ErrorKind::Shape, format!("`{}` is declared spd, but its shape is not square", d.name))
        .label(d.span, "spd needs a square shape (`n x n`)")
        .note("symmetric positive definite matrices are square; drop `spd` or declare `n x n`"))
}

/// Free variables in order of first occurrence, and the families whose
/// members are indexed by a `prod` variable (those members are not free).
fn collect_variables(e: &Expr, out: &mut Vec<VarName>, families: &mut Vec<String>) {
    // A worklist rather than `Expr::for_each`: the binders of the `prod`s
    // around a node are its context, unbound once the body is done.
    enum Step<'e> {
        Visit(&'e Expr),
        Unbind,
    }
    let mut bound: Vec<&str> = vec![];
    let mut stack = vec![Step::Visit(e)];
    while let Some(step) = stack.pop() {
        let e = match step {
            Step::Visit(e) => e,
            Step::Unbind => {
                bound.pop();
                continue;
            }
        };
        match &e.kind {
            ExprKind::Var(v) => {
                let free = v.index.as_ref().is_none_or(|i| !bound.iter().any(|b| i.mentions(b)));
                if free && !out.contains(v) {
                    out.push(VarName::clone(v));
                } else if !free && !families.contains(&v.name) {
                    families.push(v.name.clone());
                }
            }
            ExprKind::Prod(prod) => {
                bound.push(&prod.var);
                stack.push(Step::Unbind);
                stack.push(Step::Visit(&prod.body));
            }
            _ => {
                let at = stack.len();
                stack.extend(e.children().map(Step::Visit));
                stack[at..].reverse();
            }
        }
    }
}

fn collect_names(e: &Expr, out: &mut HashSet<String>) {
    e.for_each(|e| match &e.kind {
        ExprKind::Var(v) => {
            out.insert(v.name.clone());
            if let Some(i) = &v.index {
                out.extend(i.terms.keys().cloned());
            }
        }
        ExprKind::Prod(prod) => {
            let crate::syntax::Prod { var, .. } = &**prod;
            out.insert(var.clone());
        }
        _ => {}
    })
}

impl<'p> Typing<'p> {
    /// The shape of the program's expression.
    pub fn shape(&self) -> Shape {
        self.typer.resolve(self.shape)
    }

    /// The shape of a node of the program's expression (not of a copy).
    pub fn node_shape(&self, e: &Expr) -> Option<Shape> {
        self.nodes.get(&(e as *const Expr)).map(|&s| self.typer.resolve(s))
    }

    /// Whether the product `lhs * rhs` of two nodes of the program's
    /// expression is a scalar multiple (see [`Shape::scales`]).
    pub fn node_scales(&self, lhs: &Expr, rhs: &Expr) -> Option<bool> {
        let (a, b) = (self.nodes.get(&(lhs as *const Expr))?, self.nodes.get(&(rhs as *const Expr))?);
        Some(self.typer.is_scaling(*a, *b))
    }

    /// Whether a node of the program's expression is known to be 1×1.
    pub fn node_is_scalar(&self, e: &Expr) -> Option<bool> {
        self.nodes.get(&(e as *const Expr)).map(|s| self.typer.is_scalar(*s))
    }

    /// The shape of a variable, if the program has it.
    pub fn var_shape(&self, v: &VarName) -> Option<Shape> {
        self.typer.var_shape(v)
    }

    /// Variables of the expression, in order of first occurrence.
    pub fn variables(&self) -> &[VarName] {
        &self.variables
    }

    /// Families whose members are factors of a `prod` (`W` in
    /// `prod(W[i], i=1..n)`), in order of first occurrence.
    pub fn families(&self) -> &[String] {
        &self.families
    }

    /// The inference state, to type expressions built from this program.
    pub fn typer(&self) -> &Typer {
        &self.typer
    }

    /// Runs `f` on the typer, which forgets afterwards what `f` taught it
    /// (see [`Typer::scratch`]): for typing formulas derived from the program.
    pub fn scratch<R>(&mut self, f: impl FnOnce(&mut Typer) -> R) -> R {
        self.typer.scratch(f)
    }

    /// The shape of a member of a family (`W[j]` of `W[i] : d[i-1] x d[i]`),
    /// declaring it; an error when its index leaves the range of
    /// [`crate::syntax::Index`] in the family's dimensions.
    pub fn declare_member(&mut self, v: &VarName) -> crate::Result<Shape> {
        let s = self.typer.var(v)?;
        Ok(self.typer.resolve(s))
    }

    /// Adds a variable of a given shape, such as the upstream gradient.
    pub fn insert_var(&mut self, v: VarName, s: &Shape) {
        self.typer.insert_var(v, s);
    }

    /// Every symbolic dimension of the variables, to be given sizes.
    pub fn symbols(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for v in self.variables() {
            let s = self.var_shape(v).expect("variable has a shape");
            for d in [s.rows, s.cols] {
                match d {
                    Dim::Symbol(_) | Dim::Indexed(..) => {
                        out.insert(d.to_string());
                    }
                    _ => {}
                }
            }
        }
        out
    }
}
