//! The commands of the command line and the REPL: the clap-derived
//! [`Command`], how its input is read, and [`execute`], which both front
//! ends run a parsed command through.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::PathBuf;

use clap::builder::{StringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::error::{Error, ErrorKind, Result};
use crate::numeric::{CheckMethod, CheckOptions};
use crate::syntax::{self, DomainSpec, VarName};
use crate::{Control, DeriveOptions, Steps, Streamed};

use super::render::{self, render_check};
use super::report::Style;
use super::{demo, report, second};
use crate::hessian::Kind;

const EXAMPLES: &str = "\
Examples:
  matdiff derive 'W1*W2*W3*X'                       every gradient of a layer (upstream G)
  matdiff derive 'A : 3x4; X : 4x5; B : 5x3; tr(A*X*B)' --wrt X
  matdiff derive 'x : n; A : n x n; x^T*A*x' --json
  matdiff derive 'X : n x n; logdet(X)' --steps --latex --standalone
  matdiff latex 'norm(W*X - Y)^2'
  matdiff verify 'W1*W2*W3*X' --wrt W2 --claim 'W1^T*G*X^T*W3^T'
  matdiff check 'W1*W2*W3*X' --dims d0=64,d4=8 --seed 7
  matdiff plan 'W1*W2*W3*X' --dims d0=64,d1=64,d2=64,d3=64,d4=65536
  matdiff plan 'W1*W2*W3*X' --emit numpy            the plan as a NumPy function
  matdiff demo                                      the seed example end to end
  matdiff repl                                      an interactive session
  matdiff completions bash                          a completion script for the shell

Exit status: 0 ok, 1 a check failed, 2 a parse, shape or usage error.";

#[derive(Parser, Debug)]
#[command(
    name = "matdiff",
    version,
    about = "A symbolic matrix-calculus engine: shapes, gradients, numeric checks",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A command, as parsed from the command line or a REPL line.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Derive the gradient of every variable (or of those given by --wrt).
    #[command(after_help = "Examples:
  matdiff derive 'W1*W2*W3*X'                                      every gradient of a layer (upstream G)
  matdiff derive 'A : 3x4; X : 4x5; B : 5x3; tr(A*X*B)' --wrt X    one gradient, shapes numbers
  matdiff derive 'x : n; A : n x n; x^T*A*x' --steps               the derivation, step by step
  matdiff derive 'X : n x n; logdet(X)' --latex --standalone       a LaTeX document
  matdiff derive 'W : k x d; x : d; sum(tanh(W*x))' --json         the result as JSON")]
    Derive {
        /// The program.
        #[command(flatten)]
        input: Input,
        /// The variables to differentiate with respect to, and the upstream gradient.
        #[command(flatten)]
        target: Target,
        /// Show the derivation: differential, trace, rotation, read-off, shape check.
        #[arg(long)]
        steps: bool,
        /// Print LaTeX instead of text.
        #[arg(long)]
        latex: bool,
        /// With --latex: a complete amsmath document.
        #[arg(long, requires = "latex")]
        standalone: bool,
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "latex")]
        json: bool,
        /// Write every formula out in full, without names for repeated subexpressions (T1 = …).
        #[arg(long)]
        expanded: bool,
    },
    /// Decide whether a hand-derived gradient is right (exit 0), wrong (exit 1), or
    /// undecidable on the evidence (UNDECIDED, exit 1).
    ///
    /// First symbolically (the claim and the derived gradient in one e-graph class), else
    /// numerically: both are evaluated exactly on 16 random instances with random sizes,
    /// drawn with both signs wherever the expression is defined for both (positive only
    /// where a log, sqrt or fractional power needs it; invertible under inverses and
    /// det). An instance decides only where the values are well above their rounding
    /// noise; equivalent needs every instance to agree (relative tolerance 1e-7), and a
    /// difference on any one is "not equivalent". Where no instance can decide, the
    /// verdict is UNDECIDED: declare the domain the expression lives on.
    #[command(verbatim_doc_comment)]
    #[command(after_help = "Examples:
  matdiff verify 'W1*W2*W3*X' --wrt W2 --claim 'W1^T*G*X^T*W3^T'                    equivalent
  matdiff verify 'x : n; A : n x n; x^T*A*x' --wrt x --claim '2*A*x'                not equivalent, exit 1: A is not symmetric
  matdiff verify 'S : n x n spd; x : n; x^T*S*x' --wrt x --claim '2*S*x'            equivalent: S declared symmetric
  matdiff verify 'x : n; A : n x n; x^T*A*x' --wrt x --order 2 --claim 'A + A^T'    a Hessian")]
    Verify {
        /// The program.
        #[command(flatten)]
        input: Input,
        /// The variable the claim is the gradient of (with --order 2, repeat
        /// once for the mixed second derivative d2L/dV dU^T).
        #[arg(long, required = true, num_args = 1, value_parser = Utf8(StringValueParser::new()))]
        wrt: Vec<String>,
        /// The claimed gradient, in the expression language (may begin with `-`).
        #[arg(long, allow_hyphen_values = true, value_parser = Utf8(StringValueParser::new()))]
        claim: String,
        /// 2: the claim is the Hessian (its matrix, or the map `H[dV]` in `dV`).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        order: u8,
        /// The claim is the Jacobian (its matrix, or the differential in `dX`).
        #[arg(long, conflicts_with = "order")]
        jacobian: bool,
        /// Name of the upstream gradient dL/dZ of a matrix-valued expression.
        #[arg(long, value_parser = Utf8(StringValueParser::new()))]
        upstream: Option<String>,
        /// The domain of a variable's values, e.g. X=positive (positive, negative, nonzero, spd, onehot).
        #[arg(long, value_parser = Utf8(parse_domain))]
        domain: Vec<(String, DomainSpec)>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare every derived gradient with finite differences (Ridders' extrapolation).
    ///
    /// Values are drawn with both signs wherever the expression is defined for both. A
    /// gradient agrees (ok) within a relative 1e-6, or within 10 times the differences'
    /// own error when that is small; it is a MISMATCH when it differs beyond both; and
    /// UNDECIDED (exit 1) when the differences are too noisy to tell, on every instance
    /// tried.
    #[command(verbatim_doc_comment)]
    #[command(after_help = "Examples:
  matdiff check 'W1*W2*W3*X' --dims d0=64,d4=8 --seed 7                  every gradient, some sizes given
  matdiff check 'w : d; X : m x d; sum(softplus(X*w))' --wrt w --json    one gradient, as JSON
  matdiff check 'x : n; A : n x n; x^T*A*x' --wrt x --order 2            the Hessian too")]
    Check {
        /// The program.
        #[command(flatten)]
        input: Input,
        /// The variables to differentiate with respect to, and the upstream gradient.
        #[command(flatten)]
        target: Target,
        /// Sizes of symbolic dimensions, e.g. d0=3,n=5 (others are random, 2..5).
        #[arg(long, value_parser = Utf8(parse_dims))]
        dims: Option<HashMap<String, usize>>,
        /// The domain of a variable's values, e.g. X=positive (positive, negative, nonzero, spd, onehot).
        #[arg(long, value_parser = Utf8(parse_domain))]
        domain: Vec<(String, DomainSpec)>,
        /// Seed of the random sizes and matrices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// 2: check the Hessian (one --wrt, or two for the mixed derivative) against
        /// finite differences of the derived gradient.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        order: u8,
        /// Check the Jacobian (one --wrt) against finite differences.
        #[arg(long, conflicts_with = "order")]
        jacobian: bool,
        /// Compare every entry, or along random directions (for large sizes); auto: entries
        /// where that is cheap.
        #[arg(long, value_enum, default_value_t = Method::Auto)]
        method: Method,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compile the value and every gradient into one numeric plan that shares products.
    #[command(after_help = "Examples:
  matdiff plan 'W1*W2*W3*X' --dims d0=64,d1=64,d2=64,d3=64,d4=65536                   the steps and their multiply-adds
  matdiff plan 'W1*W2*W3*X' --emit pytorch --name layer                               a torch.autograd.Function
  matdiff plan 'W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X'           a chain of symbolic length
  matdiff plan 'w : d; X : m x d; sum(softplus(X*w))' --wrt w --order 2 --emit jax    gradient and Hessian-vector product")]
    Plan {
        /// The program.
        #[command(flatten)]
        input: Input,
        /// The variables to differentiate with respect to, and the upstream gradient.
        #[command(flatten)]
        target: Target,
        /// Sizes of symbolic dimensions and product lengths, e.g. d0=64,B=65536,n=8;
        /// with them, costs are numbers and the bracketing is chosen by them.
        #[arg(long, value_parser = Utf8(parse_plan_dims))]
        dims: Option<HashMap<String, u64>>,
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "emit")]
        json: bool,
        /// Print the plan as code: a NumPy function, a torch.autograd.Function or a jax.custom_vjp function.
        #[arg(long, value_enum)]
        emit: Option<Emit>,
        /// The emitted function's name (default value_and_grads for numpy, plan otherwise;
        /// PyTorch's class is its CamelCase, e.g. my_layer gives MyLayer and MyLayerModule).
        #[arg(long, requires = "emit", value_parser = Utf8(StringValueParser::new()))]
        name: Option<String>,
        /// 2: the plan of the Hessian-vector product `H[dV]` (one --wrt V, or two for the
        /// mixed derivative), with the gradient as the value, sharing its products.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        order: u8,
        /// With --order 2: the full Hessian matrix of a vector variable instead.
        #[arg(long)]
        full: bool,
    },
    /// The Hessian of a scalar expression: its matrix for a vector (or scalar) variable,
    /// the linear map `H[dV]` for a matrix; with two --wrt, the mixed second derivative.
    #[command(after_help = "Examples:
  matdiff hessian 'x : n; A : n x n; x^T*A*x' --wrt x                    the matrix A + A^T
  matdiff hessian 'X : n x m; A : n x n; tr(X^T*A*X)' --wrt X --steps    the map H[dX] and its vec form
  matdiff hessian 'x : n; y : m; A : n x m; x^T*A*y' --wrt x --wrt y     the mixed second derivative")]
    Hessian {
        /// The program.
        #[command(flatten)]
        input: Input,
        /// The variable (repeat once for the mixed derivative d2L/dV dU^T).
        #[arg(long, required = true, num_args = 1, value_parser = Utf8(StringValueParser::new()))]
        wrt: Vec<String>,
        /// Show both derivations (the gradient, then its differential) and the read-off.
        #[arg(long)]
        steps: bool,
        /// Print LaTeX instead of text.
        #[arg(long)]
        latex: bool,
        /// With --latex: a complete amsmath document.
        #[arg(long, requires = "latex")]
        standalone: bool,
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "latex")]
        json: bool,
    },
    /// The Jacobian of an expression: its matrix dZ/dx for a vector-valued expression of
    /// a vector, the differential dZ in the direction dX otherwise.
    #[command(after_help = "Examples:
  matdiff jacobian 'W : m x n; x : n; tanh(W*x)' --wrt x      the matrix dZ/dx
  matdiff jacobian 'W : 3x4; X : 4x5; W*X' --wrt W --latex    dZ and its vec form, in LaTeX")]
    Jacobian {
        /// The program.
        #[command(flatten)]
        input: Input,
        /// The variable.
        #[arg(long, value_parser = Utf8(StringValueParser::new()))]
        wrt: String,
        /// Show both derivations (the vector-Jacobian product, then its transpose) and the read-off.
        #[arg(long)]
        steps: bool,
        /// Print LaTeX instead of text.
        #[arg(long)]
        latex: bool,
        /// With --latex: a complete amsmath document.
        #[arg(long, requires = "latex")]
        standalone: bool,
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "latex")]
        json: bool,
    },
    /// Print an expression as LaTeX.
    #[command(after_help = "Examples:
  matdiff latex 'norm(W*X - Y)^2'
  matdiff latex 'X : n x n; logdet(X) + tr(X^-1)' --standalone    a document")]
    Latex {
        /// The program.
        #[command(flatten)]
        input: Input,
        /// A complete amsmath document.
        #[arg(long)]
        standalone: bool,
    },
    /// An interactive session (also: plain `matdiff` on a terminal).
    #[command(after_help = "Examples:
  matdiff repl                                               type `help` for what it takes
  printf 'A : 3x4\\nderive A*X --wrt A\\n' | matdiff repl    a session from a script: exits with its worst status")]
    Repl,
    /// Backprop through the layer Z = W1*W2*W3*X, end to end.
    #[command(after_help = "Examples:
  matdiff demo            shapes, gradients, steps, the plan, its check
  matdiff demo --latex    the same as LaTeX")]
    Demo {
        /// Print LaTeX instead of text.
        #[arg(long)]
        latex: bool,
    },
    /// Print a shell completion script: `source <(matdiff completions bash)`.
    #[command(after_help = "Examples:
  source <(matdiff completions bash)         completions in this bash session
  matdiff completions zsh > _matdiff         for a directory on zsh's $fpath
  matdiff completions fish > matdiff.fish    for ~/.config/fish/completions")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of matdiff or of one command: `matdiff man | man -l -`.
    #[command(after_help = "Examples:
  matdiff man > matdiff.1                  matdiff's page
  matdiff man derive > matdiff-derive.1    a command's page")]
    Man {
        /// The command whose page to print (derive, verify, ...); matdiff's own page without it.
        command: Option<String>,
    },
}

