//! A plan as Python: a NumPy function (`numpy.rs`), a
//! `torch.autograd.Function` whose backward is the plan's gradient steps
//! (`torch.rs`), or a `jax.custom_vjp` function (`jax.rs`). What they share
//! is here: Python names, each step as an expression, which steps the value
//! needs and which the backward reads, what a backward returns. A plan with
//! loops over a family's members (`loops.rs`) is written with each target's
//! own templates, which that target's file holds.

mod jax;
mod loops;
mod numpy;
mod torch;

pub use self::jax::jax;
pub use self::loops::{jax_loops, numpy_loops, pytorch_loops};
pub use self::numpy::numpy;
pub use self::torch::pytorch;

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
    "jax",
    "jnp",
    "arrays",
    "grads",
    "ctx",
    "grad_output",
    "residuals",
    "dtype",
    "sizes",
    "batch",
    "Plan",
    "value_and_grads",
    "self",
    "forward",
    "backward",
    "apply",
];

/// `base`, or `base_` (`base__`, …) where that is reserved or `taken`;
/// taken from then on.
fn fresh(base: String, taken: &mut HashSet<String>) -> String {
    let mut n = base;
    while reserved(&n) || taken.contains(&n) {
        n.push('_');
    }
    taken.insert(n.clone());
    n
}

/// Whether a name is one the emitted Python cannot give a variable (or a
/// step): then the variable is renamed in the code (`float` is `float_`), and
/// keeps its own name in the dict keys and messages.
fn reserved(name: &str) -> bool {
    PYTHON_KEYWORDS.contains(&name) || PYTHON_BUILTINS.contains(&name) || GENERATED.contains(&name)
}

/// The name `--name` gives the emitted function, checked: a Python
/// identifier that neither Python nor the generated code reserves.
fn function_name(name: Option<&str>, default: &str) -> Result<String> {
    let Some(name) = name else { return Ok(default.to_string()) };
    let identifier = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("`{name}` is no name for the emitted code: use letters, digits and `_`, beginning with a letter (e.g. --name layer1)"),
        ));
    }
    if PYTHON_KEYWORDS.contains(&name)
        || PYTHON_BUILTINS.contains(&name)
        || ["np", "numpy", "torch", "jax", "jnp"].contains(&name)
    {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("`{name}` is a name Python or the emitted code's imports already use: choose another (e.g. --name {name}_plan)"),
        ));
    }
    Ok(name.to_string())
}

/// `my_layer` as a class name: `MyLayer`.
fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Which library the code calls.
#[derive(Clone, Copy, PartialEq)]
enum Lib {
    Numpy,
    Torch,
    Jax,
}

struct Code<'p> {
    plan: &'p Plan,
    lib: Lib,
    /// A Python name per input and per step.
    inputs: Vec<String>,
    steps: Vec<String>,
    /// The upstream gradient: an input `forward` does not have.
    upstream: Option<usize>,
    /// Whether the plan is a layer's (an upstream gradient is named), even
    /// when no step reads it (every gradient is 0).
    layer: bool,
    /// Inverses that are only ever applied to a matrix: each use is a
    /// `solve`, and the inverse itself is never formed.
    solved: Vec<bool>,
}

