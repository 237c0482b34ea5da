//! A [`LoopPlan`] as Python: the numeric plan's steps, with each product of
//! symbolic length computed by a forward loop of prefix products over the
//! list of its members, and their gradients by a backward loop that reads
//! the saved prefixes (NumPy, PyTorch, JAX alike).

use std::collections::HashSet;

use super::{fresh, function_name, jax, numpy, torch, tuple, Code, Lib};
use crate::error::Result;
use crate::plan::looped::{Chain, LoopPlan};
use crate::shape::Dim;
use crate::syntax::VarName;

/// Helpers every looped module defines (plain Python on `.shape`): the list
/// of a family's members, checked to be one, and the members checked to
/// chain, the product's ends bound to its dimensions.
const LOOP_HELPERS: &str = r#"def _matdiff_members(name, members, first, last, count):
    """The members name[first], ..., name[last] as a list: at least one, or `count` when the length is fixed."""
    if not isinstance(members, (list, tuple)):
        raise TypeError(f"{name} must be a list of the matrices {name}[{first}], ..., {name}[{last}], not {type(members).__name__}")
    if len(members) < 1 or (count is not None and len(members) != count):
        want = "at least one matrix" if count is None else f"{count} matrices"
        raise ValueError(f"{name} must hold {want} ({name}[{first}], ..., {name}[{last}]), not {len(members)}")
    return list(members)


def _matdiff_chain(name, members, first, transposed, ends, sizes):
    """Checks that each member is a matrix (after any batch axes) and chains with the next (in the
    product, the factors are the members, or their transposes); binds the product's rows and columns
    (`ends`: a number, or a symbol bound in `sizes`) when `sizes` is given."""
    for k, w in enumerate(members):
        if len(w.shape) < 2:
            raise ValueError(f"{name}[{first + k}] must be a matrix (after any batch axes), not shape {tuple(w.shape)}")
    rows, cols = ("columns", "rows") if transposed else ("rows", "columns")
    row, col = (-1, -2) if transposed else (-2, -1)
    for k in range(len(members) - 1):
        a, b = members[k].shape[col], members[k + 1].shape[row]
        if a != b:
            raise ValueError(f"{name}[{first + k + 1}] has {b} {rows}, but must have {a}, the {cols} of {name}[{first + k}]: the members chain")
    if sizes is None:
        return
    last = first + len(members) - 1
    for (w, axis, what, k), dim in zip(((members[0], row, rows, first), (members[-1], col, cols, last)), ends):
        n, who = w.shape[axis], f"{name}[{k}]"
        if isinstance(dim, int):
            if n != dim:
                raise ValueError(f"{who} has {n} {what}, but must have {dim}")
        elif sizes.setdefault(dim, (n, who))[0] != n:
            raise ValueError(f"{who} has {n} {what}, but {dim} is {sizes[dim][0]} (from {sizes[dim][1]})")
"#;

/// The Python names of one chain.
struct Names<'c> {
    chain: &'c Chain,
    /// The product's input number in the plan.
    input: usize,
    /// The output that is the product's gradient.
    output: Option<usize>,
    family: String,
    prefix: String,
    grads: String,
    back: String,
}

/// The code of a loop plan: the plan's code, and each chain's names.
struct Looped<'p> {
    code: Code<'p>,
    chains: Vec<Names<'p>>,
    lp: &'p LoopPlan,
}

impl<'p> Looped<'p> {
    fn new(lp: &'p LoopPlan, lib: Lib, upstream: Option<&VarName>, emitted: &[&str]) -> Looped<'p> {
        let plan = &lp.plan;
        let mut taken: HashSet<String> = emitted.iter().map(|s| s.to_string()).collect();
        taken.extend(["k", "counts", "members", "saved"].map(String::from));
        let mut names = vec![];
        for chain in &lp.chains {
            let family = fresh(chain.family.clone(), &mut taken);
            let prefix = fresh(format!("{family}_prefix"), &mut taken);
            let grads = fresh(format!("{family}_grads"), &mut taken);
            let back = fresh(format!("{family}_back"), &mut taken);
            let input = plan.inputs.iter().position(|i| i.var == chain.var).expect("the product is an input");
            let output = plan.outputs.iter().position(|o| o.wrt.as_ref() == Some(&chain.var));
            names.push(Names { chain, input, output, family, prefix, grads, back });
        }
        let emitted: Vec<&str> = taken.iter().map(String::as_str).collect();
        let code = Code::new(plan, lib, upstream, &emitted);
        Looped { code, chains: names, lp }
    }

    fn chain_of(&self, input: usize) -> Option<&Names<'p>> {
        self.chains.iter().find(|c| c.input == input)
    }