/// Languages `plan --emit` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
// The variants are `numpy` (a NumPy function), `pytorch` (a
// torch.autograd.Function) and `jax` (a jax.custom_vjp function); `///` comments on them would become clap's help
// text and change `plan --help`, which docs/cli.md quotes.
#[allow(missing_docs)]
pub enum Emit {
    Numpy,
    Pytorch,
    Jax,
}

impl From<Emit> for crate::plan::Language {
    fn from(e: Emit) -> crate::plan::Language {
        match e {
            Emit::Numpy => crate::plan::Language::Numpy,
            Emit::Pytorch => crate::plan::Language::Pytorch,
            Emit::Jax => crate::plan::Language::Jax,
        }
    }
}

/// How `check --method` compares gradients with finite differences.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
// `auto`, `entries`, `directions`: see numeric::CheckMethod (no `///` here,
// as for Emit: it would change `check --help`).
#[allow(missing_docs)]
pub enum Method {
    Auto,
    Entries,
    Directions,
}

impl From<Method> for CheckMethod {
    fn from(m: Method) -> CheckMethod {
        match m {
            Method::Auto => CheckMethod::Auto,
            Method::Entries => CheckMethod::Entries,
            Method::Directions => CheckMethod::Directions,
        }
    }
}

/// Where a command's program comes from.
#[derive(Args, Debug)]
pub struct Input {
    /// Declarations and expression, `;`-separated (`W : 3x4; W*X`), or `-` for standard input.
    /// An expression may begin with `-` (`-logdet(P) + tr(P*C)`).
    #[arg(allow_hyphen_values = true, value_parser = Utf8(StringValueParser::new()))]
    pub expr: Option<String>,
    /// Read the program from a file.
    #[arg(short = 'f', long = "file", conflicts_with = "expr")]
    pub file: Option<PathBuf>,
}

