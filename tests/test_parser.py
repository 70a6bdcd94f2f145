"""The concrete syntax of docs/language.md: every construct, both spellings, precedence,
spans and syntax-error messages.  Parsed terms are compared with trees built by hand."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamad
from lamad.errors import LamError, LamSyntaxError
from lamad.parser import KEYWORDS, parse_program, parse_term, parse_type
from lamad.syntax import (
    BOOL, GRAD, INT, REAL, TENSOR, UNIT, Ann, App, Def, FunType, If, Lam, Let, LinType, ListLit,
    ListType, Lit, Param, Program, PTuple, PVar, PWild, Span, Tuple, TupleType, TypeName, Var, perp,
)

from programs import programs

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- helpers


def strip(node):
    """A node as nested tuples without spans or types.  Literal values carry their Python
    type, because ``Lit(1) == Lit(1.0) == Lit(True)`` under dataclass equality."""
    if isinstance(node, Lit):
        return ("Lit", type(node.value).__name__, node.value)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(
            strip(getattr(node, f.name)) for f in dataclasses.fields(node)
            if f.name not in ("span", "ty", "name_span"))
    if isinstance(node, tuple):
        return tuple(strip(x) for x in node)
    return node


def same(actual, expected):
    assert strip(actual) == strip(expected), f"\n  got      {actual!r}\n  expected {expected!r}"
    assert actual == expected  # dataclass equality, which ignores spans, agrees


def v(name):
    return Var(name)


def lit(value):
    return Lit(value)


def prim(op, *args):
    from lamad.syntax import Prim

    return Prim(op, tuple(args))


def app(f, *args):
    for a in args:
        f = App(f, a)
    return f


def lam(*params_and_body):
    *params, body = params_and_body
    for p in reversed(params):
        body = Lam(PVar(p) if isinstance(p, str) else p, body)
    return body


def let(*bindings_and_body):
    *bindings, body = bindings_and_body
    for p, bound in reversed(bindings):
        body = Let(PVar(p) if isinstance(p, str) else p, bound, body)
    return body


a, b, c, d_, f, g, x, y = (v(n) for n in "abcdfgxy")


def syntax_error(fn, text) -> LamSyntaxError:
    with pytest.raises(LamSyntaxError) as info:
        fn(text)
    err = info.value
    assert isinstance(err, LamError)
    assert err.span is not None, f"no span for the error in {text!r}"
    return err


# ----------------------------------------------------------------------------- lexical


@pytest.mark.parametrize("unicode, ascii, expected", [
    ("λx. x", r"\x. x", lam("x", x)),
    ("λx y. x", r"\x y. x", lam("x", "y", x)),
    ("a · b", "a * b", prim("mul", a, b)),
    ("a·b·c", "a*b*c", prim("mul", prim("mul", a, b), c)),
    ("λ(x : Real → Real). x", r"\(x : Real -> Real). x", lam(PVar("x", FunType(REAL, REAL)), x)),
    ("x : Real × Int → Bool", "x : Real * Int -> Bool", Ann(x, FunType(TupleType((REAL, INT)), BOOL))),
    ("x : Real ⊸ Real", "x : Real -o Real", Ann(x, LinType(REAL, REAL))),
    ("x : Real⊥", "x : ~Real", Ann(x, LinType(REAL, GRAD))),
])
def test_unicode_and_ascii_spellings_parse_alike(unicode, ascii, expected):
    same(parse_term(unicode), expected)
    same(parse_term(ascii), expected)


@pytest.mark.parametrize("unicode, ascii, expected", [
    ("Real → Real", "Real -> Real", FunType(REAL, REAL)),
    ("Real × Tensor", "Real * Tensor", TupleType((REAL, TENSOR))),
    ("Real ⊸ Tensor", "Real -o Tensor", LinType(REAL, TENSOR)),
    ("Tensor⊥", "~Tensor", LinType(TENSOR, GRAD)),
    ("(Real × Real)⊥ → d", "~(Real * Real) -> d", FunType(perp(TupleType((REAL, REAL))), GRAD)),
])
def test_type_spellings(unicode, ascii, expected):
    assert parse_type(unicode) == expected
    assert parse_type(ascii) == expected


def test_whole_program_in_both_spellings():
    uni = """
def f (x : Real) (k : Real⊥) : Real × Real → Real = λ(a, b). a · x + b
def g (h : Real ⊸ d) = λ_. h
"""
    asc = r"""
def f (x : Real) (k : ~Real) : Real * Real -> Real = \(a, b). a * x + b
def g (h : Real -o d) = \_. h
"""
    same(parse_program(uni), parse_program(asc))
    prog = parse_program(asc)
    assert [d.name for d in prog.defs] == ["f", "g"]
    assert prog["f"].params[1] == Param("k", perp(REAL))
    assert prog["g"].params[0].annot == LinType(REAL, GRAD) == perp(REAL)


def test_mixed_spellings_in_one_term():
    same(parse_term(r"λx. \y. x · y * x"), lam("x", "y", prim("mul", prim("mul", x, y), x)))


def test_times_is_not_multiplication_in_terms_and_dot_is_not_a_type_operator():
    syntax_error(parse_term, "a × b")
    syntax_error(parse_type, "Real · Real")


def test_comments():
    prog = parse_program("""-- a program
def a = 1   -- one
-- a comment line between definitions
def b = a +  -- the operator ends this line
  2
