//! Identities of The Matrix Cookbook (Petersen & Pedersen, version of
//! November 15, 2012), by equation number: checked in `cookbook.rs`, and a
//! corpus of derivations for the mutation tests (`mutation.rs`).

/// (equation, program, variable, the Cookbook's gradient in matdiff syntax).
pub const IDENTITIES: &[(&str, &str, &str, &str)] = &[
    // Basic differentials, §2.1.
    ("(40)", "X : n x n; X^-1", "X", "-(X^-1)^T * G * (X^-1)^T"),
    ("(42)", "X : n x n; det(X)", "X", "det(X) * (X^-1)^T"),
    ("(43)", "X : n x n; logdet(X)", "X", "(X^-1)^T"),
    // Derivatives of an inverse, §2.2.
    ("(61)", "X : n x n; a : n; b : n; a^T * X^-1 * b", "X", "-(X^-1)^T * a * b^T * (X^-1)^T"),
    ("(62)", "X : n x n; det(X^-1)", "X", "-det(X^-1) * (X^-1)^T"),
    ("(63)", "X : n x n; A : n x n; B : n x n; tr(A * X^-1 * B)", "X", "-(X^-1 * B * A * X^-1)^T"),
    ("(64)", "X : n x n; A : n x n; tr((X + A)^-1)", "X", "-((X + A)^-1 * (X + A)^-1)^T"),
    // First order, §2.4.1.
    ("(69)", "x : n; a : n; x^T * a", "x", "a"),
    ("(69)", "x : n; a : n; a^T * x", "x", "a"),
    ("(70)", "X : n x m; a : n; b : m; a^T * X * b", "X", "a * b^T"),
    ("(71)", "X : m x n; a : n; b : m; a^T * X^T * b", "X", "b * a^T"),
    ("(72)", "X : n x n; a : n; a^T * X * a", "X", "a * a^T"),
    ("(72)", "X : n x n; a : n; a^T * X^T * a", "X", "a * a^T"),
    // Second order, §2.4.2.
    ("(77)", "X : n x m; b : m; c : m; b^T * X^T * X * c", "X", "X * (b * c^T + c * b^T)"),
    (
        "(78)",
        "x : n; B : m x n; b : m; C : m x k; D : k x n; d : k; (B*x + b)^T * C * (D*x + d)",
        "x",
        "B^T * C * (D*x + d) + D^T * C^T * (B*x + b)",
    ),
    ("(81)", "x : n; B : n x n; x^T * B * x", "x", "(B + B^T) * x"),
    (
        "(82)",
        "X : n x m; b : m; c : m; D : n x n; b^T * X^T * D * X * c",
        "X",
        "D^T * X * b * c^T + D * X * c * b^T",
    ),
    (
        "(83)",
        "X : n x m; b : m; c : n; D : n x n; (X*b + c)^T * D * (X*b + c)",
        "X",
        "(D + D^T) * (X*b + c) * b^T",
    ),
    // Traces, first order, §2.5.1.
    ("(99)", "X : n x n; tr(X)", "X", "I"),
    ("(100)", "X : n x m; A : m x n; tr(X * A)", "X", "A^T"),
    ("(101)", "A : k x n; X : n x m; B : m x k; tr(A * X * B)", "X", "A^T * B^T"),
    ("(102)", "A : k x m; X : n x m; B : n x k; tr(A * X^T * B)", "X", "B * A"),
    ("(103)", "X : n x m; A : n x m; tr(X^T * A)", "X", "A"),
    ("(104)", "A : n x m; X : n x m; tr(A * X^T)", "X", "A"),
    // Traces, second order, §2.5.2.
    ("(106)", "X : n x n; tr(X^2)", "X", "2 * X^T"),
    ("(107)", "X : n x n; B : n x n; tr(X^2 * B)", "X", "(X * B + B * X)^T"),
    ("(108)", "X : n x m; B : n x n; tr(X^T * B * X)", "X", "B * X + B^T * X"),
    ("(109)", "X : n x m; B : n x n; tr(B * X * X^T)", "X", "B * X + B^T * X"),
    ("(110)", "X : n x m; B : n x n; tr(X * X^T * B)", "X", "B * X + B^T * X"),
    ("(111)", "X : n x m; B : m x m; tr(X * B * X^T)", "X", "X * B^T + X * B"),
    ("(112)", "X : n x m; B : m x m; tr(B * X^T * X)", "X", "X * B^T + X * B"),
    ("(113)", "X : n x m; B : m x m; tr(X^T * X * B)", "X", "X * B^T + X * B"),
    ("(114)", "A : n x n; X : n x n; B : n x n; tr(A * X * B * X)", "X", "A^T * X^T * B^T + B^T * X^T * A^T"),
    ("(115)", "X : n x m; tr(X^T * X)", "X", "2 * X"),
    ("(115)", "X : n x m; tr(X * X^T)", "X", "2 * X"),
    (
        "(116)",
        "B : m x k; X : n x m; C : n x n; tr(B^T * X^T * C * X * B)",
        "X",
        "C^T * X * B * B^T + C * X * B * B^T",
    ),
    ("(117)", "X : n x m; B : n x n; C : m x m; tr(X^T * B * X * C)", "X", "B * X * C + B^T * X * C^T"),
    (
        "(118)",
        "A : k x n; X : n x m; B : m x m; C : n x k; tr(A * X * B * X^T * C)",
        "X",
        "A^T * C^T * X * B^T + C * A * X * B",
    ),
    (
        "(119)",
        "A : k x n; X : n x m; B : m x p; C : k x p; tr((A*X*B + C) * (A*X*B + C)^T)",
        "X",
        "2 * A^T * (A*X*B + C) * B^T",
    ),
    // Traces, higher order, §2.5.3.
    ("(121)", "X : n x n; tr(X^3)", "X", "3 * (X^2)^T"),
    (
        "(123)",
        "B : m x k; X : n x m; C : n x n; tr(B^T * X^T * C * X * X^T * C * X * B)",
        "X",
        "C*X*X^T*C*X*B*B^T + C^T*X*B*B^T*X^T*C^T*X + C*X*B*B^T*X^T*C*X + C^T*X*X^T*C^T*X*B*B^T",
    ),
    // Traces, other, §2.5.4.
    ("(124)", "A : n x n; X : n x n; B : n x n; tr(A * X^-1 * B)", "X", "-(X^-1)^T * A^T * B^T * (X^-1)^T"),
    // Norms, §2.6 and §2.7.
    ("§2.6", "x : n; a : n; norm(x - a)", "x", "(x - a) / norm(x - a)"),
    ("§2.6", "x : n; norm(x)^2", "x", "2 * x"),
    ("§2.7", "X : n x m; norm(X)^2", "X", "2 * X"),
    ("§2.6", "x : n; norm(x)^3", "x", "3 * norm(x) * x"),
    ("§2.7", "X : n x m; norm(X)^4", "X", "4 * norm(X)^2 * X"),
    // Determinants, §2.1.1.
    ("§2.1.1", "A : n x n; X : n x n; B : n x n; det(A * X * B)", "X", "det(A * X * B) * (X^-1)^T"),
    ("§2.1.1", "X : n x n; det(X^2)", "X", "2 * det(X^2) * (X^-1)^T"),
];

