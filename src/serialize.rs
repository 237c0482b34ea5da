//! Results as data: `serde::Serialize` for what each stage returns — a
//! [`Derivation`] and its [`Gradient`]s, a numeric [`Plan`] and the
//! recurrences of a symbolic one, a check's [`CheckReport`] (of a second
//! derivative, [`SecondCheck`]), a verification's [`Verdict`] — in the shapes the command line prints for `--json`
//! (docs/json.md). ([`Error`](crate::Error), [`Shape`](crate::shape::Shape),
//! [`Dim`](crate::shape::Dim) and [`Cost`](crate::plan::Cost) serialize
//! where they are defined.)
//!
//! Formulas serialize as their text (the expression language), variables as
//! their names, domains as their report names, outcomes as words.
//!
//! ```
//! let p = matdiff::syntax::parse_program("W1 : 3x4; X : 4x2; W1*X").unwrap();
//! let d = matdiff::derive(&p, &Default::default()).unwrap();
//! let doc = serde_json::to_value(&d).unwrap();
//! assert_eq!(doc["gradients"][0]["expr"], "G * X^T");
//! assert_eq!(doc["gradients"][0]["shape"], serde_json::json!([3, 4]));
//! ```

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::calculus::Mode;
use crate::explain::{Explained, Explanation, Line};
use crate::hessian::SecondCheck;
use crate::numeric::{CheckReport, CheckResult, Compared, Domain, Outcome, TOLERANCE};
use crate::plan::{Plan, Recurrence, SymbolicPlan, MAX_COST_TERMS};
use crate::syntax::{to_latex, Expr, VarName};
use crate::verify::{Evidence, Method, Verdict};
use crate::{Derivation, Gradient};

/// `{kind, ok, first, second, matrix}`: the kind's name, whether every part
/// agrees, the two checks (`second` null where the second derivative is 0)
/// and the matrix's verdict (null where there is no matrix).
impl Serialize for SecondCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("SecondCheck", 5)?;
        s.serialize_field("kind", self.kind.name())?;
        s.serialize_field("ok", &self.ok())?;
        s.serialize_field("first", &self.first)?;
        s.serialize_field("second", &self.second)?;
        s.serialize_field("matrix", &self.matrix)?;
        s.end()
    }
}

/// A variable as its name: `W2`, `W[j]`.
impl Serialize for VarName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A domain as its report name: `positive`, `spd`, `invertible`.
impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// `{expr, latex, occurrences, saturated, shape, wrt}`, and `condition`
/// (the side conditions, joined) where there are any; in a derivation's
/// document also `shared_expr` and `shared_latex`, the formula in terms of
/// the shared names, where it uses them. The keys in sorted order, as every
/// document prints them.
impl Serialize for Gradient {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Gradient", gradient_len(self, None))?;
        gradient_fields(self, None, &mut s)?;
        s.end()
    }
}

/// A gradient of a derivation with its form in terms of the shared names
/// (`shared_expr`, `shared_latex`, where that differs from `expr`).
struct InDerivation<'a>(&'a Gradient, Option<&'a Expr>);

impl Serialize for InDerivation<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Gradient", gradient_len(self.0, self.1))?;
        gradient_fields(self.0, self.1, &mut s)?;
        s.end()
    }
}

/// The shared form of the k-th gradient, where it differs from the expanded one.
fn shared_form<'a>(d: &'a Derivation, k: usize) -> Option<&'a Expr> {
    let e = d.printed_gradient(k);
    (*e != d.gradients[k].expr).then_some(e)
}

fn gradient_len(g: &Gradient, shared: Option<&Expr>) -> usize {
    6 + usize::from(!g.differential.conditions.is_empty()) + 2 * usize::from(shared.is_some())
}

