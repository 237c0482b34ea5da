//! Multiply-add counts as polynomials in the symbolic dimensions.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use std::fmt;
use std::ops::{Add, AddAssign};

use crate::shape::Dim;

/// A count of multiply-adds: a polynomial with non-negative integer
/// coefficients in the symbolic dimensions, a plain number when every
/// dimension is known.
///
/// Coefficients are u128 with checked arithmetic. A count past
/// `u128::MAX` (three sizes near 2^63 multiplied) is not clamped into a
/// wrong number: the cost is marked, prints as `more than
/// 340282366920938463463374607431768211455` (in JSON too, as a string), and
/// is no number ([`Cost::as_number`] is None). Every dimension is at least
/// 1, so a coefficient past the bound puts the whole count past it.
///
/// ```
/// use matdiff::plan::Cost;
/// use matdiff::shape::Dim;
/// let d = |s: &str| Dim::Symbol(s.into());
/// let c = Cost::product(&[d("d0"), d("d1"), d("B")]) + Cost::product(&[d("d1"), d("d0"), d("B")]);
/// assert_eq!(c.to_string(), "2*B*d0*d1");
/// assert_eq!(Cost::product(&[Dim::Const(3), Dim::Const(4), d("n")]).to_string(), "12*n");
/// let huge = Dim::Const(1 << 63);
/// let past = Cost::product(&[huge.clone(), huge.clone(), huge]);
/// assert_eq!(past.to_string(), format!("more than {}", u128::MAX));
/// assert_eq!(past.as_number(), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Monomial (sorted symbol names, repeated for powers) → coefficient.
    terms: BTreeMap<Vec<String>, u128>,
    /// A coefficient went past `u128::MAX`; `terms` is then meaningless.
    overflow: bool,
}

impl Cost {
    /// No multiply-adds.
    pub fn zero() -> Cost {
        Cost::default()
    }

    /// A constant number of multiply-adds.
    pub fn constant(c: u128) -> Cost {
        let mut terms = BTreeMap::new();
        if c != 0 {
            terms.insert(vec![], c);
        }
        Cost { terms, overflow: false }
    }

    /// A count past `u128::MAX`.
    fn overflowed() -> Cost {
        Cost { terms: BTreeMap::new(), overflow: true }
    }

    /// The product of some dimensions: `r·k·c` for a matrix product.
    pub fn product(dims: &[Dim]) -> Cost {
        let mut coefficient: u128 = 1;
        let mut symbols = vec![];
        for d in dims {
            match d {
                Dim::Const(n) => match coefficient.checked_mul(u128::from(*n)) {
                    Some(c) => coefficient = c,
                    None => return Cost::overflowed(),
                },
                d => symbols.push(d.to_string()),
            }
        }
        symbols.sort();
        let mut terms = BTreeMap::new();
        if coefficient != 0 {
            terms.insert(symbols, coefficient);
        }
        Cost { terms, overflow: false }
    }

    /// Whether the count went past `u128::MAX` (then it prints as `more
    /// than` that bound).
    pub fn is_overflow(&self) -> bool {
        self.overflow
    }

    /// The number, when no symbol occurs (and the count did not overflow).
    pub fn as_number(&self) -> Option<u128> {
        if self.overflow {
            return None;
        }
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&vec![]).copied(),
            _ => None,
        }
    }

    /// The polynomial, its first `max` terms only when it has more.
    pub fn brief(&self, max: usize) -> String {
        let full = self.to_string();
        if self.terms.len() <= max {
            return full;
        }
        let shown: Vec<&str> = full.split(" + ").take(max).collect();
        format!("{} + ... ({} terms in all)", shown.join(" + "), self.terms.len())
    }
}

/// A number when it is one that JSON numbers hold exactly (up to
/// u64::MAX), else the text (`more than ...`, or a polynomial, or a larger
/// number as its digits rather than a rounded float).
impl serde::Serialize for Cost {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.as_number().map(u64::try_from) {
            Some(Ok(n)) => serializer.serialize_u64(n),
            _ => serializer.collect_str(self),
        }
    }
}

/// A running count of products of interned dimensions (`[r, k, c]`, or
/// `[r, c, NONE]` for an entrywise operation), turned into a [`Cost`] once:
/// adding up a million products stays cheap.
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    counts: FxHashMap<[u32; 3], u128>,
}

/// No dimension (a factor 1).
pub(super) const NONE: u32 = u32::MAX;

impl Tally {
    pub fn add(&mut self, mut dims: [u32; 3]) {
        dims.sort_unstable();
        *self.counts.entry(dims).or_insert(0) += 1;
    }

