//! The plan as a `torch.autograd.Function`, with a keyword wrapper and an
//! `nn.Module`.

use super::{camel, function_name, header, tuple, Code, Lib};
use crate::error::Result;
use crate::plan::Plan;
use crate::syntax::VarName;

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
    let function = function_name(name, "plan")?;
    let mut class = camel(&function);
    if class == function || class.is_empty() {
        class.push_str("Function");
    }
    let module = format!("{class}Module");
    let code = Code::new(plan, Lib::Torch, upstream, &[&function, &class, &module]);
    let (forward, saved) = code.split();
    let up = code.upstream;
    let args = code.args();
    let arg_names: Vec<&str> = args.iter().map(|&k| code.inputs[k].as_str()).collect();
    let saved_names: Vec<&str> = saved.iter().map(|&k| code.steps[k].as_str()).collect();
    let all_saved: Vec<&str> = arg_names.iter().chain(&saved_names).copied().collect();

    let mut out = header(plan, title);
    out.push_str("import torch\n\n\n");
    out.push_str(&format!("class {class}(torch.autograd.Function):\n"));
    out.push_str(&format!(
        "    \"\"\"{class}.apply({}) is the value; its backward is the plan's gradient steps.\"\"\"\n\n",
        arg_names.join(", ")
    ));
    let renamings = code.renamings("    ");
    if !renamings.is_empty() {
        out.push_str(&renamings);
        out.push('\n');
    }
    out.push_str("    @staticmethod\n");
    out.push_str(&format!("    def forward(ctx, {}):\n", arg_names.join(", ")));
    out.push_str(&code.lines((0..plan.steps.len()).filter(|&k| forward[k]), "        ")?);
    out.push_str(&format!("        ctx.save_for_backward({})\n", all_saved.join(", ")));
    let value = code.output(0);
    if plan.outputs[0].shape.is_scalar() {
        out.push_str(&format!("        return {value}.reshape(())\n\n"));
    } else {
        out.push_str(&format!("        return {value}\n\n"));
    }
    out.push_str("    @staticmethod\n");
    let grad_out = match up {
        Some(k) => code.inputs[k].clone(),
        None => "grad_output".to_string(),
    };
    out.push_str(&format!("    def backward(ctx, {grad_out}):\n"));
    if !all_saved.is_empty() {
        out.push_str(&format!("        {} = ctx.saved_tensors\n", tuple(&all_saved)));
    }
    // Products saved in `forward` were made without autograd watching, so
    // a backward that is itself differentiated (create_graph, a gradient
    // penalty, a Hessian-vector product) recomputes them from the inputs.
    let recompute = code.needed_by(&saved);
    if !recompute.is_empty() {
        out.push_str("        if torch.is_grad_enabled():\n");
        out.push_str(
            "            # Differentiated again: recompute what forward saved, so autograd sees it.\n",
        );
        out.push_str(&code.lines(recompute, "            ")?);
    }
    out.push_str(&code.lines((0..plan.steps.len()).filter(|&k| !forward[k]), "        ")?);
    let grads: Vec<String> = code
        .gradients()
        .into_iter()
        .map(|g| match g {
            None => "None".to_string(),
            Some(g) if !code.layer => format!("{grad_out} * {}", code.output(g)),
            Some(g) => code.output(g),
        })
        .collect();
    out.push_str(&format!(
        "        return {}\n",
        tuple(&grads.iter().map(String::as_str).collect::<Vec<_>>())
    ));

    // The keyword wrapper and the module.
    let keywords = if arg_names.is_empty() { String::new() } else { format!("*, {}", arg_names.join(", ")) };
    out.push_str(&format!("\n\ndef {function}({keywords}):\n"));
    out.push_str(&format!("    \"\"\"The value of {title}, differentiable twice through {class}.\n\n"));
    for &k in &args {
        let i = &plan.inputs[k];
        out.push_str(&format!("    {} : {} x {}\n", code.inputs[k], i.shape.rows, i.shape.cols));
    }
    out.push_str("    \"\"\"\n");
    out.push_str(&format!("    return {class}.apply({})\n", arg_names.join(", ")));
    out.push_str(&format!("\n\nclass {module}(torch.nn.Module):\n"));
    out.push_str(&format!(
        "    \"\"\"{function} as a module: the tensors it is built with (by variable name) are its\n    \
         parameters, and forward takes the other variables by name.\"\"\"\n\n"
    ));
    out.push_str("    def __init__(self, **parameters):\n");
    out.push_str("        super().__init__()\n");
    out.push_str("        for name, value in parameters.items():\n");
    out.push_str("            self.register_parameter(name, torch.nn.Parameter(torch.as_tensor(value)))\n\n");
    out.push_str("    def forward(self, **inputs):\n");
    out.push_str(&format!(
        "        return {function}(**dict(self.named_parameters(recurse=False)), **inputs)\n"
    ));
    Ok(out)
}