/// The variables to differentiate by, and the upstream gradient's name.
#[derive(Args, Debug)]
pub struct Target {
    /// A variable to differentiate by (repeatable); default: all of them.
    #[arg(long, value_parser = Utf8(StringValueParser::new()))]
    pub wrt: Vec<String>,
    /// Name of the upstream gradient dL/dZ of a matrix-valued expression.
    #[arg(long, value_parser = Utf8(StringValueParser::new()))]
    pub upstream: Option<String>,
}

/// A value parser for text arguments: `P` on UTF-8 text, and for any other
/// argument (argv is bytes on Unix) an error that names the argument and
/// points at its first byte that is not UTF-8. (clap's own message names
/// neither.)
#[derive(Clone)]
struct Utf8<P>(P);

impl<P: TypedValueParser> TypedValueParser for Utf8<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> std::result::Result<P::Value, clap::Error> {
        if value.to_str().is_some() {
            return self.0.parse_ref(cmd, arg, value);
        }
        let name = arg.map(|a| a.to_string()).unwrap_or_else(|| "an argument".into());
        Err(clap::Error::raw(clap::error::ErrorKind::InvalidUtf8, not_utf8(&name, value)).with_cmd(cmd))
    }
}

/// The message for a non-UTF-8 argument: the argument with its undecodable
/// bytes written `\xNN` (and control characters escaped, so it is one
/// line), and a caret under the first such byte.
fn not_utf8(name: &str, value: &OsStr) -> String {
    let mut shown = String::new();
    let mut caret: Option<(usize, usize)> = None;
    for chunk in value.as_encoded_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                shown.extend(c.escape_debug());
            } else {
                shown.push(c);
            }
        }
        let bad = chunk.invalid();
        if !bad.is_empty() && caret.is_none() {
            caret = Some((shown.chars().count(), 4 * bad.len()));
        }
        for b in bad {
            shown.push_str(&format!("\\x{b:02X}"));
        }
    }
    let (at, width) = caret.unwrap_or((0, 1));
    let first = value.as_encoded_bytes().utf8_chunks().map(|c| c.valid().len()).next().unwrap_or(0);
    let byte = value.as_encoded_bytes().get(first).copied().unwrap_or(0);
    format!(
        "argument {name} is not UTF-8 text: byte 0x{byte:02X} at offset {first}\n  {shown}\n  {}{} not UTF-8\n  \
         = note: arguments are read as UTF-8 text; convert the text to UTF-8 (e.g. with `iconv -t UTF-8`)\n",
        " ".repeat(at),
        "^".repeat(width),
    )
}

