//! Dimensions and shapes as the user sees them, after inference.

use std::fmt;

use crate::syntax::Index;

/// One dimension: a number, a symbol (`d0`, `B`), or a member of an indexed
/// family of symbols (`d[j-1]`). `Unknown` is a dimension inference left
/// open, such as the size of a lone `I`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// A known size.
    Const(u64),
    /// A symbolic size.
    Symbol(String),
    /// A member of a family of sizes: `d[j-1]` is `Indexed("d", j-1)`.
    Indexed(String, Index),
    /// A size inference left open, numbered; printed `?k`.
    Unknown(u32),
}

impl Dim {
    /// Replaces the index symbol `var` by `value` inside an indexed
    /// dimension; an error when the index leaves the range of [`Index`].
    pub fn subst(&self, var: &str, value: &Index) -> crate::Result<Dim> {
        Ok(match self {
            Dim::Indexed(name, i) => Dim::Indexed(name.clone(), i.subst(var, value)?),
            d => d.clone(),
        })
    }
}

impl Dim {
    /// The product of two sizes where [`Dim`] can write it: of two numbers,
    /// or with a factor 1 (`kron`, `vec`); `None` for symbolic products.
    pub fn times(&self, other: &Dim) -> Option<Dim> {
        match (self, other) {
            (Dim::Const(1), d) | (d, Dim::Const(1)) => Some(d.clone()),
            (Dim::Const(a), Dim::Const(b)) => a.checked_mul(*b).map(Dim::Const),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Const(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Indexed(s, i) => write!(f, "{s}[{i}]"),
            Dim::Unknown(k) => write!(f, "?{k}"),
        }
    }
}

/// The shape of a matrix; scalars are 1×1.
///
/// ```
/// use matdiff::shape::{Dim, Shape};
/// let s = Shape::new(Dim::Const(3), Dim::Symbol("n".into()));
/// assert_eq!(s.to_string(), "3 x n");
/// assert_eq!(Shape::scalar().to_string(), "1x1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// The number of rows.
    pub rows: Dim,
    /// The number of columns.
    pub cols: Dim,
}

impl Shape {
    /// The shape `rows` × `cols`.
    pub fn new(rows: Dim, cols: Dim) -> Shape {
        Shape { rows, cols }
    }

    /// The shape 1×1.
    pub fn scalar() -> Shape {
        Shape::new(Dim::Const(1), Dim::Const(1))
    }

    /// Known to be 1×1: such a value multiplies and broadcasts as a scalar.
    pub fn is_scalar(&self) -> bool {
        self.rows == Dim::Const(1) && self.cols == Dim::Const(1)
    }

    /// Whether `self * other` is a scalar multiple rather than a matrix
    /// product: the inner dimensions differ and a side is 1×1.
    pub fn scales(&self, other: &Shape) -> bool {
        self.cols != other.rows && (self.is_scalar() || other.is_scalar())
    }

    /// The shape with rows and columns swapped.
    pub fn transposed(&self) -> Shape {
        Shape::new(self.cols.clone(), self.rows.clone())
    }

    /// The shape of `diag(x)` for x of this shape: a vector's diagonal
    /// matrix (1×1 is its own), else the column of a square matrix's
    /// diagonal (shape inference has checked that it is square).
    pub fn diag(&self) -> Shape {
        let one = Dim::Const(1);
        if self.cols == one {
            Shape::new(self.rows.clone(), self.rows.clone())
        } else if self.rows == one {
            Shape::new(self.cols.clone(), self.cols.clone())
        } else {
            Shape::new(self.rows.clone(), one)
        }
    }
}

/// A dimension as data: an integer when known, its text otherwise (`"d0"`, `"d[i-1]"`).
impl serde::Serialize for Dim {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Dim::Const(n) => n.serialize(serializer),
            d => serializer.collect_str(d),
        }
    }
}

/// A shape as data: `[rows, cols]`, each a [`Dim`].
impl serde::Serialize for Shape {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.rows, &self.cols).serialize(serializer)
    }
}

impl fmt::Display for Shape {
    /// `3x4` when both are numbers, `d0 x d1` otherwise: the declaration syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.rows, &self.cols) {
            (Dim::Const(r), Dim::Const(c)) => write!(f, "{r}x{c}"),
            (r, c) => write!(f, "{r} x {c}"),
        }
    }
}
