//! Source text → [`Program`]: pest's parser for `grammar/matdiff.pest`, and
//! the PrattParser that holds the precedence table (docs/language.md, Precedence).

use std::collections::HashMap;
use std::sync::OnceLock;

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;

use std::rc::Rc;

use super::ast::*;
use super::printer::{decimal, format_number};
use crate::error::{Error, ErrorKind, Result};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/matdiff.pest"]
struct Grammar;

/// Deepest nesting of brackets accepted. pest's generated parser recurses per
/// level, so deeper input is refused before parsing rather than overflowing.
pub const MAX_NESTING: usize = 200;

/// Most nodes an expression may have once definitions are inlined
/// (`A = B*B; C = A*A; ...` doubles with every line).
pub const MAX_NODES: usize = 2_000_000;

/// Stack pest's Pratt parser takes per level of prefix operators, with a
/// margin (measured: under 0.5 KiB in the test build).
const PRATT_FRAME: usize = 4 * 1024;

/// Precedence, loosest first: `+ -` · `* .* ./ /` · unary `-` · postfix.
fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::hadamard, Assoc::Left)
                | Op::infix(Rule::hadamard_div, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left))
            .op(Op::prefix(Rule::neg))
            .op(Op::postfix(Rule::transpose) | Op::postfix(Rule::power) | Op::postfix(Rule::hadamard_power))
    })
}

/// Parses a whole program: declarations and definitions separated by `;` or
/// newlines, the last statement being the expression. A broadcast (`W*X + b`
/// with `b` a column) is left as written: [`crate::parse`] writes it out,
/// which needs the shapes.
///
/// ```
/// let p = matdiff::syntax::parse_program("W : 3x4; x : 4; W*x").unwrap();
/// assert_eq!(p.declarations.len(), 2);
/// assert_eq!(p.expr.to_string(), "W * x");
/// ```
pub fn parse_program(src: &str) -> Result<Program> {
    check_nesting(src)?;
    let mut pairs = Grammar::parse(Rule::program, src).map_err(|e| convert_error(e, src))?;
    let program = pairs.next().expect("program rule");
    let mut builder = Builder::default();
    let mut declarations = Vec::new();
    let mut last: Option<(Expr, Option<String>, Span)> = None;
    for stmt in program.into_inner().filter(|p| p.as_rule() != Rule::EOI) {
        if let Some((_, None, span)) = &last {
            return Err(Error::new(ErrorKind::Parse, "only the last statement can be an expression")
                .label(*span, "this expression is not the last statement")
                .note("separate declarations (`W : 3x4`) and definitions (`Z = W*X`) with `;`"));
        }
        let span = span_of(&stmt);
        match stmt.as_rule() {
            Rule::declaration => declarations.push(builder.declaration(stmt)?),
            Rule::definition => {
                let def = builder.definition(stmt)?;
                if let Some(used) = builder.free.get(&def.name) {
                    return Err(Error::new(
                        ErrorKind::Parse,
                        format!("`{}` is used before its definition", def.name),
                    )
                    .label(*used, format!("`{}` used here, before it is defined", def.name))
                    .label(def.span, "defined here")
                    .note("definitions are read in order: define a name before the statements that use it"));
                }
                last = Some((def.expr.clone(), Some(def.name.clone()), span));
                builder.defined.insert(def.name.clone(), def.expr.clone());
                builder.definitions.push(def);
            }
            Rule::expr => last = Some((builder.expr(stmt)?, None, span)),
            r => unreachable!("statement rule {r:?}"),
        }
    }
    let Some((expr, name, _)) = last else {
        return Err(Error::new(ErrorKind::Parse, "no expression: the last statement must be an expression")
            .label(Span::new(src.len().saturating_sub(1), src.len()), "expected an expression"));
    };
    Ok(Program { declarations, definitions: builder.definitions, expr, name })
}