fn parse_dims(s: &str) -> std::result::Result<HashMap<String, usize>, String> {
    let mut out = HashMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').ok_or_else(|| format!("`{part}` is not NAME=SIZE"))?;
        let n: usize = value.trim().parse().map_err(|_| format!("`{value}` is not a size"))?;
        if n == 0 || n > 10_000 {
            return Err(format!("size {n} of `{name}` is outside 1..=10000"));
        }
        out.insert(name.trim().to_string(), n);
    }
    Ok(out)
}

/// `X=positive`: a variable and a declared domain.
fn parse_domain(s: &str) -> std::result::Result<(String, DomainSpec), String> {
    let (name, domain) = s.split_once('=').ok_or_else(|| format!("`{s}` is not VARIABLE=DOMAIN"))?;
    let domain = DomainSpec::from_name(domain.trim()).ok_or_else(|| {
        let names: Vec<&str> = DomainSpec::ALL.iter().map(|d| d.name()).collect();
        format!("`{}` is not a domain; the domains are {}", domain.trim(), names.join(", "))
    })?;
    Ok((name.trim().to_string(), domain))
}

/// The `--domain` entries of a command, as variables of the program.
fn domain_map(
    given: Vec<(String, DomainSpec)>,
    program: &syntax::Program,
) -> Result<BTreeMap<VarName, DomainSpec>> {
    let typing = crate::shape::infer(program)?;
    let mut out = BTreeMap::new();
    for (name, domain) in given {
        let mut v = syntax::parse_var(&name)?;
        if v.index.is_none() && typing.families().contains(&v.name) {
            // `--domain W=positive` for the family `W[i]`.
            v.index = Some(syntax::Index::symbol("i"));
        } else if !typing.variables().contains(&v) {
            let known: Vec<String> = typing.variables().iter().map(|v| v.to_string()).collect();
            return Err(Error::new(
                ErrorKind::Usage,
                format!("--domain names `{v}`, which is not a variable of the expression"),
            )
            .note(format!("its variables are: {}", known.join(", "))));
        }
        if domain == DomainSpec::Spd {
            let square = typing.var_shape(&v).is_some_and(|s| s.rows == s.cols);
            if !square {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("--domain {name}=spd, but `{v}` is not square"),
                )
                .note("symmetric positive definite matrices are square"));
            }
        }
        out.insert(v, domain);
    }
    Ok(out)
}

