//! The plan as text: operands, operations and the step table.

use std::fmt;

use super::{Op, Operand, Output, Plan, PlanInput, PlanStep, Sweeps, Value};
use crate::shape::Dim;
use crate::syntax::{format_number, BinOp, DimSpec, Expr, ExprKind, Func};

fn operand_text(inputs: &[PlanInput], steps: &[PlanStep], o: Operand) -> String {
    let base = match o.value {
        Value::Input(k) => inputs[k].var.to_string(),
        Value::Step(k) => steps[k].out.clone(),
        Value::Num(x) => format_number(x),
    };
    if o.transposed {
        format!("{base}^T")
    } else {
        base
    }
}

impl Plan {
    /// An operand as text (`S2^T`).
    pub fn operand_text(&self, o: Operand) -> String {
        operand_text(&self.inputs, &self.steps, o)
    }

    /// A step's operation as text, in the expression syntax (`W1^T * H1`).
    pub fn op_text(&self, op: &Op) -> String {
        let t = |o: &Operand| self.operand_text(*o);
        match op {
            Op::MatMul(a, b) | Op::Scale(a, b) => format!("{} * {}", t(a), t(b)),
            Op::Add(a, b) => format!("{} + {}", t(a), t(b)),
            Op::Sub(a, b) => format!("{} - {}", t(a), t(b)),
            Op::Neg(a) => format!("-{}", t(a)),
            Op::Hadamard(a, b) => format!("{} .* {}", t(a), t(b)),
            Op::HadamardDiv(a, b) => format!("{} ./ {}", t(a), t(b)),
            Op::Max(a, b) => format!("max({}, {})", t(a), t(b)),
            Op::Kron(a, b) => format!("kron({}, {})", t(a), t(b)),
            Op::Power(a, b) => {
                let p = t(b);
                // A name stands bare; a literal or a transpose in brackets,
                // so that `.^ 2` is not read as the literal power.
                if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !p.starts_with(|c: char| c.is_ascii_digit())
                {
                    format!("{} .^ {p}", t(a))
                } else {
                    format!("{} .^ ({p})", t(a))
                }
            }
            Op::Min(a, b) => format!("min({}, {})", t(a), t(b)),
            Op::HadamardPower(a, p) => format!("{} .^ {}", t(a), format_number(*p)),
            Op::Div(a, b) => format!("{} / {}", t(a), t(b)),
            Op::Call(Func::Norm2, a) => format!("norm({}, 2)", t(a)),
            Op::Call(f, a) => match f.axis() {
                Some(k) => format!("{}({}, {k})", f.name(), t(a)),
                None => format!("{}({})", f.name(), t(a)),
            },
            Op::Inverse(a) => format!("{}^-1", t(a)),
            Op::ScaleRows(v, a) => format!("diag({}) * {}", t(v), t(a)),
            Op::ScaleCols(a, v) => format!("{} * diag({})", t(a), t(v)),
            Op::Identity => "I".to_string(),
            Op::Ones => "ones".to_string(),
        }
    }

    /// An operand as an expression: the variable or step it names (a
    /// variable of that name), maybe transposed.
    pub fn operand_expr(&self, o: Operand) -> Expr {
        let base = match o.value {
            Value::Input(k) => Expr::synthetic(ExprKind::Var(std::rc::Rc::new(self.inputs[k].var.clone()))),
            Value::Step(k) => Expr::var(&self.steps[k].out),
            Value::Num(x) => Expr::num(x),
        };
        if o.transposed {
            Expr::transpose(base)
        } else {
            base
        }
    }

