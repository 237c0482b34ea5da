//! Expressions → LaTeX in standard notation: `W_{1}^{\top}`,
//! `\operatorname{tr}`, `\odot`, `\prod_{i=1}^{n}`.

use super::ast::{BinOp, Expr, ExprKind, Func, Index, VarName};
use super::printer::{format_number, operand_prec, prec, Prec, Side};

const GREEK: [&str; 17] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "lambda", "mu", "nu", "rho", "sigma", "tau", "theta",
    "phi", "psi", "omega", "eta", "kappa",
];

/// LaTeX for an expression (math mode, no delimiters).
///
/// ```
/// let e = matdiff::syntax::parse_expr("W1^T * G * tr(A)").unwrap();
/// assert_eq!(matdiff::syntax::to_latex(&e), r"W_{1}^{\top} G \operatorname{tr}\left(A\right)");
/// ```
pub fn to_latex(e: &Expr) -> String {
    let mut out = String::new();
    write(&mut out, e, Prec::Loosest);
    out
}

/// LaTeX for a variable name: trailing digits and `_x` become subscripts,
/// Greek names become letters; any other `_` is a literal underscore, so
/// that every identifier compiles (`x_` is `\mathit{x\_}`, `W__` is
/// `W_{\_}`).
///
/// ```
/// use matdiff::syntax::{parse_var, var_latex};
/// assert_eq!(var_latex(&parse_var("W_1").unwrap()), "W_{1}");
/// assert_eq!(var_latex(&parse_var("x_").unwrap()), r"\mathit{x\_}");
/// assert_eq!(var_latex(&parse_var("W__").unwrap()), r"W_{\_}");
/// ```
pub fn var_latex(v: &VarName) -> String {
    let mut out = String::new();
    write_var(&mut out, v);
    out
}

/// [`var_latex`], appended to `out` (a formula has a variable per factor).
fn write_var(out: &mut String, v: &VarName) {
    // The common name, a letter and digits (`W12`), as the rule below writes it.
    let name = v.name.as_bytes();
    let digits = name.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if v.index.is_none() && digits > 0 && name.len() == digits + 1 && name[0].is_ascii_alphabetic() {
        // Byte by byte (all ASCII): a copy call per piece costs more.
        out.reserve(name.len() + 3);
        out.push(char::from(name[0]));
        out.push_str("_{");
        name[1..].iter().for_each(|&b| out.push(char::from(b)));
        out.push('}');
        return;
    }
    write_var_by_rule(out, v);
}

/// [`var_latex`]'s rule, whatever the name.
fn write_var_by_rule(out: &mut String, v: &VarName) {
    let (base, sub) = split_name(&v.name);
    // (Every Greek name has two letters or more.)
    if base.len() > 1 && GREEK.contains(&base) {
        out.push('\\');
        out.push_str(base);
    } else if base.chars().count() > 1 {
        out.push_str("\\mathit{");
        push_escaped(out, base);
        out.push('}');
    } else {
        out.push_str(base);
    }
    if sub.is_none() && v.index.is_none() {
        return;
    }
    out.push_str("_{");
    if let Some(sub) = sub {
        push_escaped(out, sub);
    }
    if let Some(i) = &v.index {
        if sub.is_some() {
            out.push(',');
        }
        out.push_str(&index_latex(i));
    }
    out.push('}');
}

/// [`escape`], appended to `out`.
fn push_escaped(out: &mut String, text: &str) {
    if text.contains('_') {
        out.push_str(&escape(text));
    } else {
        out.push_str(text);
    }
}

/// An underscore inside a name is text, not a subscript: `_` before `}` or
/// another `_` is an error in TeX and KaTeX.
fn escape(text: &str) -> String {
    text.replace('_', "\\_")
}

/// An index (`j+1`, `n_1-i`) in LaTeX: its names may hold underscores.
pub fn index_latex(i: &Index) -> String {
    escape(&i.to_string())
}

/// A size as a subscript: a number, a name, a family member `d_{i}`.
fn dim_latex(d: &crate::syntax::DimSpec) -> String {
    match d {
        crate::syntax::DimSpec::Const(n) => n.to_string(),
        crate::syntax::DimSpec::Symbol(s) => escape(s),
        crate::syntax::DimSpec::Indexed(s, i) => format!("{}_{{{}}}", escape(s), index_latex(i)),
    }
}

