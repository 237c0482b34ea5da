//! The plan as a `jax.custom_vjp` function.

use super::{function_name, header, tuple, Code, Lib};
use crate::error::Result;
use crate::plan::Plan;
use crate::syntax::VarName;

/// The plan as JAX: a `jax.custom_vjp` function (`plan`, or `--name`'s)
/// whose forward rule runs the steps the value needs and saves what the
/// backward reads, and whose backward rule runs the plan's gradient steps
/// from the cotangent (a layer's upstream `G`, or the loss's scalar).
///
/// Both rules are jax.numpy operations, so the function works under
/// `jax.jit` and `jax.vmap`, and `jax.grad` differentiates the backward
/// again: second derivatives are exact. A variable outside `--wrt` gets a
/// zero cotangent (it is held constant, as by `jax.lax.stop_gradient`).
///
/// ```
/// let p = matdiff::syntax::parse_program("W1*W2*X").unwrap();
/// let d = matdiff::derive(&p, &Default::default()).unwrap();
/// let plan = matdiff::plan::compile(&d, &Default::default()).unwrap();
/// let g = matdiff::syntax::parse_var("G").unwrap();
/// let code = matdiff::plan::jax(&plan, "W1 * W2 * X", Some(&g), None).unwrap();
/// assert!(code.contains("@jax.custom_vjp\ndef plan(W1, W2, X):"));
/// assert!(code.contains("plan.defvjp(plan_fwd, plan_bwd)"));
/// ```
pub fn jax(plan: &Plan, title: &str, upstream: Option<&VarName>, name: Option<&str>) -> Result<String> {
    let function = function_name(name, "plan")?;
    let (fwd, bwd) = (format!("{function}_fwd"), format!("{function}_bwd"));
    let code = Code::new(plan, Lib::Jax, upstream, &[&function, &fwd, &bwd]);
    let (forward, saved) = code.split();
    let up = code.upstream;
    let args = code.args();
    let arg_names: Vec<&str> = args.iter().map(|&k| code.inputs[k].as_str()).collect();
    let saved_names: Vec<&str> = saved.iter().map(|&k| code.steps[k].as_str()).collect();
    let residuals: Vec<&str> = arg_names.iter().chain(&saved_names).copied().collect();
    let params = arg_names.join(", ");
    let forward_lines = code.lines((0..plan.steps.len()).filter(|&k| forward[k]), "    ")?;
    let value = code.output(0);
    let value = if plan.outputs[0].shape.is_scalar() { format!("{value}.reshape(())") } else { value };

    let mut out = header(plan, title);
    out.push_str("import jax\nimport jax.numpy as jnp\n\n\n");
    out.push_str(&format!("@jax.custom_vjp\ndef {function}({params}):\n"));
    out.push_str(&format!(
        "    \"\"\"The value of {title}; its derivative is the plan's gradient steps ({bwd}).\n\n"
    ));
    for &k in &args {
        let i = &plan.inputs[k];
        out.push_str(&format!("    {} : {} x {}\n", code.inputs[k], i.shape.rows, i.shape.cols));
    }
    out.push_str("    \"\"\"\n");
    out.push_str(&code.renamings("    "));
    out.push_str(&forward_lines);
    out.push_str(&format!("    return {value}\n\n\n"));

    out.push_str(&format!("def {fwd}({params}):\n"));
    out.push_str(&forward_lines);
    out.push_str(&format!("    return {value}, ({})\n\n\n", tuple(&residuals)));

    let cotangent = match up {
        Some(k) => code.inputs[k].clone(),
        None => "grad_output".to_string(),
    };
    out.push_str(&format!("def {bwd}(residuals, {cotangent}):\n"));
    if !residuals.is_empty() {
        out.push_str(&format!("    {} = residuals\n", tuple(&residuals)));
    }
    out.push_str(&code.lines((0..plan.steps.len()).filter(|&k| !forward[k]), "    ")?);
    let grads: Vec<String> = code
        .gradients()
        .into_iter()
        .map(|g| match g {
            None => "None".to_string(),
            Some(g) if !code.layer => format!("{cotangent} * {}", code.output(g)),
            Some(g) => code.output(g),
        })
        .collect();
    // custom_vjp wants a tuple, one cotangent per argument.
    let grads: Vec<&str> = grads.iter().map(String::as_str).collect();
    out.push_str(&format!("    return ({})\n\n\n", tuple(&grads)));
    out.push_str(&format!("{function}.defvjp({fwd}, {bwd})\n"));
    Ok(out)
}