    /// Step k's operation as an expression over the names of its operands
    /// (`W1^T * H1`), for the printers: what [`Plan::op_text`] writes.
    pub fn step_expr(&self, k: usize) -> Expr {
        let step = &self.steps[k];
        let e = |o: &Operand| self.operand_expr(*o);
        let spec = |d: &Dim| match d {
            Dim::Const(n) => DimSpec::Const(*n),
            Dim::Symbol(s) => DimSpec::Symbol(s.clone()),
            Dim::Indexed(s, i) => DimSpec::Indexed(s.clone(), i.clone()),
            Dim::Unknown(k) => DimSpec::Symbol(format!("?{k}")),
        };
        match &step.op {
            Op::MatMul(a, b) | Op::Scale(a, b) => Expr::product(e(a), e(b)),
            Op::Add(a, b) => Expr::plus(e(a), e(b)),
            Op::Sub(a, b) => Expr::minus(e(a), e(b)),
            Op::Neg(a) => Expr::negate(e(a)),
            Op::Hadamard(a, b) => Expr::binary(BinOp::Hadamard, e(a), e(b)),
            Op::HadamardDiv(a, b) => Expr::binary(BinOp::HadamardDiv, e(a), e(b)),
            Op::Max(a, b) => Expr::binary(BinOp::Max, e(a), e(b)),
            Op::Power(a, b) => Expr::binary(BinOp::Power, e(a), e(b)),
            Op::Min(a, b) => Expr::binary(BinOp::Min, e(a), e(b)),
            Op::Kron(a, b) => Expr::binary(BinOp::Kron, e(a), e(b)),
            Op::HadamardPower(a, p) => Expr::synthetic(ExprKind::HadamardPower(e(a).into(), *p)),
            Op::Div(a, b) => Expr::binary(BinOp::Div, e(a), e(b)),
            Op::Call(f, a) => Expr::call(*f, e(a)),
            Op::ScaleRows(v, a) => Expr::product(Expr::call(Func::Diag, e(v)), e(a)),
            Op::ScaleCols(a, v) => Expr::product(e(a), Expr::call(Func::Diag, e(v))),
            Op::Inverse(a) => Expr::synthetic(ExprKind::Power(e(a).into(), -1)),
            Op::Identity => Expr::identity(),
            Op::Ones => Expr::ones(spec(&step.shape.rows), spec(&step.shape.cols)),
        }
    }

    /// The factors of a family's cycle, as text, and the two the cut is between.
    pub fn cycle_text(&self, s: &Sweeps) -> (Vec<String>, String, String) {
        let cycle: Vec<String> = s.cycle.iter().map(|o| self.operand_text(*o)).collect();
        let (a, b) = (cycle[s.cut].clone(), cycle[(s.cut + 1) % cycle.len()].clone());
        (cycle, a, b)
    }

    /// The output's label: `value`, or `d/dW1`.
    pub fn output_label(o: &Output) -> String {
        match &o.wrt {
            None => "value".to_string(),
            Some(v) => format!("d/d{v}"),
        }
    }
}

/// A step's multiply-adds as the column shows them: exact below a million,
/// else to three digits (`6.87e10`), as a reader compares them; the plan's
/// totals, and its JSON, keep every digit.
fn step_madds(madds: &super::Cost) -> String {
    match madds.as_number() {
        Some(n) if n >= 1_000_000 => format!("{:.2e}", n as f64),
        _ => madds.to_string(),
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<(String, String, String, String)> = self
            .steps
            .iter()
            .map(|s| (s.out.clone(), self.op_text(&s.op), s.shape.to_string(), step_madds(&s.madds)))
            .collect();
        // Columns align up to 100 characters: a longer cell (a 64 KiB name)
        // would pad every row to it, and std's formatter panics on a width
        // past u16::MAX.
        let w0 = lines.iter().map(|l| l.0.chars().count()).max().unwrap_or(0).min(100);
        let w1 = lines.iter().map(|l| l.1.chars().count()).max().unwrap_or(0).min(100);
        let w2 = lines.iter().map(|l| l.2.chars().count()).max().unwrap_or(0).min(100);
        for (out, op, shape, madds) in &lines {
            writeln!(f, "  {out:<w0$} = {op:<w1$}   {shape:<w2$}   {madds}")?;
        }
        Ok(())
    }
}