fn split_name(name: &str) -> (&str, Option<&str>) {
    if let Some((b, s)) = name.split_once('_') {
        if !b.is_empty() && !s.is_empty() {
            return (b, Some(s));
        }
    }
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 && digits < name.len() {
        let (b, s) = name.split_at(name.len() - digits);
        return (b, Some(s));
    }
    (name, None)
}

fn write(out: &mut String, e: &Expr, min: Prec) {
    // A name or its transpose (every factor of a chain's gradient) needs
    // neither brackets nor stack.
    match &e.kind {
        ExprKind::Var(v) => return write_var(out, v),
        ExprKind::Transpose(a) if min <= Prec::Postfix => {
            if let ExprKind::Var(v) = &a.kind {
                write_var(out, v);
                return out.push_str("^{\\top}");
            }
        }
        _ => {}
    }
    // Explicit recursion: the precedence a node needs comes from above.
    crate::stack::ensure(|| {
        let p = prec(e);
        if p < min {
            out.push_str("\\left(");
            write(out, e, Prec::Loosest);
            out.push_str("\\right)");
            return;
        }
        match &e.kind {
            ExprKind::Var(v) => write_var(out, v),
            ExprKind::Identity => out.push('I'),
            // The ones matrix as \mathbf{1}, with its size below.
            ExprKind::Ones(sizes) => {
                let dim = dim_latex;
                match &**sizes {
                    (rows, crate::syntax::DimSpec::Const(1)) => {
                        out.push_str(&format!("\\mathbf{{1}}_{{{}}}", dim(rows)))
                    }
                    (rows, cols) => {
                        out.push_str(&format!("\\mathbf{{1}}_{{{} \\times {}}}", dim(rows), dim(cols)))
                    }
                }
            }
            // diag(ones(n)) is the identity of size n, I_n (the vec form's
            // `kron(diag(ones(m)), A)`, where nothing else tells I's size).
            ExprKind::Call(Func::Diag, a) if matches!(&a.kind, ExprKind::Ones(s) if s.1 == crate::syntax::DimSpec::Const(1)) =>
            {
                let ExprKind::Ones(sizes) = &a.kind else { unreachable!("matched above") };
                out.push_str(&format!("I_{{{}}}", dim_latex(&sizes.0)));
            }
            ExprKind::Num(x) => out.push_str(&number_latex(*x)),
            ExprKind::Neg(a) => {
                out.push('-');
                write(out, a, Prec::Postfix);
            }
            ExprKind::Binary { op: BinOp::Div, lhs, rhs, .. } => {
                out.push_str("\\frac{");
                write(out, lhs, Prec::Loosest);
                out.push_str("}{");
                write(out, rhs, Prec::Loosest);
                out.push('}');
            }
            ExprKind::Binary { op: op @ (BinOp::Max | BinOp::Min), lhs, rhs, .. } => {
                out.push_str(if *op == BinOp::Max { "\\max\\left(" } else { "\\min\\left(" });
                write(out, lhs, Prec::Loosest);
                out.push_str(", ");
                write(out, rhs, Prec::Loosest);
                out.push_str("\\right)");
            }
            // Bracketed whole unless it is the whole formula or argument, each
            // side bracketed unless an atom, so that no precedence of \otimes
            // need be assumed.
            ExprKind::Binary { op: BinOp::Kron, lhs, rhs, .. } => {
                let whole = min == Prec::Loosest;
                out.push_str(if whole { "" } else { "\\left(" });
                write(out, lhs, Prec::Postfix);
                out.push_str(" \\otimes ");
                write(out, rhs, Prec::Postfix);
                out.push_str(if whole { "" } else { "\\right)" });
            }
            // As the text is: the exponent bracketed unless a name or call.
            ExprKind::Binary { op: BinOp::Power, lhs, rhs, .. } => {
                write_base(out, lhs);
                out.push_str("^{\\circ ");
                if super::printer::exponent_bare(rhs) {
                    write(out, rhs, Prec::Loosest);
                } else {
                    out.push_str("\\left(");
                    write(out, rhs, Prec::Loosest);
                    out.push_str("\\right)");
                }
                out.push('}');
            }
            ExprKind::Binary { op, .. } => {
                // A left-nested run of one operator (a chain's product) in a
                // loop: its left operands need no brackets.
                let (first, operands) = super::printer::left_run(e, *op);
                write(out, first, operand_prec(*op, first, Side::Left));
                for (lhs, rhs) in operands.into_iter().rev() {
                    let right = operand_prec(*op, rhs, Side::Right);
                    out.push_str(match op {
                        BinOp::Add => " + ",
                        BinOp::Sub => " - ",
                        // Juxtaposed, `A -B` would read as a difference and `2 3`
                        // as 23: a sign or a digit on the right takes `\cdot`.
                        BinOp::Mul if starts_with_sign_or_digit(rhs, right) => " \\cdot ",
                        // `\sigma \left(x\right)` would read as the sigmoid.
                        BinOp::Mul if ends_with_sigma(lhs, operand_prec(*op, lhs, Side::Left)) => " \\cdot ",
                        BinOp::Mul => " ",
                        BinOp::Hadamard => " \\odot ",
                        BinOp::HadamardDiv => " \\oslash ",
                        BinOp::Div | BinOp::Max | BinOp::Min | BinOp::Power | BinOp::Kron => {
                            unreachable!("handled above")
                        }
                    });
                    write(out, rhs, right);
                }
            }
            // The inverse of a transpose and the transpose of an inverse are
            // one matrix, written X^{-T} as textbooks do.
            ExprKind::Power(a, -1) | ExprKind::Transpose(a)
                if matches!(
                    (&e.kind, &a.kind),
                    (ExprKind::Power(_, -1), ExprKind::Transpose(_))
                        | (ExprKind::Transpose(_), ExprKind::Power(_, -1))
                ) =>
            {
                let (ExprKind::Transpose(x) | ExprKind::Power(x, _)) = &a.kind else {
                    unreachable!("matched above")
                };
                write_base(out, x);
                out.push_str("^{-\\top}");
            }
            ExprKind::Transpose(a) => {
                write_base(out, a);
                out.push_str("^{\\top}");
            }
            ExprKind::Power(a, k) => {
                write_base(out, a);
                out.push_str(&format!("^{{{k}}}"));
            }
            ExprKind::HadamardPower(a, k) => {
                write_base(out, a);
                let sign = if *k < 0.0 { "-" } else { "" };
                out.push_str(&format!("^{{\\circ {sign}{}}}", number_latex(k.abs())));
            }
            ExprKind::Call(f @ (Func::Norm | Func::Norm1 | Func::Norm2), a) => {
                out.push_str("\\left\\|");
                write(out, a, Prec::Loosest);
                out.push_str(match f {
                    Func::Norm1 => "\\right\\|_{1}",
                    Func::Norm2 => "\\right\\|_{2}",
                    _ => "\\right\\|_{F}",
                });
            }
            // |A|: the bars grow with their content, so nested ones stay apart.
            ExprKind::Call(Func::Abs, a) => {
                out.push_str("\\left|");
                write(out, a, Prec::Loosest);
                out.push_str("\\right|");
            }
            ExprKind::Call(Func::Sqrt, a) => {
                out.push_str("\\sqrt{");
                write(out, a, Prec::Loosest);
                out.push('}');
            }
            ExprKind::Call(f, a) => {
                out.push_str(match f {
                    Func::Tr => "\\operatorname{tr}",
                    Func::Det => "\\det",
                    Func::Logdet => "\\log\\left|\\det",
                    Func::Exp => "\\exp",
                    Func::Log => "\\log",
                    Func::Sqrt => unreachable!("handled above"),
                    Func::Sin => "\\sin",
                    Func::Cos => "\\cos",
                    Func::Tanh => "\\tanh",
                    Func::Sigmoid => "\\sigma",
                    Func::Relu => "\\operatorname{relu}",
                    Func::Sign => "\\operatorname{sign}",
                    Func::Step => "\\operatorname{step}",
                    Func::Softplus => "\\operatorname{softplus}",
                    Func::Tan => "\\tan",
                    Func::Arcsin => "\\arcsin",
                    Func::Arccos => "\\arccos",
                    Func::Arctan => "\\arctan",
                    Func::Sinh => "\\sinh",
                    Func::Cosh => "\\cosh",
                    Func::Log1p => "\\operatorname{log1p}",
                    Func::Sum | Func::SumCols | Func::SumRows => "\\operatorname{sum}",
                    Func::Softmax => "\\operatorname{softmax}",
                    Func::Logsumexp => "\\operatorname{logsumexp}",
                    Func::Diag => "\\operatorname{diag}",
                    Func::Vec => "\\operatorname{vec}",
                    Func::Norm | Func::Norm1 | Func::Norm2 | Func::Abs => unreachable!("handled above"),
                });
                out.push_str("\\left(");
                write(out, a, Prec::Loosest);
                if let Some(k) = f.axis() {
                    out.push_str(&format!(", {k}"));
                }
                out.push_str("\\right)");
                if *f == Func::Logdet {
                    out.push_str("\\right|");
                }
            }
            // Parenthesised, so that neighbours and superscripts stay outside.
            ExprKind::Prod(prod) => {
                let crate::syntax::Prod { body, var, lo, hi } = &**prod;
                out.push_str(&format!(
                    "\\left(\\prod_{{{}={}}}^{{{}}} ",
                    escape(var),
                    index_latex(lo),
                    index_latex(hi)
                ));
                write(out, body, Prec::Postfix);
                out.push_str("\\right)");
            }
        }
    })
}

