//! A strict reader of the LaTeX matdiff prints, for tests: it reads
//! formulas as a person reads them (juxtaposition is a product, `A -B` a
//! difference) and refuses what has no agreed reading (a juxtaposed
//! product beside `\odot` without brackets), so that a printer that drops
//! a bracket is caught. It returns a bracket tree (`Tree`) to compare with
//! the one [`tree`] makes of the expression.

use matdiff::syntax::{format_number, var_latex, Expr, ExprKind, Func};

/// An expression's structure, with the leaves as LaTeX.
#[derive(Clone, Debug, PartialEq)]
pub enum Tree {
    Leaf(String),
    Num(String),
    Neg(Box<Tree>),
    Bin(&'static str, Box<Tree>, Box<Tree>),
    /// A superscript: `T`, `-T`, an integer power, or `o` and an exponent.
    Sup(String, Box<Tree>),
    Call(String, Box<Tree>),
    Prod(String, String, Box<Tree>),
}

fn escape(text: &str) -> String {
    text.replace('_', "\\_")
}

/// The tree of `e` as the LaTeX printer should write it: a negative
/// literal is a negation, the transposed inverse one node.
pub fn tree(e: &Expr) -> Tree {
    let b = |x: &Expr| Box::new(tree(x));
    match &e.kind {
        ExprKind::Var(v) => Tree::Leaf(var_latex(v)),
        ExprKind::Identity => Tree::Leaf("I".into()),
        // (The random expressions of the properties have no ones.)
        ExprKind::Ones(_) => Tree::Leaf("ones".into()),
        ExprKind::Num(x) if *x < 0.0 => Tree::Neg(Box::new(Tree::Num(format_number(-x)))),
        ExprKind::Num(x) => Tree::Num(format_number(*x)),
        ExprKind::Neg(a) => Tree::Neg(b(a)),
        ExprKind::Binary { op, lhs, rhs, .. } => Tree::Bin(op.symbol(), b(lhs), b(rhs)),
        ExprKind::Transpose(a) => match &a.kind {
            ExprKind::Power(x, -1) => Tree::Sup("-T".into(), b(x)),
            _ => Tree::Sup("T".into(), b(a)),
        },
        ExprKind::Power(a, k) => match (&a.kind, k) {
            (ExprKind::Transpose(x), -1) => Tree::Sup("-T".into(), b(x)),
            _ => Tree::Sup(k.to_string(), b(a)),
        },
        ExprKind::HadamardPower(a, p) => Tree::Sup(format!("o{}", format_number(*p)), b(a)),
        // `norm(x, 2)` is named `norm` as `norm(A)` is: told apart here.
        ExprKind::Call(Func::Norm2, a) => Tree::Call("norm2".to_string(), b(a)),
        ExprKind::Call(f, a) => match f.axis() {
            Some(k) => Tree::Call(format!("{},{k}", f.name()), b(a)),
            None => Tree::Call(f.name().to_string(), b(a)),
        },
        ExprKind::Prod(p) => Tree::Prod(
            format!("{}={}", escape(&p.var), escape(&p.lo.to_string())),
            escape(&p.hi.to_string()),
            b(&p.body),
        ),
    }
}

/// Function macros and the names they stand for; `\operatorname{f}` is `f`.
const MACROS: &[(&str, &str)] = &[
    ("\\det", "det"),
    ("\\exp", "exp"),
    ("\\log", "log"),
    ("\\sin", "sin"),
    ("\\cos", "cos"),
    ("\\tanh", "tanh"),
    ("\\sigma", "sigmoid"),
    ("\\tan", "tan"),
    ("\\arcsin", "arcsin"),
    ("\\arccos", "arccos"),
    ("\\arctan", "arctan"),
    ("\\sinh", "sinh"),
    ("\\cosh", "cosh"),
];

const GREEK: [&str; 17] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "lambda", "mu", "nu", "rho", "sigma", "tau", "theta",
    "phi", "psi", "omega", "eta", "kappa",
];

/// Reads `text` (math mode, no delimiters) as a tree, or says where it
/// has no single reading.
pub fn read(text: &str) -> Result<Tree, String> {
    let mut r = Reader { s: text, at: 0 };
    let t = r.sum()?;
    r.space();
    if r.at != r.s.len() {
        return Err(r.fail("the end"));
    }
    Ok(t)
}

