//! matdiff: a symbolic matrix-calculus engine.
//!
//! The pipeline, one module per stage, data flowing forward:
//! [`syntax`] (grammar, AST, printers) → [`shape`] (inference) →
//! [`calculus`] (differentials) → [`simplify`] (normal form) → [`numeric`]
//! (evaluation, finite differences) → front ends (`cli`, the command line
//! and the REPL, behind the default cargo feature `cli`; without it the
//! crate is the engine alone, and knows nothing of terminals; the browser's
//! front end, web/wasm, is a package of its own on top of that engine).
//! [`derive()`] runs the stages from a parsed program to simplified gradients.
//! Results and errors are data: they implement `serde::Serialize`
//! (docs/json.md).
//!
//! ```
//! let program = matdiff::syntax::parse_program("W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; W1*W2*W3*X").unwrap();
//! let d = matdiff::derive(&program, &Default::default()).unwrap();
//! assert_eq!(d.gradients[1].expr.to_string(), "W1^T * G * X^T * W3^T");
//! assert_eq!(d.gradients[1].shape.to_string(), "4x5");
//! ```

#![warn(missing_docs)]

pub mod calculus;
#[cfg(feature = "cli")]
pub mod cli;
mod clock;
mod control;
mod derive;
mod error;
pub mod explain;
pub mod hessian;
pub mod numeric;
pub mod plan;
mod serialize;
pub mod shape;
pub mod simplify;
mod stack;
pub mod syntax;
pub mod verify;

pub use calculus::Steps;
pub use control::{Control, Progress};
pub use derive::{
    derive, derive_streaming, parse, share, Derivation, DeriveOptions, Gradient, GradientSink, Shared,
    SharedName, Sharing, Streamed, MAX_NAMES, MAX_SHARED_NODES, MAX_TOTAL_NODES, MIN_SAVING,
};
pub use error::{Error, ErrorKind, Hint, Label, Result};
