//! Display math for the page: a formula as [`to_latex`](super::to_latex)
//! writes it, with delimiters sized as a textbook sizes them and broken
//! into lines that fit a given width.
//!
//! `to_latex` brackets with `\left( … \right)`, which TeX cannot break and
//! which grow with any superscript inside. Here each bracket gets a fixed
//! size from what it holds: plain around a leaf, `\bigl( … \bigr)` around
//! one level of brackets, `\Bigl`, `\biggl`, `\Biggl` further out; brackets
//! around a fraction, a root or a product with limits keep `\left … \right`
//! unless a line break falls inside them. Lines break at the spaces the
//! printer writes: before a `+` or `-` where possible, else before `\odot`,
//! `\oslash`, after a comma, between factors; at the shallowest bracket
//! depth that fills a fair share of the line. Every line is complete LaTeX
//! on its own (sized delimiters need no partner), so each can be a row of
//! an `align*`.
//!
//! Widths are estimated in *units*, about the width of an italic letter at
//! the body size (an em is two units).

/// A piece of the formula, in order.
#[derive(Clone, Debug)]
enum Item {
    /// Text with no break inside, and its estimated width.
    Text(String, f64),
    /// An opening delimiter of group k (`(`, `\|` or `|`).
    Open(usize),
    /// The closing delimiter of group k.
    Close(usize),
    /// A space where a line may break: the bracket depth, and how good a
    /// place it is (lower is better).
    Break { depth: usize, rank: u8 },
}

/// A bracketed group.
#[derive(Clone, Debug)]
struct Group {
    open: String,
    close: String,
    /// Holds a fraction, root or product with limits (or a group that
    /// does): its height is not known here.
    tall: bool,
    /// Its size: 0 plain, 1 `\big` … 4 `\Bigg`; `None` for `\left`/`\right`.
    size: Option<usize>,
}

/// The formula's lines, each at most `width` units wide where a break
/// allows, delimiters sized (see the module's documentation).
///
/// ```
/// use matdiff::syntax::{latex_lines, parse_expr, to_latex};
/// let e = parse_expr("tr((W1 * X)^T * G)").unwrap();
/// assert_eq!(latex_lines(&to_latex(&e), 60.0), vec![r"\operatorname{tr}\bigl((W_{1} X)^{\top} G\bigr)"]);
/// let long = parse_expr("A1*B1 + A2*B2 + A3*B3 + A4*B4 + A5*B5 + A6*B6").unwrap();
/// assert_eq!(latex_lines(&to_latex(&long), 20.0).len(), 3);
/// ```
pub fn latex_lines(latex: &str, width: f64) -> Vec<String> {
    let (items, mut groups) = scan(latex);
    let breaks = choose_breaks(&items, width);
    size_groups(&items, &mut groups, &breaks);
    let mut lines = vec![];
    let mut line = String::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Text(t, _) if t.contains("\\left") => line.push_str(&bracket_spacing(t)),
            Item::Text(t, _) => line.push_str(t),
            Item::Open(k) => line.push_str(&delimiter(&groups[*k], Side::Open)),
            Item::Close(k) => line.push_str(&delimiter(&groups[*k], Side::Close)),
            Item::Break { .. } if breaks.contains(&i) => {
                lines.push(std::mem::take(&mut line));
                // A binary operator opening a line needs an operand before
                // it to keep its spacing.
                if let Some(Item::Text(next, _)) = items.get(i + 1) {
                    if is_operator(next) {
                        line.push_str("{} ");
                    }
                }
            }
            Item::Break { .. } => line.push(' '),
        }
    }
    lines.push(line);
    lines
}

