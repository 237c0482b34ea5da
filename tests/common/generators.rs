//! Generators of random programs, shared by the property tests
//! (`properties.rs`: gradients against finite differences) and the mutation
//! tests (`mutation.rs`: verdicts on mutated gradients).

use std::collections::BTreeMap;

use proptest::prelude::*;

// ------------------------------------------------------------------ chains

/// A chain program: for factor i of shape d[i] x d[i+1], reuse a variable
/// of that shape (tied) or of the transposed shape, or declare a new one
/// (stored transposed when asked).
pub fn chain_program(dims: &[usize], choices: &[(u8, bool)], trace: bool) -> String {
    let mut vars: Vec<(String, usize, usize)> = vec![];
    let mut factors = vec![];
    for (i, &(reuse, transpose)) in choices.iter().enumerate() {
        let (r, c) = (dims[i], dims[i + 1]);
        let fits: Vec<String> = vars
            .iter()
            .filter_map(|(n, vr, vc)| {
                if (*vr, *vc) == (r, c) {
                    Some(n.clone())
                } else if (*vr, *vc) == (c, r) {
                    Some(format!("{n}^T"))
                } else {
                    None
                }
            })
            .collect();
        if reuse % 2 == 1 && !fits.is_empty() {
            factors.push(fits[reuse as usize % fits.len()].clone());
        } else {
            let name = format!("W{}", vars.len() + 1);
            if transpose {
                vars.push((name.clone(), c, r));
                factors.push(format!("{name}'"));
            } else {
                vars.push((name.clone(), r, c));
                factors.push(name);
            }
        }
    }
    let decls: Vec<String> = vars.iter().map(|(n, r, c)| format!("{n} : {r}x{c}")).collect();
    let chain = factors.join("*");
    let body = if trace && dims[0] == dims[dims.len() - 1] { format!("tr({chain})") } else { chain };
    format!("{}; {body}", decls.join("; "))
}

pub fn chains() -> impl Strategy<Value = String> {
    (1usize..=8)
        .prop_flat_map(|k| {
            (
                prop::collection::vec(1usize..=3, k + 1),
                prop::collection::vec((any::<u8>(), any::<bool>()), k),
                any::<bool>(),
            )
        })
        .prop_map(|(dims, choices, trace)| chain_program(&dims, &choices, trace))
}

// ---------------------------------------------------- typed random expressions

/// Builds a random expression of a required shape from a tape of choices,
/// over the whole language, declaring variables as it needs them. Logs,
/// square roots and divisors get positive arguments, inverses and
/// determinants positive definite ones, so every instance is defined.
pub struct Gen {
    tape: Vec<u32>,
    at: usize,
    vars: BTreeMap<String, (usize, usize)>,
}

impl Gen {
    fn pick(&mut self, n: u32) -> u32 {
        let v = self.tape.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v % n
    }

    fn var(&mut self, prefix: &str, r: usize, c: usize) -> String {
        let name = format!("{prefix}{r}{c}{}", ["a", "b"][self.pick(2) as usize]);
        self.vars.insert(name.clone(), (r, c));
        name
    }