    /// The function's parameters: the plan's arguments, each product's
    /// variable replaced by its family's list.
    fn params(&self) -> Vec<String> {
        self.code
            .args()
            .into_iter()
            .map(|k| match self.chain_of(k) {
                Some(c) => c.family.clone(),
                None => self.code.inputs[k].clone(),
            })
            .collect()
    }

    /// The arrays among the parameters, the lists spread: `X, G, *W`.
    fn spread(&self, with_upstream: bool) -> String {
        let mut plain: Vec<String> = vec![];
        let mut lists: Vec<String> = vec![];
        let ks: Vec<usize> =
            if with_upstream { self.code.inputs_first().collect() } else { self.code.args() };
        for k in ks {
            match self.chain_of(k) {
                Some(c) => lists.push(format!("*{}", c.family)),
                None => plain.push(self.code.inputs[k].clone()),
            }
        }
        plain.extend(lists);
        let refs: Vec<&str> = plain.iter().map(String::as_str).collect();
        tuple(&refs)
    }

    /// `W[1], ..., W[n]`.
    fn members_text(c: &Names) -> String {
        format!("{f}[{}], ..., {f}[{}]", c.chain.first, c.chain.last, f = c.chain.family)
    }

    /// The check of each family's list (and, with `sizes`, of its
    /// members' shapes and the product's ends).
    fn checks(&self, indent: &str, numpy: bool) -> String {
        let mut out = String::new();
        for c in &self.chains {
            let count = c.chain.count.map_or("None".to_string(), |n| n.to_string());
            out.push_str(&format!(
                "{indent}{f} = _matdiff_members({:?}, {f}, {}, {:?}, {count})\n",
                c.chain.family,
                c.chain.first,
                c.chain.last.to_string(),
                f = c.family
            ));
            if !numpy {
                out.push_str(&format!(
                    "{indent}_matdiff_chain({:?}, {}, {}, {}, None, None)\n",
                    c.chain.family,
                    c.family,
                    c.chain.first,
                    python_bool(c.chain.transposed)
                ));
            }
        }
        out
    }

    /// NumPy: each member as `dtype`, checked, and the chain checked.
    fn numpy_member_checks(&self, indent: &str) -> String {
        let mut out = String::new();
        for c in &self.chains {
            let dim = |d: &Option<Dim>| d.as_ref().map_or("None".to_string(), super::numpy::dim);
            let shape = &self.lp.plan.inputs[c.input].shape;
            out.push_str(&format!(
                "{indent}{f} = [_matdiff_argument(f\"{}[{{{} + k}}]\", w, dtype, ({}, {}), sizes) for k, w in enumerate({f})]\n",
                c.chain.family,
                c.chain.first,
                dim(&c.chain.member.0),
                dim(&c.chain.member.1),
                f = c.family
            ));
            out.push_str(&format!(
                "{indent}_matdiff_chain({:?}, {}, {}, {}, ({}, {}), sizes)\n",
                c.chain.family,
                c.family,
                c.chain.first,
                python_bool(c.chain.transposed),
                super::numpy::dim(&shape.rows),
                super::numpy::dim(&shape.cols),
            ));
        }
        out
    }

