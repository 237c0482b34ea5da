//! A plan as Python: a NumPy function, or a `torch.autograd.Function`
//! whose backward is the plan's gradient steps.

use std::collections::HashSet;

use super::{Op, Operand, Plan, Value};
use crate::error::{Error, ErrorKind, Result};
use crate::shape::Dim;
use crate::syntax::{format_number, Func, VarName};

/// Python's keywords and soft keywords: a variable named `lambda` cannot be
/// a Python name at all.
const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "case", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is",
    "lambda", "match", "nonlocal", "not", "or", "pass", "raise", "return", "try", "type", "while", "with",
    "yield",
];

/// Python's builtins (3.13). Generated code calls some (`float` in every
/// scalar loss, `staticmethod`), and a variable shadowing one would break
/// it; all are reserved, so that no future use of one can be shadowed.
const PYTHON_BUILTINS: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "BaseExceptionGroup",
    "BlockingIOError",
    "BrokenPipeError",
    "BufferError",
    "BytesWarning",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "DeprecationWarning",
    "EOFError",
    "Ellipsis",
    "EncodingWarning",
    "EnvironmentError",
    "Exception",
    "ExceptionGroup",
    "False",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "FutureWarning",
    "GeneratorExit",
    "IOError",
    "ImportError",
    "ImportWarning",
    "IndentationError",
    "IndexError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyError",
    "KeyboardInterrupt",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "None",
    "NotADirectoryError",
    "NotImplemented",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PendingDeprecationWarning",
    "PermissionError",
    "ProcessLookupError",
    "PythonFinalizationError",
    "RecursionError",
    "ReferenceError",
    "ResourceWarning",
    "RuntimeError",
    "RuntimeWarning",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SyntaxWarning",
    "SystemError",
    "SystemExit",
    "TabError",
    "TimeoutError",
    "True",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "UnicodeTranslateError",
    "UnicodeWarning",
    "UserWarning",
    "ValueError",
    "Warning",
    "ZeroDivisionError",
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "copyright",
    "credits",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "exit",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "license",
    "list",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "quit",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
];

/// The names the generated code binds or calls itself: modules, the
/// function and class, their parameters (`ctx`, and `grad_output`, the
/// upstream gradient of a scalar loss's backward) and locals.
const GENERATED: &[&str] = &[
    "np",
    "numpy",
    "torch",
    "arrays",
    "grads",
    "ctx",
    "grad_output",
    "Plan",
    "value_and_grads",
    "self",
    "forward",
    "backward",
    "apply",
];

/// Whether a name is one the emitted Python cannot give a variable (or a
/// step): then the variable is renamed in the code (`float` is `float_`), and
/// keeps its own name in the dict keys and messages.
fn reserved(name: &str) -> bool {
    PYTHON_KEYWORDS.contains(&name) || PYTHON_BUILTINS.contains(&name) || GENERATED.contains(&name)
}

/// Which library the code calls.
#[derive(Clone, Copy, PartialEq)]
enum Lib {
    Numpy,
    Torch,
}

struct Code<'p> {
    plan: &'p Plan,
    lib: Lib,
    /// A Python name per input and per step.
    inputs: Vec<String>,
    steps: Vec<String>,
    /// The upstream gradient: an input `forward` does not have.
    upstream: Option<usize>,
}