    /// The number of distinct products of dimensions (the terms, at most).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, c) in &other.counts {
            *self.counts.entry(*k).or_insert(0) += c;
        }
    }

    /// The polynomial, with `dims` naming the interned dimensions. Built in
    /// bulk (sorted, then merged), since a separate evaluation of a long
    /// chain has a term for every pair of factors.
    pub fn cost(&self, dims: &[Dim]) -> Cost {
        let mut terms: Vec<(Vec<String>, u128)> = Vec::with_capacity(self.counts.len());
        for (key, &count) in &self.counts {
            let mut coefficient = count;
            let mut symbols = Vec::with_capacity(3);
            for &d in key.iter().filter(|&&d| d != NONE) {
                match &dims[d as usize] {
                    Dim::Const(n) => match coefficient.checked_mul(u128::from(*n)) {
                        Some(c) => coefficient = c,
                        None => return Cost::overflowed(),
                    },
                    d => symbols.push(d.to_string()),
                }
            }
            symbols.sort();
            if coefficient != 0 {
                terms.push((symbols, coefficient));
            }
        }
        terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut merged: Vec<(Vec<String>, u128)> = Vec::with_capacity(terms.len());
        for (m, c) in terms {
            match merged.last_mut() {
                Some((last, total)) if *last == m => match total.checked_add(c) {
                    Some(t) => *total = t,
                    None => return Cost::overflowed(),
                },
                _ => merged.push((m, c)),
            }
        }
        Cost { terms: merged.into_iter().collect(), overflow: false }
    }
}

impl Add for Cost {
    type Output = Cost;
    fn add(mut self, other: Cost) -> Cost {
        self += other;
        self
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        if self.overflow || other.overflow {
            *self = Cost::overflowed();
            return;
        }
        for (m, c) in other.terms {
            let e = self.terms.entry(m).or_insert(0);
            match e.checked_add(c) {
                Some(sum) => *e = sum,
                None => {
                    *self = Cost::overflowed();
                    return;
                }
            }
        }
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(iter: I) -> Cost {
        iter.fold(Cost::zero(), |a, b| a + b)
    }
}

/// A term as printed: its coefficient (none when 1 beside symbols) and its
/// symbols, each with its power.
type PrintedTerm<'a> = (Option<u128>, Vec<(&'a str, usize)>);

impl Cost {
    /// The terms in print order (highest degree first), each its
    /// coefficient (`None` when 1 and the term has symbols) and its symbols
    /// with their powers: the one reading of the polynomial that the text
    /// and LaTeX printers format.
    fn printed_terms(&self) -> Vec<PrintedTerm<'_>> {
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        terms
            .into_iter()
            .map(|(monomial, &c)| {
                let mut powers = vec![];
                let mut i = 0;
                while i < monomial.len() {
                    let run = monomial[i..].iter().take_while(|s| **s == monomial[i]).count();
                    powers.push((monomial[i].as_str(), run));
                    i += run;
                }
                ((c != 1 || monomial.is_empty()).then_some(c), powers)
            })
            .collect()
    }

    /// As LaTeX math, terms as [`Display`](fmt::Display) orders them:
    /// `3 B d_{j-1} d_{j}`, `d_{1}^{2}`; at most `max` terms, then how many.
    pub fn latex(&self, max: usize) -> String {
        if self.overflow {
            return format!("> {}", u128::MAX);
        }
        if self.terms.is_empty() {
            return "0".to_string();
        }
        let symbol = |s: &str| match crate::syntax::parse_var(s) {
            Ok(v) => crate::syntax::var_latex(&v),
            Err(_) => format!(r"\mathit{{{}}}", s.replace('_', r"\_")),
        };
        let terms = self.printed_terms();
        let mut out: Vec<String> = vec![];
        for (c, powers) in terms.iter().take(max) {
            let mut parts: Vec<String> = c.iter().map(u128::to_string).collect();
            for &(s, run) in powers {
                let s = symbol(s);
                parts.push(if run == 1 { s } else { format!("{{{s}}}^{{{run}}}") });
            }
            out.push(parts.join(r" \, "));
        }
        if terms.len() > max {
            out.push(format!(r"\dots \text{{ ({} terms in all)}}", terms.len()));
        }
        out.join(" + ")
    }
}

impl fmt::Display for Cost {
    /// Highest degree first; `d1^2` for a repeated symbol.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.overflow {
            return write!(f, "more than {}", u128::MAX);
        }
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        for (k, (c, powers)) in self.printed_terms().into_iter().enumerate() {
            if k > 0 {
                f.write_str(" + ")?;
            }
            let mut parts: Vec<String> = c.iter().map(u128::to_string).collect();
            for (s, run) in powers {
                parts.push(if run == 1 { s.to_string() } else { format!("{s}^{run}") });
            }
            f.write_str(&parts.join("*"))?;
        }
        Ok(())
    }
}