    /// The forward loop of each chain: its prefix products, the last the
    /// product (which [`Looped::products`] reads off them).
    fn prefix_loops(&self, indent: &str) -> String {
        let mut out = String::new();
        for c in &self.chains {
            let t = if c.chain.transposed { ".mT" } else { "" };
            let (f, p) = (&c.family, &c.prefix);
            out.push_str(&format!(
                "{indent}# The product by prefix products: {p}[k] is that of the first k + 1 factors.\n"
            ));
            out.push_str(&format!("{indent}{p} = [{f}[0]{t}]\n"));
            out.push_str(&format!("{indent}for k in range(1, len({f})):\n"));
            out.push_str(&format!("{indent}    {p}.append({p}[-1] @ {f}[k]{t})\n"));
        }
        out
    }

    /// The forward loops and the products: the products formed.
    fn forward_loops(&self, indent: &str) -> String {
        self.prefix_loops(indent) + &self.products(indent)
    }

    /// The product's variable read off the saved prefixes.
    fn products(&self, indent: &str) -> String {
        self.chains
            .iter()
            .map(|c| format!("{indent}{} = {}[-1]\n", self.code.inputs[c.input], c.prefix))
            .collect()
    }

    /// The backward loop of each chain whose gradients are asked for:
    /// `scale` multiplies the product's gradient (a loss's cotangent).
    fn backward_loops(&self, indent: &str, scale: Option<&str>) -> String {
        let mut out = String::new();
        for c in &self.chains {
            let Some(o) = c.output else { continue };
            let (f, p, g, b) = (&c.family, &c.prefix, &c.grads, &c.back);
            let dp = self.code.output(o);
            let dp = match scale {
                Some(s) => format!("{s} * {dp}"),
                None => dp,
            };
            out.push_str(&format!(
                "{indent}# Each member's gradient, the last first: {b} is d/d{} times the transpose of the\n\
                 {indent}# product of the factors after k, and {p}[k - 1] that of those before.\n",
                self.code.inputs[c.input]
            ));
            out.push_str(&format!("{indent}{b} = {dp}\n"));
            out.push_str(&format!("{indent}{g} = [None] * len({f})\n"));
            out.push_str(&format!("{indent}for k in range(len({f}) - 1, 0, -1):\n"));
            if c.chain.transposed {
                out.push_str(&format!("{indent}    {g}[k] = {b}.mT @ {p}[k - 1]\n"));
                out.push_str(&format!("{indent}    {b} = {b} @ {f}[k]\n"));
                out.push_str(&format!("{indent}{g}[0] = {b}.mT\n"));
            } else {
                out.push_str(&format!("{indent}    {g}[k] = {p}[k - 1].mT @ {b}\n"));
                out.push_str(&format!("{indent}    {b} = {b} @ {f}[k].mT\n"));
                out.push_str(&format!("{indent}{g}[0] = {b}\n"));
            }
        }
        out
    }

    /// The header: the loops, then the plan's count.
    fn header(&self, title: &str) -> String {
        // One product per member after the first forward, two backward.
        let families: Vec<String> = self
            .chains
            .iter()
            .map(|c| {
                let per = if c.output.is_some() { 3 } else { 1 };
                format!("{}, {per} matrix product(s) per member after the first", Self::members_text(c))
            })
            .collect();
        format!(
            "# Generated by matdiff: the plan for {title}\n\
             # loops over {}\n\
             # and {} matrix products, {} multiply-adds\n",
            families.join("; "),
            self.lp.plan.products(),
            self.lp.plan.total
        )
    }

    /// Each parameter with its shape, for a docstring: a family's list, or
    /// as [`Code::shapes_doc`] gives it.
    fn shapes_doc(&self, indent: &str, with_upstream: bool) -> String {
        let mut out = String::new();
        let ks: Vec<usize> =
            if with_upstream { self.code.inputs_first().collect() } else { self.code.args() };
        for k in ks {
            let Some(c) = self.chain_of(k) else {
                out.push_str(&self.code.shape_doc(k, indent));
                continue;
            };
            let shape = &self.lp.plan.inputs[k].shape;
            let what = if c.chain.transposed { ", the factors their transposes" } else { "" };
            out.push_str(&format!(
                "{indent}{} : a list of the matrices {}{what}; the product {} x {}\n",
                c.family,
                Self::members_text(c),
                shape.rows,
                shape.cols
            ));
        }
        out
    }
}

