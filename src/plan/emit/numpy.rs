//! The plan as a NumPy function with keyword-only named parameters.

use super::{function_name, header, key, Code, Lib};
use crate::error::Result;
use crate::plan::Plan;
use crate::shape::Dim;

/// The helpers every emitted NumPy module defines: the check of an
/// argument's shape (naming the variable and the dimension) and the sum of a
/// gradient over the batch axes its variable does not have.
pub(super) const HELPERS: &str = r#"def _matdiff_argument(name, array, dtype, dims, sizes):
    """`array` as `dtype`, its last two axes checked against `dims` (a number, a symbol bound by the arguments before, or None: not checked)."""
    array = np.asarray(array, dtype=dtype)
    if array.ndim == 0 and dims == (1, 1):
        return array.reshape(1, 1)
    if array.ndim < 2:
        what = "a matrix" if None in dims else f"a {dims[0]} x {dims[1]} matrix"
        raise ValueError(f"{name} must be {what} (after any batch axes), not shape {array.shape}")
    for axis, what, dim in ((-2, "rows", dims[0]), (-1, "columns", dims[1])):
        n = array.shape[axis]
        if dim is None:
            continue
        if isinstance(dim, int):
            if n != dim:
                raise ValueError(f"{name} has {n} {what}, but must have {dim}")
        elif sizes.setdefault(dim, (n, name))[0] != n:
            raise ValueError(f"{name} has {n} {what}, but {dim} is {sizes[dim][0]} (from {sizes[dim][1]})")
    return array


def _matdiff_sum_to(grad, shape, batch):
    """A gradient in its variable's shape (or a Hessian in the variable's batch axes and its
    own last two): that of the sum over the batch of the values, so summed over the batch
    axes the variable does not have (a weight shared by the batch)."""
    if not batch and grad.shape == shape:
        return grad
    if batch:
        grad = np.broadcast_to(grad, batch + grad.shape[-2:])
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    axes = tuple(-1 - k for k, (g, w) in enumerate(zip(grad.shape[::-1], shape[::-1])) if w == 1 and g != 1)
    grad = grad.sum(axis=axes, keepdims=True) if axes else grad
    return np.array(np.broadcast_to(grad, shape))
"#;

/// A dimension as the shape check reads it: a number, or a symbol's name.
pub(super) fn dim(d: &Dim) -> String {
    match d {
        Dim::Const(n) => n.to_string(),
        d => format!("{:?}", d.to_string()),
    }
}

/// The module's head after its header: the import and the helpers, then
/// `more` (a looped plan's helpers).
pub(super) fn module_head(more: &str) -> String {
    let more = if more.is_empty() { String::new() } else { format!("{more}\n\n") };
    format!("import numpy as np\n\n\n{HELPERS}\n\n{more}")
}

/// The function's signature, its docstring (`summary`, then `shapes`, a
/// line per parameter) and the renamings.
pub(super) fn signature(
    code: &Code,
    function: &str,
    params: &[String],
    summary: &str,
    shapes: &str,
) -> String {
    format!(
        "def {function}(*, {}):\n    \"\"\"{summary}\n\n{shapes}\n    \
         Arrays may have leading batch axes, which broadcast; a gradient is summed over\n    \
         the batch axes its variable lacks. The result has the arguments' common dtype.\n    \"\"\"\n{}",
        params.join(", "),
        code.renamings("    ")
    )
}

/// The arguments' common dtype (`arrays`, a tuple of them) and the sizes
/// the shape checks bind.
pub(super) fn dtype(arrays: &str) -> String {
    // Python floats and integer arrays as float64; float16 as float32, which
    // np.linalg takes.
    format!("    dtype = np.result_type(*map(np.asarray, ({arrays})), np.float32)\n    sizes = {{}}\n")
}

/// The check of input `k`'s shape, which also makes it an array of `dtype`.
pub(super) fn argument(code: &Code, k: usize) -> String {
    let i = &code.plan.inputs[k];
    format!(
        "    {p} = _matdiff_argument({}, {p}, dtype, ({}, {}), sizes)\n",
        key(&i.var),
        dim(&i.shape.rows),
        dim(&i.shape.cols),
        p = code.inputs[k],
    )
}

/// The batch axes of the arguments together (none without a batch).
pub(super) fn batch(arrays: &str) -> String {
    format!("    batch = np.broadcast_shapes(*(a.shape[:-2] for a in ({arrays})))\n")
}

/// The value returned: a 1x1 value as a scalar of the dtype (`[()]`), or
/// one per batch element.
pub(super) fn value(code: &Code) -> String {
    let value = code.output(0);
    if code.plan.outputs[0].shape.is_scalar() {
        format!("{value}[..., 0, 0][()]")
    } else {
        value
    }
}

/// The entry of output `k`, a gradient, in the dict returned, summed over
/// the batch axes its variable lacks.
pub(super) fn gradient(code: &Code, k: usize) -> String {
    let plan = code.plan;
    let o = &plan.outputs[k];
    let v = o.wrt.as_ref().expect("gradients name their variable");
    let i = plan.inputs.iter().position(|i| i.var == *v).expect("a gradient's variable is an input");
    // A Hessian matrix (`plan --order 2 --full`) has its own shape, not its variable's.
    let shape = if o.shape == plan.inputs[i].shape {
        format!("{}.shape", code.inputs[i])
    } else {
        format!("{}.shape[:-2] + {}.shape[-2:]", code.inputs[i], code.output(k))
    };
    format!("    grads[{}] = _matdiff_sum_to({}, {shape}, batch)\n", key(v), code.output(k))
}

/// The plan as a NumPy function (`value_and_grads`, or `--name`'s) with
/// keyword-only parameters named after the variables, returning the value
/// (a scalar when it is 1×1) and a dict of gradients by variable name.
/// Shapes are checked at entry; the arrays keep their common floating
/// dtype; leading batch axes are broadcast, and a variable's gradient is
/// summed over the batch axes it does not have.
///
/// ```
/// let p = matdiff::syntax::parse_program("W1*W2*X").unwrap();
/// let d = matdiff::derive(&p, &Default::default()).unwrap();
/// let plan = matdiff::plan::compile(&d, &Default::default()).unwrap();
/// let code = matdiff::plan::numpy(&plan, "W1 * W2 * X", None).unwrap();
/// assert!(code.contains("def value_and_grads(*, W1, W2, X, G):"));
/// assert!(code.contains("S1 = W2 @ X"));
/// ```
pub fn numpy(plan: &Plan, title: &str, name: Option<&str>) -> Result<String> {
    let function = function_name(name, "value_and_grads")?;
    let code = Code::new(plan, Lib::Numpy, None, &[&function]);
    let mut out = header(plan, title);
    out.push_str(&module_head(""));
    let summary = format!("The value of {title} and the gradient of every variable, as {{name: array}}.");
    out.push_str(&signature(&code, &function, &code.inputs, &summary, &code.shapes_doc("    ", true)));
    let params: Vec<&str> = code.inputs.iter().map(String::as_str).collect();
    let arrays = super::tuple(&params);
    out.push_str(&dtype(&arrays));
    for k in 0..plan.inputs.len() {
        out.push_str(&argument(&code, k));
    }
    out.push_str(&batch(&arrays));
    let steps: Vec<usize> = (0..plan.steps.len()).collect();
    out.push_str(&code.lines_freeing(&steps, "    ")?);
    out.push_str("    grads = {}\n");
    for k in 1..plan.outputs.len() {
        out.push_str(&gradient(&code, k));
    }
    out.push_str(&format!("    return {}, grads\n", value(&code)));
    Ok(out)
}