/// Like [`parse_dims`], but sizes only price a plan, so they may be large (B=65536).
fn parse_plan_dims(s: &str) -> std::result::Result<HashMap<String, u64>, String> {
    let mut out = HashMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').ok_or_else(|| format!("`{part}` is not NAME=SIZE"))?;
        let n: u64 = value.trim().parse().map_err(|_| format!("`{value}` is not a size"))?;
        if n == 0 || n > 1 << 40 {
            return Err(format!("size {n} of `{name}` is outside 1..=2^40"));
        }
        out.insert(name.trim().to_string(), n);
    }
    Ok(out)
}

/// Most bytes of a program read from a file or standard input (`-f
/// /dev/zero` read until memory ran out).
pub const MAX_INPUT_BYTES: usize = 64 << 20;

/// Reads `what` (a file or standard input) through [`MAX_INPUT_BYTES`].
fn read_capped(reader: impl Read, what: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::new(ErrorKind::Usage, format!("cannot read {what}: {e}")))?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(Error::new(
            ErrorKind::Limit,
            format!("{what} is longer than the limit of {} MiB of input", MAX_INPUT_BYTES >> 20),
        )
        .note("a program is declarations and one expression; give a smaller one"));
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::new(ErrorKind::Usage, format!("cannot read {what}: stream did not contain valid UTF-8"))
    })
}

/// The program text and a name for it in messages.
#[derive(Default)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Input {
    fn read(&self) -> Result<Source> {
        let usage = |m: String| Error::new(ErrorKind::Usage, m);
        match (&self.expr, &self.file) {
            (Some(e), None) if e == "-" => {
                let text = read_capped(std::io::stdin().lock(), "standard input")?;
                Ok(Source { name: "<stdin>".into(), text })
            }
            (Some(e), None) => Ok(Source { name: "<expr>".into(), text: e.clone() }),
            (None, Some(path)) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
                let text = read_capped(file, &path.display().to_string())?;
                Ok(Source { name: path.display().to_string(), text })
            }
            _ => Err(usage(
                "give the expression as an argument, with -f FILE, or `-` for standard input".into(),
            )),
        }
    }
}

impl Target {
    /// `steps`: whether the derivation steps are shown (else not kept).
    fn options(&self, steps: Steps, control: &Control) -> Result<DeriveOptions> {
        let wrt = self.wrt.iter().map(|w| syntax::parse_var(w)).collect::<Result<Vec<VarName>>>()?;
        Ok(DeriveOptions {
            wrt,
            upstream: self.upstream.clone(),
            steps,
            control: control.clone(),
            ..Default::default()
        })
    }
}

