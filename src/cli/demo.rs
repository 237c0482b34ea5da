//! `matdiff demo`: the seed problem end to end. Everything printed is
//! computed by the pipeline; nothing here knows the answers. One
//! computation, two renderings: text for the terminal, and a LaTeX
//! document (math, tables, no terminal output in it).

use std::collections::HashMap;

use super::render::{
    latex_document, plan as render_plan, render_check, render_derivation, shapes_latex, sweep_order,
    PlanOutput, SweepOrder, TEXT_WIDTH,
};
use crate::error::Result;
use crate::explain::{explain, shape_latex, to_latex_align, to_text, Batch, Explanation};
use crate::numeric::{check, eval, CheckOptions, CheckReport, Instance, Outcome};
use crate::plan::{Plan, PlanOptions, SymbolicPlan};
use crate::syntax::{
    index_latex, latex_lines, parse_program, parse_var, to_latex, var_latex, Expr, Index, Program, VarName,
};
use crate::{derive, Derivation, DeriveOptions, Steps};

const DECLARED: &str = "W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; Z = W1*W2*W3*X";
const INFERRED: &str = "Z = W1*W2*W3*X";
const TIED: &str = "W : 4x4; X : 4x2; Z = W*W*X";
const SYMBOLIC: &str = "W[i] : d[i-1] x d[i]; X : d[n] x B; Z = prod(W[i], i=1..n) * X";
const PRODUCT: &str = "W1 : 3x4; W2 : 4x5; W3 : 5x6; C = W1*W2*W3";
const COLLAPSED: &str = "C : 3x6; X : 6x2; Z = C*X";

/// The programs of the demo, parsed.
struct Programs {
    declared: Program,
    inferred: Program,
    tied: Program,
    symbolic: Program,
    product: Program,
    collapsed: Program,
}

impl Programs {
    fn parse() -> Result<Programs> {
        Ok(Programs {
            declared: parse_program(DECLARED)?,
            inferred: parse_program(INFERRED)?,
            tied: parse_program(TIED)?,
            symbolic: parse_program(SYMBOLIC)?,
            product: parse_program(PRODUCT)?,
            collapsed: parse_program(COLLAPSED)?,
        })
    }
}

/// Everything the demo shows, computed once.
struct Demo<'p> {
    declared: Derivation<'p>,
    inferred: Derivation<'p>,
    tied: Derivation<'p>,
    symbolic: Derivation<'p>,
    through_product: Derivation<'p>,
    collapsed: Derivation<'p>,
    /// The plan at the default sizes and with a wide batch.
    options: PlanOptions,
    wide: PlanOptions,
    /// The numeric checks: a label and the report.
    checks: Vec<(&'static str, CheckReport)>,
    conditioning: Vec<Conditioning>,
}

/// One row of the conditioning table: j, the norms of the prefix product
/// W1⋯W(j-1) (`None`: the empty product, the identity), of the suffix
/// W(j+1)⋯W3 X, and of the gradient.
struct Conditioning {
    j: usize,
    prefix: Option<f64>,
    suffix: f64,
    gradient: f64,
}

fn derived<'p>(program: &'p Program, wrt: &[&str], upstream: Option<&str>) -> Result<Derivation<'p>> {
    let wrt = wrt.iter().map(|w| parse_var(w)).collect::<Result<Vec<_>>>()?;
    derive(
        program,
        &DeriveOptions {
            wrt,
            upstream: upstream.map(str::to_string),
            steps: Steps::Record,
            sharing: crate::Sharing::Expanded,
            ..Default::default()
        },
    )
}

