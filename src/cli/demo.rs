//! `matdiff demo`: the seed problem end to end. Everything printed is
//! computed by the pipeline; nothing here knows the answers.

use std::collections::HashMap;

use super::render::{
    derivation_latex, latex_document, plan as render_plan, render_check, render_derivation, PlanOutput,
};
use crate::error::Result;
use crate::explain::{explain, to_latex_blocks, to_text};
use crate::numeric::{check, eval, CheckOptions, Instance};
use crate::plan::PlanOptions;
use crate::syntax::{parse_program, parse_var, Expr, Program};
use crate::{derive, Derivation, DeriveOptions, Steps};

const DECLARED: &str = "W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; Z = W1*W2*W3*X";
const INFERRED: &str = "Z = W1*W2*W3*X";
const TIED: &str = "W : 4x4; X : 4x2; Z = W*W*X";
const SYMBOLIC: &str = "W[i] : d[i-1] x d[i]; X : d[n] x B; Z = prod(W[i], i=1..n) * X";
const PRODUCT: &str = "W1 : 3x4; W2 : 4x5; W3 : 5x6; C = W1*W2*W3";
const COLLAPSED: &str = "C : 3x6; X : 6x2; Z = C*X";

/// A document in sections, rendered as text or LaTeX.
struct Doc {
    latex: bool,
    out: String,
}

impl Doc {
    fn section(&mut self, title: &str) {
        if self.latex {
            self.out.push_str(&format!("\\section*{{{title}}}\n"));
        } else {
            self.out.push_str(&format!("\n== {title}\n\n"));
        }
    }

    fn para(&mut self, text: &str) {
        if self.latex {
            self.out.push_str(&format!("{}\n\n", text.replace('_', "\\_").replace('^', "\\^{}")));
        } else {
            self.out.push_str(text);
            self.out.push('\n');
        }
    }

    /// Gradients as text lines, or as display math.
    fn derivation(&mut self, d: &Derivation) {
        if self.latex {
            self.out.push_str(&derivation_latex(d, false));
        } else {
            self.out.push_str(&indent(&render_derivation(d, false)));
        }
    }

    fn verbatim(&mut self, text: &str) {
        if self.latex {
            self.out.push_str(&format!("\\begin{{verbatim}}\n{text}\\end{{verbatim}}\n"));
        } else {
            self.out.push_str(&indent(text));
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| if l.is_empty() { "\n".to_string() } else { format!("   {l}\n") }).collect()
}

fn derived<'p>(program: &'p Program, wrt: &[&str], upstream: Option<&str>) -> Result<Derivation<'p>> {
    let wrt = wrt.iter().map(|w| parse_var(w)).collect::<Result<Vec<_>>>()?;
    derive(program, &DeriveOptions { wrt, upstream: upstream.map(str::to_string), steps: Steps::Record })
}