fn run_command(command: Command, control: &Control, source: &mut Source, out: &mut dyn Write) -> Result<i32> {
    let io = |e: std::io::Error| Error::new(ErrorKind::Usage, format!("cannot write output: {e}"));
    match command {
        Command::Derive { input, target, steps, latex, standalone, json, expanded } => {
            *source = input.read()?;
            let mut options = target.options(if steps { Steps::Record } else { Steps::Skip }, control)?;
            if expanded {
                options.sharing = crate::Sharing::Expanded;
            }
            let program = crate::parse(&source.text)?.with_definitions_kept(&options.wrt);
            // Without steps, text and JSON are written as the gradients
            // are derived, when there are too many to name shared parts.
            let derivation = match (steps, latex, json) {
                (false, false, true) => {
                    let mut sink = render::JsonSink::new(out);
                    match crate::derive_streaming(&program, &options, &mut sink)? {
                        Streamed::Parts => return sink.finish().map(|()| 0).map_err(io),
                        Streamed::Whole(d) => *d,
                    }
                }
                (false, false, false) => {
                    let mut sink = render::TextSink::new(out);
                    match crate::derive_streaming(&program, &options, &mut sink)? {
                        Streamed::Parts => return sink.finish().map(|()| 0).map_err(io),
                        Streamed::Whole(d) => *d,
                    }
                }
                _ => crate::derive(&program, &options)?,
            };
            if json {
                render::write_derivation_json(out, &derivation, steps).map_err(io)?;
                return Ok(0);
            }
            let text = match latex {
                true if standalone => render::derivation_document(&derivation, steps),
                true => render::derivation_latex(&derivation, steps),
                false => {
                    render::write_derivation(out, &derivation).map_err(io)?;
                    render::steps_text(&derivation, steps)
                }
            };
            write!(out, "{text}").map_err(io)?;
            Ok(0)
        }
        Command::Verify { input, wrt, claim, upstream, domain, json, order, jacobian } => {
            *source = input.read()?;
            let wrt = wrt.iter().map(|w| syntax::parse_var(w)).collect::<Result<Vec<VarName>>>()?;
            let program = crate::parse(&source.text)?;
            let domains = domain_map(domain, &program)?;
            if wrt.len() > 1 && (order != 2 || wrt.len() > 2) {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("verify takes one --wrt, found {}", wrt.len()),
                )
                .note("two (`--wrt V --wrt U`) only with --order 2, for the mixed second derivative d2L/dV dU^T"));
            }
            if order == 2 || jacobian {
                let kind = if jacobian { Kind::Jacobian } else { Kind::Hessian };
                let s = second::derive_second(&program, kind, &wrt, control)?;
                let (text, ok) = second::verify(&s, &claim, &domains, control, json)?;
                write!(out, "{text}").map_err(io)?;
                return Ok(if ok { 0 } else { 1 });
            }
            let options = crate::verify::VerifyOptions {
                upstream,
                domains,
                control: control.clone(),
                ..Default::default()
            };
            let verdict = crate::verify::verify(&program, &wrt[0], &claim, &options)?;
            write!(out, "{}", render::verdict(&verdict, json)).map_err(io)?;
            Ok(if verdict.equivalent() { 0 } else { 1 })
        }
        Command::Hessian { input, wrt, steps, latex, standalone, json } => {
            *source = input.read()?;
            let wrt = wrt.iter().map(|w| syntax::parse_var(w)).collect::<Result<Vec<VarName>>>()?;
            let program = crate::parse(&source.text)?.with_definitions_kept(&wrt);
            let s = second::derive_second(&program, Kind::Hessian, &wrt, control)?;
            let text = second_text(&program, &s, steps, latex, standalone, json)?;
            write!(out, "{text}").map_err(io)?;
            Ok(0)
        }
        Command::Jacobian { input, wrt, steps, latex, standalone, json } => {
            *source = input.read()?;
            let wrt = syntax::parse_var(&wrt)?;
            let program = crate::parse(&source.text)?.with_definitions_kept(std::slice::from_ref(&wrt));
            let s = second::derive_second(&program, Kind::Jacobian, &[wrt], control)?;
            let text = second_text(&program, &s, steps, latex, standalone, json)?;
            write!(out, "{text}").map_err(io)?;
            Ok(0)
        }
        Command::Latex { input, standalone } => {
            *source = input.read()?;
            let program = crate::parse(&source.text)?;
            crate::shape::infer(&program)?;
            let math = format!("\\[ {} \\]\n", syntax::to_latex(&program.expr));
            write!(out, "{}", render::latex_document(&math, standalone)).map_err(io)?;
            Ok(0)
        }
        Command::Check { input, target, dims, domain, seed, json, order, jacobian, method } => {
            *source = input.read()?;
            let options = target.options(Steps::Skip, control)?;
            let program = crate::parse(&source.text)?.with_definitions_kept(&options.wrt);
            let domains = domain_map(domain, &program)?;
            if order == 2 || jacobian {
                let kind = if jacobian { Kind::Jacobian } else { Kind::Hessian };
                if options.wrt.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        "a second-order check needs the variable: --wrt V",
                    ));
                }
                let s = second::derive_second(&program, kind, &options.wrt, control)?;
                let check = CheckOptions {
                    dims: dims.unwrap_or_default(),
                    seed,
                    domains,
                    method: method.into(),
                    control: control.clone(),
                    ..Default::default()
                };
                let (text, ok) = second::check(&program, &s, &check, json)?;
                write!(out, "{text}").map_err(io)?;
                return Ok(if ok { 0 } else { 1 });
            }
            let derivation = crate::derive(&program, &options)?;
            let report = crate::numeric::check(
                &derivation,
                &CheckOptions {
                    dims: dims.unwrap_or_default(),
                    seed,
                    domains,
                    method: method.into(),
                    control: control.clone(),
                    ..Default::default()
                },
            )?;
            write!(out, "{}", render_check(&report, json)).map_err(io)?;
            Ok(if report.ok() { 0 } else { 1 })
        }
        Command::Plan { input, target, dims, json, emit, name, order, full } => {
            *source = input.read()?;
            let options = target.options(Steps::Skip, control)?;
            let program = crate::parse(&source.text)?.with_definitions_kept(&options.wrt);
            if full && order != 2 {
                return Err(Error::new(ErrorKind::Usage, "--full is the full Hessian of --order 2"));
            }
            if full && matches!(emit, Some(Emit::Pytorch | Emit::Jax)) {
                // Their emitted function is differentiable, its backward the
                // vector-Jacobian product of the variable's shape; a Hessian
                // matrix is not one.
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "the full Hessian is emitted for numpy only: a pytorch or jax plan's backward is a product with the upstream gradient, the Hessian-vector product without --full",
                ));
            }
            if order == 2 {
                if options.wrt.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        "a second-order plan needs the variable: --wrt V",
                    ));
                }
                let s = second::derive_second(&program, Kind::Hessian, &options.wrt, control)?;
                let plan_options = crate::plan::PlanOptions {
                    dims: dims.unwrap_or_default(),
                    control: control.clone(),
                    ..Default::default()
                };
                let form = if full { second::Planned::Matrix } else { second::Planned::Product };
                let text = second::plan(&s, &plan_options, emit, name, json, form)?;
                write!(out, "{text}").map_err(io)?;
                return Ok(0);
            }
            let derivation = crate::derive(&program, &options)?;
            let options = crate::plan::PlanOptions {
                dims: dims.unwrap_or_default(),
                control: control.clone(),
                ..Default::default()
            };
            let output = match (emit, json) {
                (Some(emit), _) => render::PlanOutput::Code { emit: emit.into(), name },
                (None, true) => render::PlanOutput::Json,
                (None, false) => render::PlanOutput::Text,
            };
            let text = render::plan(&derivation, &options, output)?;
            write!(out, "{text}").map_err(io)?;
            Ok(0)
        }
        Command::Repl => Err(Error::new(
            ErrorKind::Usage,
            "the REPL is an interactive session, started by `cli::run`, not a command to execute",
        )),
        Command::Demo { latex } => {
            let (text, ok) = demo::run(latex)?;
            write!(out, "{text}").map_err(io)?;
            Ok(if ok { 0 } else { 1 })
        }
        Command::Completions { shell } => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli, "matdiff", &mut script);
            out.write_all(&script).map_err(io)?;
            Ok(0)
        }
        Command::Man { command } => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            cli.build();
            let page = match command {
                None => cli,
                Some(name) => {
                    let Some(sub) = cli.find_subcommand(&name) else {
                        let names: Vec<String> =
                            cli.get_subcommands().map(|c| c.get_name().to_string()).collect();
                        return Err(Error::new(ErrorKind::Usage, format!("there is no command `{name}`"))
                            .note(format!("the commands are: {}", names.join(", "))));
                    };
                    // Built, a command is displayed `matdiff-derive`: the page's title.
                    sub.clone()
                }
            };
            let mut roff = Vec::new();
            let source = format!("matdiff {}", env!("CARGO_PKG_VERSION"));
            clap_mangen::Man::new(page).source(source).render(&mut roff).map_err(io)?;
            out.write_all(&roff).map_err(io)?;
            Ok(0)
        }
    }
}