    fn expr(&mut self, r: usize, c: usize, depth: u32) -> String {
        if depth == 0 {
            return if self.pick(3) == 0 {
                format!("{}^T", self.var("M", c, r))
            } else {
                self.var("M", r, c)
            };
        }
        let d = depth - 1;
        let k = 1 + self.pick(3) as usize;
        match self.pick(24) {
            0 => self.var("M", r, c),
            1 => format!("({} * {})", self.expr(r, k, d), self.expr(k, c, d)),
            2 => format!("({} + {})", self.expr(r, c, d), self.expr(r, c, d)),
            3 => format!("({} - {})", self.expr(r, c, d), self.expr(r, c, d)),
            4 => format!("(-{})", self.expr(r, c, d)),
            5 | 6 => format!("({} * {})", self.expr(r, k, d), self.expr(k, c, d)),
            7 => match self.pick(2) {
                0 => format!("({} * {})", self.expr(1, 1, d), self.expr(r, c, d)),
                _ => format!("({} * {})", ["2", "0.5", "3"][self.pick(3) as usize], self.expr(r, c, d)),
            },
            8 if (r, c) != (1, 1) => format!("({} + {})", self.expr(1, 1, d), self.expr(r, c, d)),
            9 => format!("({})^T", self.expr(c, r, d)),
            10 => format!("({} .* {})", self.expr(r, c, d), self.expr(r, c, d)),
            11 => format!("({} ./ {})", self.expr(r, c, d), self.positive(r, c, d)),
            // exp of a variable only: exp(exp(exp(x))) overflows near x = 2.
            12 => match self.pick(5) {
                0 => format!("exp({})", self.var("M", r, c)),
                f => format!("{}({})", ["sin", "cos", "tanh", "sigmoid"][f as usize - 1], self.expr(r, c, d)),
            },
            13 => {
                let f = ["log", "sqrt"][self.pick(2) as usize];
                format!("{f}({})", self.positive(r, c, d))
            }
            14 => match self.pick(3) {
                0 => format!("({} .^ 2)", self.expr(r, c, d)),
                1 => format!("({} .^ 0.5)", self.positive(r, c, d)),
                _ => format!("({} .^ -1.5)", self.positive(r, c, d)),
            },
            15 => format!("({} / {})", self.expr(r, c, d), self.positive(1, 1, d)),
            16 if r == c => format!("({})^-1", self.spd(r, d)),
            17 if r == c => format!("({})^2", self.expr(r, c, d)),
            18 if r == c => format!("({})^-2", self.spd(r, d)),
            19 if (r, c) == (1, 1) => format!("tr({})", self.expr(k, k, d)),
            20 if (r, c) == (1, 1) => match self.pick(3) {
                0 => format!("sum({})", self.expr(k, k + 1, d)),
                1 => format!("norm({})", self.positive(k, k + 1, d)),
                _ => format!("norm({})^2", self.expr(k, k + 1, d)),
            },
            21 if (r, c) == (1, 1) => match self.pick(2) {
                0 => format!("det({})", self.spd(k, d)),
                _ => format!("logdet({})", self.spd(k, d)),
            },
            // `s + I` with a 1×1 s broadcasts s over an I of any size.
            22 if r == c && r > 1 => match self.pick(2) {
                0 => format!("({} + I)", self.expr(r, c, d)),
                _ => format!("(I * {})", self.expr(r, c, d)),
            },
            _ => format!("({} - {})", self.expr(r, c, d), self.expr(r, c, d)),
        }
    }

    /// An expression with positive entries.
    fn positive(&mut self, r: usize, c: usize, depth: u32) -> String {
        if depth == 0 {
            return self.var("P", r, c);
        }
        let d = depth - 1;
        match self.pick(7) {
            0 | 1 => self.var("P", r, c),
            2 => format!("exp({})", self.var("M", r, c)),
            3 => format!("sigmoid({})", self.expr(r, c, d)),
            4 => format!("({} + {})", self.positive(r, c, d), self.positive(r, c, d)),
            5 => format!("({} .* {})", self.positive(r, c, d), self.positive(r, c, d)),
            _ => format!("(2 * {})", self.positive(r, c, d)),
        }
    }

    /// A symmetric positive definite n×n expression.
    fn spd(&mut self, n: usize, depth: u32) -> String {
        if depth == 0 {
            return self.var("S", n, n);
        }
        let d = depth - 1;
        match self.pick(4) {
            0 | 1 => self.var("S", n, n),
            2 if n > 1 => {
                let m = 1 + self.pick(3) as usize;
                let x = self.expr(m, n, d);
                format!("(({x})^T * ({x}) + I)")
            }
            _ => format!("({} + {})", self.spd(n, d), self.spd(n, d)),
        }
    }
}

pub fn typed_programs() -> impl Strategy<Value = String> {
    programs(256, 1..=5)
}

/// Deeper programs: up to depth 12, as long as a tape of 512 choices lasts
/// (past its end every choice is a variable, which ends the expression).
pub fn deep_typed_programs() -> impl Strategy<Value = String> {
    programs(512, 6..=12)
}

pub fn programs(tape: usize, depth: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = String> {
    (prop::collection::vec(any::<u32>(), tape), 1usize..=3, 1usize..=3, depth).prop_map(
        |(tape, r, c, depth)| {
            let mut g = Gen { tape, at: 0, vars: BTreeMap::new() };
            let body = g.expr(r, c, depth);
            let decls: Vec<String> = g.vars.iter().map(|(n, (r, c))| format!("{n} : {r}x{c}")).collect();
            format!("{}; {body}", decls.join("; "))
        },
    )
}