/// Whether `src` is a program cut short: the parser stops at its end
/// (past blanks and comments) wanting more, as in `W * (` or `W : 3 x`, so
/// that more text could complete it. An input with any other error is
/// not: it is as complete as it will get. The REPL continues such an input
/// on the next line.
///
/// ```
/// use matdiff::syntax::unfinished;
/// assert!(unfinished("W1 * (W2 +"));
/// assert!(unfinished("W : 3 x  # the columns next"));
/// assert!(!unfinished("W1 * W2  # an open ( in a comment"));
/// assert!(!unfinished("W1 * W2)"));
/// ```
pub fn unfinished(src: &str) -> bool {
    // (Deeper nesting is refused by the parser, before pest recurses.)
    if check_nesting(src).is_err() {
        return false;
    }
    match Grammar::parse(Rule::program, src) {
        Ok(_) => false,
        Err(e) => {
            let at = match e.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((start, _)) => start,
            };
            at >= src.trim_end().len()
        }
    }
}

/// Parses a lone expression (no declarations), such as a claimed gradient.
///
/// ```
/// let e = matdiff::syntax::parse_expr("(A*B)'").unwrap();
/// assert_eq!(e.to_string(), "(A * B)^T");
/// ```
pub fn parse_expr(src: &str) -> Result<Expr> {
    let program = parse_program(src)?;
    if let Some(d) = program.declarations.first() {
        return Err(Error::new(ErrorKind::Parse, "expected an expression, found a declaration")
            .label(d.span, "declaration"));
    }
    Ok(program.expr)
}

