//! Expressions → text in the input syntax, with the fewest parentheses that
//! re-parse to the same tree. Products print as `A * B`, transposes as `A^T`.

use std::fmt;

use super::ast::{BinOp, Expr, ExprKind, Func};

/// Binding strength, loosest first; mirrors the PrattParser's table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Prec {
    Loosest,
    Sum,
    Product,
    Prefix,
    Postfix,
    Atom,
}

impl Prec {
    pub(crate) fn tighter(self) -> Prec {
        match self {
            Prec::Loosest => Prec::Sum,
            Prec::Sum => Prec::Product,
            Prec::Product => Prec::Prefix,
            Prec::Prefix => Prec::Postfix,
            Prec::Postfix | Prec::Atom => Prec::Atom,
        }
    }
}

pub(crate) fn prec(e: &Expr) -> Prec {
    match &e.kind {
        ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. } => Prec::Sum,
        ExprKind::Binary { op, .. } if op.is_call() => Prec::Atom,
        ExprKind::Binary { op: BinOp::Power, .. } => Prec::Postfix,
        ExprKind::Binary { .. } => Prec::Product,
        ExprKind::Neg(_) => Prec::Prefix,
        ExprKind::Transpose(_) | ExprKind::Power(..) | ExprKind::HadamardPower(..) => Prec::Postfix,
        ExprKind::Var(_)
        | ExprKind::Identity
        | ExprKind::Num(_)
        | ExprKind::Ones(_)
        | ExprKind::Call(..)
        | ExprKind::Prod(_) => Prec::Atom,
    }
}

/// The binding an operand of the binary `op` (of precedence `p`) needs,
/// for both printers: the left operand at `p` (operators associate to the
/// left), the right one tighter. `A .* B * C` parses as `(A .* B) * C`, but
/// a reader should not have to know that — in LaTeX juxtaposition beside
/// `\odot` has no agreed reading at all —, so an operand that is another
/// product-level operator than `op` gets parentheses.
pub(crate) fn operand_prec(op: BinOp, operand: &Expr, side: Side) -> Prec {
    let p = if matches!(op, BinOp::Add | BinOp::Sub) { Prec::Sum } else { Prec::Product };
    let mixed = p == Prec::Product
        && matches!(&operand.kind, ExprKind::Binary { op: o, .. } if prec(operand) == Prec::Product && *o != op);
    match side {
        _ if mixed => Prec::Atom,
        Side::Left => p,
        Side::Right => p.tighter(),
    }
}

/// Whether the exponent of `X .^ p` (a [`BinOp::Power`]) is written without
/// brackets: a name, a call, `I`, or one of those negated. A literal is
/// bracketed, `X .^ (2)`, since `X .^ 2` is the literal power.
pub(crate) fn exponent_bare(p: &Expr) -> bool {
    let atom = |e: &Expr| prec(e) == Prec::Atom && !matches!(e.kind, ExprKind::Num(_));
    match &p.kind {
        ExprKind::Neg(x) => atom(x),
        _ => atom(p),
    }
}

/// Which operand of a binary operator.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
}

/// A literal as the shortest text that parses back to the same f64.
///
/// ```
/// use matdiff::syntax::format_number;
/// assert_eq!(format_number(2.0), "2");
/// assert_eq!(format_number(0.5), "0.5");
/// assert_eq!(format_number(1e-7), "1e-7");
/// ```
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}

/// The decimal value of a literal, sign aside: its significant digits and the
/// power of ten of the point before them (`0.0500` and `5e-2` are ("5",
/// -1); zero is ("", 0)). None when the exponent does not fit an i64.
pub(crate) fn decimal(text: &str) -> Option<(String, i64)> {
    let text = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, "0"),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = int.chars().chain(frac.chars()).collect();
    let significant = digits.trim_start_matches('0');
    let leading = digits.len() - significant.len();
    let significant = significant.trim_end_matches('0');
    if significant.is_empty() {
        return Some((String::new(), 0)); // whatever the exponent
    }
    let exponent: i64 = exponent.parse().ok()?;
    let point =
        i64::try_from(int.len()).ok()?.checked_add(exponent)?.checked_sub(i64::try_from(leading).ok()?)?;
    Some((significant.to_string(), point))
}