fn python_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A [`LoopPlan`] as a NumPy function: [`numpy`](super::numpy)'s, each
/// family a keyword parameter taking the list of its members, whose
/// gradients come back as a list.
pub fn numpy_loops(lp: &LoopPlan, title: &str, name: Option<&str>) -> Result<String> {
    let function = function_name(name, "value_and_grads")?;
    let l = Looped::new(lp, Lib::Numpy, None, &[&function]);
    let code = &l.code;
    let plan = &lp.plan;
    let mut out = l.header(title);
    out.push_str(&numpy::module_head(LOOP_HELPERS));
    let summary = format!(
        "The value of {title} and the gradient of every variable, as {{name: array}}, a\n    \
         family's as the list of its members' gradients."
    );
    out.push_str(&numpy::signature(code, &function, &l.params(), &summary, &l.shapes_doc("    ", true)));
    out.push_str(&l.checks("    ", true));
    let arrays = l.spread(true);
    out.push_str(&numpy::dtype(&arrays));
    out.push_str(&l.numpy_member_checks("    "));
    for k in (0..plan.inputs.len()).filter(|&k| l.chain_of(k).is_none()) {
        out.push_str(&numpy::argument(code, k));
    }
    out.push_str(&numpy::batch(&arrays));
    out.push_str(&l.forward_loops("    "));
    out.push_str(&code.lines(0..plan.steps.len(), "    ")?);
    out.push_str(&l.backward_loops("    ", None));
    out.push_str("    grads = {}\n");
    for (k, o) in plan.outputs.iter().enumerate().skip(1) {
        let family = o.wrt.as_ref().and_then(|v| l.chains.iter().find(|c| c.chain.var == *v));
        match family {
            Some(c) => out.push_str(&format!(
                "    grads[{:?}] = [_matdiff_sum_to(g, w.shape, batch) for g, w in zip({}, {})]\n",
                c.chain.family, c.grads, c.family
            )),
            None => out.push_str(&numpy::gradient(code, k)),
        }
    }
    out.push_str(&format!("    return {}, grads\n", numpy::value(code)));
    Ok(out)
}

/// The gradient each argument of the differentiable function gets back,
/// as text: an expression, or `*list` for a family.
fn returned(l: &Looped, cotangent: &str, lib: Lib) -> Vec<String> {
    let code = &l.code;
    code.args()
        .into_iter()
        .map(|k| match l.chain_of(k) {
            Some(c) => match (c.output, lib) {
                (Some(_), Lib::Jax) => format!("tuple({})", c.grads),
                (Some(_), _) => format!("*{}", c.grads),
                (None, Lib::Jax) => format!("tuple(jnp.zeros_like(w) for w in {})", c.family),
                (None, _) => format!("*[None] * len({})", c.family),
            },
            None => code.returned_gradient(k, cotangent),
        })
        .collect()
}