fn gradient_fields<S: SerializeStruct>(
    g: &Gradient,
    shared: Option<&Expr>,
    s: &mut S,
) -> Result<(), S::Error> {
    // In the order of the documents' keys (sorted, as a `serde_json::Value`
    // keeps them), so that a gradient serialized directly, as a long
    // derivation's is when streamed, reads as its document does.
    let conditions = &g.differential.conditions;
    if !conditions.is_empty() {
        let c: Vec<String> = conditions.iter().map(|c| c.to_string()).collect();
        s.serialize_field("condition", &c.join(", "))?;
    }
    // The full formula, self-contained, whatever is shared.
    s.serialize_field("expr", &g.expr.to_string())?;
    s.serialize_field("latex", &to_latex(&g.expr))?;
    s.serialize_field("occurrences", &g.occurrences)?;
    s.serialize_field("saturated", &g.saturated)?;
    s.serialize_field("shape", &g.shape)?;
    if let Some(e) = shared {
        s.serialize_field("shared_expr", &e.to_string())?;
        s.serialize_field("shared_latex", &to_latex(e))?;
    }
    s.serialize_field("wrt", &g.wrt)?;
    Ok(())
}

/// `{expr, latex, why, why_latex}`: the right-hand side and its reason.
impl Serialize for Line {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Line", 4)?;
        s.serialize_field("expr", &self.rhs.to_string())?;
        s.serialize_field("latex", &self.rhs.latex())?;
        s.serialize_field("why", &self.why.text())?;
        s.serialize_field("why_latex", &self.why.latex())?;
        s.end()
    }
}

/// The derivation's document with each gradient's `steps` and
/// `shape_check` beside its fields.
impl Serialize for Explained<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Explained<'a>(&'a Gradient, Option<&'a Expr>, &'a Explanation);
        impl Serialize for Explained<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let Explained(g, shared, e) = self;
                let mut s = serializer.serialize_struct("Gradient", gradient_len(g, *shared) + 2)?;
                gradient_fields(g, *shared, &mut s)?;
                s.serialize_field("steps", &e.lines)?;
                let checks: Vec<String> = e.shape_check.iter().map(|c| c.to_string()).collect();
                s.serialize_field("shape_check", &checks)?;
                s.end()
            }
        }
        let d = self.derivation;
        let gradients: Vec<Explained> = d
            .gradients
            .iter()
            .zip(&self.explanations)
            .enumerate()
            .map(|(k, (g, e))| Explained(g, shared_form(d, k), e))
            .collect();
        derivation_fields(self.derivation, &gradients, serializer)
    }
}

/// `{expr, shape, upstream, definitions, gradients, saturated}`: `definitions`
/// (`{name, expr, latex}`, the shared names) only where something repeats; `upstream` is the
/// upstream gradient's name for a matrix-valued expression, `null` for a
/// scalar loss; `saturated`, whether every gradient's simplification did.
impl Serialize for Derivation<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let gradients: Vec<InDerivation> =
            self.gradients.iter().enumerate().map(|(k, g)| InDerivation(g, shared_form(self, k))).collect();
        derivation_fields(self, &gradients, serializer)
    }
}

fn derivation_fields<S: Serializer>(
    d: &Derivation,
    gradients: &impl Serialize,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let upstream = match &d.mode {
        Mode::Scalar => None,
        Mode::Layer { upstream } => Some(upstream),
    };
    let mut s = serializer.serialize_struct("Derivation", 5 + usize::from(d.shared.is_some()))?;
    s.serialize_field("expr", &d.typing.program.expr.to_string())?;
    s.serialize_field("shape", &d.typing.shape())?;
    s.serialize_field("upstream", &upstream)?;
    if let Some(shared) = &d.shared {
        #[derive(Serialize)]
        struct Definition<'a> {
            name: &'a str,
            expr: String,
            latex: String,
        }
        let definitions: Vec<Definition> = shared
            .definitions
            .iter()
            .map(|n| Definition { name: &n.name, expr: n.expr.to_string(), latex: to_latex(&n.expr) })
            .collect();
        s.serialize_field("definitions", &definitions)?;
    }
    s.serialize_field("gradients", gradients)?;
    s.serialize_field("saturated", &d.gradients.iter().all(|g| g.saturated))?;
    s.end()
}

