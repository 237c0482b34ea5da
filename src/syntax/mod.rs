//! Syntax: the grammar (`grammar/matdiff.pest`), the AST with spans, the
//! text printer (whose output re-parses to the same tree) and LaTeX.

mod ast;
mod latex;
mod latex_lines;
mod parser;
mod printer;

pub use ast::{
    BinOp, Declaration, Definition, DimSpec, DomainSpec, Expr, ExprKind, Func, Index, Kids, Prod, Program,
    ShapeSpec, Span, VarName, MAX_INDEX_COEFFICIENT, MAX_INDEX_CONSTANT,
};
pub use latex::{index_latex, to_latex, var_latex};
pub use latex_lines::{latex_lines, latex_width};
pub use parser::{function_names, parse_expr, parse_program, parse_var, unfinished, MAX_NESTING, MAX_NODES};
pub use printer::format_number;
pub(crate) use printer::{exact_minus_one, prec, Prec};