/// `hessian` / `jacobian` output in the format asked for.
fn second_text(
    program: &syntax::Program,
    s: &crate::hessian::SecondOrder,
    steps: bool,
    latex: bool,
    standalone: bool,
    json: bool,
) -> Result<String> {
    let format = match (json, latex) {
        (true, _) => second::Format::Json,
        (false, true) => second::Format::Latex,
        (false, false) => second::Format::Text,
    };
    match (format, standalone) {
        (second::Format::Latex, true) => second::document(program, s, steps),
        _ => second::render(program, s, steps, format),
    }
}

impl Command {
    /// Whether the command prints JSON (and so its errors too).
    pub fn json(&self) -> bool {
        match self {
            Command::Derive { json, .. }
            | Command::Verify { json, .. }
            | Command::Check { json, .. }
            | Command::Plan { json, .. }
            | Command::Hessian { json, .. }
            | Command::Jacobian { json, .. } => *json,
            Command::Latex { .. }
            | Command::Repl
            | Command::Demo { .. }
            | Command::Completions { .. }
            | Command::Man { .. } => false,
        }
    }
}

impl Command {
    /// The command's input (`None` for `repl`, `demo`, `completions` and
    /// `man`, which read none).
    pub fn input_mut(&mut self) -> Option<&mut Input> {
        match self {
            Command::Derive { input, .. }
            | Command::Verify { input, .. }
            | Command::Check { input, .. }
            | Command::Plan { input, .. }
            | Command::Hessian { input, .. }
            | Command::Jacobian { input, .. }
            | Command::Latex { input, .. } => Some(input),
            Command::Repl | Command::Demo { .. } | Command::Completions { .. } | Command::Man { .. } => None,
        }
    }
}