impl<'p> Code<'p> {
    fn new(plan: &'p Plan, lib: Lib, upstream: Option<&VarName>) -> Code<'p> {
        let upstream = upstream.and_then(|u| plan.inputs.iter().position(|i| i.var == *u));
        // In order, inputs then steps: a name that is reserved or taken gets
        // `_` until it is neither (`float` is `float_`, and a variable
        // `float_` met after it `float__`), so the renaming is deterministic.
        let mut taken: HashSet<String> = HashSet::new();
        let mut name = |base: String| {
            let mut n = base;
            while reserved(&n) || taken.contains(&n) {
                n.push('_');
            }
            taken.insert(n.clone());
            n
        };
        let inputs = plan.inputs.iter().map(|i| name(super::identifier(&i.var))).collect();
        let steps = plan.steps.iter().map(|s| name(s.out.clone())).collect();
        Code { plan, lib, inputs, steps, upstream }
    }

    /// Comment lines naming the inputs renamed in the code (`float` is
    /// `float_`), and how a name that is not a Python identifier (a keyword,
    /// a member `W[1]`) is passed by name; none when there are none.
    fn renamings(&self, indent: &str, by_name: Option<&str>) -> String {
        let renamed: Vec<String> = self
            .plan
            .inputs
            .iter()
            .zip(&self.inputs)
            .filter(|(i, python)| super::identifier(&i.var) != **python)
            .map(|(i, python)| format!("{} is {python}", i.var))
            .collect();
        let mut out = String::new();
        if !renamed.is_empty() {
            out.push_str(&format!(
                "{indent}# Renamed here, as Python or this code reserves the name: {}\n",
                renamed.join(", ")
            ));
        }
        let unusable = self.plan.inputs.iter().find(|i| {
            let name = i.var.to_string();
            i.var.index.is_some() || PYTHON_KEYWORDS.contains(&name.as_str())
        });
        if let (Some(f), Some(i)) = (by_name, unusable) {
            out.push_str(&format!(
                "{indent}# `{}` is no Python keyword argument: pass it as {f}(**{{{}: ...}})\n",
                i.var,
                key(&i.var)
            ));
        }
        out
    }

    /// Input numbers, the upstream gradient last.
    fn inputs_first(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.inputs.len()).filter(|k| Some(*k) != self.upstream).chain(self.upstream)
    }

