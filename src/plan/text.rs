//! The plan as text: operands, operations and the step table.

use std::fmt;

use super::{Op, Operand, Output, Plan, PlanInput, PlanStep, Sweeps, Value};
use crate::syntax::{format_number, Func};

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
            Op::Min(a, b) => format!("min({}, {})", t(a), t(b)),
            Op::HadamardPower(a, p) => format!("{} .^ {}", t(a), format_number(*p)),
            Op::Div(a, b) => format!("{} / {}", t(a), t(b)),
            Op::Call(Func::Norm2, a) => format!("norm({}, 2)", t(a)),
            Op::Call(f, a) => match f.axis() {
                Some(k) => format!("{}({}, {k})", f.name(), t(a)),
                None => format!("{}({})", f.name(), t(a)),
            },
            Op::Inverse(a) => format!("{}^-1", t(a)),
            Op::Identity => "I".to_string(),
            Op::Ones => "ones".to_string(),
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

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<(String, String, String, String)> = self
            .steps
            .iter()
            .map(|s| (s.out.clone(), self.op_text(&s.op), s.shape.to_string(), s.madds.to_string()))
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
