//! The plan as a `torch.autograd.Function`, with a keyword wrapper and an
//! `nn.Module`; the parts of them a looped plan's code shares (`loops.rs`).

use super::{camel, function_name, header, tuple, Code, Lib};
use crate::error::Result;
use crate::plan::Plan;
use crate::syntax::VarName;

/// The names the PyTorch code defines, from `--name`: the keyword function
/// (`plan`, `my_layer`), the Function (`Plan`, `MyLayer`) and the module
/// (`PlanModule`, `MyLayerModule`).
pub(super) fn names(name: Option<&str>) -> Result<(String, String, String)> {
    let function = function_name(name, "plan")?;
    let mut class = camel(&function);
    if class == function || class.is_empty() {
        class.push_str("Function");
    }
    let module = format!("{class}Module");
    Ok((function, class, module))
}

/// The Function's head down to `forward`'s signature: the class, its
/// docstring `doc`, the renamings, and `def forward(params)`.
pub(super) fn function_head(code: &Code, class: &str, doc: &str, params: &str) -> String {
    let mut out = format!("class {class}(torch.autograd.Function):\n    \"\"\"{doc}\"\"\"\n\n");
    let renamings = code.renamings("    ");
    if !renamings.is_empty() {
        out.push_str(&renamings);
        out.push('\n');
    }
    out.push_str(&format!("    @staticmethod\n    def forward({params}):\n"));
    out
}

/// The end of `forward` (its value returned) and the head of `backward`,
/// whose argument is the cotangent.
pub(super) fn backward_head(code: &Code) -> String {
    format!(
        "        return {}\n\n    @staticmethod\n    def backward(ctx, {}):\n",
        code.returned_value(),
        code.cotangent()
    )
}

/// Opens the backward's block that runs only where it is differentiated
/// again. Products saved in `forward` were made without autograd watching,
/// so a backward that is itself differentiated (create_graph, a gradient
/// penalty, a Hessian-vector product) recomputes them from the inputs.
pub(super) const RECOMPUTE: &str = "        if torch.is_grad_enabled():\n            \
    # Differentiated again: recompute what forward saved, so autograd sees it.\n";

/// The keyword function's head: its signature and docstring (`shapes`, a
/// line per parameter).
pub(super) fn keyword_head(
    function: &str,
    params: &[&str],
    title: &str,
    class: &str,
    shapes: &str,
) -> String {
    let keywords = if params.is_empty() { String::new() } else { format!("*, {}", params.join(", ")) };
    format!(
        "\n\ndef {function}({keywords}):\n    \"\"\"The value of {title}, differentiable twice through {class}.\n\n{shapes}    \"\"\"\n"
    )
}

/// The module's head down to its `__init__`'s first line, with its
/// docstring `doc`.
pub(super) fn module_head(module: &str, doc: &str) -> String {
    format!(
        "\n\nclass {module}(torch.nn.Module):\n    \"\"\"{doc}\"\"\"\n\n    \
         def __init__(self, **parameters):\n        super().__init__()\n"
    )
}

/// The plan as PyTorch: a `torch.autograd.Function` (`Plan`; `--name
/// my_layer` gives `MyLayer`) whose `forward` runs the steps the value needs
/// and whose `backward` runs the rest, with the upstream gradient (a layer's
/// `G`, or the loss's scalar grad_output) as its input; a function taking the
/// variables by keyword (`plan`, or `my_layer`); and an `nn.Module`
/// (`PlanModule`) whose parameters are the tensors it is built with.
///
/// The backward is differentiable: differentiated again, it recomputes from
/// the inputs what `forward` saved, so second derivatives are exact. New
/// tensors take the dtype and device of the first input.
pub fn pytorch(plan: &Plan, title: &str, upstream: Option<&VarName>, name: Option<&str>) -> Result<String> {
    let (function, class, module) = names(name)?;
    let code = Code::new(plan, Lib::Torch, upstream, &[&function, &class, &module]);
    let (forward, saved) = code.split();
    let args = code.args();
    let all_saved = code.residuals(&saved);
    let arg_names = &all_saved[..args.len()];

    let mut out = header(plan, title);
    out.push_str("import torch\n\n\n");
    let doc = format!(
        "{class}.apply({}) is the value; its backward is the plan's gradient steps.",
        arg_names.join(", ")
    );
    let params: Vec<&str> = ["ctx"].into_iter().chain(arg_names.iter().copied()).collect();
    out.push_str(&function_head(&code, &class, &doc, &params.join(", ")));
    out.push_str(&code.part(&forward, true, "        ")?);
    out.push_str(&format!("        ctx.save_for_backward({})\n", all_saved.join(", ")));
    out.push_str(&backward_head(&code));
    if !all_saved.is_empty() {
        out.push_str(&format!("        {} = ctx.saved_tensors\n", tuple(&all_saved)));
    }
    let recompute = code.needed_by(&saved);
    if !recompute.is_empty() {
        out.push_str(RECOMPUTE);
        out.push_str(&code.lines(recompute, "            ")?);
    }
    // The backward frees what it computes as it goes; what forward saved,
    // ctx holds until the backward returns.
    out.push_str(&code.part_freeing(&forward, false, "        ")?);
    let cotangent = code.cotangent();
    let grads: Vec<String> = args.iter().map(|&k| code.returned_gradient(k, &cotangent)).collect();
    out.push_str(&format!(
        "        return {}\n",
        tuple(&grads.iter().map(String::as_str).collect::<Vec<_>>())
    ));

    // The keyword wrapper and the module.
    out.push_str(&keyword_head(&function, arg_names, title, &class, &code.shapes_doc("    ", false)));
    out.push_str(&format!("    return {class}.apply({})\n", arg_names.join(", ")));
    out.push_str(&module_head(
        &module,
        &format!(
            "{function} as a module: the tensors it is built with (by variable name) are its\n    \
             parameters, and forward takes the other variables by name."
        ),
    ));
    out.push_str("        for name, value in parameters.items():\n");
    out.push_str("            self.register_parameter(name, torch.nn.Parameter(torch.as_tensor(value)))\n\n");
    out.push_str("    def forward(self, **inputs):\n");
    out.push_str(&format!(
        "        return {function}(**dict(self.named_parameters(recurse=False)), **inputs)\n"
    ));
    Ok(out)
}