/// Parses a `--wrt` argument: `W2` or `W[j]`.
///
/// ```
/// assert_eq!(matdiff::syntax::parse_var("W[j+1]").unwrap().to_string(), "W[j+1]");
/// ```
pub fn parse_var(src: &str) -> Result<VarName> {
    let mut pairs = Grammar::parse(Rule::wrt_target, src.trim()).map_err(|e| {
        Error::new(ErrorKind::Usage, format!("`{src}` is not a variable name (like `W2` or `W[j]`)"))
            .note(convert_error(e, src).message)
    })?;
    let target = pairs.next().expect("wrt_target").into_inner().next().expect("name");
    let mut builder = Builder::default();
    match target.as_rule() {
        Rule::ident if target.as_str() == "I" => {
            Err(Error::new(ErrorKind::Usage, "`I` is the identity matrix, not a variable"))
        }
        Rule::ident => Ok(VarName::plain(target.as_str())),
        Rule::indexed => match &builder.primary(target)?.kind {
            ExprKind::Var(v) => Ok((**v).clone()),
            _ => unreachable!("indexed builds a variable"),
        },
        r => unreachable!("wrt rule {r:?}"),
    }
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

fn parse_int(pair: &Pair<Rule>) -> Result<i64> {
    pair.as_str().parse::<i64>().map_err(|_| {
        Error::new(ErrorKind::Parse, format!("integer `{}` is too large", pair.as_str()))
            .label(span_of(pair), "too large")
    })
}

/// A literal as the double it names, when a double holds it exactly: the
/// decimal value of the text and of the double's shortest form agree (`0.1`
/// is the double printed `0.1`). `9007199254740993`, `1e-400` or
/// `0.10000000000000000001` would be printed as another number, so they are
/// refused, never rounded: a formula is printed as it was given.
fn parse_number(pair: &Pair<Rule>, what: &str) -> Result<f64> {
    let text = pair.as_str();
    let x: f64 = text.parse().map_err(|_| {
        Error::new(ErrorKind::Parse, format!("`{text}` is not a number")).label(span_of(pair), "here")
    })?;
    if !x.is_finite() {
        return Err(Error::new(ErrorKind::Parse, format!("{what} out of range"))
            .label(span_of(pair), "not a finite number"));
    }
    let nearest = format!("{:e}", x.abs());
    if decimal(text).is_none() || decimal(text) != decimal(&nearest) {
        let shown = format_number(x);
        return Err(Error::new(ErrorKind::Limit, format!("{what} `{text}` is not exactly representable"))
            .label(span_of(pair), format!("a double holds {shown} here"))
            .note(format!(
                "numbers are doubles (53 bits, about 16 digits); write `{shown}`, the nearest one, if that is meant"
            )));
    }
    Ok(x)
}

fn check_nesting(src: &str) -> Result<()> {
    let mut depth = 0usize;
    for (i, c) in src.char_indices() {
        match c {
            '(' | '[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Error::new(
                        ErrorKind::Limit,
                        format!("brackets nested deeper than {MAX_NESTING} levels"),
                    )
                    .label(Span::new(i, i + 1), format!("nesting level {depth}")));
                }
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Builds AST nodes from pest pairs, inlining definitions as it goes.
#[derive(Default)]
struct Builder {
    defined: HashMap<String, Expr>,
    definitions: Vec<Definition>,
    /// Nodes created so far by inlining definitions.
    inlined: usize,
    /// Where each name that no definition stood for was first used: a
    /// definition of it later would silently not apply there.
    free: HashMap<String, Span>,
}

impl Builder {
    fn declaration(&self, pair: Pair<Rule>) -> Result<Declaration> {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let mut target = inner.next().expect("decl_target").into_inner();
        let name_pair = target.next().expect("name");
        let name = name_pair.as_str().to_string();
        if name == "I" {
            return Err(Error::new(ErrorKind::Parse, "`I` is the identity matrix; it cannot be declared")
                .label(span_of(&name_pair), "the identity's size is inferred"));
        }
        let binder = target.next().map(|p| p.as_str().to_string());
        let spec = inner.next().expect("shape_spec").into_inner().collect::<Vec<_>>();
        let domain = inner.next().map(|p| DomainSpec::from_name(p.as_str()).expect("domain_kw grammar"));
        let shape = match spec.as_slice() {
            [p] if p.as_rule() == Rule::scalar_kw => ShapeSpec::Scalar,
            [d] => ShapeSpec::Vector(self.dim(d.clone())?),
            [r, c] => ShapeSpec::Matrix(self.dim(r.clone())?, self.dim(c.clone())?),
            _ => unreachable!("shape_spec"),
        };
        Ok(Declaration { name, binder, shape, domain, span })
    }

    fn dim(&self, pair: Pair<Rule>) -> Result<DimSpec> {
        let inner = pair.into_inner().next().expect("dim");
        Ok(match inner.as_rule() {
            Rule::int => DimSpec::Const(parse_int(&inner)? as u64),
            Rule::ident => DimSpec::Symbol(inner.as_str().to_string()),
            Rule::indexed_dim => {
                let mut parts = inner.into_inner();
                let name = parts.next().expect("name").as_str().to_string();
                DimSpec::Indexed(name, self.index(parts.next().expect("index"))?)
            }
            r => unreachable!("dim rule {r:?}"),
        })
    }

    fn definition(&mut self, pair: Pair<Rule>) -> Result<Definition> {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let name_pair = inner.next().expect("name");
        let name = name_pair.as_str().to_string();
        if name == "I" {
            return Err(Error::new(ErrorKind::Parse, "`I` is the identity matrix; it cannot be redefined")
                .label(span_of(&name_pair), "here"));
        }
        let expr = self.expr(inner.next().expect("expr"))?;
        if expr.mentions(&VarName::plain(&name)) {
            return Err(Error::new(ErrorKind::Parse, format!("`{name}` is defined in terms of itself"))
                .label(span, "a definition cannot refer to its own name"));
        }
        Ok(Definition { name, expr, span })
    }

    fn expr(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        // pest's Pratt parser recurses once per prefix `-`, out of reach of
        // `stack::ensure`; it gets the stack for all of them up front.
        let prefixes = pair.clone().into_inner().filter(|p| p.as_rule() == Rule::neg).count();
        // Exponents that are expressions (`X .^ p`) are parsed before the
        // Pratt fold, whose closures cannot both borrow the parser.
        let mut exponents = std::collections::HashMap::new();
        for op in pair.clone().into_inner().filter(|p| p.as_rule() == Rule::hadamard_power) {
            let p = op.clone().into_inner().next().expect("exponent");
            if p.as_rule() == Rule::power_operand {
                exponents.insert(span_of(&op).start, self.power_operand(p)?);
            }
        }
        crate::stack::ensure_levels(prefixes, PRATT_FRAME, || {
            // The Pratt closures cannot return early, so errors are threaded as values.
            pratt()
                .map_primary(|p| self.primary(p))
                .map_prefix(|op, rhs| {
                    let rhs = rhs?;
                    let span = span_of(&op).to(rhs.span);
                    Ok(Expr::new(ExprKind::Neg(Rc::new(rhs)), span))
                })
                .map_postfix(|lhs, op| {
                    let lhs = lhs?;
                    let span = lhs.span.to(span_of(&op));
                    let kind = match op.as_rule() {
                        Rule::transpose => ExprKind::Transpose(Rc::new(lhs)),
                        Rule::power => {
                            let k = op.clone().into_inner().next().expect("exponent");
                            let k = parse_int(&k)?;
                            ExprKind::Power(Rc::new(lhs), k)
                        }
                        Rule::hadamard_power => {
                            let p = op.clone().into_inner().next().expect("exponent");
                            if p.as_rule() == Rule::power_operand {
                                let at = span_of(&op);
                                let op_span = Span::new(at.start, at.start + 2);
                                let rhs = exponents.remove(&at.start).expect("parsed before the fold");
                                ExprKind::Binary {
                                    op: BinOp::Power,
                                    op_span,
                                    lhs: Rc::new(lhs),
                                    rhs: Rc::new(rhs),
                                }
                            } else {
                                ExprKind::HadamardPower(Rc::new(lhs), parse_number(&p, "exponent")?)
                            }
                        }
                        r => unreachable!("postfix rule {r:?}"),
                    };
                    Ok(Expr::new(kind, span))
                })
                .map_infix(|lhs, op, rhs| {
                    let (lhs, rhs) = (lhs?, rhs?);
                    let op_kind = match op.as_rule() {
                        Rule::add => BinOp::Add,
                        Rule::sub => BinOp::Sub,
                        Rule::mul => BinOp::Mul,
                        Rule::hadamard => BinOp::Hadamard,
                        Rule::hadamard_div => BinOp::HadamardDiv,
                        Rule::div => BinOp::Div,
                        r => unreachable!("infix rule {r:?}"),
                    };
                    let span = lhs.span.to(rhs.span);
                    Ok(Expr::new(
                        ExprKind::Binary {
                            op: op_kind,
                            op_span: span_of(&op),
                            lhs: Rc::new(lhs),
                            rhs: Rc::new(rhs),
                        },
                        span,
                    ))
                })
                .parse(pair.into_inner())
        })
    }

    /// The exponent of `X .^ p` that is not a literal: a name, a call, or a
    /// bracketed expression, maybe negated (`X .^ -p`).
    fn power_operand(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let first = inner.next().expect("an operand");
        if first.as_rule() == Rule::neg {
            let operand = self.primary(inner.next().expect("an operand after `-`"))?;
            return Ok(Expr::new(ExprKind::Neg(Rc::new(operand)), span));
        }
        self.primary(first)
    }

    fn primary(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = span_of(&pair);
        let kind = match pair.as_rule() {
            Rule::expr => return self.expr(pair),
            Rule::number => ExprKind::Num(parse_number(&pair, "number")?),
            Rule::identity => ExprKind::Identity,
            Rule::ident => {
                let name = pair.as_str();
                if let Some(def) = self.defined.get(name) {
                    self.inlined += def.size();
                    if self.inlined > MAX_NODES {
                        return Err(Error::new(
                            ErrorKind::Limit,
                            format!(
                                "inlining definitions makes the expression larger than {MAX_NODES} nodes"
                            ),
                        )
                        .label(span, format!("`{name}` inlined here")));
                    }
                    return Ok(def.clone());
                }
                self.free.entry(name.to_string()).or_insert(span);
                ExprKind::Var(Rc::new(VarName::plain(name)))
            }
            Rule::indexed => {
                let mut inner = pair.into_inner();
                let name = inner.next().expect("name").as_str().to_string();
                let index = self.index(inner.next().expect("index"))?;
                ExprKind::Var(Rc::new(VarName { name, index: Some(index) }))
            }
            Rule::call => return self.call(pair),
            Rule::prod_expr => {
                let mut inner = pair.into_inner();
                let body = self.expr(inner.next().expect("body"))?;
                let var = inner.next().expect("var").as_str().to_string();
                let lo = self.index(inner.next().expect("lo"))?;
                let hi = self.index(inner.next().expect("hi"))?;
                return Ok(Expr::prod(body, var, lo, hi).at(span));
            }
            r => unreachable!("primary rule {r:?}"),
        };
        Ok(Expr::new(kind, span))
    }

    /// `name(args)`: a function of the language with as many arguments as
    /// it takes; anything else is named, with what was meant if that can be
    /// guessed.
    fn call(&mut self, pair: Pair<Rule>) -> Result<Expr> {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let name_pair = inner.next().expect("a call has a name");
        let (name, name_span) = (name_pair.as_str(), span_of(&name_pair));
        let mut args = vec![];
        for p in inner {
            let at = span_of(&p);
            args.push((self.expr(p)?, at));
        }
        let operator = BinOp::CALLS.into_iter().find(|op| op.symbol() == name);
        let (usage, arity): (&str, &[usize]) = match (name, Func::from_name(name), operator) {
            ("inv", ..) => ("inv(A): the inverse of a square matrix, as A^-1", &[1]),
            ("norm", ..) if args.len() == 2 => return norm_p(args, span),
            ("ones", ..) => (ONES_USAGE, &[1, 2]),
            ("mean", ..) => (MEAN_USAGE, &[1, 2]),
            (_, Some(Func::Sum), _) => {
                ("sum(A): the sum of all entries; sum(A, 1) column sums, sum(A, 2) row sums", &[1, 2])
            }
            (_, Some(f), _) => (f.usage(), &[1]),
            (_, _, Some(op)) => (op.call_usage().expect("a call operator"), &[2]),
            ("prod", ..) => {
                return Err(Error::new(ErrorKind::Parse, "`prod` is written prod(body, i=lo..hi)")
                    .label(span, "not a product over an index range")
                    .note("for example prod(W[i], i=1..n): W[1] * W[2] * ... * W[n]"))
            }
            _ => return Err(unknown_function(name, name_span)),
        };
        if !arity.contains(&args.len()) {
            let most = arity[arity.len() - 1];
            let plural = if most == 1 { "" } else { "s" };
            let takes = match arity {
                [one] => format!("{one} argument{plural}"),
                _ => format!("{} or {most} argument{plural}", arity[0]),
            };
            // The arguments too many, or the call that lacks some.
            let at = match args.get(most) {
                Some((_, first)) => first.to(args[args.len() - 1].1),
                None => span,
            };
            return Err(Error::new(
                ErrorKind::Parse,
                format!("`{name}` takes {takes}, found {}", args.len()),
            )
            .label(at, format!("`{name}` takes {takes}"))
            .note(usage.to_string()));
        }
        if let Some(op) = operator {
            let (rhs, _) = args.pop().expect("two arguments");
            let (lhs, _) = args.pop().expect("two arguments");
            let kind = ExprKind::Binary { op, op_span: name_span, lhs: Rc::new(lhs), rhs: Rc::new(rhs) };
            return Ok(Expr::new(kind, span));
        }
        if name == "ones" {
            let mut sizes = args.into_iter().map(|(a, at)| ones_size(&a, at));
            let rows = sizes.next().expect("one size at least")?;
            let cols = sizes.next().transpose()?.unwrap_or(DimSpec::Const(1));
            return Ok(Expr::new(ExprKind::Ones(Rc::new((rows, cols))), span));
        }
        if name == "mean" {
            return mean(args, span);
        }
        let func = match (Func::from_name(name), args.get(1)) {
            (Some(Func::Sum), Some((axis, at))) => match axis.kind {
                ExprKind::Num(1.0) => Some(Func::SumCols),
                ExprKind::Num(2.0) => Some(Func::SumRows),
                _ => {
                    return Err(Error::new(
                        ErrorKind::Parse,
                        format!("the axis of `sum` is 1 or 2, not `{axis}`"),
                    )
                    .label(*at, "not 1 or 2")
                    .note("sum(A, 1) sums each column (a row), sum(A, 2) sums each row (a column)"))
                }
            },
            (f, _) => f,
        };
        args.truncate(1);
        let arg = args.pop().expect("one argument").0;
        let kind = match func {
            Some(f) => ExprKind::Call(f, Rc::new(arg)),
            None => ExprKind::Power(Rc::new(arg), -1),
        };
        Ok(Expr::new(kind, span))
    }

    fn index(&self, pair: Pair<Rule>) -> Result<Index> {
        let start = span_of(&pair).start;
        let mut acc = Index::default();
        let mut sign = 1;
        for p in pair.into_inner() {
            let end = span_of(&p).end;
            let term = match p.as_rule() {
                Rule::index_neg => {
                    sign = -1;
                    continue;
                }
                Rule::index_op => {
                    sign = if p.as_str() == "-" { -1 } else { 1 };
                    continue;
                }
                Rule::int => Index::constant(parse_int(&p)?),
                Rule::ident => Index::symbol(p.as_str()),
                Rule::index => self.index(p)?,
                r => unreachable!("index rule {r:?}"),
            };
            // Checked: `W[9223372036854775807+1]` is refused, never wrapped.
            let sum = if sign > 0 { acc.plus(&term) } else { acc.minus(&term) };
            acc = sum.map_err(|e| e.label(Span::new(start, end), "this index is out of range"))?;
        }
        Ok(acc)
    }
}

/// A pest error as an [`Error`] with a caret where parsing stopped.
fn convert_error(e: pest::error::Error<Rule>, src: &str) -> Error {
    use pest::error::{ErrorVariant, InputLocation};
    let (start, end) = match e.location {
        InputLocation::Pos(p) => (p, p + 1),
        InputLocation::Span((a, b)) => (a, b),
    };
    let found = match src.get(start..).and_then(|s| s.chars().next()) {
        Some('\n') => "the end of the line".to_string(),
        Some(c) => format!("`{c}`"),
        None => "the end of the input".to_string(),
    };
    // A caret past the end goes under the last character.
    let (start, end) = if start >= src.len() && !src.is_empty() {
        (src.len() - 1, src.len())
    } else {
        (start, end.min(src.len()).max(start))
    };
    let expected = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| describe(*r)).collect();
            let mut seen = std::collections::HashSet::new();
            names.retain(|n| seen.insert(*n));
            let mut seen = std::collections::HashSet::new();
            names.retain(|n| seen.insert(*n));
            if names.contains(&"an expression") {
                names.retain(|n| *n != "a name");
            }
            names
        }
        ErrorVariant::CustomError { .. } => vec![],
    };
    let wanted = match expected.len() {
        0 => "something else".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    // `A^0.5`: a fractional power of a matrix is not in the language, an
    // entrywise one is.
    let literal: String = src
        .get(start..)
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        .collect();
    if expected == ["an integer exponent"]
        && literal.parse::<f64>().is_ok()
        && literal.contains(['.', 'e', 'E'])
    {
        return Error::new(
            ErrorKind::Parse,
            format!("the exponent of a matrix power `^` is an integer, found `{literal}`"),
        )
        .label(Span::new(start, start + literal.len()), "not an integer")
        .note(if literal.parse::<f64>() == Ok(0.5) {
            "for the square root of every entry, write `.^ 0.5` or `sqrt(A)`; a matrix square root is not in the language".to_string()
        } else {
            format!("for the power of every entry, write `.^ {literal}`")
        });
    }
    // `A^p`, `A^(p+1)`: a matrix power by a scalar expression is not in the
    // language, an entrywise one is.
    let rest = src.get(start..).unwrap_or("");
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let opens = rest.starts_with('(');
    if expected == ["an integer exponent"] && (opens || name.starts_with(|c: char| c.is_ascii_alphabetic())) {
        let (what, width) =
            if opens { ("a bracketed expression".to_string(), 1) } else { (format!("`{name}`"), name.len()) };
        let power = if opens { "(…)".to_string() } else { name.clone() };
        return Error::new(
            ErrorKind::Parse,
            format!("the exponent of a matrix power `^` is an integer, found {what}"),
        )
        .label(Span::new(start, start + width), "not an integer")
        .note(format!(
            "for the power of every entry by a scalar, write `.^ {power}`; a matrix power by a scalar expression is not in the language"
        ));
    }
    Error::new(ErrorKind::Parse, format!("expected {wanted}, found {found}"))
        .label(Span::new(start, end), format!("expected {wanted}"))
}