struct Reader<'a> {
    s: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.s[self.at..]
    }

    fn fail(&self, what: &str) -> String {
        format!("expected {what} at {}: …{}", self.at, self.rest())
    }

    fn space(&mut self) -> bool {
        let n = self.rest().len() - self.rest().trim_start().len();
        self.at += n;
        n > 0
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.fail(token))
        }
    }

    /// Text up to the `}` that closes a group already opened.
    fn group(&mut self) -> Result<String, String> {
        let mut depth = 0;
        for (i, c) in self.rest().char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    let text = self.rest()[..i].to_string();
                    self.at += i + 1;
                    return Ok(text);
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        Err(self.fail("}"))
    }

    /// A sum, or `A \otimes B` (kron, unbracketed where it is a whole
    /// formula or argument: its operands are atoms or bracketed).
    fn sum(&mut self) -> Result<Tree, String> {
        let t = self.plain_sum()?;
        self.space();
        if self.eat("\\otimes") {
            self.space();
            let r = self.plain_sum()?;
            return Ok(Tree::Bin("kron", Box::new(t), Box::new(r)));
        }
        Ok(t)
    }

    fn plain_sum(&mut self) -> Result<Tree, String> {
        let mut t = self.term()?;
        loop {
            self.space();
            let op = if self.eat("+") {
                "+"
            } else if self.rest().starts_with('-') {
                self.at += 1;
                "-"
            } else {
                return Ok(t);
            };
            self.space();
            t = Tree::Bin(op, Box::new(t), Box::new(self.term()?));
        }
    }

    /// Factors joined by one kind of product: juxtaposition (or `\cdot`),
    /// `\odot` or `\oslash`, left to right. Two kinds unbracketed have no
    /// agreed reading.
    fn term(&mut self) -> Result<Tree, String> {
        let mut t = self.unary()?;
        let mut kind: Option<&'static str> = None;
        loop {
            let before = self.at;
            self.space();
            let op = if self.eat("\\cdot") {
                "*"
            } else if self.eat("\\odot") {
                ".*"
            } else if self.eat("\\oslash") {
                "./"
            } else if self.starts_factor() {
                "*"
            } else {
                self.at = before;
                return Ok(t);
            };
            if kind.is_some_and(|k| k != op) {
                return Err(format!(
                    "`{}` and `{op}` side by side without brackets: …{}",
                    kind.unwrap(),
                    self.rest()
                ));
            }
            kind = Some(op);
            self.space();
            t = Tree::Bin(op, Box::new(t), Box::new(self.unary()?));
        }
    }

    fn starts_factor(&self) -> bool {
        let r = self.rest();
        !(r.is_empty()
            || r.starts_with(['+', '-', '}', '^', '_', ','])
            || r.starts_with("\\right")
            || r.starts_with("\\otimes")
            || r.starts_with("\\times"))
    }

    fn unary(&mut self) -> Result<Tree, String> {
        if self.eat("-") {
            return Ok(Tree::Neg(Box::new(self.unary_operand()?)));
        }
        self.postfix()
    }

    /// A negation's operand: a postfix expression, or another negation.
    fn unary_operand(&mut self) -> Result<Tree, String> {
        if self.rest().starts_with('-') {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Tree, String> {
        let mut t = self.atom()?;
        while self.eat("^{") {
            let sup = if self.eat("\\top}") {
                "T".to_string()
            } else if self.eat("-\\top}") {
                "-T".to_string()
            } else if self.eat("\\circ ") && !self.literal_ahead() {
                // `X^{\circ p}`, `X^{\circ -p}`, `X^{\circ \left(2 q\right)}`: a scalar expression.
                let p = self.unary()?;
                self.expect("}")?;
                t = Tree::Bin(".^", Box::new(t), Box::new(p));
                continue;
            } else if self.s[..self.at].ends_with("\\circ ") {
                let negative = self.eat("-");
                let Tree::Num(n) = self.number()? else { unreachable!() };
                self.expect("}")?;
                format!("o{}{n}", if negative { "-" } else { "" })
            } else {
                let k = self.group()?;
                k.parse::<i64>().map_err(|_| format!("an integer power, not `{k}`"))?;
                k
            };
            t = Tree::Sup(sup, Box::new(t));
        }
        Ok(t)
    }

    /// Whether a literal exponent follows: digits, maybe after a minus.
    fn literal_ahead(&self) -> bool {
        let r = self.rest();
        let r = r.strip_prefix('-').unwrap_or(r);
        r.starts_with(|c: char| c.is_ascii_digit() || c == '.')
    }

    fn number(&mut self) -> Result<Tree, String> {
        let len = self.rest().find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.fail("a number"));
        }
        let mantissa = self.rest()[..len].to_string();
        self.at += len;
        if self.eat(" \\times 10^{") {
            let exponent = self.group()?;
            let x: f64 = format!("{mantissa}e{exponent}").parse().map_err(|_| self.fail("an exponent"))?;
            return Ok(Tree::Num(format_number(x)));
        }
        let x: f64 = mantissa.parse().map_err(|_| self.fail("a number"))?;
        Ok(Tree::Num(format_number(x)))
    }

    fn call_argument(&mut self) -> Result<Tree, String> {
        self.expect("\\left(")?;
        let t = self.sum()?;
        self.space();
        self.expect("\\right)")?;
        Ok(t)
    }

    fn atom(&mut self) -> Result<Tree, String> {
        if self.eat("\\left(\\prod_{") {
            let from = self.group()?;
            self.expect("^{")?;
            let to = self.group()?;
            self.space();
            let body = self.postfix()?;
            self.expect("\\right)")?;
            return Ok(Tree::Prod(from, to, Box::new(body)));
        }
        if self.eat("\\left|") {
            let t = self.sum()?;
            self.space();
            self.expect("\\right|")?;
            return Ok(Tree::Call("abs".into(), Box::new(t)));
        }
        for (m, op) in [("\\max\\left(", "max"), ("\\min\\left(", "min")] {
            if self.eat(m) {
                let a = self.sum()?;
                self.expect(",")?;
                self.space();
                let b = self.sum()?;
                self.space();
                self.expect("\\right)")?;
                return Ok(Tree::Bin(op, Box::new(a), Box::new(b)));
            }
        }
        if self.eat("\\left\\|") {
            let t = self.sum()?;
            let name = if self.eat("\\right\\|_{1}") {
                "norm1"
            } else if self.eat("\\right\\|_{2}") {
                "norm2"
            } else {
                self.expect("\\right\\|_{F}")?;
                "norm"
            };
            return Ok(Tree::Call(name.into(), Box::new(t)));
        }
        if self.eat("\\left(") {
            let t = self.sum()?;
            self.space();
            self.expect("\\right)")?;
            return Ok(t);
        }
        if self.eat("{") {
            // The braced base of a double superscript.
            let t = self.postfix()?;
            self.expect("}")?;
            return Ok(t);
        }
        if self.eat("\\frac{") {
            let num = self.sum()?;
            self.expect("}{")?;
            let den = self.sum()?;
            self.expect("}")?;
            return Ok(Tree::Bin("/", Box::new(num), Box::new(den)));
        }
        if self.eat("\\sqrt{") {
            let t = self.sum()?;
            self.expect("}")?;
            return Ok(Tree::Call("sqrt".into(), Box::new(t)));
        }
        if self.eat("\\log\\left|\\det") {
            let t = self.call_argument()?;
            self.expect("\\right|")?;
            return Ok(Tree::Call("logdet".into(), Box::new(t)));
        }
        if self.eat("\\operatorname{") {
            let name = self.group()?;
            self.expect("\\left(")?;
            let t = self.sum()?;
            self.space();
            // An axis: `\operatorname{sum}\left(A, 1\right)`.
            let name = match self.rest().as_bytes() {
                [b',', b' ', k @ b'0'..=b'9', ..] => {
                    let k = char::from(*k);
                    self.at += 3;
                    format!("{name},{k}")
                }
                _ => name,
            };
            self.expect("\\right)")?;
            return Ok(Tree::Call(name, Box::new(t)));
        }
        for (m, name) in MACROS {
            // Spaced or not, `\sigma \left(x\right)` reads as σ(x).
            if self.rest().starts_with(m) && self.rest()[m.len()..].trim_start().starts_with("\\left(") {
                self.at += m.len();
                self.space();
                return Ok(Tree::Call(name.to_string(), Box::new(self.call_argument()?)));
            }
        }
        if self.rest().starts_with(|c: char| c.is_ascii_digit()) {
            return self.number();
        }
        self.variable()
    }

    fn variable(&mut self) -> Result<Tree, String> {
        let start = self.at;
        if self.eat("\\mathit{") {
            self.group()?;
        } else if self.eat("\\") {
            let greek =
                GREEK.iter().find(|g| self.rest().starts_with(**g)).ok_or_else(|| self.fail("a variable"))?;
            self.at += greek.len();
        } else if self.rest().starts_with(|c: char| c.is_ascii_alphabetic()) {
            self.at += 1;
        } else {
            return Err(self.fail("a factor"));
        }
        if self.eat("_{") {
            self.group()?;
        }
        Ok(Tree::Leaf(self.s[start..self.at].to_string()))
    }
}