/// A [`LoopPlan`] as PyTorch: [`pytorch`](super::pytorch)'s Function,
/// keyword function and module, each family a list of tensors. The
/// Function takes the number of members of each family, then the other
/// arguments, then the members: `Plan.apply((len(W),), X, *W)`. Its
/// backward recomputes the prefix products from the members when it is
/// differentiated itself, so second derivatives are exact.
pub fn pytorch_loops(lp: &LoopPlan, title: &str, name: Option<&str>) -> Result<String> {
    let (function, class, module) = torch::names(name)?;
    let l = Looped::new(lp, Lib::Torch, lp.upstream.as_ref(), &[&function, &class, &module]);
    let code = &l.code;
    let (forward, saved) = code.split();
    let plain: Vec<usize> = code.args().into_iter().filter(|&k| l.chain_of(k).is_none()).collect();
    let plain_names: Vec<&str> = plain.iter().map(|&k| code.inputs[k].as_str()).collect();
    let saved_names: Vec<&str> = saved.iter().map(|&k| code.steps[k].as_str()).collect();
    let mut forward_params = vec!["ctx", "counts"];
    forward_params.extend(&plain_names);
    forward_params.push("*members");

    let mut out = l.header(title);
    out.push_str("import torch\n\n\n");
    out.push_str(LOOP_HELPERS);
    out.push_str("\n\n");
    let families: Vec<&str> = l.chains.iter().map(|c| c.family.as_str()).collect();
    let doc = format!(
        "{class}.apply(counts, {}*members) is the value: counts the number of members of\n    \
         {}, the members after the other arguments; its backward is the plan's gradient steps.",
        plain_names.iter().map(|n| format!("{n}, ")).collect::<String>(),
        families.join(", ")
    );
    out.push_str(&torch::function_head(code, &class, &doc, &forward_params.join(", ")));
    let mut offset = "0".to_string();
    for (n, c) in l.chains.iter().enumerate() {
        let end = if offset == "0" { format!("counts[{n}]") } else { format!("{offset} + counts[{n}]") };
        out.push_str(&format!("        {} = members[{offset}:{end}]\n", c.family));
        offset = end;
    }
    out.push_str(&l.forward_loops("        "));
    out.push_str(&code.part(&forward, true, "        ")?);
    out.push_str("        ctx.counts = counts\n");
    let mut all_saved: Vec<String> = plain_names.iter().map(|s| s.to_string()).collect();
    all_saved.extend(l.chains.iter().map(|c| format!("*{}", c.family)));
    all_saved.extend(l.chains.iter().map(|c| format!("*{}", c.prefix)));
    all_saved.extend(saved_names.iter().map(|s| s.to_string()));
    out.push_str(&format!("        ctx.save_for_backward({})\n", all_saved.join(", ")));
    out.push_str(&torch::backward_head(code));
    out.push_str("        saved = iter(ctx.saved_tensors)\n");
    for n in &plain_names {
        out.push_str(&format!("        {n} = next(saved)\n"));
    }
    for list in [|c: &Names| c.family.clone(), |c: &Names| c.prefix.clone()] {
        for (n, c) in l.chains.iter().enumerate() {
            out.push_str(&format!("        {} = [next(saved) for k in range(ctx.counts[{n}])]\n", list(c)));
        }
    }
    for n in &saved_names {
        out.push_str(&format!("        {n} = next(saved)\n"));
    }
    // The prefixes are recomputed, the products read off them (saved or
    // recomputed) once, and then the saved steps recomputed from those.
    out.push_str(torch::RECOMPUTE);
    out.push_str(&l.prefix_loops("            "));
    out.push_str(&l.products("        "));
    let steps = code.lines(code.needed_by(&saved), "            ")?;
    if !steps.is_empty() {
        out.push_str("        if torch.is_grad_enabled():\n            # And the steps forward saved, from the products.\n");
        out.push_str(&steps);
    }
    out.push_str(&code.part(&forward, false, "        ")?);
    let cotangent = code.cotangent();
    out.push_str(&l.backward_loops("        ", (!code.layer).then_some(cotangent.as_str())));
    // In the order of apply's arguments: the others, then the members.
    let mut grads = vec!["None".to_string()];
    let each: Vec<(usize, String)> =
        code.args().into_iter().zip(returned(&l, &cotangent, Lib::Torch)).collect();
    grads.extend(each.iter().filter(|(k, _)| l.chain_of(*k).is_none()).map(|(_, g)| g.clone()));
    for c in &l.chains {
        grads.extend(each.iter().filter(|(k, _)| *k == c.input).map(|(_, g)| g.clone()));
    }
    out.push_str(&format!("        return {}\n", grads.join(", ")));

    // The keyword wrapper and the module.
    let params = l.params();
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    out.push_str(&torch::keyword_head(&function, &params, title, &class, &l.shapes_doc("    ", false)));
    out.push_str(&l.checks("    ", false));
    let counts: Vec<String> = l.chains.iter().map(|c| format!("len({})", c.family)).collect();
    let counts: Vec<&str> = counts.iter().map(String::as_str).collect();
    let mut apply = vec![format!("({})", tuple(&counts))];
    apply.extend(plain_names.iter().map(|s| s.to_string()));
    apply.extend(l.chains.iter().map(|c| format!("*{}", c.family)));
    out.push_str(&format!("    return {class}.apply({})\n", apply.join(", ")));
    out.push_str(&torch::module_head(
        &module,
        &format!(
            "{function} as a module: the tensors it is built with (by variable name; a family\n    \
             as a list) are its parameters, and forward takes the other variables by name."
        ),
    ));
    out.push_str("        self._matdiff_names = list(parameters)\n");
    out.push_str("        for name, value in parameters.items():\n");
    out.push_str("            if isinstance(value, (list, tuple)):\n");
    out.push_str(
        "                self.add_module(name, torch.nn.ParameterList(torch.nn.Parameter(torch.as_tensor(v)) for v in value))\n",
    );
    out.push_str("            else:\n");
    out.push_str(
        "                self.register_parameter(name, torch.nn.Parameter(torch.as_tensor(value)))\n\n",
    );
    out.push_str("    def forward(self, **inputs):\n");
    out.push_str("        own = {name: getattr(self, name) for name in self._matdiff_names}\n");
    out.push_str(
        "        own = {name: list(v) if isinstance(v, torch.nn.ParameterList) else v for name, v in own.items()}\n",
    );
    out.push_str(&format!("        return {function}(**own, **inputs)\n"));
    Ok(out)
}