/// Parses a command line (the program name first) into a [`Command`].
/// An unknown option gets a suggestion where clap has none (`--wtr`:
/// clap's similarity misses swapped letters).
pub fn parse(args: Vec<OsString>) -> std::result::Result<Command, clap::Error> {
    use clap::error::{ContextKind, ContextValue};
    let subcommand = args.get(1).and_then(|a| a.to_str()).unwrap_or("").to_string();
    Cli::try_parse_from(args).map(|cli| cli.command).map_err(|mut e| {
        let unknown = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg))
                if e.kind() == clap::error::ErrorKind::UnknownArgument
                    && e.get(ContextKind::SuggestedArg).is_none() =>
            {
                Some(arg.clone())
            }
            _ => None,
        };
        if let Some(known) = unknown.and_then(|arg| similar_option(&subcommand, &arg)) {
            e.insert(ContextKind::SuggestedArg, ContextValue::String(known));
        }
        e
    })
}

/// The long options of `subcommand` (`--wrt`, `--steps`, ...), sorted;
/// none for an unknown one.
pub fn long_options(subcommand: &str) -> Vec<String> {
    let cli = <Cli as clap::CommandFactory>::command();
    let mut options: Vec<String> = cli
        .find_subcommand(subcommand)
        .map(|c| c.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect())
        .unwrap_or_default();
    options.sort();
    options
}

/// Whether `arg` (`--wrt`, `--dims=n=3`) is a long option of `subcommand`.
pub fn is_option(subcommand: &str, arg: &str) -> bool {
    let Some(name) = arg.strip_prefix("--").and_then(|a| a.split('=').next()) else { return false };
    let cli = <Cli as clap::CommandFactory>::command();
    let known = cli
        .find_subcommand(subcommand)
        .is_some_and(|c| c.get_arguments().any(|a| a.get_long() == Some(name)));
    known || name == "help"
}

/// The option of `subcommand` most like `arg` (`--wrt` for `--wtr`,
/// `--claim` for `--cliam`): at most two edits, letters swapped counting one.
pub fn similar_option(subcommand: &str, arg: &str) -> Option<String> {
    let name = arg.strip_prefix("--")?.split('=').next()?;
    let cli = <Cli as clap::CommandFactory>::command();
    let command = cli.find_subcommand(subcommand)?;
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|long| (strsim::osa_distance(name, long), long))
        .filter(|(d, long)| *d <= 2.min(long.len() / 2))
        .min()
        .map(|(_, long)| format!("--{long}"))
}

/// Runs a parsed command: its output goes to `out`; an error is reported
/// on `err` (rendered against the program's source) and, for a `--json`
/// command, as a JSON error object on `out`. Returns the exit status: 0,
/// 1 when a check or verification fails, 2 on an error.
pub fn execute(command: Command, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    execute_in(command, &Control::default(), out, err, Style::Plain)
}

/// [`execute`] under `control`, its messages in `style`.
pub(super) fn execute_in(
    command: Command,
    control: &Control,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: Style,
) -> i32 {
    let json = command.json();
    match run(command, control, out) {
        Ok(code) => code,
        Err(f) => report::fail(&f.error, &f.source.name, &f.source.text, json, out, err, style),
    }
}

/// A command that failed: the error, and the program text it is about.
pub(super) struct Failure {
    pub error: Error,
    pub source: Source,
}

/// Runs a parsed command as [`execute`] does, stopping once `control`
/// is interrupted and telling it of its progress; a failure comes back unreported, for the caller to
/// render in its own coordinates (the REPL's).
pub(super) fn run(
    command: Command,
    control: &Control,
    out: &mut dyn Write,
) -> std::result::Result<i32, Box<Failure>> {
    let mut source = Source::default();
    run_command(command, control, &mut source, out).map_err(|error| Box::new(Failure { error, source }))
}