impl<'p> Demo<'p> {
    fn compute(p: &'p Programs) -> Result<Demo<'p>> {
        let declared = derive(&p.declared, &DeriveOptions::default())?;
        let inferred = derive(&p.inferred, &DeriveOptions::default())?;
        let tied = derive(&p.tied, &DeriveOptions::default())?;
        let symbolic = derive(&p.symbolic, &DeriveOptions::default())?;
        let through_product = derived(&p.product, &["W2"], Some("H"))?;
        let collapsed = derived(&p.collapsed, &["C"], None)?;
        let wide: HashMap<String, u64> = [("d0", 64), ("d1", 64), ("d2", 64), ("d3", 64), ("d4", 65536)]
            .map(|(k, v)| (k.to_string(), v))
            .into();
        let mut checks = vec![];
        for (label, d) in
            [("declared shapes", &declared), ("inferred shapes, random sizes", &inferred), ("tied", &tied)]
        {
            checks.push((label, check(d, &CheckOptions { seed: 2026, ..Default::default() })?));
        }
        let conditioning = conditioning(&declared)?;
        Ok(Demo {
            declared,
            inferred,
            tied,
            symbolic,
            through_product,
            collapsed,
            options: PlanOptions::default(),
            wide: PlanOptions { dims: wide, ..Default::default() },
            checks,
            conditioning,
        })
    }

    /// Every numeric check passed.
    fn ok(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.ok())
    }

    fn explained(d: &Derivation, wrt: &str) -> Vec<Explanation> {
        explain(d).into_iter().filter(|e| e.wrt.to_string() == wrt).collect()
    }

    /// The demo for a terminal.
    fn text(&self) -> Result<String> {
        let mut out = String::new();
        let section = |out: &mut String, title: &str| out.push_str(&format!("\n== {title}\n\n"));
        let para = |out: &mut String, text: &str| {
            out.push_str(text);
            out.push('\n');
        };
        let block = |out: &mut String, text: &str| out.push_str(&indent(text));
        para(&mut out, "matdiff demo: backprop through the matrix-product layer Z = W1 W2 W3 X.");
        para(&mut out, "Z sits inside some loss L; backprop hands it the upstream gradient G = dL/dZ,");
        para(&mut out, "so dL = tr(G^T dZ), and every gradient is read off that trace.");

        section(&mut out, &format!("1. Every gradient, dL/dX included ({DECLARED})"));
        block(&mut out, &render_derivation(&self.declared));

        section(&mut out, "2. Why dL/dW2 has that form");
        block(&mut out, &to_text(&Self::explained(&self.declared, "W2")));

        section(&mut out, "3. Shape check, every gradient");
        let checks: String = explain(&self.declared)
            .iter()
            .flat_map(|e| e.shape_check.iter().map(move |c| format!("d/d{}: {c}\n", e.wrt)))
            .collect();
        block(&mut out, &checks);

        section(&mut out, &format!("4. With no declarations ({INFERRED}): the shapes are inferred"));
        block(&mut out, &render_derivation(&self.inferred));
        let shapes: Vec<String> = self
            .inferred
            .typing
            .variables()
            .iter()
            .map(|v| format!("{v} : {}", self.inferred.typing.var_shape(v).expect("typed")))
            .collect();
        para(
            &mut out,
            &format!("   with {}, so W_j : d(j-1) x d(j) and the batch is d4.", shapes.join(", ")),
        );
        if let Some(e) = Self::explained(&self.inferred, "W2").first() {
            block(&mut out, &e.shape_check.iter().map(|c| format!("d/dW2: {c}\n")).collect::<String>());
        }

        section(&mut out, &format!("4b. For a chain of any length n ({SYMBOLIC})"));
        block(&mut out, &render_derivation(&self.symbolic));
        block(&mut out, &to_text(&Self::explained(&self.symbolic, "W[j]")));

        section(&mut out, &format!("5. Tied parameters ({TIED}): one contribution per occurrence, summed"));
        block(&mut out, &render_derivation(&self.tied));

        section(&mut out, "6. Why backprop through C = W1 W2 W3 alone is not enough");
        para(&mut out, "Collapse the weights into one matrix C and the layer is Z = C X:");
        block(&mut out, &render_derivation(&self.collapsed));
        para(&mut out, "That is one matrix, dL/dC. Each factor's gradient needs the factors around it:");
        para(&mut out, &format!("with H = dL/dC as the upstream gradient of C = W1 W2 W3 ({PRODUCT}),"));
        block(&mut out, &render_derivation(&self.through_product));
        para(&mut out, "and H = G X^T gives back dL/dW2 of section 1.");

        section(&mut out, "7. All gradients in O(n) products: the plan");
        para(
            &mut out,
            "Evaluated one by one, the n gradients repeat each other's prefix and suffix products:",
        );
        para(
            &mut out,
            "O(n^2) products. One plan shares them: a forward sweep S, a backward sweep H, and one",
        );
        para(&mut out, "product per gradient where they meet (found from the formulas above, not assumed).");
        block(&mut out, &render_plan(&self.declared, &self.options, PlanOutput::Text)?);
        para(&mut out, "With sizes it prices every way to cut the two sweeps and takes the cheapest. With a");
        para(&mut out, "batch of 65536 against widths of 64, contracting the batch first (G X^T) wins:");
        block(&mut out, &render_plan(&self.inferred, &self.wide, PlanOutput::Text)?);
        para(&mut out, &format!("For a chain of any length ({SYMBOLIC}), the same sweeps as recurrences:"));
        block(&mut out, &render_plan(&self.symbolic, &self.options, PlanOutput::Text)?);

        section(&mut out, "8. How the long products condition (a random instance)");
        let mut table = String::from("  j   |W1..W(j-1)|   |W(j+1)..W3 X|   |dL/dWj|\n");
        for c in &self.conditioning {
            let prefix = match c.prefix {
                Some(n) => format!("{n:8.3}"),
                None => format!("{:>8}", "(I)"),
            };
            table.push_str(&format!(
                "  {}       {prefix}        {:8.3}         {:8.3}\n",
                c.j, c.suffix, c.gradient
            ));
        }
        table.push_str(
            "dL/dWj = (W1..W(j-1))^T G (W(j+1)..W3 X)^T is bounded by the product of the two norms\n",
        );
        table.push_str(
            "and |G|: in a deep chain these norms grow or shrink geometrically with the number of\n",
        );
        table.push_str("factors, which is why gradients of deep linear chains explode or vanish.\n");
        block(&mut out, &table);

        section(&mut out, "9. Numeric check of the plan against central differences (float64)");
        for (label, report) in &self.checks {
            para(&mut out, &format!("   {label}:"));
            block(&mut out, &render_check(report, false));
        }
        Ok(out)
    }