/// The demo, and whether every numeric check passed.
pub fn run(latex: bool) -> Result<(String, bool)> {
    let mut doc = Doc { latex, out: String::new() };
    doc.para("matdiff demo: backprop through the matrix-product layer Z = W1 W2 W3 X.");
    doc.para("Z sits inside some loss L; backprop hands it the upstream gradient G = dL/dZ,");
    doc.para("so dL = tr(G^T dZ), and every gradient is read off that trace.");

    let declared_program = parse_program(DECLARED)?;
    let declared = derive(&declared_program, &DeriveOptions::default())?;
    doc.section(&format!("1. Every gradient, dL/dX included ({DECLARED})"));
    doc.derivation(&declared);

    doc.section("2. Why dL/dW2 has that form");
    let w2 = explain(&declared).into_iter().filter(|e| e.wrt.to_string() == "W2").collect::<Vec<_>>();
    if latex {
        doc.out.push_str(&to_latex_blocks(&w2));
    } else {
        doc.verbatim(&to_text(&w2));
    }

    doc.section("3. Shape check, every gradient");
    let checks: String = explain(&declared)
        .iter()
        .flat_map(|e| e.shape_check.iter().map(move |c| format!("d/d{}: {c}\n", e.wrt)))
        .collect();
    doc.verbatim(&checks);

    let inferred_program = parse_program(INFERRED)?;
    let inferred = derive(&inferred_program, &DeriveOptions::default())?;
    doc.section(&format!("4. With no declarations ({INFERRED}): the shapes are inferred"));
    doc.derivation(&inferred);
    let shapes: Vec<String> = inferred
        .typing
        .variables()
        .iter()
        .map(|v| format!("{v} : {}", inferred.typing.var_shape(v).expect("typed")))
        .collect();
    doc.para(&format!("   with {}, so W_j : d(j-1) x d(j) and the batch is d4.", shapes.join(", ")));
    let inferred_w2 = explain(&inferred).into_iter().find(|e| e.wrt.to_string() == "W2");
    if let Some(e) = inferred_w2 {
        doc.verbatim(&e.shape_check.iter().map(|c| format!("d/dW2: {c}\n")).collect::<String>());
    }

    let symbolic_program = parse_program(SYMBOLIC)?;
    let symbolic = derive(&symbolic_program, &DeriveOptions::default())?;
    doc.section(&format!("4b. For a chain of any length n ({SYMBOLIC})"));
    doc.derivation(&symbolic);
    let wj = explain(&symbolic).into_iter().filter(|e| e.wrt.to_string() == "W[j]").collect::<Vec<_>>();
    if latex {
        doc.out.push_str(&to_latex_blocks(&wj));
    } else {
        doc.verbatim(&to_text(&wj));
    }

    let tied_program = parse_program(TIED)?;
    let tied = derive(&tied_program, &DeriveOptions::default())?;
    doc.section(&format!("5. Tied parameters ({TIED}): one contribution per occurrence, summed"));
    doc.derivation(&tied);

    let product_program = parse_program(PRODUCT)?;
    let through_product = derived(&product_program, &["W2"], Some("H"))?;
    let collapsed_program = parse_program(COLLAPSED)?;
    let collapsed = derived(&collapsed_program, &["C"], None)?;
    doc.section("6. Why backprop through C = W1 W2 W3 alone is not enough");
    doc.para("Collapse the weights into one matrix C and the layer is Z = C X:");
    doc.derivation(&collapsed);
    doc.para("That is one matrix, dL/dC. Each factor's gradient needs the factors around it:");
    doc.para(&format!("with H = dL/dC as the upstream gradient of C = W1 W2 W3 ({PRODUCT}),"));
    doc.derivation(&through_product);
    doc.para("and H = G X^T gives back dL/dW2 of section 1.");

    doc.section("7. All gradients in O(n) products: the plan");
    doc.para("Evaluated one by one, the n gradients repeat each other's prefix and suffix products:");
    doc.para("O(n^2) products. One plan shares them: a forward sweep S, a backward sweep H, and one");
    doc.para("product per gradient where they meet (found from the formulas above, not assumed).");
    let options = PlanOptions::default();
    doc.verbatim(&render_plan(&declared, &options, PlanOutput::Text)?);
    doc.para("With sizes it prices every way to cut the two sweeps and takes the cheapest. With a");
    doc.para("batch of 65536 against widths of 64, contracting the batch first (G X^T) wins:");
    let wide: HashMap<String, u64> = [("d0", 64), ("d1", 64), ("d2", 64), ("d3", 64), ("d4", 65536)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    let wide = PlanOptions { dims: wide, ..Default::default() };
    doc.verbatim(&render_plan(&inferred, &wide, PlanOutput::Text)?);
    doc.para(&format!("For a chain of any length ({SYMBOLIC}), the same sweeps as recurrences:"));
    doc.verbatim(&render_plan(&symbolic, &options, PlanOutput::Text)?);

    doc.section("8. How the long products condition (a random instance)");
    doc.verbatim(&conditioning(&declared)?);

    let mut ok = true;
    doc.section("9. Numeric check of the plan against central differences (float64)");
    for (label, d) in
        [("declared shapes", &declared), ("inferred shapes, random sizes", &inferred), ("tied", &tied)]
    {
        let report = check(d, &CheckOptions { seed: 2026, ..Default::default() })?;
        ok &= report.ok();
        doc.para(&format!("   {label}:"));
        doc.verbatim(&render_check(&report, false));
    }
    let out = if latex { latex_document(&doc.out, true) } else { doc.out };
    Ok((out, ok))
}

/// Frobenius norms of the prefix products W1⋯Wj and of the suffix products
/// W(j+1)⋯W3 X on one random instance, and of each gradient.
fn conditioning(d: &Derivation) -> Result<String> {
    let instance = Instance::draw(d, &CheckOptions { seed: 7, ..Default::default() })?;
    let names = ["W1", "W2", "W3", "X"];
    let chain = |parts: &[&str]| Expr::product_of(parts.iter().map(|n| Expr::var(n)));
    let norm = |e: Option<Expr>| -> Result<String> {
        Ok(match e {
            Some(e) => format!("{:8.3}", eval(&e, &instance.env, None)?.norm()),
            None => format!("{:>8}", "(I)"),
        })
    };
    let mut out = String::from("  j   |W1..W(j-1)|   |W(j+1)..W3 X|   |dL/dWj|\n");
    for j in 1..=3 {
        let g =
            d.gradients.iter().find(|g| g.wrt.to_string() == names[j - 1]).expect("a gradient per weight");
        let grad = crate::numeric::gradient_value(g, &instance.env)?.norm();
        out.push_str(&format!(
            "  {j}       {}        {}         {grad:8.3}\n",
            norm(chain(&names[..j - 1]))?,
            norm(chain(&names[j..]))?
        ));
    }
    out.push_str("dL/dWj = (W1..W(j-1))^T G (W(j+1)..W3 X)^T is bounded by the product of the two norms\n");
    out.push_str("and |G|: in a deep chain these norms grow or shrink geometrically with the number of\n");
    out.push_str("factors, which is why gradients of deep linear chains explode or vanish.\n");
    Ok(out)
}
