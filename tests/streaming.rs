//! A large derivation is written as it is derived (`derive_streaming`):
//! what it hands over, and what the command line prints of it, are what
//! the whole derivation (`derive`) gives.

use matdiff::calculus::Mode;
use matdiff::shape::Typing;
use matdiff::{derive, derive_streaming, DeriveOptions, Gradient, GradientSink, Streamed};

fn chain(n: usize) -> String {
    (1..=n).map(|i| format!("W{i}*")).collect::<String>() + "X"
}

/// Keeps what it is given.
#[derive(Default)]
struct Kept {
    begun: usize,
    gradients: Vec<Gradient>,
}

impl<'p> GradientSink<'p> for Kept {
    fn begin(&mut self, _: &Typing<'p>, _: &Mode) -> matdiff::Result<()> {
        self.begun += 1;
        Ok(())
    }
    fn gradient(&mut self, _: &Typing<'p>, g: Gradient) -> matdiff::Result<()> {
        assert_eq!(self.begun, 1, "a gradient before begin");
        self.gradients.push(g);
        Ok(())
    }
}

/// Programs below and above the size past which nothing is shared, each
/// with whether it is streamed: chains (whose gradients share nothing),
/// and a loss whose gradients repeat the forward pass (named below it).
fn programs() -> Vec<(String, bool)> {
    vec![
        (chain(60), false),
        (chain(250), true),
        (format!("sum(tanh({}))", chain(40)), false),
        (format!("sum(tanh({}))", chain(200)), true),
        (format!("Y : d0 x d201; norm({} - Y)^2 + sum(tanh(V*X))", chain(200)), true),
    ]
}

fn printed(gradients: &[Gradient]) -> Vec<String> {
    gradients.iter().map(|g| format!("{} = {} : {}", g.wrt, g.expr, g.shape)).collect()
}

#[test]
fn streamed_gradients_are_the_derived_ones() {
    for (src, streamed) in programs() {
        let program = matdiff::parse(&src).unwrap();
        let options = DeriveOptions { steps: matdiff::Steps::Skip, ..Default::default() };
        let whole = derive(&program, &options).unwrap();
        let mut kept = Kept::default();
        match derive_streaming(&program, &options, &mut kept).unwrap() {
            Streamed::Whole(d) => {
                assert!(!streamed, "{src}: not streamed");
                assert_eq!((kept.begun, kept.gradients.len()), (0, 0));
                assert_eq!(printed(&d.gradients), printed(&whole.gradients), "{src}");
                let names = |d: &matdiff::Derivation| d.shared.as_ref().map(|s| s.definitions_text());
                assert_eq!(names(&d), names(&whole), "{src}");
            }
            Streamed::Parts => {
                assert!(streamed, "{src}: streamed");
                // Streamed only where the whole derivation names nothing.
                assert!(whole.shared.is_none(), "{src}");
                assert_eq!(kept.begun, 1);
                assert_eq!(printed(&kept.gradients), printed(&whole.gradients), "{src}");
            }
        }
    }
    // Below the size, the same loss's gradients do name the forward pass.
    let small = matdiff::parse(&format!("sum(tanh({}))", chain(40))).unwrap();
    assert!(derive(&small, &DeriveOptions::default()).unwrap().shared.is_some());
}

fn cli(args: &[&str]) -> String {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let argv: Vec<String> =
        std::iter::once("matdiff").chain(args.iter().copied()).map(String::from).collect();
    let code = matdiff::cli::run(argv, &mut out, &mut err);
    assert_eq!(code, 0, "{args:?}: {}", String::from_utf8_lossy(&err));
    String::from_utf8(out).unwrap()
}

/// `derive` and `derive --json` print a streamed derivation as they print
/// the whole one, byte for byte.
#[test]
fn streamed_output_is_the_whole_derivations() {
    for (src, _) in programs() {
        let program = matdiff::parse(&src).unwrap();
        let d = derive(&program, &DeriveOptions::default()).unwrap();
        assert_eq!(cli(&["derive", &src]), matdiff::cli::render_derivation(&d), "{src}");
        let json = serde_json::to_string_pretty(&serde_json::to_value(&d).unwrap()).unwrap() + "\n";
        assert_eq!(cli(&["derive", "--json", &src]), json, "{src}");
    }
}