    /// The demo as a LaTeX document: prose, display math, booktabs tables.
    fn latex(&self) -> Result<String> {
        let mut out = String::new();
        out.push_str("\\section*{Backpropagation through a product of matrices}\n");
        out.push_str(&format!(
            "A layer computes ${}$ inside some loss $\\mathcal{{L}}$. Backpropagation hands it the upstream gradient $G = \\partial \\mathcal{{L}} / \\partial Z$, so that $\\mathrm{{d}}\\mathcal{{L}} = \\operatorname{{tr}}(G^{{\\top}} \\mathrm{{d}}Z)$, and every gradient below is read off that trace. Everything in this document was computed by matdiff.\n",
            program_latex(&self.declared)
        ));

        out.push_str("\n\\section{Every gradient}\n");
        out.push_str(&format!(
            "With {}, the gradients, $\\partial \\mathcal{{L}} / \\partial X$ included, are\n",
            shapes_latex(&self.declared)
        ));
        out.push_str(&gradients_latex(&self.declared));

        out.push_str("\n\\section{Why the gradient with respect to $W_2$ has that form}\n");
        out.push_str("Each line follows from the one before by the identity above it; $\\dots$ stands for the terms of $\\mathrm{d}\\mathcal{L}$ without $\\mathrm{d}W_2$.\n");
        for e in Self::explained(&self.declared, "W2") {
            out.push_str(&to_latex_align(&e, TEXT_WIDTH));
        }

        out.push_str("\n\\section{Shape check of every gradient}\n");
        out.push_str("Each factor's shape stands below it; neighbours contract the dimension they share.\n");
        out.push_str(&shape_table(&explain(&self.declared)));

        out.push_str("\n\\section{Shapes inferred}\n");
        out.push_str(&format!(
            "With no declarations, ${}$ has its shapes inferred: {}, so $W_j \\in \\mathbb{{R}}^{{d_{{j-1}} \\times d_{{j}}}}$ and the batch is $d_{{4}}$. The gradients are\n",
            program_latex(&self.inferred),
            shapes_latex(&self.inferred)
        ));
        out.push_str(&gradients_latex(&self.inferred));
        out.push_str(&shape_table(&Self::explained(&self.inferred, "W2")));

        out.push_str("\n\\section{A chain of any length}\n");
        out.push_str(&format!(
            "For ${}$ with {}, the gradients are\n",
            program_latex(&self.symbolic),
            shapes_latex(&self.symbolic)
        ));
        out.push_str(&gradients_latex(&self.symbolic));
        out.push_str(
            "and the derivation of the gradient with respect to a member $W_j$ splits the product at $j$:\n",
        );
        for e in Self::explained(&self.symbolic, "W[j]") {
            out.push_str(&to_latex_align(&e, TEXT_WIDTH));
        }

        out.push_str("\n\\section{Tied parameters}\n");
        out.push_str(&format!(
            "In ${}$ with {}, $W$ occurs twice: one contribution per occurrence, summed.\n",
            program_latex(&self.tied),
            shapes_latex(&self.tied)
        ));
        out.push_str(&gradients_latex(&self.tied));

        out.push_str("\n\\section{Why the gradient of the collapsed product is not enough}\n");
        out.push_str(&format!(
            "Collapse the weights into one matrix $C = W_1 W_2 W_3$ and the layer is ${}$, with {}:\n",
            program_latex(&self.collapsed),
            shapes_latex(&self.collapsed)
        ));
        out.push_str(&gradients_latex(&self.collapsed));
        out.push_str(&format!(
            "That is one matrix. Each factor's gradient needs the factors around it: with $H = \\partial \\mathcal{{L}} / \\partial C$ as the upstream gradient of ${}$,\n",
            program_latex(&self.through_product)
        ));
        out.push_str(&gradients_latex(&self.through_product));
        out.push_str("and $H = G X^{\\top}$ gives back the gradient with respect to $W_2$ of section~1.\n");

        out.push_str("\n\\section{All gradients in $O(n)$ products: the plan}\n");
        out.push_str("Evaluated one by one, the $n$ gradients repeat each other's prefix and suffix products: $O(n^2)$ products. One plan shares them: a forward sweep $S$, a backward sweep $H$, and one product per gradient where they meet, found from the formulas above, not assumed.\n");
        out.push_str(&plan_latex(&self.declared, &crate::plan::compile(&self.declared, &self.options)?));
        out.push_str("With sizes, the plan prices every way to cut the two sweeps and takes the cheapest. With a batch of 65\\,536 against widths of 64, contracting the batch first ($G X^{\\top}$) wins:\n");
        out.push_str(&plan_latex(&self.inferred, &crate::plan::compile(&self.inferred, &self.wide)?));
        out.push_str("For a chain of any length, the same sweeps are recurrences:\n");
        out.push_str(&symbolic_plan_latex(&crate::plan::compile_symbolic(&self.symbolic)?));

        out.push_str("\n\\section{How the long products condition}\n");
        out.push_str("On one random instance, the Frobenius norms of the prefix and suffix products around each weight, and of its gradient:\n");
        out.push_str("\\begin{center}\n\\begin{tabular}{crrr}\n\\toprule\n");
        out.push_str("$j$ & $\\lVert W_1 \\cdots W_{j-1} \\rVert_F$ & $\\lVert W_{j+1} \\cdots W_3 X \\rVert_F$ & $\\lVert \\partial \\mathcal{L} / \\partial W_j \\rVert_F$ \\\\\n\\midrule\n");
        for c in &self.conditioning {
            let prefix = match c.prefix {
                Some(n) => format!("{n:.3}"),
                None => "$I$".to_string(),
            };
            out.push_str(&format!("{} & {prefix} & {:.3} & {:.3} \\\\\n", c.j, c.suffix, c.gradient));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n\\end{center}\n");
        out.push_str("The gradient $\\partial \\mathcal{L} / \\partial W_j = (W_1 \\cdots W_{j-1})^{\\top} G \\, (W_{j+1} \\cdots W_3 X)^{\\top}$ is bounded by the product of the two norms and $\\lVert G \\rVert_F$: in a deep chain these norms grow or shrink geometrically with the number of factors, which is why gradients of deep linear chains explode or vanish.\n");

        out.push_str("\n\\section{Numeric check against central differences}\n");
        out.push_str("Each gradient, computed by the plan in double precision, is compared with Ridders' extrapolated central differences of the expression on random instances.\n");
        for (label, report) in &self.checks {
            out.push_str(&check_latex(label, report));
        }
        Ok(latex_document(&out, true))
    }
}

/// The demo, and whether every numeric check passed.
pub fn run(latex: bool) -> Result<(String, bool)> {
    let programs = Programs::parse()?;
    let demo = Demo::compute(&programs)?;
    let out = if latex { demo.latex()? } else { demo.text()? };
    Ok((out, demo.ok()))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| if l.is_empty() { "\n".to_string() } else { format!("   {l}\n") }).collect()
}