/// `{expr, steps, outputs, total_madds, separate_madds, separate_products,
/// forward_madds, products, sweeps, peak_entries}` (`peak_entries` null
/// where a size is symbolic). Each step is `{out, op, shape,
/// madds}`; each output `{wrt, value, shape}` (`wrt` null for the value);
/// each sweep `{cycle, cut, between}`. Counts are numbers, or their text
/// past u64 (or a polynomial of symbolic sizes).
impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Step<'a> {
            out: &'a str,
            op: String,
            shape: &'a crate::shape::Shape,
            madds: &'a crate::plan::Cost,
        }
        #[derive(Serialize)]
        struct Output<'a> {
            wrt: &'a Option<VarName>,
            value: String,
            shape: &'a crate::shape::Shape,
        }
        #[derive(Serialize)]
        struct Sweep {
            cycle: Vec<String>,
            cut: usize,
            between: [String; 2],
        }
        let steps: Vec<Step> = self
            .steps
            .iter()
            .map(|s| Step { out: &s.out, op: self.op_text(&s.op), shape: &s.shape, madds: &s.madds })
            .collect();
        let outputs: Vec<Output> = self
            .outputs
            .iter()
            .map(|o| Output { wrt: &o.wrt, value: self.operand_text(o.operand), shape: &o.shape })
            .collect();
        let sweeps: Vec<Sweep> = self
            .sweeps
            .iter()
            .map(|s| {
                let (cycle, a, b) = self.cycle_text(s);
                Sweep { cycle, cut: s.cut, between: [a, b] }
            })
            .collect();
        let mut s = serializer.serialize_struct("Plan", 10)?;
        s.serialize_field("expr", &self.expr.to_string())?;
        s.serialize_field("steps", &steps)?;
        s.serialize_field("outputs", &outputs)?;
        s.serialize_field("total_madds", &self.total)?;
        match &self.separate {
            Some(c) => s.serialize_field("separate_madds", c)?,
            None => s.serialize_field("separate_madds", &format!("more than {MAX_COST_TERMS} terms"))?,
        }
        s.serialize_field("separate_products", &(self.separate_products as u64))?;
        s.serialize_field("forward_madds", &self.forward)?;
        s.serialize_field("products", &self.products())?;
        s.serialize_field("sweeps", &sweeps)?;
        // A count as the other counts are: a number, or its text past u64.
        let peak = self.peak_entries().map(crate::plan::Cost::constant);
        s.serialize_field("peak_entries", &peak)?;
        s.end()
    }
}

/// `{expr, symbolic, steps, total_madds, separate_madds}`: `symbolic` is
/// true; `steps` are the recurrences of every member gradient, and the
/// counts sums over the index of each.
impl Serialize for SymbolicPlan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let all = &self.gradients;
        let steps: Vec<&Recurrence> = all.iter().flat_map(|r| &r.lines).collect();
        let totals: Vec<String> =
            all.iter().map(|r| format!("sum_{{{}={}..{}}} {}", r.index, r.lo, r.hi, r.per_index)).collect();
        let separate: Vec<&str> = all.iter().map(|r| r.separate.as_str()).collect();
        let mut s = serializer.serialize_struct("SymbolicPlan", 5)?;
        s.serialize_field("expr", &self.expr.to_string())?;
        s.serialize_field("symbolic", &true)?;
        s.serialize_field("steps", &steps)?;
        s.serialize_field("total_madds", &totals.join(" + "))?;
        s.serialize_field("separate_madds", &separate.join(" + "))?;
        s.end()
    }
}

/// One line of a symbolic plan: `{out, op, base, range, shape, madds}`
/// (`madds` always text: a polynomial of the sizes and the index).
impl Serialize for Recurrence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Recurrence", 6)?;
        s.serialize_field("out", &self.out)?;
        s.serialize_field("op", &self.formula.to_string())?;
        s.serialize_field("base", &self.base.as_ref().map(|(v, e)| format!("{v} = {e}")))?;
        s.serialize_field("range", &self.range)?;
        s.serialize_field("shape", &self.shape)?;
        s.serialize_field("madds", &self.madds.to_string())?;
        s.end()
    }
}