impl<'p> Code<'p> {
    /// `emitted` are the names the code defines at module level (the
    /// function, the class), which no variable may shadow.
    fn new(plan: &'p Plan, lib: Lib, upstream: Option<&VarName>, emitted: &[&str]) -> Code<'p> {
        let layer = upstream.is_some();
        let upstream = upstream.and_then(|u| plan.inputs.iter().position(|i| i.var == *u));
        // In order, inputs then steps: a name that is reserved or taken gets
        // `_` until it is neither (`float` is `float_`, and a variable
        // `float_` met after it `float__`), so the renaming is deterministic.
        let mut taken: HashSet<String> = emitted.iter().map(|s| s.to_string()).collect();
        let mut name = |base: String| fresh(base, &mut taken);
        let inputs = plan.inputs.iter().map(|i| name(super::identifier(&i.var))).collect();
        let steps = plan.steps.iter().map(|s| name(s.out.clone())).collect();
        let solved = solved(plan);
        Code { plan, lib, inputs, steps, upstream, layer, solved }
    }

    /// Comment lines naming the inputs renamed in the code (`float` is
    /// `float_`, `W[1]` is `W_1`); none when there are none.
    fn renamings(&self, indent: &str) -> String {
        let renamed: Vec<String> = self
            .plan
            .inputs
            .iter()
            .zip(&self.inputs)
            .filter(|(i, python)| i.var.to_string() != **python)
            .map(|(i, python)| format!("{} is {python}", i.var))
            .collect();
        if renamed.is_empty() {
            return String::new();
        }
        format!("{indent}# Renamed here, as Python or this code reserves the name: {}\n", renamed.join(", "))
    }

    /// Input numbers, the upstream gradient last.
    fn inputs_first(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.inputs.len()).filter(|k| Some(*k) != self.upstream).chain(self.upstream)
    }

    /// The inputs a function takes (all but the upstream gradient), in order.
    fn args(&self) -> Vec<usize> {
        (0..self.inputs.len()).filter(|k| Some(*k) != self.upstream).collect()
    }

    /// What a differentiable function's forward saves for its backward:
    /// the arguments' names, then those of the `saved` steps.
    fn residuals(&self, saved: &[usize]) -> Vec<&str> {
        let args = self.args().into_iter().map(|k| self.inputs[k].as_str());
        args.chain(saved.iter().map(|&k| self.steps[k].as_str())).collect()
    }

