//! The plan of a program whose product has symbolic length, for code that
//! loops over a list of members: each product `prod(W[i+c], i=a..b)` is a
//! variable P of the numeric plan (which computes the value and the
//! gradients of the other variables, and ∂L/∂P), and the emitted code
//! computes P by prefix products W[a+c]·…·W[k] in a forward loop and every
//! member's gradient, `prefix(k-1)^T · ∂L/∂P · suffix(k+1)^T`, in a backward
//! loop that carries `∂L/∂P · suffix^T` and reads the saved prefixes: 3(n−1)
//! products for n members, whatever the program around the product.

use std::collections::HashMap;
use std::rc::Rc;

use super::{compile, Plan, PlanOptions};
use crate::calculus::{Mode, Steps};
use crate::derive::{Derivation, DeriveOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Dim, Shape};
use crate::syntax::{Declaration, DimSpec, Expr, ExprKind, Index, ShapeSpec, Span, VarName};

/// A product of symbolic length, computed by a loop over its members.
#[derive(Clone, Debug)]
pub struct Chain {
    /// The family the members belong to (`W`): the emitted function takes
    /// it as a list.
    pub family: String,
    /// Whether the product's factors are the members transposed
    /// (`prod(W[i]^T, …)`).
    pub transposed: bool,
    /// The index of the first member (`1` in `prod(W[i], i=1..n)`).
    pub first: i64,
    /// The index of the last member, symbolic (`n`).
    pub last: Index,
    /// The number of members, when `--dims` gives the length.
    pub count: Option<i64>,
    /// The product, as the plan's input variable.
    pub var: VarName,
    /// A member's rows and columns where they are the same for every
    /// member (a number or a symbol); None where they vary with the index
    /// (`d[i-1]`): those are checked by the members chaining.
    pub member: (Option<Dim>, Option<Dim>),
    /// Whether the members' gradients are asked for.
    pub wrt: bool,
}

/// A numeric plan in which each product of symbolic length is a variable,
/// with the loops that compute those products and their members' gradients.
#[derive(Clone, Debug)]
pub struct LoopPlan {
    /// The products, each an input of `plan` (and, when its members'
    /// gradients are asked for, one of its gradients).
    pub chains: Vec<Chain>,
    /// The value and the gradients with the products as variables.
    pub plan: Plan,
    /// The upstream gradient of a layer.
    pub upstream: Option<VarName>,
}

fn refuse(message: String) -> Error {
    Error::new(ErrorKind::Unsupported, message)
        .note("a product of symbolic length is emitted as a loop over the list of its members when its body is one member `W[i+c]` or its transpose; with its length given (--dims n=8), as code unrolled")
        .hint(crate::Hint::GiveSize("n=8".into()))
}