-- trailing comment without newline""")
    same(prog, Program((Def("a", (), None, lit(1)), Def("b", (), None, prim("add", a, lit(2))))))
    # `--` starts a comment even right after a term: `x --y` is just `x`
    same(parse_term("x --y"), x)
    same(parse_term("x - -y"), prim("sub", x, prim("neg", y)))
    assert parse_program("-- only a comment") == Program(())
    assert parse_program("") == Program(())
    assert parse_program("  \n\t\n") == Program(())


@pytest.mark.parametrize("name", ["x'", "x''", "f'", "x'y", "_x", "x_1", "X9", "_", "let'", "in'"])
def test_identifiers(name):
    same(parse_term(name), v(name))
    same(parse_term(f"{name} {name}"), app(v(name), v(name)))


@pytest.mark.parametrize("text", ["'x", "x$", "ü", "x?"])
def test_bad_identifiers(text):
    syntax_error(parse_term, text)


def test_names_that_start_with_keywords_are_names():
    for name in ["letter", "define", "iff", "inner", "thence", "elsewhere", "trueish", "falsey", "in_"]:
        same(parse_term(f"{name} x"), app(v(name), x))
        same(parse_term(rf"\{name}. {name}"), lam(name, v(name)))


@pytest.mark.parametrize("text, value", [
    ("3", 3), ("0", 0), ("123456789012345678901234567890", 123456789012345678901234567890),
    ("3.0", 3.0), ("1e-3", 1e-3), (".5", 0.5), ("1E+2", 100.0), ("2e3", 2000.0), ("2.5e-1", 0.25),
    (".5e1", 5.0), ("007", 7),
    ("true", True), ("false", False), ("()", ()), ("( )", ()),
    ('"data/x.npy"', "data/x.npy"), ('""', ""), ('"a b -- not a comment"', "a b -- not a comment"),
    (r'"say \"hi\""', 'say "hi"'), (r'"back\\slash"', "back\\slash"), (r'"t\tn\n"', "t\tn\n"),
    ('"λ é"', "λ é"), (r'"é\n"', "é\n"), (r'"\u00e9"', "é"),
])
def test_literals(text, value):
    t = parse_term(text)
    assert isinstance(t, Lit)
    assert type(t.value) is type(value) and t.value == value
    assert t.span == Span(0, len(text), 1, 1, 1, len(text) + 1)


def test_integer_and_real_literals_keep_their_kind():
    assert type(parse_term("1").value) is int
    assert type(parse_term("1.0").value) is float
    assert type(parse_term("1e0").value) is float
    assert type(parse_term("true").value) is bool


@pytest.mark.parametrize("text", ['"unterminated', '"line\nbreak"', r'"\x"', r'"\u12"', r'"\N"', "3.", "1.e3", "e1."])
def test_bad_literals(text):
    syntax_error(parse_term, text)


def test_huge_integer_literal_is_a_syntax_error_not_a_crash():
    err = syntax_error(parse_term, "1" * 5000)
    assert "integer" in err.message


def test_negative_literals_are_negations():
    same(parse_term("-3"), prim("neg", lit(3)))
    same(parse_term("-.5"), prim("neg", lit(0.5)))


# ----------------------------------------------------------------------------- terms


@pytest.mark.parametrize("text, expected", [
    ("(1, 2)", Tuple((lit(1), lit(2)))),
    ("(x, y, 3.0)", Tuple((x, y, lit(3.0)))),
    ("((1, 2), 3)", Tuple((Tuple((lit(1), lit(2))), lit(3)))),
    ("(1, (2, 3))", Tuple((lit(1), Tuple((lit(2), lit(3)))))),
    ("(a + b, f x)", Tuple((prim("add", a, b), app(f, x)))),
    ("(x : Real, ())", Tuple((Ann(x, REAL), lit(())))),
    ("(\\x. x, let y = 1 in y, if a then b else c)",
     Tuple((lam("x", x), let(("y", lit(1)), y), If(a, b, c)))),
    ("(x)", x),
    ("((x))", x),
    ("f (x, y)", app(f, Tuple((x, y)))),
])
def test_tuples(text, expected):
    same(parse_term(text), expected)


@pytest.mark.parametrize("text, expected", [
    ("[]", ListLit(())),
    ("[ ]", ListLit(())),
    ("[1]", ListLit((lit(1),))),
    ("[1, 2.0, x]", ListLit((lit(1), lit(2.0), x))),
    ("[[], [1], [1, 2]]", ListLit((ListLit(()), ListLit((lit(1),)), ListLit((lit(1), lit(2)))))),
    ("[(1, 2), a * b]", ListLit((Tuple((lit(1), lit(2))), prim("mul", a, b)))),
    ("f [] [x]", app(f, ListLit(()), ListLit((x,)))),
    ("[\\x. x : Real -> Real]", ListLit((lam("x", Ann(x, FunType(REAL, REAL))),))),
])
def test_lists(text, expected):
    same(parse_term(text), expected)


@pytest.mark.parametrize("text", ["(1,)", "(,)", "(1 2,)", "[1,]", "[,]", "[1 2", "(1, 2", "(1", "[", ")", "]"])
def test_bad_tuples_and_lists(text):
    syntax_error(parse_term, text)


@pytest.mark.parametrize("text, expected", [
    (r"\x. x", lam("x", x)),
    (r"\x y z. y", lam("x", "y", "z", y)),
    (r"\(x : Real). x", lam(PVar("x", REAL), x)),
    (r"\(x : Real) (y : List Tensor). y", lam(PVar("x", REAL), PVar("y", ListType(TENSOR)), y)),
    (r"\(x, y). x", lam(PTuple((PVar("x"), PVar("y"))), x)),
    (r"\(x, y, z). z", lam(PTuple((PVar("x"), PVar("y"), PVar("z"))), v("z"))),
    (r"\(x, (y, _)). y", lam(PTuple((PVar("x"), PTuple((PVar("y"), PWild())))), y)),
    (r"\((x : Real), y). x", lam(PTuple((PVar("x", REAL), PVar("y"))), x)),
    (r"\_. 1", lam(PWild(), lit(1))),
    (r"\_ _. 1", lam(PWild(), PWild(), lit(1))),
    (r"\(x). x", lam("x", x)),
    (r"\((x, y)). x", lam(PTuple((PVar("x"), PVar("y"))), x)),
    (r"\x (y : Real) (a, b) _. a",
     lam("x", PVar("y", REAL), PTuple((PVar("a"), PVar("b"))), PWild(), a)),
    (r"\x. \y. x", lam("x", "y", x)),
    (r"\f. f x", lam("f", app(f, x))),
    (r"\x.5", lam("x", lit(5))),  # `.5` is not lexed as a real after a binder
    (r"\x. x + 1", lam("x", prim("add", x, lit(1)))),
    (r"\x. x : Real", lam("x", Ann(x, REAL))),
    (r"\x. \y. x y || y", lam("x", "y", prim("or", app(x, y), y))),
    (r"(\x. x) 1", app(lam("x", x), lit(1))),
])
def test_lambdas(text, expected):
    same(parse_term(text), expected)


@pytest.mark.parametrize("text", [r"\. x", r"\x x", r"\x.", r"\1. x", r"\(x : ). x", r"\(x : Real.", r"\(). x",
                                  r"\x y", r"\(x y). x", "λ", r"\(f x). x"])
def test_bad_lambdas(text):
    syntax_error(parse_term, text)


@pytest.mark.parametrize("text, expected", [
    ("let x = 1 in x", let(("x", lit(1)), x)),
    ("let x = 1; y = x in y", let(("x", lit(1)), ("y", x), y)),
    ("let x = 1; y = 2; z = 3 in (x, y, z)",
     let(("x", lit(1)), ("y", lit(2)), ("z", lit(3)), Tuple((x, y, v("z"))))),
    ("let (a, b) = p in a", let((PTuple((PVar("a"), PVar("b"))), v("p")), a)),
    ("let _ = 1 in 2", let((PWild(), lit(1)), lit(2))),
    ("let (x : Real) = 1 in x", let((PVar("x", REAL), lit(1)), x)),
    ("let (x, (y, _)) = p in y", let((PTuple((PVar("x"), PTuple((PVar("y"), PWild())))), v("p")), y)),
    ("let x = 1 : Int in x", let(("x", Ann(lit(1), INT)), x)),
    ("let f = \\x. x; y = f 1 in y", let(("f", lam("x", x)), ("y", app(f, lit(1))), y)),
    ("let x = let y = 1 in y; z = x in z", let(("x", let(("y", lit(1)), y)), ("z", x), v("z"))),
    ("let x = 1 in x + 1", let(("x", lit(1)), prim("add", x, lit(1)))),
    ("let x = 1 in let y = 2 in x", let(("x", lit(1)), ("y", lit(2)), x)),
    ("let x = 1 in x : Real", let(("x", lit(1)), Ann(x, REAL))),
    ("let x = if a then b else c in x", let(("x", If(a, b, c)), x)),
    ("let\n  x = 1;\n  y = 2\nin\n  x", let(("x", lit(1)), ("y", lit(2)), x)),
])
def test_let(text, expected):
    same(parse_term(text), expected)


def test_let_with_several_bindings_is_nested_lets():
    t = parse_term("let p1 = t1; p2 = t2 in u")
    assert isinstance(t, Let) and t.pattern == PVar("p1") and t.bound == v("t1")
    assert isinstance(t.body, Let) and t.body.pattern == PVar("p2") and t.body.bound == v("t2")
    assert t.body.body == v("u")


@pytest.mark.parametrize("text", ["let x = 1", "let x = 1 in", "let x = 1; in x", "let x = 1;; y = 2 in x",
                                  "let in x", "let x in x", "let x = in x", "let 1 = x in x",
                                  "let x = 1, y = 2 in x", "let f x = 1 in f"])
def test_bad_let(text):
    syntax_error(parse_term, text)


@pytest.mark.parametrize("text, expected", [
    ("if a then b else c", If(a, b, c)),
    ("if x < 1 then 0 else 1", If(prim("lt", x, lit(1)), lit(0), lit(1))),
    ("if a then b else c + 1", If(a, b, prim("add", c, lit(1)))),
    ("if a then b else c || d", If(a, b, prim("or", c, d_))),
    ("if a then b else c : Real", If(a, b, Ann(c, REAL))),
    ("if a then if b then c else d else x", If(a, If(b, c, d_), x)),
    ("if a then b else if c then d else x", If(a, b, If(c, d_, x))),
    ("if if a then b else c then x else y", If(If(a, b, c), x, y)),
    ("if a && b then f x else -y", If(prim("and", a, b), app(f, x), prim("neg", y))),
    ("(if a then b else c) + 1", prim("add", If(a, b, c), lit(1))),
    ("if a then \\x. x else \\x. 1", If(a, lam("x", x), lam("x", lit(1)))),
])
def test_if(text, expected):
    same(parse_term(text), expected)


@pytest.mark.parametrize("text", ["if a then b", "if a else b", "if then a else b", "if a then b else",
                                  "if a b else c"])
def test_bad_if(text):
    syntax_error(parse_term, text)


@pytest.mark.parametrize("text, expected", [
    ("x : Real", Ann(x, REAL)),
    ("f x : Real -> Real", Ann(app(f, x), FunType(REAL, REAL))),
    ("1 + 2 : Real", Ann(prim("add", lit(1), lit(2)), REAL)),
    ("a || b : Bool", Ann(prim("or", a, b), BOOL)),
    ("(x : Real) + 1", prim("add", Ann(x, REAL), lit(1))),
    ("f (x : Tensor)", app(f, Ann(x, TENSOR))),
    ("((x : Real) : Real)", Ann(Ann(x, REAL), REAL)),
    ("[] : List Int", Ann(ListLit(()), ListType(INT))),
    ("x : List (Real * Int)", Ann(x, ListType(TupleType((REAL, INT))))),
])
def test_ascription(text, expected):
    same(parse_term(text), expected)


def test_ascription_is_not_associative():
    syntax_error(parse_term, "x : Real : Real")
    syntax_error(parse_term, "x :")


# ----------------------------------------------------------------------------- programs


def test_definitions():
    prog = parse_program("""