    fn module(&self) -> &'static str {
        match self.lib {
            Lib::Numpy => "np",
            Lib::Torch => "torch",
            Lib::Jax => "jnp",
        }
    }

    /// Keyword arguments giving a new array the dtype (and device) of the others.
    fn like(&self) -> String {
        let first = self.inputs_first().next().map(|k| self.inputs[k].as_str()).unwrap_or("None");
        match self.lib {
            // The NumPy function binds `dtype`, the arguments' common type.
            Lib::Numpy => ", dtype=dtype".to_string(),
            Lib::Torch => format!(", dtype={first}.dtype, device={first}.device"),
            Lib::Jax => format!(", dtype={first}.dtype"),
        }
    }

    fn operand(&self, o: Operand) -> String {
        self.operand_as(o, Literal::Array)
    }

    /// An operand; a number as a Python literal where `literal` allows
    /// (an operand of `+ - * /` beside an array: it takes the array's dtype).
    fn operand_as(&self, o: Operand, literal: Literal) -> String {
        let base = match o.value {
            Value::Input(k) => self.inputs[k].clone(),
            Value::Step(k) => self.steps[k].clone(),
            Value::Num(x) if literal == Literal::Allowed => float(x),
            Value::Num(x) => format!("{}.full((1, 1), {}{})", self.module(), float(x), self.like()),
        };
        // `.mT` swaps the last two axes (NumPy 2, torch, JAX): `.T` would
        // reverse every axis of a batch.
        match (o.transposed, o.value) {
            (false, _) | (true, Value::Num(_)) => base,
            (true, _) => format!("{base}.mT"),
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
                return Ok(format!("{}.shape[-2]", self.inputs[k]));
            }
            if input.shape.cols == *d {
                return Ok(format!("{}.shape[-1]", self.inputs[k]));
            }
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!("the plan needs the size `{d}`, which no input's shape gives"),
        )
        .hint(crate::Hint::GiveSize(format!("{d}=8"))))
    }

    /// `inv(A) @ B` as `solve(A, B)`, `B @ inv(A)` as `solve(A^T, B^T)^T`,
    /// when the inverse is one only applied.
    fn product(&self, a: &Operand, b: &Operand) -> String {
        let m = self.module();
        let inverse_of = |o: &Operand| match o.value {
            Value::Step(k) if self.solved[k] => match self.plan.steps[k].op {
                // inv(A)^T is inv(A^T).
                Op::Inverse(x) => Some(Operand { transposed: x.transposed != o.transposed, ..x }),
                _ => None,
            },
            _ => None,
        };
        if let Some(x) = inverse_of(a) {
            return format!("{m}.linalg.solve({}, {})", self.operand(x), self.operand(*b));
        }
        if let Some(x) = inverse_of(b) {
            let xt = Operand { transposed: !x.transposed, ..x };
            let at = Operand { transposed: !a.transposed, ..*a };
            return format!("{m}.linalg.solve({}, {}).mT", self.operand(xt), self.operand(at));
        }
        // An outer product (inner size 1) broadcasts: one pass, where a
        // matrix product with k = 1 costs a BLAS call several times that.
        if self.operand_cols(a) == Some(Dim::Const(1)) {
            return format!("{} * {}", self.operand(*a), self.operand(*b));
        }
        format!("{} @ {}", self.operand(*a), self.operand(*b))
    }

    /// The columns of an operand as used (after its transpose), where known.
    fn operand_cols(&self, o: &Operand) -> Option<Dim> {
        let shape = match o.value {
            Value::Input(i) => &self.plan.inputs[i].shape,
            Value::Step(k) => &self.plan.steps[k].shape,
            Value::Num(_) => return None,
        };
        Some(if o.transposed { shape.rows.clone() } else { shape.cols.clone() })
    }

    /// The step's line, or None for an inverse only applied (never formed).
    fn step(&self, k: usize) -> Result<Option<String>> {
        if self.solved[k] {
            return Ok(None);
        }
        let s = &self.plan.steps[k];
        let m = self.module();
        let o = |x: &Operand| self.operand(*x);
        // A number beside an array, in `+ - * /`, is a literal.
        let lit = |x: &Operand, other: &Operand| {
            let literal = match other.value {
                Value::Num(_) => Literal::Array,
                _ => Literal::Allowed,
            };
            self.operand_as(*x, literal)
        };
        // Over the last two axes, kept: a batch of 1x1 results.
        let scalar = |call: String| format!("{call}[..., None, None]");
        let rhs = match &s.op {
            Op::MatMul(a, b) => self.product(a, b),
            Op::Scale(a, b) | Op::Hadamard(a, b) => format!("{} * {}", lit(a, b), lit(b, a)),
            Op::Add(a, b) => format!("{} + {}", lit(a, b), lit(b, a)),
            Op::Sub(a, b) => format!("{} - {}", lit(a, b), lit(b, a)),
            Op::Neg(a) => format!("-{}", o(a)),
            Op::HadamardDiv(a, b) | Op::Div(a, b) => format!("{} / {}", lit(a, b), lit(b, a)),
            Op::HadamardPower(a, p) => format!("{} ** {}", o(a), float(*p)),
            Op::Max(a, b) => format!("{m}.maximum({}, {})", o(a), o(b)),
            Op::Power(a, b) => format!("{} ** {}", lit(a, b), lit(b, a)),
            Op::Min(a, b) => format!("{m}.minimum({}, {})", o(a), o(b)),
            // Over the last two axes only (np.kron would take the batch
            // axes too): a_ik b_jl at (i j, k l), then the pairs merged.
            Op::Kron(a, b) => format!(
                "(lambda t: t.reshape(t.shape[:-4] + ({}, {})))({}[..., :, None, :, None] * {}[..., None, :, None, :])",
                self.dim(&s.shape.rows)?,
                self.dim(&s.shape.cols)?,
                self.operand_as(*a, Literal::Array),
                self.operand_as(*b, Literal::Array)
            ),
            Op::Inverse(a) => format!("{m}.linalg.inv({})", o(a)),
            // A column times a matrix broadcasts over the columns: each row scaled.
            Op::ScaleRows(v, a) => format!("{} * {}", o(v), o(a)),
            Op::ScaleCols(a, v) => format!("{} * {}", o(a), o(&Operand { transposed: !v.transposed, ..*v })),
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
                let sum = |x: String| {
                    let x = if x.contains(' ') { format!("({x})") } else { x };
                    match self.lib {
                        Lib::Torch => format!("{x}.sum(dim=(-2, -1), keepdim=True)"),
                        Lib::Numpy | Lib::Jax => format!("{x}.sum(axis=(-2, -1), keepdims=True)"),
                    }
                };
                match f {
                    Func::Tr => scalar(match self.lib {
                        Lib::Torch => format!("torch.diagonal({a}, dim1=-2, dim2=-1).sum(-1)"),
                        Lib::Numpy | Lib::Jax => format!("{m}.trace({a}, axis1=-2, axis2=-1)"),
                    }),
                    Func::Det => scalar(format!("{m}.linalg.det({a})")),
                    Func::Logdet => scalar(format!("{m}.linalg.slogdet({a})[1]")),
                    Func::Sum => sum(a),
                    // sqrt of the sum of squares: differentiable twice (away
                    // from 0) in each library, over the last two axes.
                    Func::Norm | Func::Norm2 => format!("{m}.sqrt({})", sum(format!("{a} * {a}"))),
                    Func::Norm1 => sum(format!("{m}.abs({a})")),
                    // A vector to its diagonal matrix (a square result: the
                    // column times the identity), or a square matrix's
                    // diagonal as a column.
                    Func::Diag if s.shape.rows == s.shape.cols => {
                        format!("{a} * {m}.eye({}{})", self.dim(&s.shape.rows)?, self.like())
                    }
                    Func::Diag => match self.lib {
                        Lib::Torch => format!("torch.diagonal({a}, dim1=-2, dim2=-1)[..., None]"),
                        Lib::Numpy | Lib::Jax => format!("{m}.diagonal({a}, axis1=-2, axis2=-1)[..., None]"),
                    },
                    // Column-major over the last two axes: the rows of the
                    // transpose, read in order.
                    Func::Vec => {
                        let x = if a.contains(' ') { format!("({a})") } else { a };
                        format!(
                            "(lambda t: t.reshape(t.shape[:-2] + ({}, 1)))({x}.mT)",
                            self.dim(&s.shape.rows)?
                        )
                    }
                    Func::Sigmoid => match self.lib {
                        Lib::Numpy => format!("1.0 / (1.0 + np.exp(-{a}))"),
                        Lib::Torch => format!("torch.sigmoid({a})"),
                        Lib::Jax => format!("jax.nn.sigmoid({a})"),
                    },
                    Func::Relu => match self.lib {
                        Lib::Numpy => format!("np.maximum({a}, 0.0)"),
                        Lib::Torch => format!("torch.relu({a})"),
                        Lib::Jax => format!("jax.nn.relu({a})"),
                    },
                    // A constant where it has a derivative: a comparison, which
                    // autograd takes as one (torch.heaviside has no backward).
                    Func::Step => match self.lib {
                        Lib::Numpy | Lib::Jax => format!("({a} > 0).astype({a}.dtype)"),
                        Lib::Torch => format!("({a} > 0).to({a}.dtype)"),
                    },
                    // Stable for large entries: log(e^0 + e^a).
                    Func::Softplus => match self.lib {
                        Lib::Numpy => format!("np.logaddexp(0.0, {a})"),
                        Lib::Torch => format!("torch.nn.functional.softplus({a})"),
                        Lib::Jax => format!("jax.nn.softplus({a})"),
                    },
                    // abs sign tan arcsin arccos arctan sinh cosh log1p: one name in each.
                    // Column-wise, as the language's axis 1 is the rows' axis (-2).
                    Func::SumCols | Func::SumRows => {
                        let axis = if *f == Func::SumCols { -2 } else { -1 };
                        match self.lib {
                            Lib::Numpy | Lib::Jax => format!("{m}.sum({a}, axis={axis}, keepdims=True)"),
                            Lib::Torch => format!("torch.sum({a}, dim={axis}, keepdim=True)"),
                        }
                    }
                    // Stable: each column shifted by its largest entry.
                    Func::Softmax => match self.lib {
                        Lib::Numpy => format!(
                            "(lambda e: e / e.sum(axis=-2, keepdims=True))(np.exp({a} - {a}.max(axis=-2, keepdims=True)))"
                        ),
                        Lib::Torch => format!("torch.softmax({a}, dim=-2)"),
                        Lib::Jax => format!("jax.nn.softmax({a}, axis=-2)"),
                    },
                    Func::Logsumexp => match self.lib {
                        Lib::Numpy => format!(
                            "(lambda z, t: t + np.log(np.exp(z - t).sum(axis=-2, keepdims=True)))({a}, {a}.max(axis=-2, keepdims=True))"
                        ),
                        Lib::Torch => format!("torch.logsumexp({a}, dim=-2, keepdim=True)"),
                        Lib::Jax => format!("jax.nn.logsumexp({a}, axis=-2, keepdims=True)"),
                    },
                    f => format!("{m}.{}({a})", f.name()),
                }
            }
        };
        Ok(Some(format!("{} = {rhs}", self.steps[k])))
    }

    /// Lines of the steps `ks`, each indented by `indent`.
    fn lines(&self, ks: impl IntoIterator<Item = usize>, indent: &str) -> Result<String> {
        let mut out = String::new();
        for k in ks {
            if let Some(line) = self.step(k)? {
                out.push_str(&format!("{indent}{line}\n"));
            }
        }
        Ok(out)
    }

    /// [`Code::lines`] of the steps `ks` (in order), each intermediate they
    /// compute deleted after its last read among them (`del T3, T5`): a
    /// function that holds every intermediate to its end takes fresh memory
    /// for each, and NumPy then spends more on page faults than on
    /// arithmetic (an n×n entrywise step at n = 1000: 2 ms held, 0.2 ms
    /// freed). Outputs, and values computed before the block, are kept.
    fn lines_freeing(&self, ks: &[usize], indent: &str) -> Result<String> {
        let n = self.plan.steps.len();
        let mut last: Vec<Option<usize>> = vec![None; n];
        let mut here = vec![false; n];
        for &k in ks {
            here[k] = true;
            if !self.solved[k] {
                for j in self.reads(k) {
                    last[j] = Some(k);
                }
            }
        }
        let mut kept = vec![false; n];
        for o in &self.plan.outputs {
            if let Value::Step(i) = o.operand.value {
                kept[i] = true;
            }
        }
        let mut out = String::new();
        for &k in ks {
            let dies = |j: usize| here[j] && last[j] == Some(k) && !kept[j] && !self.solved[j];
            let line = match self.in_place(k, dies) {
                Some(line) => Some(line),
                None => self.step(k)?,
            };
            if let Some(line) = line {
                out.push_str(&format!("{indent}{line}\n"));
            }
            let mut dead: Vec<usize> = (0..n).filter(|&j| dies(j)).collect();
            dead.dedup();
            if !dead.is_empty() {
                let names: Vec<&str> = dead.iter().map(|&j| self.steps[j].as_str()).collect();
                out.push_str(&format!("{indent}del {}\n", names.join(", ")));
            }
        }
        Ok(out)
    }

    /// NumPy only: an entrywise step written into the buffer of an operand
    /// that `dies` here (`T4 = np.subtract(1.0, T3, out=T3)`), so that it
    /// takes no fresh memory: a fresh n×n array costs its page faults, 1.5 ms
    /// at n = 1000 against 0.4 ms for the arithmetic. The operand must be
    /// an intermediate this code allocated (not an argument, nor a view of
    /// one), of the step's shape; where another operand is an array of that
    /// shape, their batch axes may still differ, so the buffer is used only
    /// when the shapes are equal at run time (`out=T if T.shape == U.shape
    /// else None`). PyTorch's autograd and JAX's arrays forbid writing in place.
    fn in_place(&self, k: usize, dies: impl Fn(usize) -> bool) -> Option<String> {
        if self.lib != Lib::Numpy || self.solved[k] {
            return None;
        }
        let s = &self.plan.steps[k];
        let (ufunc, args) = ufunc(&s.op)?;
        let shape_of = |o: &Operand| match o.value {
            Value::Input(i) => Some(self.plan.inputs[i].shape.clone()),
            Value::Step(j) => Some(self.plan.steps[j].shape.clone()),
            Value::Num(_) => None,
        };
        let oriented = |o: &Operand| shape_of(o).map(|sh| if o.transposed { sh.transposed() } else { sh });
        let j = args.iter().find_map(|a| match a {
            Arg::Operand(Operand { value: Value::Step(j), transposed: false })
                if dies(*j)
                    && owns_its_array(&self.plan.steps[*j].op)
                    && self.plan.steps[*j].shape == s.shape =>
            {
                Some(*j)
            }
            _ => None,
        })?;
        let mut others = vec![];
        for a in &args {
            match a {
                Arg::Operand(Operand { value: Value::Step(i), transposed: false }) if *i == j => {}
                Arg::Operand(o) => match oriented(o) {
                    None => {}
                    Some(shape) if shape == s.shape => others.push(self.operand(*o)),
                    // Broadcast against a smaller operand: left as it is.
                    Some(_) => return None,
                },
                Arg::Number(_) => {}
            }
        }
        // Beside the buffer, an array, a number is a literal.
        let rendered: Vec<String> = args
            .iter()
            .map(|a| match a {
                Arg::Operand(o) => self.operand_as(*o, Literal::Allowed),
                Arg::Number(x) => float(*x),
            })
            .collect();
        let name = &self.steps[j];
        let out = if others.is_empty() {
            name.clone()
        } else {
            let same: Vec<String> = others.iter().map(|o| format!("{name}.shape == {o}.shape")).collect();
            format!("{name} if {} else None", same.join(" and "))
        };
        Some(format!("{} = np.{ufunc}({}, out={out})", self.steps[k], rendered.join(", ")))
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
        if out.wrt.is_none() && shape.is_scalar() && !out.shape.is_scalar() {
            // A value that is a constant matrix (`A - A`): its shape from the inputs'.
            if let (Ok(r), Ok(c)) = (self.dim(&out.shape.rows), self.dim(&out.shape.cols)) {
                return format!("{value} * {}.ones(({r}, {c}){})", self.module(), self.like());
            }
        }
        match wrt {
            Some(i) if shape.is_scalar() && !out.shape.is_scalar() => {
                let target = &self.inputs[i];
                match self.lib {
                    Lib::Numpy => format!("np.broadcast_to({value}, {target}.shape).copy()"),
                    Lib::Jax => format!("jnp.broadcast_to({value}, {target}.shape)"),
                    Lib::Torch => format!("{value}.expand_as({target}).clone()"),
                }
            }
            _ => value,
        }
    }

    /// The steps a step's line reads: an inverse only applied is read
    /// through (its line is never written, its operand is).
    fn reads(&self, k: usize) -> Vec<usize> {
        let mut out = vec![];
        let mut stack: Vec<Operand> = self.plan.steps[k].op.operands();
        while let Some(o) = stack.pop() {
            if let Value::Step(j) = o.value {
                if self.solved[j] {
                    stack.extend(self.plan.steps[j].op.operands());
                } else {
                    out.push(j);
                }
            }
        }
        out
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

    /// The split of a differentiable function: which steps `forward` runs
    /// (those the value needs), and which of them the backward reads, in
    /// order of first use.
    fn split(&self) -> (Vec<bool>, Vec<usize>) {
        let forward = self.forward_steps();
        let mut saved: Vec<usize> = vec![];
        let mut save = |j: usize| {
            if forward[j] && !saved.contains(&j) {
                saved.push(j);
            }
        };
        for k in (0..self.plan.steps.len()).filter(|&k| !forward[k] && !self.solved[k]) {
            for j in self.reads(k) {
                save(j);
            }
        }
        for o in &self.plan.outputs[1..] {
            if let Value::Step(j) = o.operand.value {
                save(j);
            }
        }
        (forward, saved)
    }

    /// The name of a backward's cotangent: the upstream gradient's, or a
    /// loss's scalar `grad_output`.
    fn cotangent(&self) -> String {
        match self.upstream {
            Some(k) => self.inputs[k].clone(),
            None => "grad_output".to_string(),
        }
    }

    /// The value as a differentiable function (PyTorch, JAX) returns it: a
    /// 1×1 value as a scalar.
    fn returned_value(&self) -> String {
        let value = self.output(0);
        if self.plan.outputs[0].shape.is_scalar() {
            format!("{value}.reshape(())")
        } else {
            value
        }
    }

    /// The lines of the steps `forward` runs (`run`), or of those the
    /// backward runs (`!run`), `forward` as [`Code::split`] gives it.
    fn part(&self, forward: &[bool], run: bool, indent: &str) -> Result<String> {
        self.lines((0..self.plan.steps.len()).filter(|&k| forward[k] == run), indent)
    }

    /// [`Code::part`], each intermediate it computes deleted after its last
    /// read in it ([`Code::lines_freeing`]).
    fn part_freeing(&self, forward: &[bool], run: bool, indent: &str) -> Result<String> {
        let ks: Vec<usize> = (0..self.plan.steps.len()).filter(|&k| forward[k] == run).collect();
        self.lines_freeing(&ks, indent)
    }

    /// The gradient a backward returns for the input `k`: `None` where the
    /// plan has none (a variable outside `--wrt`), a loss's times its scalar
    /// cotangent.
    fn returned_gradient(&self, k: usize, cotangent: &str) -> String {
        let var = &self.plan.inputs[k].var;
        match self.plan.outputs.iter().position(|o| o.wrt.as_ref() == Some(var)) {
            None => "None".to_string(),
            Some(g) if !self.layer => format!("{cotangent} * {}", self.output(g)),
            Some(g) => self.output(g),
        }
    }

    /// Input `k` with its shape, a docstring's line: `W1 : d0 x d1`.
    fn shape_doc(&self, k: usize, indent: &str) -> String {
        let i = &self.plan.inputs[k];
        let upstream = if Some(k) == self.upstream { ", the upstream gradient" } else { "" };
        format!("{indent}{} : {} x {}{upstream}\n", self.inputs[k], i.shape.rows, i.shape.cols)
    }

    /// Each input with its shape, for a docstring: the arguments, and with
    /// `upstream` the upstream gradient last.
    fn shapes_doc(&self, indent: &str, upstream: bool) -> String {
        let ks: Vec<usize> = if upstream { self.inputs_first().collect() } else { self.args() };
        ks.into_iter().map(|k| self.shape_doc(k, indent)).collect()
    }
}