/// The double whose shortest form is exactly the decimal p − 1 of p's
/// shortest form (`0.1` gives `-0.9`, although 0.1 − 1 in binary is not
/// -0.9), so that the derivative of `X .^ p` prints the exponent p − 1 as
/// written; None when no double is that number (p = 1e17 or 1e-20).
pub(crate) fn exact_minus_one(p: f64) -> Option<f64> {
    if !p.is_finite() {
        return None;
    }
    let (digits, point) = decimal(&format!("{:e}", p.abs()))?;
    // p as fixed-point digits: int.frac, both without sign.
    let len = i64::try_from(digits.len()).ok()?;
    let zeros = |n: i64| "0".repeat(usize::try_from(n).unwrap_or(0));
    let (int, frac) = if point <= 0 {
        ("0".to_string(), zeros(-point) + &digits)
    } else if point >= len {
        (digits.clone() + &zeros(point - len), String::new())
    } else {
        let at = usize::try_from(point).ok()?;
        (digits[..at].to_string(), digits[at..].to_string())
    };
    let (negative, int, frac) = if p < 0.0 {
        (true, add_one(&int), frac) // -(|p| + 1)
    } else if int != "0" {
        (false, sub_one(&int), frac) // p ≥ 1
    } else if digits.is_empty() {
        (true, "1".to_string(), String::new()) // 0 − 1
    } else {
        (true, "0".to_string(), complement(&frac)) // -(1 − 0.frac)
    };
    let text = format!("{}{int}.{frac}0", if negative { "-" } else { "" });
    let q: f64 = text.parse().ok()?;
    (decimal(&text)? == decimal(&format!("{:e}", q.abs()))?).then_some(q)
}

/// n + 1 for a decimal integer.
fn add_one(n: &str) -> String {
    let mut d: Vec<u8> = n.bytes().collect();
    for b in d.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return String::from_utf8(d).unwrap_or_default();
        }
    }
    format!("1{}", String::from_utf8(d).unwrap_or_default())
}

/// n − 1 for a decimal integer n ≥ 1.
fn sub_one(n: &str) -> String {
    let mut d: Vec<u8> = n.bytes().collect();
    for b in d.iter_mut().rev() {
        if *b == b'0' {
            *b = b'9';
        } else {
            *b -= 1;
            break;
        }
    }
    let s = String::from_utf8(d).unwrap_or_default();
    let s = s.trim_start_matches('0');
    if s.is_empty() {
        "0".into()
    } else {
        s.into()
    }
}

/// 10^k − f for the k digits of a nonzero fraction f: the digits of 1 − 0.f.
fn complement(f: &str) -> String {
    let nines: String = f.bytes().map(|b| char::from(b'9' - (b - b'0'))).collect();
    // No carry out of k digits: f is nonzero, so 10^k − f < 10^k.
    add_one(&nines)
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Into a string first: a gradient of a long chain is a million
        // pieces, each a dynamic call through a formatter.
        let mut out = String::new();
        write_expr(&mut out, self, Prec::Loosest);
        f.write_str(&out)
    }
}

/// The operands of a left-nested run of `op` from its top `e` (which is an
/// `op`): the innermost left operand, and each node's (left, right)
/// operands from the top down. A left operand that is `op` again is
/// written without brackets (`operand_prec`), so the run prints flat.
pub(crate) fn left_run(e: &Expr, op: BinOp) -> (&Expr, smallvec::SmallVec<[(&Expr, &Expr); 4]>) {
    let mut rights = smallvec::SmallVec::new();
    let mut e = e;
    while let ExprKind::Binary { op: o, lhs, rhs, .. } = &e.kind {
        if *o != op {
            break;
        }
        rights.push((&**lhs, &**rhs));
        e = lhs;
    }
    (e, rights)
}

/// Writing to a string cannot fail.
fn w(written: fmt::Result) {
    written.expect("a string takes every write")
}