def one = 1
def f (x : Real) (xs : List Real) : Real = x
def two : Int = 2
def g (p : Real * Real) = p
""")
    same(prog, Program((
        Def("one", (), None, lit(1)),
        Def("f", (Param("x", REAL), Param("xs", ListType(REAL))), REAL, x),
        Def("two", (), INT, lit(2)),
        Def("g", (Param("p", TupleType((REAL, REAL))),), None, v("p")),
    )))
    assert prog["two"].result == INT
    with pytest.raises(KeyError):
        prog["three"]


def test_definition_body_extends_to_next_def():
    prog = parse_program("def f (x : Real) : Real =\n  let y = x in\n  y * y\ndef main = f 2.0\n")
    same(prog["f"].body, let(("y", x), prim("mul", y, y)))
    same(prog["main"].body, app(f, lit(2.0)))


def test_def_as_term():
    d = parse_program("def f (x : Real) (y : Int) : Real = x")["f"]
    same(d.as_term(), lam(PVar("x", REAL), PVar("y", INT), Ann(x, REAL)))


@pytest.mark.parametrize("text", ["def = 1", "def f", "def f = ", "def f x = x", "def f (x) = x",
                                  "def f (x : Real = x", "def f : = 1", "def f (x : Real) : Real", "f = 1",
                                  "1", "def f = 1 def", "def f = 1 2 )", "def (f) = 1", "def f (1 : Real) = 1"])
def test_bad_definitions(text):
    syntax_error(parse_program, text)


# ----------------------------------------------------------------------------- precedence


@pytest.mark.parametrize("text, expected", [
    # || is loosest, left-associative
    ("a || b || c", prim("or", prim("or", a, b), c)),
    ("a || b && c", prim("or", a, prim("and", b, c))),
    ("a && b || c", prim("or", prim("and", a, b), c)),
    ("a && b && c", prim("and", prim("and", a, b), c)),
    # comparisons are below && and above + -
    ("a && b < c", prim("and", a, prim("lt", b, c))),
    ("a < b && c", prim("and", prim("lt", a, b), c)),
    ("a < b || c == d", prim("or", prim("lt", a, b), prim("eq", c, d_))),
    ("a + b < c * d", prim("lt", prim("add", a, b), prim("mul", c, d_))),
    ("a <= b", prim("le", a, b)), ("a >= b", prim("ge", a, b)), ("a > b", prim("gt", a, b)),
    ("a == b", prim("eq", a, b)), ("a != b", prim("ne", a, b)), ("a<b", prim("lt", a, b)),
    ("(a < b) == c", prim("eq", prim("lt", a, b), c)),
    ("a < (b < c)", prim("lt", a, prim("lt", b, c))),
    # + - are left-associative, below * / @
    ("a - b - c", prim("sub", prim("sub", a, b), c)),
    ("a - b + c", prim("add", prim("sub", a, b), c)),
    ("a + b - c", prim("sub", prim("add", a, b), c)),
    ("a - (b - c)", prim("sub", a, prim("sub", b, c))),
    ("a + b * c", prim("add", a, prim("mul", b, c))),
    ("a * b + c", prim("add", prim("mul", a, b), c)),
    ("a - b / c", prim("sub", a, prim("div", b, c))),
    ("a + b @ c", prim("add", a, prim("matmul", b, c))),
    # * / @ share a level, left-associative
    ("a / b / c", prim("div", prim("div", a, b), c)),
    ("a / b * c", prim("mul", prim("div", a, b), c)),
    ("a * b / c", prim("div", prim("mul", a, b), c)),
    ("a @ b * c", prim("mul", prim("matmul", a, b), c)),
    ("a * b @ c", prim("matmul", prim("mul", a, b), c)),
    ("a @ b @ c", prim("matmul", prim("matmul", a, b), c)),
    # unary minus is below ** and application but above * / @
    ("-a", prim("neg", a)),
    ("-a * b", prim("mul", prim("neg", a), b)),
    ("a * -b", prim("mul", a, prim("neg", b))),
    ("-a + b", prim("add", prim("neg", a), b)),
    ("a - -b", prim("sub", a, prim("neg", b))),
    ("- -a", prim("neg", prim("neg", a))),
    ("-f x", prim("neg", app(f, x))),
    ("-a ** b", prim("neg", prim("pow", a, b))),
    ("-2 ** 2", prim("neg", prim("pow", lit(2), lit(2)))),
    ("a ** -b", prim("pow", a, prim("neg", b))),
    ("-a @ b", prim("matmul", prim("neg", a), b)),
    # ** is right-associative, tighter than * and unary minus, looser than application
    ("a ** b ** c", prim("pow", a, prim("pow", b, c))),
    ("(a ** b) ** c", prim("pow", prim("pow", a, b), c)),
    ("a ** b * c", prim("mul", prim("pow", a, b), c)),
    ("a * b ** c", prim("mul", a, prim("pow", b, c))),
    ("f x ** g y", prim("pow", app(f, x), app(g, y))),
    ("a**b**c", prim("pow", a, prim("pow", b, c))),
    ("a ** - b ** c", prim("pow", a, prim("neg", prim("pow", b, c)))),
    # application is left-associative and binds tightest
    ("f x y", app(f, x, y)),
    ("f (g x)", app(f, app(g, x))),
    ("f x + g y", prim("add", app(f, x), app(g, y))),
    ("f x * g y", prim("mul", app(f, x), app(g, y))),
    ("f -x", prim("sub", f, x)),  # binary minus: write f (-x) to pass a negation
    ("f (-x)", app(f, prim("neg", x))),
    ("f [1] () true", app(f, ListLit((lit(1),)), lit(()), lit(True))),
    ("f 1 2.0 \"s\"", app(f, lit(1), lit(2.0), lit("s"))),
    # binders and if extend as far right as possible
    (r"\x. a || b", lam("x", prim("or", a, b))),
    (r"\x. f x y", lam("x", app(f, x, y))),
    ("let x = a in b || c", let(("x", a), prim("or", b, c))),
    ("if a then b else c && d", If(a, b, prim("and", c, d_))),
    (r"(\x. x) y || b", prim("or", app(lam("x", x), y), b)),
    # everything together
    ("a || b && -c ** f x * y + 1 < 2",
     prim("or", a, prim("and", b, prim("lt", prim("add", prim("mul", prim("neg", prim("pow", c, app(f, x))), y),
                                                      lit(1)), lit(2))))),
])
def test_precedence_and_associativity(text, expected):
    same(parse_term(text), expected)


@pytest.mark.parametrize("text", ["a < b < c", "a == b == c", "a < b == c", "a <= b >= c", "a != b != c",
                                  "a > b < c"])
def test_comparisons_are_non_associative(text):
    err = syntax_error(parse_term, text)
    second = text.index(" ", text.index(" ", text.index(" ") + 1) + 1) + 1  # the second operator
    assert err.span.column == second + 1
    assert err.message.startswith("unexpected '")


@pytest.mark.parametrize("text", ["a +", "* a", "a * * b", "a ** ", "a || || b", "a &&", "a @", "a / / b",
                                  "a + * b", "a <", "&& a"])
def test_bad_operators(text):
    syntax_error(parse_term, text)


def test_lambda_and_if_are_not_operands():
    # a binder, `let` or `if` in operand position must be parenthesised
    syntax_error(parse_term, r"1 + \x. x")
    syntax_error(parse_term, r"f \x. x")
    syntax_error(parse_term, "1 + if a then b else c")
    same(parse_term(r"f (\x. x)"), app(f, lam("x", x)))
    same(parse_term("1 + (if a then b else c)"), prim("add", lit(1), If(a, b, c)))


# ----------------------------------------------------------------------------- types


@pytest.mark.parametrize("text, expected", [
    ("Real", REAL), ("Tensor", TENSOR), ("Int", INT), ("Bool", BOOL), ("Unit", UNIT), ("d", GRAD),
    ("(Real)", REAL),
    ("Real -> Real", FunType(REAL, REAL)),
    ("Real -> Int -> Bool", FunType(REAL, FunType(INT, BOOL))),
    ("(Real -> Int) -> Bool", FunType(FunType(REAL, INT), BOOL)),
    ("Real * Int", TupleType((REAL, INT))),
    ("Real * Int * Bool", TupleType((REAL, INT, BOOL))),
    ("Real * Int * Bool * Unit", TupleType((REAL, INT, BOOL, UNIT))),
    ("(Real * Int) * Bool", TupleType((TupleType((REAL, INT)), BOOL))),
    ("Real * (Int * Bool)", TupleType((REAL, TupleType((INT, BOOL))))),
    ("Real * Int -> Bool", FunType(TupleType((REAL, INT)), BOOL)),
    ("Real -> Real * Real", FunType(REAL, TupleType((REAL, REAL)))),
    ("(Real -> Real) * Real", TupleType((FunType(REAL, REAL), REAL))),
    ("List Real", ListType(REAL)),
    ("List (List Real)", ListType(ListType(REAL))),
    ("List List Int", ListType(ListType(INT))),
    ("List Real * Int", TupleType((ListType(REAL), INT))),
    ("List (Real * Int)", ListType(TupleType((REAL, INT)))),
    ("List Real -> Real", FunType(ListType(REAL), REAL)),
    ("List (Real -> Real)", ListType(FunType(REAL, REAL))),
    ("Real -o Real", LinType(REAL, REAL)),
    ("Real -o Real -o d", LinType(REAL, LinType(REAL, GRAD))),
    ("Real -> Real -o d", FunType(REAL, LinType(REAL, GRAD))),
    ("Real -o Real -> Real", LinType(REAL, FunType(REAL, REAL))),
    ("Real * Real -o d", LinType(TupleType((REAL, REAL)), GRAD)),
    ("~Real", LinType(REAL, GRAD)),
    ("~Real", perp(REAL)),
    ("Real -o d", perp(REAL)),
    ("~(Real * Real)", perp(TupleType((REAL, REAL)))),
    ("~Real * Real", TupleType((perp(REAL), REAL))),
    ("~Real -> d", FunType(perp(REAL), GRAD)),
    ("~~Real", perp(perp(REAL))),
    ("~List Real", perp(ListType(REAL))),
    ("List ~Real", ListType(perp(REAL))),
    ("Real⊥", perp(REAL)),
    ("Real⊥⊥", perp(perp(REAL))),
    ("Real⊥ × Real", TupleType((perp(REAL), REAL))),
    ("(Real × Real)⊥", perp(TupleType((REAL, REAL)))),
    ("(Real → Real)⊥", perp(FunType(REAL, REAL))),
    ("Real × Tensor → Real × Tensor⊥", FunType(TupleType((REAL, TENSOR)), TupleType((REAL, perp(TENSOR))))),
    ("Real*Real->Real", FunType(TupleType((REAL, REAL)), REAL)),
    ("Real -- a comment\n -> Real", FunType(REAL, REAL)),
])
def test_types(text, expected):
    assert parse_type(text) == expected


@pytest.mark.parametrize("text", ["", "List", "Real Int", "Real ->", "-> Real", "Real *",
                                  "* Real", "(Real", "Real)", "~", "⊥", "Real -o", "List Real Real", "()",
                                  "Real Real -> Real", "(Real, Real)"])
def test_bad_types(text):
    syntax_error(parse_type, text)


def test_unknown_type_names_say_which():
    """A name that is not a base type may be a type alias (docs/language.md, "Records"),
    defined where the parser cannot see it (an earlier REPL input, a module): the checker
    says that it is unknown, at the name."""
    import lamad

    assert parse_type("Real -> Foo") == FunType(REAL, TypeName("Foo"))
    with pytest.raises(lamad.LamTypeError) as info:
        lamad.loads("def f (g : Real -> Foo) : Real = 1.0")
    err = info.value
    assert "unknown type 'Foo'" in err.message
    assert (err.span.line, err.span.column, err.span.end_column) == (1, 20, 23)
    with pytest.raises(lamad.LamTypeError, match="unknown type 'real'; did you mean 'Real'"):
        lamad.loads("def f (x : real) = x")
    err = syntax_error(parse_type, "Real Int")
    assert "Real" in err.message and "argument" in err.message
    err = syntax_error(parse_type, "List")
    assert "List" in err.message


# ----------------------------------------------------------------------------- keywords


@pytest.mark.parametrize("kw", sorted(KEYWORDS))
def test_keywords_are_not_names(kw):
    assert kw in {"def", "type", "import", "let", "in", "if", "then", "else", "true", "false"}
    for text in [rf"\{kw}. 1", rf"\(x, {kw}). 1", rf"\({kw} : Real). 1", f"let {kw} = 1 in 2",
                 f"let ({kw}, y) = p in y", f"let x = 1; {kw} = 2 in x"]:
        err = syntax_error(parse_term, text)
        assert err.span is not None
    for text in [f"def {kw} = 1", f"def f ({kw} : Real) = 1"]:
        syntax_error(parse_program, text)


def test_keyword_as_name_error_points_at_it():
    err = syntax_error(parse_term, r"\x let. 1")
    assert "keyword" in err.message and "let" in err.message
    assert (err.span.column, err.span.end_column) == (4, 7)
    err = syntax_error(parse_program, "def f = 1\ndef in = 2")
    assert "in" in err.message
    assert (err.span.line, err.span.column) == (2, 5)


@pytest.mark.parametrize("text", ["in", "then", "else", "def", "f in", "f then x", "x + else", "let", "if"])
def test_keywords_in_term_position(text):
    syntax_error(parse_term, text)


# ----------------------------------------------------------------------------- spans


def sp(node):
    s = node.span
    return (s.start, s.end, s.line, s.column, s.end_line, s.end_column)


def test_spans_single_line():
    text = "f x + 10 * y"
    t = parse_term(text)
    assert sp(t) == (0, 12, 1, 1, 1, 13)
    fx, prod = t.args
    assert sp(fx) == (0, 3, 1, 1, 1, 4)
    assert sp(fx.fn) == (0, 1, 1, 1, 1, 2)
    assert sp(fx.arg) == (2, 3, 1, 3, 1, 4)
    assert sp(prod) == (6, 12, 1, 7, 1, 13)
    assert sp(prod.args[0]) == (6, 8, 1, 7, 1, 9)
    assert text[prod.span.start:prod.span.end] == "10 * y"


def test_span_of_parenthesised_term_is_its_inside():
    t = parse_term("2 * (a + b)")
    assert sp(t) == (0, 11, 1, 1, 1, 12)
    assert sp(t.args[1]) == (5, 10, 1, 6, 1, 11)


def test_spans_of_binders_and_patterns():
    text = r"\(a, b) c. let (p, _) = a in if p then b else c"
    t = parse_term(text)
    assert sp(t) == (0, len(text), 1, 1, 1, len(text) + 1)
    pat = t.param
    assert isinstance(pat, PTuple) and sp(pat) == (1, 7, 1, 2, 1, 8)
    assert sp(pat.items[1]) == (5, 6, 1, 6, 1, 7)
    inner = t.body
    assert isinstance(inner, Lam) and sp(inner.param) == (8, 9, 1, 9, 1, 10)
    body = inner.body
    assert isinstance(body, Let)
    assert text[body.span.start:body.span.end] == text[11:]
    assert sp(body.pattern) == (15, 21, 1, 16, 1, 22)
    assert isinstance(body.pattern.items[1], PWild) and sp(body.pattern.items[1]) == (19, 20, 1, 20, 1, 21)
    cond = body.body
    assert isinstance(cond, If) and text[cond.span.start:cond.span.end] == "if p then b else c"


def test_spans_multi_line_program():
    text = (
        "-- header\n"                          # line 1
        "def f (x : Real) : Real =\n"          # line 2
        "  let y = x * 2.0\n"                  # line 3
        "  in y +\n"                           # line 4
        "     1.0\n"                           # line 5
        "\n"
        "def main = f\n"                       # line 7
        "  3.0\n"                              # line 8
    )
    prog = parse_program(text)
    fdef, main = prog.defs
    assert (fdef.span.line, fdef.span.column, fdef.span.end_line, fdef.span.end_column) == (2, 1, 5, 9)
    assert text[fdef.span.start:fdef.span.end].startswith("def f (x : Real)")
    assert text[fdef.span.start:fdef.span.end].endswith("1.0")
    ns = fdef.name_span
    assert (ns.start, ns.end, ns.line, ns.column, ns.end_line, ns.end_column) == (
        text.index("f ("), text.index("f (") + 1, 2, 5, 2, 6)
    (param,) = fdef.params
    assert (param.span.line, param.span.column, param.span.end_line, param.span.end_column) == (2, 7, 2, 17)
    body = fdef.body
    assert isinstance(body, Let)
    assert (body.span.line, body.span.column, body.span.end_line, body.span.end_column) == (3, 3, 5, 9)
    assert (body.bound.span.line, body.bound.span.column, body.bound.span.end_column) == (3, 11, 18)
    plus = body.body
    assert (plus.span.line, plus.span.column, plus.span.end_line, plus.span.end_column) == (4, 6, 5, 9)
    one = plus.args[1]
    assert sp(one) == (text.index("1.0"), text.index("1.0") + 3, 5, 6, 5, 9)
    assert (main.span.line, main.span.end_line, main.span.end_column) == (7, 8, 6)
    assert (main.body.arg.span.line, main.body.arg.span.column) == (8, 3)


def test_spans_are_ignored_by_equality():
    t1, t2 = parse_term("f  x"), parse_term("(f)\n x")
    assert t1.span != t2.span
    assert t1 == t2


def test_spans_count_unicode_characters_not_bytes():
    t = parse_term('λx. x · "é" · y')
    assert sp(t.body.args[0].args[1]) == (8, 11, 1, 9, 1, 12)
    assert sp(t.body.args[1]) == (14, 15, 1, 15, 1, 16)


# ----------------------------------------------------------------------------- syntax errors


def test_error_unexpected_token_says_what_was_expected():
    err = syntax_error(parse_program, "def f = )")
    assert err.message.startswith("unexpected ')'; expected ")
    assert "a name" in err.message and "an integer" in err.message and "'('" in err.message
    assert (err.span.line, err.span.column, err.span.end_column) == (1, 9, 10)


def test_error_unexpected_end_of_input():
    err = syntax_error(parse_term, "(1, 2")
    assert err.message.startswith("unexpected end of input; expected ")
    assert "')'" in err.message and "','" in err.message
    assert (err.span.line, err.span.column) == (1, 6)
    err = syntax_error(parse_program, "def f (x : Real) =\n  x +")
    assert err.message.startswith("unexpected end of input")
    assert (err.span.line, err.span.column) == (2, 6)


def test_a_missing_expression_is_reported_at_the_keyword_found_instead():
    """``let y = in x`` reads ``in`` where a name may be: the error is at ``in``, not at the
    end of the file, and a ``def`` with no body is reported at the next ``def``."""
    source = "def f (x : Real) : Real = let y = in x\n\n\n"
    err = syntax_error(parse_program, source)
    assert err.message == "unexpected 'in'; expected an expression"
    assert (err.span.line, err.span.column, err.span.end_column) == (1, 35, 37)
    err = syntax_error(parse_program, "def f (x : Real) : Real =\ndef main = 1.0\n")
    assert err.message == "unexpected 'def'; expected an expression; the definition before it has no body"
    assert (err.span.line, err.span.column, err.span.end_column) == (2, 1, 4)
    err = syntax_error(parse_term, "if then 1.0 else 2.0")
    assert err.message == "unexpected 'then'; expected an expression" and err.span.column == 4


def test_error_unexpected_character():
    err = syntax_error(parse_term, "1 $ 2")
    assert err.message == "unexpected character '$'"
    assert (err.span.line, err.span.column) == (1, 3)


def test_error_expected_lists_keywords_literally():
    err = syntax_error(parse_term, "if a then b c")
    assert "unexpected end of input" in err.message and "'else'" in err.message
    err = syntax_error(parse_term, "let x = 1 x")
    assert "'in'" in err.message and "';'" in err.message


def test_error_in_type_says_expected():
    err = syntax_error(parse_program, "def f (x : Real ->) = x")
    assert err.message.startswith("unexpected ')'; expected ")
    assert "a name" in err.message
    assert err.span.column == 19


def test_located_error_format():
    source = "def ok = 1\n\ndef bad (x : Real) = x +* 2\ndef after = 3\n"
    err = syntax_error(parse_program, source)
    assert err.locate(source, "f.lam") is err
    text = str(err)
    lines = text.split("\n")
    assert len(lines) == 3
    assert re.fullmatch(r"f\.lam:3:25: syntax error: unexpected '\*'; expected .+", lines[0]), lines[0]
    assert lines[1] == "    def bad (x : Real) = x +* 2"
    assert lines[2] == "    " + " " * 24 + "^"
    # the caret sits under the offending character
    assert lines[1][lines[2].index("^")] == "*"


def test_located_error_format_wide_span_and_end_of_input():
    source = "def f = 1\ndef g = let if = 2 in 3"
    err = syntax_error(parse_program, source)
    lines = str(err.locate(source, "prog.lam")).split("\n")
    assert lines[0].startswith("prog.lam:2:13: syntax error: ")
    assert lines[1] == "    def g = let if = 2 in 3"
    assert lines[2] == "    " + " " * 12 + "^^"
    source = "def f = (1,\n  2"
    err = syntax_error(parse_program, source)
    lines = str(err.locate(source, "f.lam")).split("\n")
    assert lines[0].startswith("f.lam:2:4: syntax error: unexpected end of input; expected ")
    assert lines[1] == "      2"
    assert lines[2] == "       ^"


def test_located_error_counts_lines_like_the_lexer():
    # a form feed, a lone carriage return or U+2028 in a comment does not start a new line
    for sep in ["\x0c", "\r", "\u2028", "\x1c"]:
        source = f"-- one{sep}two\ndef f = )\n"
        err = syntax_error(parse_program, source)
        assert (err.span.line, err.span.column) == (2, 9)
        lines = str(err.locate(source, "f.lam")).split("\n")
        assert lines[0].startswith("f.lam:2:9: syntax error: unexpected ')'")
        assert lines[1] == "    def f = )"
    source = "def a = 1\r\ndef b = )\r\n"  # Windows line ends
    lines = str(syntax_error(parse_program, source).locate(source, "f.lam")).split("\n")
    assert lines[0].startswith("f.lam:2:9: ")
    assert lines[1:] == ["    def b = )", "            ^"]


def test_unlocated_error_str():
    err = syntax_error(parse_term, "1 +")
    assert str(err).startswith("syntax error: unexpected end of input")


def test_loads_reports_syntax_errors_with_the_file_name():
    with pytest.raises(LamSyntaxError) as info:
        lamad.loads("def main =\n  1 +\n", filename="bad.lam")
    assert str(info.value).startswith("bad.lam:")
    assert "syntax error: unexpected" in str(info.value)


def test_parse_is_parse_term():
    same(lamad.parse(r"\x. x"), lam("x", x))


# ----------------------------------------------------------------------------- primitive references


def test_primitive_reference_is_an_atom_named_with_its_percent_sign():
    same(parse_term("%like"), v("%like"))
    same(parse_term("%like x"), app(v("%like"), x))
    same(parse_term("%grad'rf f"), app(v("%grad'rf"), f))
    same(parse_term("f %unbroadcast y"), app(f, v("%unbroadcast"), y))
    same(parse_term("%mul_2 x * y"), prim("mul", app(v("%mul_2"), x), y))
    same(parse_term("(%sin, x)"), Tuple((v("%sin"), x)))


def test_primitive_reference_has_its_span():
    text = "f (%grad'rf g)"
    t = parse_term(text)
    ref = t.arg.fn
    assert ref == Var("%grad'rf")
    assert ref.span == Span(3, 11, 1, 4, 1, 12)
    assert text[ref.span.start:ref.span.end] == "%grad'rf"


@pytest.mark.parametrize("text", ["% like", "%", "%1x", "%like'q", "let %x = 1 in x", "\\%x. x"])
def test_malformed_or_bound_primitive_references_are_syntax_errors(text):
    syntax_error(parse_term, text)


def test_no_definition_or_parameter_is_named_with_a_percent_sign():
    syntax_error(parse_program, "def %f = 1")
    syntax_error(parse_program, "def f (%x : Real) = 1.0")


# ----------------------------------------------------------------------------- printing negations


def test_a_negation_of_a_negation_prints_so_that_it_parses_back():
    """``-(-x)`` printed ``--x`` would begin a comment, and so would ``-`` before a negative
    literal (which the simplifier makes); ``f -0.0`` would be a subtraction."""
    from lamad.pretty import pretty

    cases = [prim("neg", prim("neg", x)), prim("neg", Lit(-1.0)), prim("neg", prim("neg", prim("neg", Lit(2)))),
             prim("neg", Lit(-0.0)), app(f, Lit(-0.0)), prim("sub", x, prim("neg", prim("neg", y)))]
    for term in cases:
        text = pretty(term)
        assert "--" not in text, text
        assert strip(parse_term(text)) == strip(_negative_literals_as_negations(term)), text
    source = "def g (x : Real) : Real = -(-x)\n\ndef main = -(-(-1.0))\n"
    assert lamad.pretty(parse_program(source)) == source


def _negative_literals_as_negations(term):
    """What a printed term parses back to: the parser reads ``-1.0`` as ``-`` applied to
    ``1.0`` (a negative literal is only made by the transforms and the simplifier)."""
    import math

    from lamad.syntax import Prim, map_children

    if isinstance(term, Lit) and isinstance(term.value, (int, float)) and not isinstance(term.value, bool) \
            and math.copysign(1, term.value) < 0:
        return Prim("neg", (Lit(-term.value),))
    return map_children(term, _negative_literals_as_negations)


@st.composite
def _negated_programs(draw):
    """A generated program (tests/programs.py), parsed, with negations wrapped around some
    of its subterms and some number literals made negative; the types need not check."""
    from lamad.syntax import Prim, map_children

    sample = draw(programs(max_depth=3))
    program = parse_program(sample.source)

    def negate(term):
        if isinstance(term, Prim) and term.op in ("index", "index_set", "index_add"):
            # x[…]: its spec stays a string and the tuple of its parts a tuple (its parts are negated)
            spec, target, parts, *value = term.args
            parts = map_children(parts, negate) if isinstance(parts, Tuple) else negate(parts)
            return Prim(term.op, (spec, negate(target), parts, *map(negate, value)), span=term.span)
        term = map_children(term, negate)
        if isinstance(term, Lit) and isinstance(term.value, (int, float)) and not isinstance(term.value, bool) \
                and draw(st.booleans()):
            term = Lit(-term.value)
        for _ in range(draw(st.integers(0, 3))):
            term = Prim("neg", (term,))
        return term

    return dataclasses.replace(program, defs=tuple(dataclasses.replace(d, body=negate(d.body))
                                                   for d in program.defs))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_negated_programs())
def test_printed_programs_with_nested_negations_parse_back_to_alpha_equivalent_programs(program):
    from lamad.pretty import pretty
    from lamad.syntax import alpha_key

    text = pretty(program)
    again = parse_program(text)
    assert [d.name for d in again.defs] == [d.name for d in program.defs]
    for d, e in zip(program.defs, again.defs):
        assert alpha_key(e.as_term()) == alpha_key(_negative_literals_as_negations(d.as_term())), text


# ----------------------------------------------------------------------------- the parse loop


def with_spans(node):
    """A parsed value as nested tuples with every field, spans and literal types included
    (spans take no part in the nodes' equality)."""
    if isinstance(node, Lit):
        return ("Lit", type(node.value).__name__, node.value, node.span)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(with_spans(getattr(node, f.name)) for f in dataclasses.fields(node))
    if isinstance(node, (tuple, list)):
        return tuple(with_spans(x) for x in node)
    return node


def larks_own(text: str, start: str):
    """``text`` parsed by Lark's ``parse``, which lamad's loop stands in for."""
    from lamad.parser import _parser

    return _parser().parse(text, start=start)[0]


SOURCES = sorted((ROOT / "examples").glob("*.lam")) + sorted((ROOT / "lamad" / "std").glob("*.lam"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_the_parse_loop_builds_what_larks_parse_builds(path):
    """lamad's loop over Lark's tables (lamad/parser.py, ``_Loop``) gives the AST of Lark's
    own parse, spans included, on every example and library module."""
    text = path.read_text(encoding="utf-8")
    assert with_spans(parse_program(text)) == with_spans(larks_own(text, "start"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_the_parse_loop_builds_what_larks_parse_builds_on_generated_programs(sample):
    assert with_spans(parse_program(sample.source)) == with_spans(larks_own(sample.source, "start"))


def test_a_syntax_error_that_the_loop_meets_is_larks_own_report():
    """The loop hands input it does not take to Lark's parse, which says what was expected:
    an unexpected token, a character no token starts, an error met in a callback earlier."""
    with pytest.raises(LamSyntaxError, match=r"unexpected 'in'; expected") as e:
        parse_program("def f (x : Real) : Real =\n  let y = x in in y\n")
    assert (e.value.span.line, e.value.span.column) == (2, 16)
    with pytest.raises(LamSyntaxError, match="unexpected character '\\?'"):
        parse_term("x ? y")
    with pytest.raises(LamSyntaxError, match="'let' is a keyword"):
        parse_program("def f (let : Real) : Real = 1.0\ndef g = )")


def test_a_lark_whose_tables_the_loop_cannot_read_parses_with_its_own_parse(monkeypatch):
    """The loop reads Lark's internals, which are not its API: where they are laid out
    otherwise (here: no LALR tables where the loop looks), Lark's own parse does the work
    and gives the same AST."""
    import lamad.parser as parser

    text = (ROOT / "examples" / "wine.lam").read_text(encoding="utf-8")
    want = with_spans(parse_program(text))
    monkeypatch.setattr(parser._Loop, "__init__", lambda self, lark: lark.no_such_table)
    parser._loop.cache_clear()
    try:
        assert parser._loop() is None
        assert with_spans(parse_program(text)) == want
    finally:
        parser._loop.cache_clear()