/// Names the language has for what other notations call by another
/// name, and what to write instead.
const ALIASES: [(&str, &str); 18] = [
    ("trace", "`tr`"),
    ("asin", "`arcsin`"),
    ("acos", "`arccos`"),
    ("atan", "`arctan`"),
    ("sgn", "`sign`"),
    ("signum", "`sign`"),
    ("heaviside", "`step`"),
    ("maximum", "`max`"),
    ("minimum", "`min`"),
    ("transpose", "the postfix `^T`, as in `A^T`"),
    ("inverse", "`inv`"),
    ("ln", "`log`"),
    ("logistic", "`sigmoid`"),
    ("determinant", "`det`"),
    ("frobenius", "`norm`"),
    ("product", "`prod`"),
    ("sigma", "`sigmoid`"),
    ("logdeterminant", "`logdet`"),
];

/// `norm(x, p)`: p = 1 is `norm1`, p = 2 the Euclidean norm of a vector
/// (whose shape inference then asks for); any other p is refused by name.
fn norm_p(mut args: Vec<(Expr, Span)>, span: Span) -> Result<Expr> {
    let (p, p_span) = args.pop().expect("two arguments");
    let x = Rc::new(args.pop().expect("two arguments").0);
    let f = match p.kind {
        ExprKind::Num(1.0) => Func::Norm1,
        ExprKind::Num(2.0) => Func::Norm2,
        _ => {
            return Err(Error::new(ErrorKind::Parse, format!("`norm(x, {p})` is not in the language"))
                .label(p_span, "p must be 1 or 2")
                .note("norm(x, 1) (also norm1(x)) is the sum of absolute values, norm(x, 2) the Euclidean norm of a vector, norm(A) the Frobenius norm"))
        }
    };
    Ok(Expr::new(ExprKind::Call(f, x), span))
}