/// `Z = W_{1} W_{2} W_{3} X`: the program's name and expression.
fn program_latex(d: &Derivation) -> String {
    let program = d.typing.program;
    let name = program.name.as_deref().unwrap_or("Z");
    format!("{} = {}", to_latex(&Expr::var(name)), to_latex(&program.expr))
}

/// The gradients as one `align*`, each with its shape (and the range of
/// a family member's index), broken to fit the page.
fn gradients_latex(d: &Derivation) -> String {
    let mut rows = vec![];
    for g in &d.gradients {
        let lhs = format!("\\frac{{\\partial \\mathcal{{L}}}}{{\\partial {}}}", var_latex(&g.wrt));
        let mut tail = format!(" \\in \\mathbb{{R}}^{{{}}}", shape_latex(&g.shape));
        for c in &g.differential.conditions {
            tail.push_str(&format!(
                ", \\quad {} \\le {} \\le {}",
                index_latex(&c.lo),
                index_latex(&c.at),
                index_latex(&c.hi)
            ));
        }
        let lines = latex_lines(&format!("{}{tail}", to_latex(&g.expr)), TEXT_WIDTH - 12.0);
        for (i, l) in lines.iter().enumerate() {
            rows.push(if i == 0 { format!("{lhs} &= {l}") } else { format!("&\\qquad {l}") });
        }
    }
    format!("\\begin{{align*}}\n{}\n\\end{{align*}}\n", rows.join(" \\\\\n"))
}