    fn module(&self) -> &'static str {
        match self.lib {
            Lib::Numpy => "np",
            Lib::Torch => "torch",
        }
    }

    /// An array that is like every other: dtype and device of the first input.
    fn like(&self) -> String {
        match self.lib {
            Lib::Numpy => String::new(),
            Lib::Torch => {
                let first = self.inputs_first().next().map(|k| self.inputs[k].as_str()).unwrap_or("None");
                format!(", dtype={first}.dtype, device={first}.device")
            }
        }
    }

    fn operand(&self, o: Operand) -> String {
        let base = match o.value {
            Value::Input(k) => self.inputs[k].clone(),
            Value::Step(k) => self.steps[k].clone(),
            Value::Num(x) => format!("{}.full((1, 1), {}{})", self.module(), float(x), self.like()),
        };
        match (o.transposed, self.lib) {
            (false, _) => base,
            (true, Lib::Numpy) => format!("{base}.T"),
            // `.T` on a tensor reverses every axis and is deprecated beyond 2-D.
            (true, Lib::Torch) => format!("{base}.mT"),
        }
    }

    /// A dimension as Python: a number, or read off an input's shape.
    fn dim(&self, d: &Dim) -> Result<String> {
        if let Dim::Const(n) = d {
            return Ok(n.to_string());
        }
        for k in self.inputs_first() {
            let input = &self.plan.inputs[k];
            if input.shape.rows == *d {
                return Ok(format!("{}.shape[0]", self.inputs[k]));
            }
            if input.shape.cols == *d {
                return Ok(format!("{}.shape[1]", self.inputs[k]));
            }
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("the plan needs the size `{d}`, which no input's shape gives"),
        )
        .hint(crate::Hint::GiveSize(format!("{d}=8"))))
    }

    fn step(&self, k: usize) -> Result<String> {
        let s = &self.plan.steps[k];
        let m = self.module();
        let o = |x: &Operand| self.operand(*x);
        let scalar = |call: String| format!("{call}.reshape(1, 1)");
        let rhs = match &s.op {
            Op::MatMul(a, b) => format!("{} @ {}", o(a), o(b)),
            Op::Scale(a, b) | Op::Hadamard(a, b) => format!("{} * {}", o(a), o(b)),
            Op::Add(a, b) => format!("{} + {}", o(a), o(b)),
            Op::Sub(a, b) => format!("{} - {}", o(a), o(b)),
            Op::Neg(a) => format!("-{}", o(a)),
            Op::HadamardDiv(a, b) | Op::Div(a, b) => format!("{} / {}", o(a), o(b)),
            Op::HadamardPower(a, p) => format!("{} ** {}", o(a), float(*p)),
            Op::Max(a, b) => format!("{m}.maximum({}, {})", o(a), o(b)),
            Op::Min(a, b) => format!("{m}.minimum({}, {})", o(a), o(b)),
            Op::Inverse(a) => format!("{m}.linalg.inv({})", o(a)),
            Op::Identity => format!("{m}.eye({}{})", self.dim(&s.shape.rows)?, self.like()),
            Op::Ones => {
                format!(
                    "{m}.ones(({}, {}){})",
                    self.dim(&s.shape.rows)?,
                    self.dim(&s.shape.cols)?,
                    self.like()
                )
            }
            Op::Call(f, a) => {
                let a = o(a);
                match f {
                    Func::Tr => scalar(format!("{m}.trace({a})")),
                    Func::Det => scalar(format!("{m}.linalg.det({a})")),
                    Func::Logdet => scalar(format!("{m}.linalg.slogdet({a})[1]")),
                    Func::Sum => scalar(format!("{m}.sum({a})")),
                    Func::Norm | Func::Norm2 => scalar(format!("{m}.linalg.norm({a})")),
                    Func::Norm1 => scalar(format!("{m}.abs({a}).sum()")),
                    // A vector to its diagonal matrix (a square result), or a
                    // square matrix's diagonal as a column.
                    Func::Diag if s.shape.rows == s.shape.cols => format!("{m}.diag({a}.reshape(-1))"),
                    Func::Diag => format!("{m}.diagonal({a}).reshape(-1, 1)"),
                    Func::Sigmoid => match self.lib {
                        Lib::Numpy => format!("1.0 / (1.0 + np.exp(-{a}))"),
                        Lib::Torch => format!("torch.sigmoid({a})"),
                    },
                    Func::Relu => match self.lib {
                        Lib::Numpy => format!("np.maximum({a}, 0.0)"),
                        Lib::Torch => format!("torch.relu({a})"),
                    },
                    // A constant where it has a derivative: a comparison, which
                    // autograd takes as one (torch.heaviside has no backward).
                    Func::Step => match self.lib {
                        Lib::Numpy => format!("({a} > 0).astype({a}.dtype)"),
                        Lib::Torch => format!("({a} > 0).to({a}.dtype)"),
                    },
                    // Stable for large entries: log(e^0 + e^a).
                    Func::Softplus => match self.lib {
                        Lib::Numpy => format!("np.logaddexp(0.0, {a})"),
                        Lib::Torch => format!("torch.nn.functional.softplus({a})"),
                    },
                    // abs sign tan arcsin arccos arctan sinh cosh log1p: one name in both.
                    // Column-wise, as the language's axis 1 is NumPy's axis 0.
                    Func::SumCols | Func::SumRows => {
                        let axis = if *f == Func::SumCols { 0 } else { 1 };
                        match self.lib {
                            Lib::Numpy => format!("np.sum({a}, axis={axis}, keepdims=True)"),
                            Lib::Torch => format!("torch.sum({a}, dim={axis}, keepdim=True)"),
                        }
                    }
                    // Stable: each column shifted by its largest entry.
                    Func::Softmax => match self.lib {
                        Lib::Numpy => format!(
                            "(lambda e: e / e.sum(axis=0, keepdims=True))(np.exp({a} - {a}.max(axis=0, keepdims=True)))"
                        ),
                        Lib::Torch => format!("torch.softmax({a}, dim=0)"),
                    },
                    Func::Logsumexp => match self.lib {
                        Lib::Numpy => format!(
                            "(lambda z, t: t + np.log(np.exp(z - t).sum(axis=0, keepdims=True)))({a}, {a}.max(axis=0, keepdims=True))"
                        ),
                        Lib::Torch => format!("torch.logsumexp({a}, dim=0, keepdim=True)"),
                    },
                    f => format!("{m}.{}({a})", f.name()),
                }
            }
        };
        Ok(format!("{} = {rhs}", self.steps[k]))
    }

    /// The value of an output, broadcast to its variable's shape when the
    /// formula is a scalar (a gradient `0`, or `c` filling a matrix).
    fn output(&self, k: usize) -> String {
        let out = &self.plan.outputs[k];
        let value = self.operand(out.operand);
        let shape = match out.operand.value {
            Value::Input(i) => self.plan.inputs[i].shape.clone(),
            Value::Step(i) => self.plan.steps[i].shape.clone(),
            Value::Num(_) => crate::shape::Shape::scalar(),
        };
        let wrt = out.wrt.as_ref().and_then(|v| self.plan.inputs.iter().position(|i| i.var == *v));
        match wrt {
            Some(i) if shape.is_scalar() && !out.shape.is_scalar() => {
                let target = &self.inputs[i];
                match self.lib {
                    Lib::Numpy => format!("np.broadcast_to({value}, {target}.shape).copy()"),
                    Lib::Torch => format!("{value}.expand_as({target}).clone()"),
                }
            }
            _ => value,
        }
    }

    /// Steps the value needs (transitively).
    fn forward_steps(&self) -> Vec<bool> {
        match self.plan.outputs[0].operand.value {
            Value::Step(k) => self.closure(vec![k]),
            _ => vec![false; self.plan.steps.len()],
        }
    }

    /// The steps `steps` need (themselves included, transitively), in
    /// order.
    fn needed_by(&self, steps: &[usize]) -> Vec<usize> {
        let need = self.closure(steps.to_vec());
        (0..need.len()).filter(|&k| need[k]).collect()
    }

    /// Which steps the steps of `stack` need, themselves included.
    fn closure(&self, mut stack: Vec<usize>) -> Vec<bool> {
        let mut need = vec![false; self.plan.steps.len()];
        while let Some(k) = stack.pop() {
            if need[k] {
                continue;
            }
            need[k] = true;
            for o in self.plan.steps[k].op.operands() {
                if let Value::Step(j) = o.value {
                    stack.push(j);
                }
            }
        }
        need
    }
}