/// A number as LaTeX: `1e-7` (which would read as 1e − 7) is
/// `1 \times 10^{-7}`.
fn number_latex(x: f64) -> String {
    let text = format_number(x);
    match text.split_once('e') {
        Some((mantissa, exponent)) => format!("{mantissa} \\times 10^{{{exponent}}}"),
        None => text,
    }
}

/// Whether `e`, written at `min`, begins with a minus sign or a digit.
fn starts_with_sign_or_digit(e: &Expr, min: Prec) -> bool {
    let mut e = e;
    loop {
        if prec(e) < min {
            return false; // bracketed
        }
        match &e.kind {
            ExprKind::Neg(_) => return true,
            ExprKind::Num(_) => return true,
            ExprKind::Binary { op: BinOp::Div, .. } => return false, // \frac
            ExprKind::Binary { op, .. } if op.is_call() => return false, // \max(…)
            ExprKind::Binary { op, lhs, .. } => {
                let next = operand_prec(*op, lhs, Side::Left);
                if prec(lhs) < next {
                    return false;
                }
                e = lhs;
            }
            ExprKind::Transpose(a) | ExprKind::Power(a, _) | ExprKind::HadamardPower(a, _) => {
                // A base looser than an atom is bracketed or braced.
                if prec(a) < Prec::Atom {
                    return false;
                }
                e = a;
            }
            ExprKind::Var(_)
            | ExprKind::Identity
            | ExprKind::Ones(_)
            | ExprKind::Call(..)
            | ExprKind::Prod(_) => return false,
        }
    }
}