/// An argument of a NumPy ufunc: an operand, or a number written as it is.
enum Arg {
    Operand(Operand),
    Number(f64),
}

/// The NumPy ufunc an entrywise step is, with its arguments in order.
fn ufunc(op: &Op) -> Option<(&'static str, Vec<Arg>)> {
    use Arg::{Number, Operand as O};
    Some(match *op {
        Op::Scale(a, b) | Op::Hadamard(a, b) => ("multiply", vec![O(a), O(b)]),
        Op::Add(a, b) => ("add", vec![O(a), O(b)]),
        Op::Sub(a, b) => ("subtract", vec![O(a), O(b)]),
        Op::Neg(a) => ("negative", vec![O(a)]),
        Op::HadamardDiv(a, b) | Op::Div(a, b) => ("divide", vec![O(a), O(b)]),
        Op::Max(a, b) => ("maximum", vec![O(a), O(b)]),
        Op::Min(a, b) => ("minimum", vec![O(a), O(b)]),
        Op::Power(a, b) => ("power", vec![O(a), O(b)]),
        Op::HadamardPower(a, 2.0) => ("square", vec![O(a)]),
        Op::HadamardPower(a, p) => ("power", vec![O(a), Number(p)]),
        Op::Call(Func::Relu, a) => ("maximum", vec![O(a), Number(0.0)]),
        Op::Call(Func::Softplus, a) => ("logaddexp", vec![Number(0.0), O(a)]),
        Op::Call(f, a) => match f {
            Func::Exp
            | Func::Log
            | Func::Sqrt
            | Func::Sin
            | Func::Cos
            | Func::Tanh
            | Func::Abs
            | Func::Sign
            | Func::Tan
            | Func::Arcsin
            | Func::Arccos
            | Func::Arctan
            | Func::Sinh
            | Func::Cosh
            | Func::Log1p => (f.name(), vec![O(a)]),
            _ => return None,
        },
        _ => return None,
    })
}