/// The functions a call can name, as the language lists them.
///
/// ```
/// assert!(matdiff::syntax::function_names().contains(&"logdet"));
/// ```
pub fn function_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
    names.extend(BinOp::CALLS.iter().map(|op| op.symbol()));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(*n)); // `norm` names Norm and Norm2, `sum` three
    names.extend(["inv", "prod", "ones", "mean"]);
    names
}

/// `name(…)` where no function is called `name`: what it may have meant.
fn unknown_function(name: &str, name_span: Span) -> Error {
    let names = function_names();
    let lower = name.to_ascii_lowercase();
    let guess =
        ALIASES.iter().find(|(alias, _)| *alias == lower).map(|(_, meant)| meant.to_string()).or_else(|| {
            let limit = if name.len() <= 4 { 1 } else { 2 };
            names
                .iter()
                .map(|n| (edit_distance(&lower, n), *n))
                .filter(|(d, _)| *d <= limit)
                .min()
                .map(|(_, n)| format!("`{n}`"))
        });
    let mut e = Error::new(ErrorKind::Parse, format!("unknown function `{name}`"))
        .label(name_span, "not a function of the language");
    let multiply = format!("a name before `(` calls a function; to multiply, write `{name} * (…)`");
    match guess {
        Some(meant) => e = e.note(format!("did you mean {meant}?")),
        None => e = e.note(multiply),
    }
    e.note(format!("the functions: {}", names.join(", ")))
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::expr
        | Rule::number
        | Rule::call
        | Rule::prod_expr
        | Rule::indexed
        | Rule::identity
        | Rule::neg => "an expression",
        Rule::ident => "a name",
        Rule::add | Rule::sub | Rule::mul | Rule::hadamard | Rule::hadamard_div | Rule::div => "an operator",
        Rule::transpose | Rule::power | Rule::hadamard_power => "an operator",
        Rule::EOI => "the end of the input",
        Rule::declaration | Rule::definition => "a statement",
        Rule::shape_spec | Rule::dim | Rule::scalar_kw | Rule::int | Rule::indexed_dim => {
            "a shape (`3x4`, `m x n`, `n` or `scalar`)"
        }
        Rule::domain_kw => "a domain (`positive`, `negative`, `nonzero` or `spd`)",
        Rule::index | Rule::index_neg => "an index",
        Rule::index_op => "`+` or `-`",
        Rule::signed_int => "an integer exponent",
        Rule::signed_number => "a number",
        Rule::power_operand => "an exponent (a number, a name or a bracketed scalar)",
        _ => return None,
    })
}