/// The loop plan of a derivation whose expression has products of symbolic
/// length (those whose length `options.dims` fixes are looped too, their
/// number of members then checked). Refused by name: a product whose body
/// is not one member `W[i+c]` (maybe transposed), whose first index is not a
/// number or whose last is not `n + c`, or a family used outside its
/// product.
///
/// ```
/// let p = matdiff::syntax::parse_program("W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X").unwrap();
/// let d = matdiff::derive(&p, &Default::default()).unwrap();
/// let l = matdiff::plan::compile_loops(&d, &Default::default()).unwrap();
/// assert_eq!(l.chains[0].family, "W");
/// assert_eq!(l.chains[0].var.to_string(), "W_prod");
/// assert_eq!(l.plan.outputs.len(), 3); // the value, d/dX, d/dW_prod
/// ```
pub fn compile_loops(d: &Derivation, options: &PlanOptions) -> Result<LoopPlan> {
    let program = d.typing.program;
    let mut typer = d.typing.typer().clone();
    let lengths: Vec<(String, i64)> = options.dims.iter().map(|(k, &v)| (k.clone(), v as i64)).collect();
    let bound = |i: &Index| lengths.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v)));
    // The products of symbolic length, once each (a shared definition is one).
    let mut products: Vec<Expr> = vec![];
    program.expr.for_each_once(|e| {
        if let ExprKind::Prod(p) = &e.kind {
            if (!p.lo.terms.is_empty() || !p.hi.terms.is_empty()) && !products.contains(e) {
                products.push(e.clone());
            }
        }
    });
    if products.is_empty() {
        return Err(Error::new(ErrorKind::Usage, "no product of symbolic length to loop over"));
    }
    let taken = |name: &str| {
        program.expr.any(|e| matches!(&e.kind, ExprKind::Var(v) if v.name == name))
            || program.declarations.iter().any(|d| d.name == name)
            || matches!(&d.mode, Mode::Layer { upstream } if upstream.name == name)
    };
    let mut chains = vec![];
    let mut declarations = program.declarations.clone();
    let mut expr = program.expr.clone();
    for product in &products {
        let ExprKind::Prod(p) = &product.kind else { unreachable!("a product") };
        let (member, transposed) = match &p.body.kind {
            ExprKind::Var(v) => (v.clone(), false),
            ExprKind::Transpose(a) => match &a.kind {
                ExprKind::Var(v) => (v.clone(), true),
                _ => return Err(refuse(format!("the body `{}` of `{product}` is not one member", p.body))),
            },
            _ => return Err(refuse(format!("the body `{}` of `{product}` is not one member", p.body))),
        };
        let at = member.index.clone().unwrap_or_else(|| Index::constant(0));
        let offset = at.constant;
        if at.terms.len() != 1 || at.terms.get(&p.var) != Some(&1) {
            return Err(refuse(format!(
                "the body `{}` of `{product}` is not a member `{}[{}+c]`",
                p.body, member.name, p.var
            )));
        }
        let Some(lo) = p.lo.as_constant() else {
            return Err(refuse(format!("the first index `{}` of `{product}` is not a number", p.lo)));
        };
        let symbols: Vec<_> = p.hi.terms.iter().collect();
        if symbols.len() != 1 || *symbols[0].1 != 1 {
            return Err(refuse(format!("the last index `{}` of `{product}` is not `n + c`", p.hi)));
        }
        let first =
            lo.checked_add(offset).ok_or_else(|| refuse(format!("the indices of `{product}` overflow")))?;
        let last = p.hi.plus(&Index::constant(offset))?;
        let count = match bound(&p.hi)?.as_constant() {
            Some(hi) => {
                let count = hi.checked_sub(lo).and_then(|c| c.checked_add(1)).filter(|&c| c >= 1);
                let Some(count) = count else {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        format!("`{product}` has no members with the length --dims gives"),
                    ));
                };
                super::members(1, count)?;
                Some(count)
            }
            None => None,
        };
        // The shape of a member (the binder free) and of the product.
        let resolved = |typer: &mut crate::shape::Typer, e: &Expr| -> Result<Shape> {
            let s = typer.infer(e)?;
            Ok(typer.resolve(s))
        };
        let body_var = Expr::synthetic(ExprKind::Var(member.clone()));
        let member_shape = resolved(&mut typer, &body_var)?;
        let fixed = |dim: &Dim| match dim {
            Dim::Const(_) | Dim::Symbol(_) => Some(dim.clone()),
            Dim::Indexed(..) | Dim::Unknown(_) => None,
        };
        let product_shape = resolved(&mut typer, product)?;
        let spec = |dim: &Dim| match dim {
            Dim::Const(n) => Ok(DimSpec::Const(*n)),
            Dim::Symbol(s) => Ok(DimSpec::Symbol(s.clone())),
            Dim::Indexed(s, i) => Ok(DimSpec::Indexed(s.clone(), i.clone())),
            Dim::Unknown(_) => Err(refuse(format!(
                "the size of `{product}` is not known: declare `{}[{}]`'s shape",
                member.name, p.var
            ))),
        };
        let mut name = format!("{}_prod", member.name);
        while taken(&name) || chains.iter().any(|c: &Chain| c.var.name == name) {
            name.push('_');
        }
        let var = VarName::plain(&name);
        declarations.push(Declaration {
            name: name.clone(),
            binder: None,
            shape: ShapeSpec::Matrix(spec(&product_shape.rows)?, spec(&product_shape.cols)?),
            domain: None,
            span: Span::default(),
        });
        let replacement = Expr::synthetic(ExprKind::Var(Rc::new(var.clone())));
        expr = replace(&expr, product, &replacement, &mut HashMap::new()).unwrap_or(expr);
        if expr.mentions_family(&member.name) {
            return Err(refuse(format!("the family `{}` is used outside `{product}`", member.name)));
        }
        let wrt = d.gradients.iter().any(|g| g.wrt.name == member.name && g.wrt.index.is_some());
        chains.push(Chain {
            family: member.name.clone(),
            transposed,
            first,
            last,
            count,
            var,
            member: (fixed(&member_shape.rows), fixed(&member_shape.cols)),
            wrt,
        });
    }
    let looped = crate::syntax::Program {
        declarations,
        definitions: program.definitions.clone(),
        expr,
        name: program.name.clone(),
    };
    let is_family = |v: &VarName| chains.iter().any(|c| c.family == v.name && v.index.is_some());
    let mut wrt: Vec<VarName> = d.gradients.iter().map(|g| g.wrt.clone()).filter(|v| !is_family(v)).collect();
    wrt.extend(chains.iter().filter(|c| c.wrt).map(|c| c.var.clone()));
    let upstream = match &d.mode {
        Mode::Layer { upstream } => Some(upstream.clone()),
        Mode::Scalar => None,
    };
    let options_for = DeriveOptions {
        wrt,
        upstream: upstream.as_ref().map(|u| u.name.clone()),
        steps: Steps::Skip,
        sharing: crate::Sharing::Expanded,
        control: options.control.clone(),
    };
    let derivation = crate::derive::derive(&looped, &options_for)?;
    let plan = compile(&derivation, options)?;
    Ok(LoopPlan { chains, plan, upstream })
}

/// `e` with every subtree equal to `what` replaced by `with`, or None when
/// there is none; a shared subtree is rebuilt once (`memo`).
fn replace(
    e: &Expr,
    what: &Expr,
    with: &Expr,
    memo: &mut HashMap<*const Expr, Option<Rc<Expr>>>,
) -> Option<Expr> {
    if e == what {
        return Some(with.clone());
    }
    let mut changed = false;
    let mapped = e.map_children(|c| {
        let done = match memo.get(&Rc::as_ptr(c)) {
            Some(done) => done.clone(),
            None => {
                let done = replace(c, what, with, memo).map(Rc::new);
                memo.insert(Rc::as_ptr(c), done.clone());
                done
            }
        };
        changed |= done.is_some();
        done.unwrap_or_else(|| c.clone())
    });
    changed.then_some(mapped)
}
