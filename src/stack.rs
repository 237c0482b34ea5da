//! Stack for the recursive walks over expression trees.
//!
//! Every stage walks trees recursively, one frame (or a few) per level, and
//! a tree nests as deep as its input: a 10 000-term sum is 10 000 levels. A
//! walk that calls [`ensure`] at each level runs on the caller's stack while
//! it has room and continues on a fresh segment from the heap when it does
//! not (rustc's `ensure_sufficient_stack`), so depth is limited by memory,
//! never by the thread matdiff happens to run on.

/// Room a walk may use between two calls of [`ensure`]; debug builds' frames
/// are the large ones.
const RED_ZONE: usize = 256 * 1024;

/// Size of each further segment.
const SEGMENT: usize = 4 * 1024 * 1024;

/// Runs `f`, first moving to a new stack segment when this one is nearly
/// full. Call it once per level of a recursive walk.
///
/// ```ignore
/// fn depth(e: &Expr) -> usize {
///     stack::ensure(|| 1 + e.children().map(depth).max().unwrap_or(0))
/// }
/// ```
#[inline]
pub(crate) fn ensure<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}

/// Runs `f`, which recurses `levels` deep in code that cannot call
/// [`ensure`] (pest's Pratt parser recurses once per prefix operator), on a
/// stack with room for that many levels of `per_level` bytes.
pub(crate) fn ensure_levels<R>(levels: usize, per_level: usize, f: impl FnOnce() -> R) -> R {
    let need = levels.saturating_mul(per_level).saturating_add(RED_ZONE);
    match stacker::remaining_stack() {
        Some(left) if left < need => stacker::grow(need.saturating_add(SEGMENT), f),
        _ => f(),
    }
}