fn float(x: f64) -> String {
    let s = format_number(x);
    if s.contains(['.', 'e', 'i', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn key(v: &VarName) -> String {
    format!("{:?}", v.to_string())
}

/// The plan as a NumPy function `value_and_grads(**arrays)`, returning the
/// value (a float when it is 1×1) and a dict of gradients by variable name.
///
/// ```
/// let p = matdiff::syntax::parse_program("W1*W2*X").unwrap();
/// let d = matdiff::derive(&p, &Default::default()).unwrap();
/// let plan = matdiff::plan::compile(&d, &Default::default()).unwrap();
/// let code = matdiff::plan::numpy(&plan, "W1 * W2 * X").unwrap();
/// assert!(code.contains("def value_and_grads(**arrays):"));
/// assert!(code.contains("S1 = W2 @ X"));
/// ```
pub fn numpy(plan: &Plan, title: &str) -> Result<String> {
    let code = Code::new(plan, Lib::Numpy, None);
    let mut out = String::new();
    out.push_str(&format!("# Generated by matdiff: the plan for {title}\n"));
    out.push_str(&format!("# {} matrix products, {} multiply-adds\n", plan.products(), plan.total));
    out.push_str("import numpy as np\n\n\n");
    out.push_str("def value_and_grads(**arrays):\n");
    out.push_str("    \"\"\"The value and the gradient of every variable, as {name: array}.\"\"\"\n");
    out.push_str(&code.renamings("    ", Some("value_and_grads")));
    for (k, i) in plan.inputs.iter().enumerate() {
        out.push_str(&format!(
            "    {} = np.asarray(arrays[{}], dtype=np.float64)\n",
            code.inputs[k],
            key(&i.var)
        ));
    }
    for k in 0..plan.steps.len() {
        out.push_str(&format!("    {}\n", code.step(k)?));
    }
    let value = code.output(0);
    let value = if plan.outputs[0].shape.is_scalar() { format!("float({value}[0, 0])") } else { value };
    out.push_str("    grads = {}\n");
    for (k, o) in plan.outputs.iter().enumerate().skip(1) {
        let v = o.wrt.as_ref().expect("gradients name their variable");
        out.push_str(&format!("    grads[{}] = {}\n", key(v), code.output(k)));
    }
    out.push_str(&format!("    return {value}, grads\n"));
    Ok(out)
}

/// The plan as a `torch.autograd.Function` named `Plan`: `forward` runs the
/// steps the value needs, `backward` the rest, with the upstream gradient
/// (a layer's `G`, or the loss's scalar grad_output) as its input.
pub fn pytorch(plan: &Plan, title: &str, upstream: Option<&VarName>) -> Result<String> {
    let code = Code::new(plan, Lib::Torch, upstream);
    let forward = code.forward_steps();
    let up = code.upstream;
    let args: Vec<usize> = (0..plan.inputs.len()).filter(|k| Some(*k) != up).collect();
    // Forward steps the backward reads.
    let mut saved: Vec<usize> = vec![];
    for (k, s) in plan.steps.iter().enumerate() {
        if forward[k] {
            continue;
        }
        for o in s.op.operands() {
            if let Value::Step(j) = o.value {
                if forward[j] && !saved.contains(&j) {
                    saved.push(j);
                }
            }
        }
    }
    for o in &plan.outputs[1..] {
        if let Value::Step(j) = o.operand.value {
            if forward[j] && !saved.contains(&j) {
                saved.push(j);
            }
        }
    }
    let arg_names: Vec<&str> = args.iter().map(|&k| code.inputs[k].as_str()).collect();
    let saved_names: Vec<&str> = saved.iter().map(|&k| code.steps[k].as_str()).collect();
    let all_saved: Vec<&str> = arg_names.iter().chain(&saved_names).copied().collect();
    let tuple = |names: &[&str]| match names.len() {
        0 => "()".to_string(),
        1 => format!("{},", names[0]),
        _ => names.join(", "),
    };

    let mut out = String::new();
    out.push_str(&format!("# Generated by matdiff: the plan for {title}\n"));
    out.push_str(&format!("# {} matrix products, {} multiply-adds\n", plan.products(), plan.total));
    out.push_str("import torch\n\n\n");
    out.push_str("class Plan(torch.autograd.Function):\n");
    out.push_str(&format!(
        "    \"\"\"Plan.apply({}) is the value; its backward is the plan's gradient steps.\"\"\"\n\n",
        arg_names.join(", ")
    ));
    let renamings = code.renamings("    ", None);
    if !renamings.is_empty() {
        out.push_str(&renamings);
        out.push('\n');
    }
    out.push_str("    @staticmethod\n");
    out.push_str(&format!("    def forward(ctx, {}):\n", arg_names.join(", ")));
    for k in (0..plan.steps.len()).filter(|&k| forward[k]) {
        out.push_str(&format!("        {}\n", code.step(k)?));
    }
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
        for k in recompute {
            out.push_str(&format!("            {}\n", code.step(k)?));
        }
    }
    for k in (0..plan.steps.len()).filter(|&k| !forward[k]) {
        out.push_str(&format!("        {}\n", code.step(k)?));
    }
    let mut grads = vec![];
    for &k in &args {
        let var = &plan.inputs[k].var;
        let grad = plan.outputs.iter().position(|o| o.wrt.as_ref() == Some(var));
        grads.push(match grad {
            None => "None".to_string(),
            Some(g) if up.is_none() => format!("{grad_out} * {}", code.output(g)),
            Some(g) => code.output(g),
        });
    }
    out.push_str(&format!(
        "        return {}\n",
        tuple(&grads.iter().map(String::as_str).collect::<Vec<_>>())
    ));
    Ok(out)
}