/// Machine-learning losses with their textbook gradients (in matdiff
/// syntax, broadcasts written out as the program shows them:
/// `b * ones(1, B)`): checked with the identities in `cookbook.rs`.
pub const LOSSES: &[(&str, &str, &str, &str)] = &[
    ("least squares", "X : n x d; y : n; w : d; norm(X*w - y)^2", "w", "2 * X^T * (X*w - y)"),
    (
        "ridge",
        "X : n x d; y : n; w : d; lambda : scalar; norm(X*w - y)^2 + lambda * norm(w)^2",
        "w",
        "2 * X^T * (X*w - y) + 2 * lambda * w",
    ),
    (
        "logistic (±1 labels)",
        "X : n x d; y : n; w : d; sum(log(1 + exp(-y .* (X*w))))",
        "w",
        "-X^T * (y .* sigmoid(-y .* (X*w)))",
    ),
    (
        "logistic (softplus)",
        "X : n x d; y : n; w : d; sum(softplus(X*w)) - y^T*X*w",
        "w",
        "X^T * (sigmoid(X*w) - y)",
    ),
    (
        "softmax regression",
        "W : k x d; X : d x B; Y : k x B onehot; -sum(Y .* log(softmax(W*X)))",
        "W",
        "(softmax(W*X) - Y) * X^T",
    ),
    (
        "linear layer, bias",
        "W : k x d; X : d x B; b : k; Y : k x B; norm(W*X + b - Y)^2",
        "b",
        "2 * sum(W*X + b * ones(1, B) - Y, 2)",
    ),
    (
        "linear layer, weights",
        "W : k x d; X : d x B; b : k; Y : k x B; norm(W*X + b - Y)^2",
        "W",
        "2 * (W*X + b * ones(1, B) - Y) * X^T",
    ),
    (
        "hinge (linear SVM)",
        "X : n x d; y : n; w : d; sum(max(0, 1 - y .* (X*w)))",
        "w",
        "-X^T * (y .* step(1 - y .* (X*w)))",
    ),
    ("least absolute deviations", "X : n x d; y : n; w : d; sum(abs(X*w - y))", "w", "X^T * sign(X*w - y)"),
    ("Poisson regression", "X : n x d; y : n; w : d; sum(exp(X*w)) - y^T*X*w", "w", "X^T * (exp(X*w) - y)"),
    ("log-sum-exp", "x : n; logsumexp(x)", "x", "softmax(x)"),
    ("weight decay", "W : m x n; lambda : scalar; lambda * norm(W)^2 / 2", "W", "lambda * W"),
    ("Mahalanobis", "x : n; mu : n; S : n x n; (x - mu)^T * S * (x - mu)", "mu", "-(S + S^T) * (x - mu)"),
    (
        "Gaussian log-likelihood, covariance",
        "S : n x n; x : n; logdet(S) + x^T * S^-1 * x",
        "S",
        "(S^-1)^T - (S^-1)^T * x * x^T * (S^-1)^T",
    ),
    (
        "matrix factorization",
        "U : m x k; V : n x k; R : m x n; norm(U*V^T - R)^2",
        "U",
        "2 * (U*V^T - R) * V",
    ),
    (
        "two-layer tanh network, output weights",
        "W1 : h x d; W2 : k x h; X : d x B; Y : k x B; norm(W2*tanh(W1*X) - Y)^2",
        "W2",
        "2 * (W2*tanh(W1*X) - Y) * tanh(W1*X)^T",
    ),
    (
        "two-layer tanh network, hidden weights",
        "W1 : h x d; W2 : k x h; X : d x B; Y : k x B; norm(W2*tanh(W1*X) - Y)^2",
        "W1",
        "2 * ((W2^T * (W2*tanh(W1*X) - Y)) .* (1 - tanh(W1*X) .^ 2)) * X^T",
    ),
    (
        "sigmoid unit, squared error",
        "W : k x m; x : m; y : k; norm(sigmoid(W*x) - y)^2",
        "W",
        "2 * ((sigmoid(W*x) - y) .* sigmoid(W*x) .* (1 - sigmoid(W*x))) * x^T",
    ),
    (
        "binary cross-entropy",
        "X : n x d; y : n; w : d; -sum(y .* log(sigmoid(X*w)) + (1 - y) .* log(1 - sigmoid(X*w)))",
        "w",
        "X^T * (sigmoid(X*w) - y)",
    ),
    ("ReLU layer", "W : k x d; X : d x B; sum(relu(W*X))", "W", "step(W*X) * X^T"),
];