fn write_expr(f: &mut String, e: &Expr, min: Prec) {
    use std::fmt::Write as _;
    // A plain name or its transpose (every factor of a chain's gradient)
    // needs neither brackets nor stack.
    match &e.kind {
        ExprKind::Var(v) if v.index.is_none() => return f.push_str(&v.name),
        ExprKind::Transpose(a) if min <= Prec::Postfix => {
            if let ExprKind::Var(v) = &a.kind {
                if v.index.is_none() {
                    f.push_str(&v.name);
                    return f.push_str("^T");
                }
            }
        }
        _ => {}
    }
    // Explicit recursion: the precedence a node needs comes from above.
    crate::stack::ensure(|| {
        let p = prec(e);
        if p < min {
            f.push('(');
            write_expr(f, e, Prec::Loosest);
            f.push(')');
            return;
        }
        match &e.kind {
            ExprKind::Var(v) => match v.index {
                None => f.push_str(&v.name),
                Some(_) => w(write!(f, "{v}")),
            },
            ExprKind::Identity => f.push('I'),
            ExprKind::Ones(sizes) => match &**sizes {
                (rows, crate::syntax::DimSpec::Const(1)) => w(write!(f, "ones({rows})")),
                (rows, cols) => w(write!(f, "ones({rows}, {cols})")),
            },
            ExprKind::Num(x) => f.push_str(&format_number(*x)),
            ExprKind::Neg(a) => {
                f.push('-');
                write_expr(f, a, Prec::Postfix)
            }
            ExprKind::Binary { op, lhs, rhs, .. } if op.is_call() => {
                f.push_str(op.symbol());
                f.push('(');
                write_expr(f, lhs, Prec::Loosest);
                f.push_str(", ");
                write_expr(f, rhs, Prec::Loosest);
                f.push(')')
            }
            ExprKind::Binary { op: BinOp::Power, lhs, rhs, .. } => {
                write_expr(f, lhs, Prec::Postfix);
                f.push_str(" .^ ");
                match &rhs.kind {
                    ExprKind::Neg(x) if exponent_bare(rhs) => {
                        f.push('-');
                        write_expr(f, x, Prec::Atom)
                    }
                    _ if exponent_bare(rhs) => write_expr(f, rhs, Prec::Atom),
                    _ => {
                        f.push('(');
                        write_expr(f, rhs, Prec::Loosest);
                        f.push(')')
                    }
                }
            }
            ExprKind::Binary { op, .. } => {
                // A left-nested run of one operator (a chain's product) in a
                // loop: its left operands need no brackets.
                let (first, rights) = left_run(e, *op);
                write_expr(f, first, operand_prec(*op, first, Side::Left));
                for (_, rhs) in rights.into_iter().rev() {
                    f.push(' ');
                    f.push_str(op.symbol());
                    f.push(' ');
                    write_expr(f, rhs, operand_prec(*op, rhs, Side::Right))
                }
            }
            ExprKind::Transpose(a) => {
                write_expr(f, a, Prec::Postfix);
                f.push_str("^T")
            }
            ExprKind::Power(a, k) => {
                write_expr(f, a, Prec::Postfix);
                w(write!(f, "^{k}"))
            }
            ExprKind::HadamardPower(a, k) => {
                write_expr(f, a, Prec::Postfix);
                let sign = if *k < 0.0 { "-" } else { "" };
                w(write!(f, " .^ {sign}{}", format_number(k.abs())))
            }
            ExprKind::Call(func, a) => {
                f.push_str(func.name());
                f.push('(');
                write_expr(f, a, Prec::Loosest);
                match (func, func.axis()) {
                    (Func::Norm2, _) => f.push_str(", 2)"),
                    (_, Some(k)) => w(write!(f, ", {k})")),
                    (_, None) => f.push(')'),
                }
            }
            ExprKind::Prod(prod) => {
                let crate::syntax::Prod { body, var, lo, hi } = &**prod;
                f.push_str("prod(");
                write_expr(f, body, Prec::Loosest);
                w(write!(f, ", {var}={lo}..{hi})"))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// p − 1 is the decimal difference of what is printed, or refused.
    #[test]
    fn exponents_minus_one_are_exact_decimals() {
        let cases: [(f64, Option<&str>); 12] = [
            (0.1, Some("-0.9")),
            (0.3, Some("-0.7")),
            (-0.5, Some("-1.5")),
            (2.25, Some("1.25")),
            (0.0, Some("-1")),
            (1.0, Some("0")),
            (1e15, Some("999999999999999")),
            (9007199254740992.0, Some("9007199254740991.0")),
            (-9007199254740991.0, Some("-9007199254740992.0")),
            (0.999999999999999, Some("-1e-15")),
            (1e17, None),
            (1e-20, None),
        ];
        for (p, want) in cases {
            let got = exact_minus_one(p);
            assert_eq!(got.map(format_number).as_deref(), want, "{p:e}");
        }
        assert_eq!(exact_minus_one(f64::MAX), None);
        assert_eq!(exact_minus_one(f64::NAN), None);
        // Carries and borrows across digits.
        assert_eq!(add_one("999"), "1000");
        assert_eq!(sub_one("1000"), "999");
        assert_eq!(complement("001"), "999");
        assert_eq!(decimal("0.0500"), decimal("5e-2"));
        assert_eq!(decimal("-0e999999999999999999999"), Some((String::new(), 0)));
    }
}