/// The shape checks of some explanations as a table: the gradient, its
/// factors with their shapes below them, the dimensions contracted.
fn shape_table(explanations: &[Explanation]) -> String {
    let mut out = String::from(
        // Room below each row for the shapes under the factors.
        "\\begin{center}\n\\renewcommand{\\arraystretch}{1.6}\n\\begin{tabular}{lll}\n\\toprule\nGradient & Factors and their shapes & Contracted \\\\\n\\midrule\n",
    );
    for e in explanations {
        for c in &e.shape_check {
            let contracted: Vec<String> = c
                .contracted
                .iter()
                .map(|(d, b)| {
                    let d = crate::explain::dim_latex(d);
                    if *b == Batch::Batch {
                        format!("${d}$ (batch)")
                    } else {
                        format!("${d}$")
                    }
                })
                .collect();
            out.push_str(&format!(
                "$\\partial \\mathcal{{L}} / \\partial {}$ & ${}$ & {} \\\\[0.5ex]\n",
                var_latex(&e.wrt),
                c.latex(),
                contracted.join(", ")
            ));
        }
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n\\end{center}\n");
    out
}

/// A plan as a table of its steps, with the sweeps it chose and its cost.
fn plan_latex(d: &Derivation, plan: &Plan) -> String {
    let mut out = String::new();
    for s in &plan.sweeps {
        let cycle: Vec<String> = s.cycle.iter().map(|o| to_latex(&plan.operand_expr(*o))).collect();
        let (a, b) = (&cycle[s.cut], &cycle[(s.cut + 1) % cycle.len()]);
        let kind = match sweep_order(d, plan, s) {
            Some(SweepOrder::Backprop) => {
                " This is standard backpropagation: $S$ runs forward, $H$ backward."
            }
            Some(SweepOrder::BatchFirst) => {
                " The batch comes first: $S$ starts from the upstream gradient, $H$ multiplies the weights."
            }
            None => "",
        };
        out.push_str(&format!(
            "The plan runs two sweeps around the cycle ${}$, meeting between ${a}$ and ${b}$.{kind}\n",
            cycle.join(" \\, ")
        ));
    }
    out.push_str("\\begin{center}\n\\begin{tabular}{lllr}\n\\toprule\nStep & Operation & Shape & Multiply-adds \\\\\n\\midrule\n");
    for (k, step) in plan.steps.iter().enumerate() {
        let result = plan
            .outputs
            .iter()
            .find(|o| o.named && o.operand.value == crate::plan::Value::Step(k))
            .map(|o| match &o.wrt {
                Some(v) => format!(" = \\partial \\mathcal{{L}} / \\partial {}", var_latex(v)),
                None => String::new(),
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "${}{result}$ & ${}$ & ${}$ & {} \\\\\n",
            to_latex(&Expr::var(&step.out)),
            to_latex(&plan.step_expr(k)),
            shape_latex(&step.shape),
            madds_latex(&step.madds)
        ));
    }
    for o in plan.outputs.iter().filter(|o| !o.named) {
        let label = match &o.wrt {
            Some(v) => format!("\\partial \\mathcal{{L}} / \\partial {}", var_latex(v)),
            None => "Z".to_string(),
        };
        out.push_str(&format!(
            "${label}$ & ${}$ & ${}$ & \\\\\n",
            to_latex(&plan.operand_expr(o.operand)),
            shape_latex(&o.shape)
        ));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n\\end{center}\n");
    let separate = match &plan.separate {
        Some(c) => madds_latex(c),
        None => "more".to_string(),
    };
    out.push_str(&format!(
        "In all {} multiply-adds in {} matrix products, of which the forward value alone takes {}; the value and each gradient computed separately would take {separate}, in {} matrix products.\n",
        madds_latex(&plan.total),
        plan.products(),
        madds_latex(&plan.forward),
        plan.separate_products
    ));
    out
}

/// A count of multiply-adds for a table or a sentence: a number with thin
/// spaces between thousands, or a polynomial of the sizes in math.
fn madds_latex(c: &crate::plan::Cost) -> String {
    match c.as_number() {
        Some(n) => {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, ch) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push_str("\\,");
                }
                out.push(ch);
            }
            out
        }
        None => format!("${}$", c.latex(6)),
    }
}