/// An outcome as a check reports it: `ok`, `mismatch`, `undecided`.
fn check_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Agree => "ok",
        Outcome::Differ => "mismatch",
        Outcome::Undecided => "undecided",
    }
}

/// `{wrt, outcome, ok, max_rel_err, fd_error, reason, compared}`;
/// `compared` is `entries` or `directions`, with `directions` their number
/// (else null).
impl Serialize for CheckResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CheckResult", 8)?;
        s.serialize_field("wrt", &self.wrt)?;
        s.serialize_field("outcome", check_word(self.outcome))?;
        s.serialize_field("ok", &self.ok())?;
        s.serialize_field("max_rel_err", &self.max_rel_err)?;
        s.serialize_field("fd_error", &self.fd_error)?;
        s.serialize_field("reason", &self.reason)?;
        let (compared, directions) = match self.compared {
            Compared::Entries => ("entries", None),
            Compared::Directions(k) => ("directions", Some(k)),
        };
        s.serialize_field("compared", compared)?;
        s.serialize_field("directions", &directions)?;
        s.end()
    }
}

/// `{ok, undecided, results, sizes, seed, domains, redraws, instances,
/// indices, tolerance}`: `undecided` counts the undecided results;
/// `tolerance` is the relative tolerance of agreement.
impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("CheckReport", 10)?;
        s.serialize_field("ok", &self.ok())?;
        s.serialize_field("undecided", &self.results.iter().filter(|c| c.undecided()).count())?;
        s.serialize_field("results", &self.results)?;
        s.serialize_field("sizes", &self.sizes)?;
        s.serialize_field("seed", &self.seed)?;
        s.serialize_field("domains", &self.domains)?;
        s.serialize_field("redraws", &self.redraws)?;
        s.serialize_field("instances", &self.instances)?;
        s.serialize_field("indices", &self.indices)?;
        s.serialize_field("tolerance", &TOLERANCE)?;
        s.end()
    }
}

/// `{instances, decided, tolerance, worst_rel_err, domains}`.
impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Evidence", 5)?;
        s.serialize_field("instances", &self.instances)?;
        s.serialize_field("decided", &self.decided)?;
        s.serialize_field("tolerance", &self.tolerance)?;
        s.serialize_field("worst_rel_err", &self.worst_rel_err)?;
        s.serialize_field("domains", &self.domains)?;
        s.end()
    }
}

/// `{equivalent, outcome, method, detail, derived, evidence}`: `outcome`
/// is `equivalent`, `not equivalent` or `undecided`; `method`, `symbolic`
/// or `numeric`; `derived`, matdiff's own gradient; `evidence`, null where
/// no instance was drawn.
impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Verdict", 6)?;
        s.serialize_field("equivalent", &self.equivalent())?;
        s.serialize_field("outcome", &self.word().to_lowercase())?;
        s.serialize_field("method", &self.method)?;
        s.serialize_field("detail", &self.detail)?;
        s.serialize_field("derived", &self.derived.to_string())?;
        s.serialize_field("evidence", &self.evidence)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    /// A gradient serialized directly (as a streamed derivation writes it)
    /// has its keys in the order a document's `Value` prints them, with a
    /// side condition and without.
    #[test]
    fn a_gradient_serializes_with_its_keys_in_the_documents_order() {
        for (src, wrt) in
            [("prod(W[i], i=1..n) * X", vec!["W[j]", "X"]), ("X : 3x3; logdet(X) + x^T*X*x", vec![])]
        {
            let wrt = wrt.iter().map(|w| crate::syntax::parse_var(w).unwrap()).collect();
            let program = crate::parse(src).unwrap();
            let d = crate::derive(&program, &crate::DeriveOptions { wrt, ..Default::default() }).unwrap();
            for g in &d.gradients {
                let direct = serde_json::to_string_pretty(g).unwrap();
                let sorted = serde_json::to_string_pretty(&serde_json::to_value(g).unwrap()).unwrap();
                assert_eq!(direct, sorted, "{src}");
            }
            assert!(
                d.gradients.iter().any(|g| !g.differential.conditions.is_empty()) || !src.contains("prod")
            );
        }
    }
}