/// Whether a step's line makes an array of its own, which a later step may
/// overwrite: an arithmetic step or a product, not a view of an argument
/// (`diag` of a matrix, `vec`).
fn owns_its_array(op: &Op) -> bool {
    matches!(op, Op::MatMul(..)) || ufunc(op).is_some()
}

/// Whether a number may be written as a Python literal.
#[derive(Clone, Copy, PartialEq)]
enum Literal {
    Allowed,
    Array,
}

/// Which steps are inverses only ever applied to a matrix (each use a
/// product with it on one side and no such inverse on the other), so that
/// each use is a `solve`.
fn solved(plan: &Plan) -> Vec<bool> {
    let inverse: Vec<bool> = plan.steps.iter().map(|s| matches!(s.op, Op::Inverse(_))).collect();
    let is_inverse = |o: &Operand| matches!(o.value, Value::Step(j) if inverse[j]);
    let mut applied = inverse.clone();
    for s in &plan.steps {
        // A product of two inverses forms both; any other use forms it.
        let applies = matches!(s.op, Op::MatMul(a, b) if !(is_inverse(&a) && is_inverse(&b)));
        if !applies {
            for o in s.op.operands() {
                if let Value::Step(j) = o.value {
                    applied[j] = false;
                }
            }
        }
    }
    for o in &plan.outputs {
        if let Value::Step(j) = o.operand.value {
            applied[j] = false;
        }
    }
    applied
}

/// A number as a Python float literal.
fn float(x: f64) -> String {
    if x.is_nan() {
        return "float(\"nan\")".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "float(\"inf\")" } else { "-float(\"inf\")" }.to_string();
    }
    let s = format_number(x);
    if s.contains(['.', 'e']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// The header every emitted module begins with.
fn header(plan: &Plan, title: &str) -> String {
    format!(
        "# Generated by matdiff: the plan for {title}\n# {} matrix products, {} multiply-adds\n",
        plan.products(),
        plan.total
    )
}

/// `(a, b)` as a Python tuple: `()`, `a,`, `a, b`.
fn tuple(names: &[&str]) -> String {
    match names.len() {
        0 => "()".to_string(),
        1 => format!("{},", names[0]),
        _ => names.join(", "),
    }
}

/// A variable's name as a Python string: a dict key, a message's.
fn key(v: &VarName) -> String {
    format!("{:?}", v.to_string())
}