const MEAN_USAGE: &str =
    "mean(A): the mean of all entries; mean(A, 1) column means (a row), mean(A, 2) row means (a column)";

/// `mean(A)`, `mean(A, 1)`, `mean(A, 2)`: the sum over the count of the
/// entries summed, the count being the same sum of `A .^ 0` (every entry 1),
/// so that it is right at any size, symbolic or not; [`crate::parse`]
/// writes the count as a number or with `ones(…)` where the shape tells it.
/// `A` is one shared node in both places.
fn mean(mut args: Vec<(Expr, Span)>, span: Span) -> Result<Expr> {
    let axis = match args.get(1) {
        None => None,
        Some((axis, at)) => match axis.kind {
            ExprKind::Num(1.0) => Some(Func::SumCols),
            ExprKind::Num(2.0) => Some(Func::SumRows),
            _ => {
                return Err(Error::new(
                    ErrorKind::Parse,
                    format!("the axis of `mean` is 1 or 2, not `{axis}`"),
                )
                .label(*at, "not 1 or 2")
                .note("mean(A, 1) averages each column (a row), mean(A, 2) each row (a column)"))
            }
        },
    };
    args.truncate(1);
    let x = Rc::new(args.pop().expect("one argument").0);
    let ones = Rc::new(Expr::synthetic(ExprKind::HadamardPower(x.clone(), 0.0)).at(x.span));
    let (f, op) = match axis {
        None => (Func::Sum, BinOp::Div),
        Some(f) => (f, BinOp::HadamardDiv),
    };
    let sum = Expr::new(ExprKind::Call(f, x), span);
    let count = Expr::new(ExprKind::Call(f, ones), span);
    Ok(Expr::new(ExprKind::Binary { op, op_span: span, lhs: Rc::new(sum), rhs: Rc::new(count) }, span))
}

const ONES_USAGE: &str = "ones(n): the n×1 column of ones; ones(m, n): the m×n matrix of ones";

/// A size of `ones(…)`: a positive integer or a dimension name.
fn ones_size(e: &Expr, at: Span) -> Result<DimSpec> {
    let wrong = |what: &str| {
        Err(Error::new(
            ErrorKind::Parse,
            format!("a size of `ones` is a number or a dimension name, not {what}"),
        )
        .label(at, "not a size")
        .note(ONES_USAGE))
    };
    match &e.kind {
        ExprKind::Num(k) if *k >= 1.0 && k.fract() == 0.0 && *k <= u32::MAX as f64 => {
            Ok(DimSpec::Const(*k as u64))
        }
        ExprKind::Var(v) if v.index.is_none() => Ok(DimSpec::Symbol(v.name.clone())),
        ExprKind::Num(_) => wrong("a number below 1 or with a fraction"),
        _ => wrong(&format!("`{e}`")),
    }
}
