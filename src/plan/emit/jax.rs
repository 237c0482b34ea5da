//! The plan as a `jax.custom_vjp` function; its rules, which a looped
//! plan's code shares (`loops.rs`).

use super::{function_name, header, tuple, Code, Lib};
use crate::error::Result;
use crate::plan::Plan;
use crate::syntax::VarName;

/// The names of a `custom_vjp` function and its rules: `plan` (or
/// another), `plan_fwd`, `plan_bwd` for the function `plan`.
pub(super) struct Rules {
    pub vjp: String,
    pub fwd: String,
    pub bwd: String,
}

impl Rules {
    pub fn new(function: &str, vjp: &str) -> Rules {
        Rules { vjp: vjp.to_string(), fwd: format!("{function}_fwd"), bwd: format!("{function}_bwd") }
    }
}

/// The `custom_vjp` function (its `doc`, the docstring and what
/// precedes the steps, after its signature), its forward rule `fwd`
/// returning the value and the `residuals`, and the head of its backward
/// rule `bwd`, which unpacks them.
pub(super) fn rules(
    code: &Code,
    r: &Rules,
    params: &str,
    doc: &str,
    forward_lines: &str,
    residuals: &[&str],
) -> String {
    let Rules { vjp, fwd, bwd } = r;
    let value = code.returned_value();
    let mut out =
        format!("@jax.custom_vjp\ndef {vjp}({params}):\n{doc}{forward_lines}    return {value}\n\n\n");
    out.push_str(&format!(
        "def {fwd}({params}):\n{forward_lines}    return {value}, ({})\n\n\n",
        tuple(residuals)
    ));
    out.push_str(&format!("def {bwd}(residuals, {}):\n", code.cotangent()));
    if !residuals.is_empty() {
        out.push_str(&format!("    {} = residuals\n", tuple(residuals)));
    }
    out
}

/// The end of the backward rule: it returns `grads` (custom_vjp wants a
/// tuple, one cotangent per argument), and the rules are bound.
pub(super) fn rules_end(r: &Rules, grads: &[String]) -> String {
    let Rules { vjp, fwd, bwd } = r;
    let grads: Vec<&str> = grads.iter().map(String::as_str).collect();
    format!("    return ({})\n\n\n{vjp}.defvjp({fwd}, {bwd})\n", tuple(&grads))
}

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
    let r = Rules::new(&function, &function);
    let code = Code::new(plan, Lib::Jax, upstream, &[&function, &r.fwd, &r.bwd]);
    let (forward, saved) = code.split();
    let args = code.args();
    let residuals = code.residuals(&saved);
    let arg_names = &residuals[..args.len()];
    let doc = format!(
        "    \"\"\"The value of {title}; its derivative is the plan's gradient steps ({}).\n\n{}    \"\"\"\n{}",
        r.bwd,
        code.shapes_doc("    ", false),
        code.renamings("    ")
    );

    let mut out = header(plan, title);
    out.push_str("import jax\nimport jax.numpy as jnp\n\n\n");
    let forward_lines = code.part(&forward, true, "    ")?;
    out.push_str(&rules(&code, &r, &arg_names.join(", "), &doc, &forward_lines, &residuals));
    out.push_str(&code.part(&forward, false, "    ")?);
    let cotangent = code.cotangent();
    let grads: Vec<String> = args.iter().map(|&k| code.returned_gradient(k, &cotangent)).collect();
    out.push_str(&rules_end(&r, &grads));
    Ok(out)
}