/// A [`LoopPlan`] as JAX: a function taking each family as a list (checked
/// to chain), which calls a `jax.custom_vjp` function (`<name>_vjp`) with
/// the lists as tuples; its forward rule saves the prefix products, its
/// backward rule runs the plan's gradient steps and the backward loops.
pub fn jax_loops(lp: &LoopPlan, title: &str, name: Option<&str>) -> Result<String> {
    let function = function_name(name, "plan")?;
    let r = jax::Rules::new(&function, &format!("{function}_vjp"));
    let l = Looped::new(lp, Lib::Jax, lp.upstream.as_ref(), &[&function, &r.vjp, &r.fwd, &r.bwd]);
    let code = &l.code;
    let (forward, saved) = code.split();
    let params = l.params().join(", ");
    let forward_lines = l.forward_loops("    ") + &code.part(&forward, true, "    ")?;
    let mut residuals: Vec<String> = l.params();
    residuals.extend(l.chains.iter().map(|c| c.prefix.clone()));
    residuals.extend(saved.iter().map(|&k| code.steps[k].clone()));
    let residuals: Vec<&str> = residuals.iter().map(String::as_str).collect();

    let mut out = l.header(title);
    out.push_str("import jax\nimport jax.numpy as jnp\n\n\n");
    out.push_str(LOOP_HELPERS);
    out.push_str("\n\n");
    out.push_str(&format!("def {function}({params}):\n"));
    out.push_str(&format!(
        "    \"\"\"The value of {title}; its derivative is the plan's gradient steps ({}).\n\n",
        r.bwd
    ));
    out.push_str(&l.shapes_doc("    ", false));
    out.push_str("    \"\"\"\n");
    out.push_str(&code.renamings("    "));
    out.push_str(&l.checks("    ", false));
    let call: Vec<String> = code
        .args()
        .into_iter()
        .map(|k| match l.chain_of(k) {
            Some(c) => format!("tuple({})", c.family),
            None => code.inputs[k].clone(),
        })
        .collect();
    out.push_str(&format!("    return {}({})\n\n\n", r.vjp, call.join(", ")));
    out.push_str(&jax::rules(code, &r, &params, "", &forward_lines, &residuals));
    out.push_str(&l.products("    "));
    out.push_str(&code.part(&forward, false, "    ")?);
    let cotangent = code.cotangent();
    out.push_str(&l.backward_loops("    ", (!code.layer).then_some(cotangent.as_str())));
    out.push_str(&jax::rules_end(&r, &returned(&l, &cotangent, Lib::Jax)));
    Ok(out)
}
