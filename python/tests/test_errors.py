"""Errors are exceptions of the matdiff hierarchy, with the caret diagnostic and the span."""

import pytest

import matdiff as md


def caret_column(diagnostic: str) -> int:
    """The column of the `|` under the source line (ariadne's caret) in the diagnostic."""
    lines = diagnostic.splitlines()
    source_line = next(i for i, l in enumerate(lines) if l.lstrip().startswith("1 |"))
    bar = lines[source_line].index("|") + 2
    return lines[source_line + 1].index("|", bar) - bar


def test_shape_error_shows_the_caret_and_carries_the_span():
    program = "W1 : 3x4; W2 : 5x6; W1*W2"
    with pytest.raises(md.ShapeError) as info:
        md.derive(program)
    e = info.value
    assert isinstance(e, md.MatdiffError)
    assert e.kind == "shape"
    assert e.span == (22, 23) and program[22] == "*"
    assert e.source == program
    assert e.message == "cannot multiply 3x4 by 5x6: 4 columns against 5 rows"
    assert e.labels[0]["message"] == "3x4 on the left, 5x6 on the right"
    assert e.notes == ["left:  `W1` is 3x4", "right: `W2` is 5x6"]
    text = str(e)
    assert text.startswith("error: shape error: cannot multiply 3x4 by 5x6")
    assert " 1 | W1 : 3x4; W2 : 5x6; W1*W2" in text
    assert caret_column(text) == 22


def test_the_caret_follows_declarations_given_with_shapes():
    with pytest.raises(md.ShapeError) as info:
        md.derive("W1*W2", shapes={"W1": (3, 4), "W2": (5, 6)})
    e = info.value
    start, end = e.span
    assert e.source[start:end] == "*"
    assert e.source.endswith("; W1*W2")
    assert caret_column(str(e)) == start


def test_parse_error():
    with pytest.raises(md.ParseError) as info:
        md.derive("W1*")
    e = info.value
    assert e.kind == "parse" and e.span == (2, 3)
    assert "parse error: expected an expression" in str(e)
    # `-` alone is a program here (the command line reads standard input for it).
    with pytest.raises(md.ParseError):
        md.derive("-")


def test_unsupported_error():
    program = "X : n x n; a : scalar; tr(X + a)"
    with pytest.raises(md.UnsupportedError) as info:
        md.derive(program)
    e = info.value
    assert e.kind == "unsupported"
    assert str(e).startswith("error: not supported: this gradient is n times a scalar")
    start, end = e.span
    assert program[start:end] == "a" and start == program.rindex("a")
    assert caret_column(str(e)) == start


def test_limit_error():
    program = "x*0.10000000000000000000001"
    with pytest.raises(md.LimitError) as info:
        md.derive(program)
    e = info.value
    assert e.kind == "limit" and e.span[0] == 2
    assert "is not exactly representable" in str(e)


def test_usage_errors():
    with pytest.raises(md.UsageError) as info:
        md.derive("W1*W2", wrt="Q")
    assert "`Q` does not occur in the expression" in str(info.value)
    assert info.value.span is None
    with pytest.raises(md.UsageError):
        md.check("W1*W2", dims={"d0": 0})
    with pytest.raises(md.UsageError):
        md.derive("W : 3x3; G : 3x3; G*W")


def test_every_kind_is_a_matdiff_error():
    for cls in (md.ParseError, md.ShapeError, md.UnsupportedError, md.UsageError, md.LimitError, md.InternalError):
        assert issubclass(cls, md.MatdiffError) and issubclass(cls, Exception)


def test_errors_of_a_command_without_json_are_told_by_their_title():
    # `latex` prints no JSON error object: the kind comes from the diagnostic's title.
    with pytest.raises(md.ParseError) as info:
        md.latex("W1*")
    assert info.value.kind == "parse" and info.value.span is None
    assert "`-- expected an expression" in str(info.value)
    with pytest.raises(md.ShapeError):
        md.latex("W1 : 3x4; W2 : 5x6; W1*W2")