/// `\left( … \right)` left as written (inside an argument, where no line
/// breaks) spaced as brackets: `\mathopen{}\left( … \right)\mathclose{}`.
fn bracket_spacing(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(i) = rest.find(['\\']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if rest.starts_with("\\left") && delimiter_at(&rest[5..]).is_some() {
            out.push_str("\\mathopen{}\\left");
            rest = &rest[5..];
        } else if let Some(d) = rest.strip_prefix("\\right").and_then(delimiter_at) {
            out.push_str(&format!("\\right{d}\\mathclose{{}}"));
            rest = &rest[6 + d.len()..];
        } else {
            // Any other command, or an escaped character, as it is.
            let len = 1 + rest[1..].chars().next().map_or(0, char::len_utf8);
            out.push_str(&rest[..len]);
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    out
}

/// The estimated width of LaTeX math, in units (see the module).
pub fn latex_width(latex: &str) -> f64 {
    let (items, _) = scan(latex);
    items
        .iter()
        .map(|i| match i {
            Item::Text(_, w) => *w,
            Item::Open(_) | Item::Close(_) => DELIMITER,
            Item::Break { .. } => 0.0,
        })
        .sum()
}

/// A delimiter's width, in units: a little more than a plain one's, for
/// the larger sizes.
const DELIMITER: f64 = 1.0;

#[derive(Clone, Copy)]
enum Side {
    Open,
    Close,
}

fn delimiter(g: &Group, side: Side) -> String {
    let d = match side {
        Side::Open => &g.open,
        Side::Close => &g.close,
    };
    match (g.size, side) {
        // `\mathopen{}`, `\mathclose{}`: spaced as a bracket, not as an inner
        // formula (`\operatorname{sum}\left(` would take a space).
        (None, Side::Open) => format!("\\mathopen{{}}\\left{d}"),
        (None, Side::Close) => format!("\\right{d}\\mathclose{{}}"),
        // Bars as delimiters, not as relations.
        (Some(0), _) => match (d.as_str(), side) {
            ("|", Side::Open) => "\\lvert ".to_string(),
            ("|", Side::Close) => "\\rvert ".to_string(),
            ("\\|", Side::Open) => "\\lVert ".to_string(),
            ("\\|", Side::Close) => "\\rVert ".to_string(),
            _ => d.clone(),
        },
        (Some(n), side) => {
            let size = ["big", "Big", "bigg", "Bigg"][n.min(4) - 1];
            let lr = match side {
                Side::Open => 'l',
                Side::Close => 'r',
            };
            format!("\\{size}{lr}{d}")
        }
    }
}

/// Text that stands between two operands.
fn is_operator(t: &str) -> bool {
    matches!(t, "+" | "-" | "=" | "\\odot" | "\\oslash" | "\\cdot" | "\\times" | "\\ni")
}

/// How good a break before `next` is: before a sum's sign best, then
/// before an entrywise operator, then after a comma, then between factors.
fn rank(prev: Option<&Item>, next: &str) -> u8 {
    match next {
        "+" | "-" => 0,
        "\\odot" | "\\oslash" | "\\cdot" => 1,
        _ => match prev {
            Some(Item::Text(t, _)) if t.ends_with(',') => 2,
            _ => 3,
        },
    }
}

/// Reads the LaTeX into items and groups: `\left`/`\right` pairs are
/// groups, spaces between operands are breaks, anything in braces is text.
fn scan(latex: &str) -> (Vec<Item>, Vec<Group>) {
    let mut items: Vec<Item> = vec![];
    let mut groups: Vec<Group> = vec![];
    let mut open: Vec<usize> = vec![];
    let mut text = String::new();
    let b = latex.as_bytes();
    let mut i = 0;
    // Braces that group a base (`{X^{\top}}^{-1}`), not a command's
    // argument: scanned through, for the brackets inside, but no line
    // breaks inside them.
    let mut base_braces = 0usize;
    let flush = |text: &mut String, items: &mut Vec<Item>| {
        if !text.is_empty() {
            let w = text_width(text);
            items.push(Item::Text(std::mem::take(text), w));
        }
    };
    while i < b.len() {
        let rest = &latex[i..];
        if let Some(after) = rest.strip_prefix("\\left") {
            if let Some(d) = delimiter_at(after) {
                flush(&mut text, &mut items);
                groups.push(Group { open: d.to_string(), close: String::new(), tall: false, size: Some(0) });
                open.push(groups.len() - 1);
                items.push(Item::Open(groups.len() - 1));
                i += 5 + d.len();
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("\\right") {
            if let (Some(d), Some(k)) = (delimiter_at(after), open.pop()) {
                flush(&mut text, &mut items);
                groups[k].close = d.to_string();
                items.push(Item::Close(k));
                i += 6 + d.len();
                continue;
            }
        }
        match b[i] {
            b' ' if base_braces > 0 => {
                text.push(' ');
                i += 1;
            }
            b'}' if base_braces > 0 => {
                text.push('}');
                base_braces -= 1;
                i += 1;
            }
            b'{' if text.is_empty() || text.ends_with(' ') => {
                text.push('{');
                base_braces += 1;
                i += 1;
            }
            b' ' => {
                flush(&mut text, &mut items);
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                // A break goes before an operator, not after it: glue the
                // operator to its right operand.
                let after_operator = matches!(items.last(), Some(Item::Text(t, _)) if is_operator(t));
                if after_operator || i >= b.len() || matches!(items.last(), None | Some(Item::Break { .. })) {
                    text.push(' ');
                    continue;
                }
                let next = token_at(&latex[i..]).unwrap_or("");
                let rank = rank(items.last(), next);
                items.push(Item::Break { depth: open.len(), rank });
                continue;
            }
            b'{' => {
                let end = matching_brace(latex, i);
                text.push_str(&latex[i..end]);
                i = end;
            }
            b'\\' => {
                let name_len =
                    latex[i + 1..].find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(latex.len() - i - 1);
                let len = if name_len == 0 {
                    1 + latex[i + 1..].chars().next().map_or(0, char::len_utf8)
                } else {
                    1 + name_len
                };
                text.push_str(&latex[i..i + len]);
                i += len;
                // `\prod_{i=1}^{n} W_{i}`: the limits and the body stay together.
                if &latex[i - len..i] == "\\prod" {
                    while i < b.len() && (b[i] == b'_' || b[i] == b'^') {
                        text.push(b[i] as char);
                        i += 1;
                        if i < b.len() && b[i] == b'{' {
                            let end = matching_brace(latex, i);
                            text.push_str(&latex[i..end]);
                            i = end;
                        }
                    }
                    while i < b.len() && b[i] == b' ' {
                        i += 1;
                    }
                    text.push(' ');
                }
            }
            _ => {
                let c = rest.chars().next().expect("not at the end");
                text.push(c);
                i += c.len_utf8();
            }
        }
    }
    flush(&mut text, &mut items);
    // A group is tall when its text is, or a group inside it is.
    let mut stack: Vec<bool> = vec![];
    for item in &items {
        match item {
            Item::Open(_) => stack.push(false),
            Item::Close(k) => {
                let tall = stack.pop().unwrap_or(false);
                groups[*k].tall = tall;
                if let Some(outer) = stack.last_mut() {
                    *outer |= tall;
                }
            }
            Item::Text(t, _) => {
                if let Some(top) = stack.last_mut() {
                    *top |= ["\\frac", "\\sqrt", "\\prod", "\\sum"].iter().any(|c| t.contains(c));
                }
            }
            Item::Break { .. } => {}
        }
    }
    // An unclosed group (not from the printer) keeps its `\left`.
    for k in open {
        groups[k].size = None;
        groups[k].close = ".".to_string();
    }
    (items, groups)
}

/// The token at the start of `s`, if it is an operator.
fn token_at(s: &str) -> Option<&str> {
    ["+", "-", "=", "\\odot", "\\oslash", "\\cdot", "\\times", "\\ni"]
        .into_iter()
        .find(|op| s.starts_with(op) && s[op.len()..].starts_with(' '))
}

/// The delimiter after `\left` or `\right`, as written.
fn delimiter_at(s: &str) -> Option<&str> {
    ["\\|", "(", ")", "|", "[", "]", "."].into_iter().find(|d| s.starts_with(d))
}

/// The end (exclusive) of the braced group opening at `start`.
fn matching_brace(s: &str, start: usize) -> usize {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1, // `\{` and `\}` do not count
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The width of unbreakable text, in units (a lowercase italic letter,
/// 5.5 pt at 11 pt): capitals 1.6, scripts at 0.7, binary operators and
/// relations with their spacing, upright words by their letters.
fn text_width(t: &str) -> f64 {
    let mut w = 0.0;
    let mut chars = t.char_indices().peekable();
    // The braced argument at the cursor, consumed.
    let arg = |chars: &mut std::iter::Peekable<std::str::CharIndices>| -> String {
        match chars.peek() {
            Some(&(j, '{')) => {
                let end = matching_brace(t, j);
                while chars.peek().is_some_and(|&(k, _)| k < end) {
                    chars.next();
                }
                t[j + 1..end - 1].to_string()
            }
            Some(&(j, c)) => {
                chars.next();
                t[j..j + c.len_utf8()].to_string()
            }
            None => String::new(),
        }
    };
    while let Some((i, c)) = chars.next() {
        w += match c {
            '\\' => {
                let alpha = t[i + 1..].chars().take_while(|c| c.is_ascii_alphabetic()).count();
                let name =
                    if alpha > 0 { &t[i + 1..i + 1 + alpha] } else { t[i + 1..].get(..1).unwrap_or("") };
                for _ in 0..name.chars().count() {
                    chars.next();
                }
                match name {
                    "operatorname" | "mathrm" | "text" => {
                        arg(&mut chars).chars().filter(|c| c.is_alphanumeric()).count() as f64 * 0.85
                    }
                    "mathit" | "mathbf" => text_width(&arg(&mut chars)),
                    "frac" => {
                        let (a, b) = (arg(&mut chars), arg(&mut chars));
                        text_width(&a).max(text_width(&b)) + 0.6
                    }
                    "sqrt" => text_width(&arg(&mut chars)) + 1.8,
                    "underset" | "overset" => {
                        let (a, b) = (arg(&mut chars), arg(&mut chars));
                        (0.7 * text_width(&a)).max(text_width(&b))
                    }
                    "mathbb" | "mathcal" => {
                        arg(&mut chars);
                        1.5
                    }
                    "top" => 1.4,
                    "circ" => 0.9,
                    "odot" | "oslash" | "cdot" | "times" => 2.5,
                    "ni" | "in" | "le" => 2.8,
                    "dots" | "ldots" | "cdots" => 2.5,
                    "prod" | "sum" => 2.6,
                    "," => 0.3,
                    " " => 0.6,
                    "quad" => 2.0,
                    "qquad" => 4.0,
                    "left" | "right" | "bigl" | "bigr" | "Bigl" | "Bigr" | "biggl" | "biggr" | "Biggl"
                    | "Biggr" => 0.0,
                    "lVert" | "rVert" | "|" => 1.0,
                    "lvert" | "rvert" | "_" | "{" | "}" => 0.6,
                    name if GREEK_LIKE.contains(&name) => 1.2,
                    name => name.len() as f64 * 0.9, // \tanh, \exp, \det
                }
            }
            '^' | '_' => 0.7 * text_width(&arg(&mut chars)),
            '{' | '}' | ' ' => 0.0,
            '+' | '-' => 2.4,
            '=' => 2.8,
            '(' | ')' | '|' => 0.8,
            ',' => 0.9,
            c if c.is_ascii_uppercase() => 1.6,
            c if c.is_ascii_digit() => 1.0,
            _ => 1.05,
        };
    }
    w
}

/// Commands that print one letter-wide symbol, however long their names.
const GREEK_LIKE: [&str; 18] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "lambda", "mu", "nu", "rho", "sigma", "tau", "theta",
    "phi", "psi", "omega", "eta", "kappa", "partial",
];

/// Where the lines break (indices of `Break` items): from each line's
/// start, among the breaks that keep the line within `width`, the
/// shallowest, then best-ranked, then latest; a break that leaves the line
/// under 40% full only when no other fits.
fn choose_breaks(items: &[Item], width: f64) -> Vec<usize> {
    let widths: Vec<f64> = items
        .iter()
        .map(|i| match i {
            Item::Text(_, w) => *w,
            Item::Open(_) | Item::Close(_) => DELIMITER,
            Item::Break { .. } => 0.0,
        })
        .collect();
    let mut breaks = vec![];
    let mut start = 0;
    loop {
        let mut used = 0.0;
        let mut best: Option<(usize, (bool, usize, u8))> = None;
        let mut first_beyond = None;
        let mut end = None;
        for (i, item) in items.iter().enumerate().skip(start) {
            used += widths[i];
            if let Item::Break { depth, rank } = item {
                if used > width {
                    first_beyond = Some(i);
                    break;
                }
                // Keys compare as "smaller is better"; `>=` keeps the latest.
                let key = (used < 0.4 * width, *depth, *rank);
                if best.as_ref().is_none_or(|(_, k)| key <= *k) {
                    best = Some((i, key));
                }
            }
            if i + 1 == items.len() {
                end = Some(used);
            }
        }
        match (end, best, first_beyond) {
            (Some(used), _, _) if used <= width => return breaks,
            (_, Some((i, _)), _) => {
                breaks.push(i);
                start = i + 1;
            }
            (_, None, Some(i)) => {
                breaks.push(i);
                start = i + 1;
            }
            _ => return breaks,
        }
    }
}

/// Gives each group its size: `\left`/`\right` for a tall group no break
/// falls in; else one more than the largest group inside (a tall one
/// counting as two), plain for a leaf.
fn size_groups(items: &[Item], groups: &mut [Group], breaks: &[usize]) {
    // Which groups a break falls in: those open at a chosen break.
    let mut open: Vec<usize> = vec![];
    let mut broken = vec![false; groups.len()];
    let mut inner: Vec<usize> = vec![]; // per open group, the largest size inside, plus one
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Open(k) => {
                open.push(*k);
                inner.push(0);
            }
            Item::Close(k) => {
                open.pop();
                let level = inner.pop().unwrap_or(0);
                let g = &mut groups[*k];
                if g.size.is_none() {
                    continue; // unclosed: kept as written
                }
                // Sizes grow with the nesting up to `\Big` (`\bigg` where a
                // line breaks inside): past that, size no longer helps the eye.
                let counts_as = if g.tall && !broken[*k] {
                    g.size = None;
                    2
                } else {
                    let size = if broken[*k] { level.clamp(1, 3) } else { level.min(2) };
                    g.size = Some(size);
                    size
                };
                if let Some(outer) = inner.last_mut() {
                    *outer = (*outer).max(counts_as + 1);
                }
            }
            Item::Break { .. } if breaks.contains(&i) => {
                for k in &open {
                    broken[*k] = true;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{parse_expr, to_latex};

    fn lines(src: &str, width: f64) -> Vec<String> {
        latex_lines(&to_latex(&parse_expr(src).unwrap()), width)
    }

    #[test]
    fn brackets_are_sized_by_what_they_hold() {
        assert_eq!(lines("(A * B)^T", 80.0), vec![r"(A B)^{\top}"]);
        assert_eq!(lines("tr((A * B)^T * C)", 80.0), vec![r"\operatorname{tr}\bigl((A B)^{\top} C\bigr)"]);
        assert_eq!(
            lines("tr(((A * B)^T * C)^T)", 80.0),
            vec![r"\operatorname{tr}\Bigl(\bigl((A B)^{\top} C\bigr)^{\top}\Bigr)"]
        );
        // Past `\Big`, nesting no longer grows the brackets.
        assert_eq!(
            lines("tr((((A * B)^T * C)^T * D)^T)", 80.0),
            vec![r"\operatorname{tr}\Bigl(\Bigl(\bigl((A B)^{\top} C\bigr)^{\top} D\Bigr)^{\top}\Bigr)"]
        );
        assert_eq!(lines("norm(A - B)", 80.0), vec![r"\lVert A - B\rVert _{F}"]);
        // Inside an argument, brackets keep their sizes and get a bracket's spacing.
        assert_eq!(
            lines("(tr(A) + 1) / s", 80.0),
            vec![r"\frac{\operatorname{tr}\mathopen{}\left(A\right)\mathclose{} + 1}{s}"]
        );
        // Inside the braces of a base too.
        assert_eq!(
            lines("tr(((A * B)^T)^T)", 80.0),
            vec![r"\operatorname{tr}\bigl({(A B)^{\top}}^{\top}\bigr)"]
        );
        // A fraction inside: TeX sizes the brackets.
        assert_eq!(
            lines("tr(A / s)", 80.0),
            vec![r"\operatorname{tr}\mathopen{}\left(\frac{A}{s}\right)\mathclose{}"]
        );
    }

    #[test]
    fn long_sums_break_before_their_signs() {
        let l = lines("A1*B1 + A2*B2 - A3*B3 + A4*B4", 17.0);
        assert_eq!(l.len(), 2, "{l:?}");
        assert!(l[1].starts_with("{} - ") || l[1].starts_with("{} + "), "{l:?}");
    }

    #[test]
    fn a_break_inside_brackets_sizes_them() {
        let l = lines("tr((A1*B1 + A2*B2 + A3*B3 + A4*B4) * C)", 24.0);
        assert!(l.len() >= 2, "{l:?}");
        assert!(l[0].starts_with(r"\operatorname{tr}\Bigl(\bigl("), "{l:?}");
        assert!(l.last().unwrap().ends_with(r"\bigr) C\Bigr)"), "{l:?}");
        for line in &l {
            assert!(!line.contains("\\left") && !line.contains("\\right"), "{line}");
        }
    }

    #[test]
    fn every_line_fits_where_a_break_allows() {
        let src =
            "tanh(W1*X1 + W2*X2 + W3*X3) .* sigmoid(W4*X4 + W5*X5 + W6*X6) .* exp(A1*A2*A3*A4*A5*A6*A7*A8)";
        for line in lines(src, 20.0) {
            assert!(latex_width(&line) <= 22.0, "{line}");
        }
    }
}