/// A symbolic plan: per member gradient, its recurrences as a table.
fn symbolic_plan_latex(plan: &SymbolicPlan) -> String {
    let mut out = String::new();
    for r in &plan.gradients {
        out.push_str("\\begin{center}\n\\begin{tabular}{llllr}\n\\toprule\nDefines & Formula & For & Shape & Multiply-adds \\\\\n\\midrule\n");
        for l in &r.lines {
            let defines = match &l.defines {
                Some(e) => to_latex(e),
                None => format!("\\partial \\mathcal{{L}} / \\partial {}", var_latex(&r.wrt)),
            };
            let from = match &l.base {
                Some((v, e)) => format!(", from ${} = {}$", to_latex(v), to_latex(e)),
                None => String::new(),
            };
            let j = index_latex(&Index::symbol(&r.index));
            out.push_str(&format!(
                "${defines}$ & ${}$ & ${j} = {}, \\dots, {}${from} & ${}$ & ${}$ \\\\\n",
                to_latex(&l.formula),
                index_latex(&l.bounds.0),
                index_latex(&l.bounds.1),
                shape_latex(&l.shape),
                l.madds.latex(6)
            ));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n\\end{center}\n");
        out.push_str(&format!(
            "In all $\\sum_{{{}={}}}^{{{}}} {}$ multiply-adds: a constant number of products per member.\n",
            index_latex(&Index::symbol(&r.index)),
            index_latex(&r.lo),
            index_latex(&r.hi),
            r.per_index.latex(6)
        ));
    }
    out
}

/// A numeric check as a sentence (sizes, seed, domains, instances) and a
/// table of the gradients' errors and verdicts.
fn check_latex(label: &str, r: &CheckReport) -> String {
    let sizes: Vec<String> =
        r.sizes.iter().map(|(k, v)| format!("${} = {v}$", var_latex(&VarName::plain(k)))).collect();
    let sizes = if sizes.is_empty() { "all dimensions fixed".to_string() } else { sizes.join(", ") };
    let domains: Vec<String> =
        r.domains.iter().map(|(v, d)| format!("${}$ {}", var_latex(v), d.name())).collect();
    let domains = if domains.is_empty() {
        "every variable of either sign".to_string()
    } else {
        format!("{}, the others of either sign", domains.join(", "))
    };
    let mut out = format!(
        "\\paragraph{{{}{}.}} Sizes: {sizes}; seed {}; {domains}; {} random instances.\n",
        label[..1].to_uppercase(),
        &label[1..],
        r.seed,
        r.instances
    );
    out.push_str("\\begin{center}\n\\begin{tabular}{lrl}\n\\toprule\nGradient & Largest relative error & Verdict \\\\\n\\midrule\n");
    for c in &r.results {
        let err = match c.max_rel_err {
            Some(e) => format!("${}$", scientific_latex(e)),
            None => "not measured".to_string(),
        };
        let verdict = match c.outcome {
            Outcome::Agree => "agrees",
            Outcome::Differ => "\\textbf{differs}",
            Outcome::Undecided => "undecided",
        };
        out.push_str(&format!(
            "$\\partial \\mathcal{{L}} / \\partial {}$ & {err} & {verdict} \\\\\n",
            var_latex(&c.wrt)
        ));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n\\end{center}\n");
    out
}

/// `4.4 \times 10^{-15}`.
fn scientific_latex(x: f64) -> String {
    let text = format!("{x:.1e}");
    match text.split_once('e') {
        Some((m, e)) => format!("{m} \\times 10^{{{e}}}"),
        None => text,
    }
}

/// Frobenius norms of the prefix products W1⋯Wj and of the suffix products
/// W(j+1)⋯W3 X on one random instance, and of each gradient.
fn conditioning(d: &Derivation) -> Result<Vec<Conditioning>> {
    let instance = Instance::draw(d, &CheckOptions { seed: 7, ..Default::default() })?;
    let names = ["W1", "W2", "W3", "X"];
    let chain = |parts: &[&str]| Expr::product_of(parts.iter().map(|n| Expr::var(n)));
    let norm = |e: Option<Expr>| -> Result<Option<f64>> {
        Ok(match e {
            Some(e) => Some(eval(&e, &instance.env, None)?.norm()),
            None => None,
        })
    };
    let mut rows = vec![];
    for j in 1..=3 {
        let g =
            d.gradients.iter().find(|g| g.wrt.to_string() == names[j - 1]).expect("a gradient per weight");
        let gradient = crate::numeric::gradient_value(g, &instance.env)?.norm();
        let suffix = norm(chain(&names[j..]))?.expect("the suffix has X");
        rows.push(Conditioning { j, prefix: norm(chain(&names[..j - 1]))?, suffix, gradient });
    }
    Ok(rows)
}