/// Whether `e`, written at `min`, ends with the variable `sigma` (`\sigma`,
/// which the sigmoid is too).
fn ends_with_sigma(e: &Expr, min: Prec) -> bool {
    let mut e = e;
    let mut min = min;
    loop {
        if prec(e) < min {
            return false; // bracketed
        }
        match &e.kind {
            ExprKind::Var(v) => return v.name == "sigma" && v.index.is_none(),
            ExprKind::Binary { op: BinOp::Div, .. } => return false, // \frac
            ExprKind::Binary { op, .. } if op.is_call() => return false, // \max(…)
            ExprKind::Binary { op, rhs, .. } => {
                min = operand_prec(*op, rhs, Side::Right);
                e = rhs;
            }
            ExprKind::Neg(a) => {
                min = Prec::Postfix;
                e = a;
            }
            _ => return false,
        }
    }
}

/// The base of a superscript: a double superscript needs braces
/// (`{A^{\top}}^{-1}`), anything looser needs parentheses.
fn write_base(out: &mut String, a: &Expr) {
    match prec(a) {
        Prec::Atom => write(out, a, Prec::Atom),
        Prec::Postfix => {
            out.push('{');
            write(out, a, Prec::Postfix);
            out.push('}');
        }
        _ => write(out, a, Prec::Atom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut for a letter and digits writes what the rule writes.
    #[test]
    fn common_names_are_written_by_the_rule() {
        for name in ["G", "W1", "W12", "x0", "W01", "ab1", "W_1", "sigma2", "mu", "a", "A1b", "X_", "t9", "Z"]
        {
            let v = crate::syntax::parse_var(name).unwrap();
            let (mut fast, mut rule) = (String::new(), String::new());
            write_var(&mut fast, &v);
            write_var_by_rule(&mut rule, &v);
            assert_eq!(fast, rule, "{name}");
        }
    }
}
