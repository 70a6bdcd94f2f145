"""Type inference and type errors (docs/language.md: Typing, Numbers, Builtins).

Positive tests check the printed type of every definition (``str(type)`` is the ASCII
form) and, where the elaboration matters (promotion, integer literals as reals), the
value the definition evaluates to.  Negative tests check, for each distinct mistake,
that loading raises :class:`lamad.LamTypeError` with the key words of its message and
a span pointing at the offending piece of source (line, column and the text under it).
"""

from __future__ import annotations

import numpy as np
import pytest

import lamad
from lamad import LamSyntaxError, LamTypeError
from lamad.reverse import backprop
from lamad.syntax import REAL
from lamad.types import infer_term


def types_of(src: str) -> dict[str, str]:
    return {name: str(t) for name, t in lamad.loads(src).types.items()}


def type_error(src: str) -> LamTypeError:
    with pytest.raises(LamTypeError) as info:
        lamad.loads(src)
    return info.value


def span_text(src: str, err: lamad.LamError) -> str:
    assert err.span is not None, f"no span on: {err.message}"
    return src[err.span.start:err.span.end]


def check_error(src: str, line: int, column: int, text: str, *words: str) -> LamTypeError:
    """Loading ``src`` fails with a type error at ``line:column`` spanning ``text`` whose
    message contains every one of ``words``."""
    err = type_error(src)
    for w in words:
        assert w in err.message, f"{w!r} not in {err.message!r}"
    assert (err.span.line, err.span.column) == (line, column), (err.span, err.message)
    assert span_text(src, err) == text, (span_text(src, err), err.message)
    # the formatted error names the place and shows the line with a caret under the span
    shown = str(err)
    head, source_line, caret = shown.split("\n")
    assert head.startswith(f"<string>:{line}:{column}: type error: ")
    assert source_line.strip() == src.splitlines()[line - 1].strip()
    assert caret.strip() == "^" * len(text.splitlines()[0]) or "\n" in text
    return err


# ============================================================== inference


class TestInference:
    def test_annotations_optional_inside_terms(self):
        src = """
def f (x : Real) = let g = \\y. y * x in g (g x)
def h (t : Tensor) = let k = \\(u : Tensor). u @ u; m = \\v. k v + v in m t
def p = \\(a, b). a + b * 2.0
"""
        assert types_of(src) == {
            "f": "Real -> Real",
            "h": "Tensor -> Tensor",
            "p": "Real * Real -> Real",
        }
        prog = lamad.loads(src)
        assert float(prog.f(3.0)) == pytest.approx(27.0)
        m = np.array([[1.0, 2.0], [3.0, 4.0]])
        np.testing.assert_allclose(prog.h(m), m @ m + m)
        assert float(prog.p((1.0, 2.0))) == pytest.approx(5.0)

    def test_top_level_parameters_need_annotations(self):
        with pytest.raises(LamSyntaxError):
            lamad.loads("def f x = x")
        with pytest.raises(LamSyntaxError):
            lamad.loads("def f (x) = x")

    def test_result_annotation(self):
        assert types_of("def f (x : Tensor) (w : Tensor) : Real = sum (x @ w)") == {
            "f": "Tensor -> Tensor -> Real"}
        # a Real body with a Tensor result annotation is promoted
        assert types_of("def f (x : Real) : Tensor = x") == {"f": "Real -> Tensor"}

    def test_printed_types(self):
        src = """
def a (x : Real) (t : Tensor) = x + t
def b (g : Real -> Real) (x : Real) = g (g x)
def c (p : Real * Tensor) = p
def d = zip [1, 2] [true, false]
def e (xs : List Real) = map (\\x. x * 2.0) xs
def f (x : Real) (n : Int) = (x, n, true, (), [x], (x, n))
def g (k : Tensor -> Tensor) = k
def h = (range 3, real 2, scalar (ones [1]), fst (1, true), snd (1, true))
def i (t : Tensor) = (sum t, mean t, sum_axis 0 t, dot t t, unstack t, stack [t], reshape t [2])
def j = (zeros [2], eye 2, randn 0 [2], onehot 3 (ones [2]), load "x.npy")
def k (xs : List (Real * Bool)) = length xs
"""
        assert types_of(src) == {
            "a": "Real -> Tensor -> Tensor",
            "b": "(Real -> Real) -> Real -> Real",
            "c": "Real * Tensor -> Real * Tensor",
            "d": "List (Int * Bool)",
            "e": "List Real -> List Real",
            "f": "Real -> Int -> Real * Int * Bool * Unit * List Real * (Real * Int)",
            "g": "(Tensor -> Tensor) -> Tensor -> Tensor",
            "h": "List Int * Real * Real * Int * Bool",
            "i": "Tensor -> Real * Real * Tensor * Real * List Tensor * Tensor * Tensor",
            "j": "Tensor * Tensor * Tensor * Tensor * Tensor",
            "k": "List (Real * Bool) -> Int",
        }

    def test_types_are_in_definition_order(self):
        prog = lamad.loads("def z = 1\ndef a = 2.0\ndef m = true")
        assert list(prog.types) == ["z", "a", "m"]

    def test_user_code_is_monomorphic(self):
        # no let-polymorphism: a let-bound identity is used at one type only
        check_error("def f = let id = \\x. x in (id 1.0, id true)", 1, 39, "true",
                    "expected Real, found Bool")
        # and a top-level definition whose type is not settled is rejected
        check_error("def id = \\x. x", 1, 5, "id", "not fully determined", "'a -> 'a", "annotation")

    def test_map_at_two_types_in_one_definition(self):
        src = ("def f (xs : List Real) = let a = map (\\x. x * 2.0) xs; "
               "b = map (\\n. n + 1) [1, 2]; c = map (\\v. v > 0.5) xs in (a, b, c)")
        assert types_of(src) == {"f": "List Real -> List Real * List Int * List Bool"}
        a, b, c = lamad.loads(src).f([0.25, 1.5])
        np.testing.assert_allclose([float(v) for v in a], [0.5, 3.0])
        assert b == [2, 3] and all(isinstance(v, int) for v in b)
        assert c == [False, True]

    def test_other_builtins_instantiated_afresh(self):
        src = """
def lengths (t : Tensor) = (length [1, 2], length [t], length [true, false, true])
def iterates (t : Tensor) = (iterate 2 (\\x. x * 2.0) 1.0, iterate 3 (\\b. not b) true, iterate 1 (\\x. x @ x) t)
def zips = (zip [1] [true], zip [1.0] [[2]])
def folds = (fold (\\acc x. acc + x) 0 [1, 2, 3], fold (\\acc b. acc || b) false [false, true])
def fsts = (fst (1, true), fst (true, 1.0))
"""
        assert types_of(src) == {
            "lengths": "Tensor -> Int * Int * Int",
            "iterates": "Tensor -> Real * Bool * Tensor",
            "zips": "List (Int * Bool) * List (Real * List Int)",
            "folds": "Int * Bool",
            "fsts": "Int * Bool",
        }
        prog = lamad.loads(src)
        assert prog.lengths(np.ones(2)) == (2, 1, 3)
        r, b, t = prog.iterates(np.array([[2.0]]))
        assert float(r) == 4.0 and b is False and float(t[0, 0]) == 4.0
        assert prog.folds == (6, True)
        assert prog.fsts == (1, True)

    def test_partial_application_of_builtins(self):
        src = "def g = map exp\ndef h (t : Tensor) = let s = sum_axis 0 in s t"
        assert types_of(src) == {"g": "List Real -> List Real", "h": "Tensor -> Tensor"}
        prog = lamad.loads(src)
        np.testing.assert_allclose([float(v) for v in prog.g([0.0, 1.0])], [1.0, np.e])
        np.testing.assert_allclose(prog.h(np.arange(6.0).reshape(2, 3)), [3.0, 5.0, 7.0])

    def test_real_promoted_where_tensor_expected(self):
        src = """
def g (t : Tensor) = t * 2.0
def a = g 1.5
def b (t : Tensor) = [1.0, t]
def c (x : Real) (t : Tensor) = if x > 0.0 then x else t
def d (x : Real) = (x : Tensor)
def e (xs : List Real) : List Tensor = xs
def app (f : Real -> Tensor) = f 1.0
def h = app (\\(t : Tensor). t * 3.0)
"""
        assert types_of(src) == {
            "g": "Tensor -> Tensor", "a": "Tensor", "b": "Tensor -> List Tensor",
            "c": "Real -> Tensor -> Tensor", "d": "Real -> Tensor", "e": "List Real -> List Tensor",
            "app": "(Real -> Tensor) -> Tensor", "h": "Tensor",
        }
        prog = lamad.loads(src)
        assert float(prog.a) == 3.0
        t = np.array([5.0, 6.0])
        np.testing.assert_allclose(prog.c(-1.0, t), t)
        assert float(prog.c(2.0, t)) == 2.0
        assert float(prog.h) == 3.0

    def test_functions_joined_by_their_results(self):
        src = """
def k (x : Real) (t : Tensor) = if x > 0.0 then (\\(y : Real). y * x) else (\\(y : Real). t)
def fs (t : Tensor) = [\\(y : Real). y, \\(y : Real). t * y]
"""
        assert types_of(src) == {"k": "Real -> Tensor -> Real -> Tensor", "fs": "Tensor -> List (Real -> Tensor)"}
        prog = lamad.loads(src)
        t = np.array([5.0, 6.0])
        assert float(prog.k(2.0, t)(3.0)) == 6.0
        np.testing.assert_allclose(prog.k(-1.0, t)(3.0), t)
        type_error("def f (t : Tensor) = if true then (\\(y : Real). y) else (\\(y : Tensor). y)")

    def test_annotated_wildcards_keep_their_types(self):
        src = """
def g = \\((_, y) : Real * Tensor). y
def k = \\(_ : Tensor). 1.0
def n (p : Real) : Real = fold (\\(x : Real) ((_, _) : Real * Int). x) p []
"""
        assert types_of(src) == {"g": "Real * Tensor -> Tensor", "k": "Tensor -> Real", "n": "Real -> Real"}
        printed = lamad.pretty(lamad.parse_program(src), ascii=True)
        assert "\\((_, y) : Real * Tensor). y" in printed and "\\(_ : Tensor). 1.0" in printed
        check_error("def k = (\\(_ : Tensor). 1.0) true", 1, 30, "true", "expected Tensor, found Bool")

    def test_real_op_tensor_gives_tensor(self):
        src = """
def a (x : Real) (t : Tensor) = (x + t, t - x, x * t, t / x, x ** t, max x t, min t x)
def b (x : Real) (y : Real) = (x + y, x * y, exp x, max x y)
def c (t : Tensor) = (exp t, sum t, t @ t)
"""
        types = types_of(src)
        assert types["a"] == "Real -> Tensor -> " + " * ".join(["Tensor"] * 7)
        assert types["b"] == "Real -> Real -> Real * Real * Real * Real"
        assert types["c"] == "Tensor -> Tensor * Real * Tensor"

    def test_functions_over_reals_applied_to_tensors(self):
        # the parameter of an unannotated lambda is not committed to Real by `x + 1.0`
        src = """
def f (t : Tensor) = (\\x. x + 1.0) t
def g (t : Tensor) = let h = \\x. 2.0 * x in h t
def m (t : Tensor) = map (\\x. x - 0.5) [t, t]
def r = (\\x. x * 2.0) 4.0
"""
        assert types_of(src) == {"f": "Tensor -> Tensor", "g": "Tensor -> Tensor",
                                 "m": "Tensor -> List Tensor", "r": "Real"}
        prog = lamad.loads(src)
        t = np.array([1.0, 2.0])
        np.testing.assert_allclose(prog.f(t), t + 1.0)
        np.testing.assert_allclose(prog.g(t), 2.0 * t)
        np.testing.assert_allclose(prog.m(t)[1], t - 0.5)
        assert float(prog.r) == 8.0

    def test_a_real_accumulator_promoted_by_tensor_elements(self):
        # the initial 1.0 does not fix the accumulator to Real before the elements are seen
        src = """
def p (x : Tensor) = fold (\\acc e. acc * e) 1.0 (unstack x)
def s (x : Tensor) = scan (\\acc e. acc * e) 1.0 (unstack x)
def l (x : Tensor) = fold (\\acc e. e) 0.0 (unstack x)
def i (x : Tensor) = fst (iterate 2 (\\(a, n). (a * x, n + 1)) (1.0, 0))
def t (x : Tensor) = fold (\\acc e. acc * e) x [1.0, 2.0]
def r = (fold (\\acc e. acc * e) 1.0 [2.0, 3.0], scan (\\acc e. acc + e) 0.5 [1.0], iterate 2 (\\a. a * 3.0) 1.0)
"""
        assert types_of(src) == {"p": "Tensor -> Tensor", "s": "Tensor -> List Tensor", "l": "Tensor -> Tensor",
                                 "i": "Tensor -> Tensor", "t": "Tensor -> Tensor",
                                 "r": "Real * List Real * Real"}
        prog = lamad.loads(src)
        x = np.array([1.5, -2.0, 4.0])
        assert float(prog.p(x)) == -12.0
        assert [float(v) for v in prog.s(x)] == [1.0, 1.5, -3.0, -12.0]
        assert float(prog.l(x)) == 4.0
        np.testing.assert_array_equal(prog.i(x), x * x)
        np.testing.assert_array_equal(prog.t(x), 2.0 * x)
        assert prog.r == (6.0, [0.5, 1.5], 9.0)

    def test_integer_literal_as_real(self):
        src = """
def f (x : Real) = 2 * x
def g (t : Tensor) = (t + 1, 1 - t, t * 2, 2 / t, t ** 2)
def h (x : Real) = x + 1
def k = fill 3 [2]
def l = [1.0, 2, 3]
def q = 3 / 2
"""
        assert types_of(src) == {
            "f": "Real -> Real", "g": "Tensor -> " + " * ".join(["Tensor"] * 5),
            "h": "Real -> Real", "k": "Tensor", "l": "List Real", "q": "Real",
        }
        prog = lamad.loads(src)
        assert float(prog.f(1.25)) == 2.5
        t = np.array([1.0, 4.0])
        for got, want in zip(prog.g(t), (t + 1, 1 - t, t * 2, 2 / t, t ** 2)):
            np.testing.assert_allclose(got, want)
        np.testing.assert_array_equal(prog.k, [3.0, 3.0])
        assert prog.k.dtype == np.float64
        assert [float(v) for v in prog.l] == [1.0, 2.0, 3.0]
        assert float(prog.q) == 1.5  # not integer division: `/` is on reals

    def test_int_arithmetic_stays_int(self):
        src = """
def n = 2 + 3 * 4
def m (k : Int) = k * 2 - 1
def p = 2 ** 10
def negate (k : Int) = -k
def c = 7
def r (k : Int) = real k * 2.5
"""
        assert types_of(src) == {"n": "Int", "m": "Int -> Int", "p": "Int", "negate": "Int -> Int",
                                 "c": "Int", "r": "Int -> Real"}
        prog = lamad.loads(src)
        assert prog.n == 14 and type(prog.n) is int
        assert prog.m(5) == 9 and type(prog.m(5)) is int
        assert prog.p == 1024 and type(prog.p) is int
        assert prog.negate(3) == -3
        assert float(prog.r(2)) == 5.0

    def test_comparisons_and_booleans(self):
        src = """
def a (x : Real) (y : Real) = (x < y, x == y, 1 <= 2, x != 1)
def b (v : Bool) = (v && true, v || false, not v, v == true)
def c = 3 < 4.0
"""
        assert types_of(src) == {"a": "Real -> Real -> Bool * Bool * Bool * Bool",
                                 "b": "Bool -> Bool * Bool * Bool * Bool", "c": "Bool"}

    def test_definitions_use_those_above(self):
        src = "def a = 1.5\ndef b (x : Real) = a * x\ndef c = b a + a"
        assert types_of(src) == {"a": "Real", "b": "Real -> Real", "c": "Real"}
        assert float(lamad.loads(src).c) == pytest.approx(3.75)

    def test_annotated_empty_list(self):
        assert types_of("def e = ([] : List Real)\ndef n = length []") == {"e": "List Real", "n": "Int"}


# ============================================================== type errors


class TestTypeErrors:
    def test_applying_a_non_function(self):
        check_error("def f (x : Real) = x 1.0", 1, 20, "x",
                    "applied to an argument", "Real", "not a function type")
        check_error("def g = 3 4", 1, 9, "3", "applied to an argument", "not a function type")
        check_error("def g = [1, 2] 3", 1, 9, "[1, 2]", "applied to an argument", "List", "not a function type")

    def test_too_many_arguments_says_how_many_the_function_takes(self):
        check_error("def f (x : Real) : Real = x\ndef main = f 1.0 2.0", 2, 18, "2.0",
                    "too many arguments", "'f' (of type Real -> Real) takes 1 argument,", "given 2")
        check_error("def f (x : Real) (y : Real) : Real = x\ndef main = f 1.0 2.0 3.0 4.0", 2, 22, "3.0 4.0",
                    "'f' (of type Real -> Real -> Real) takes 2 arguments", "given 4")
        check_error("def main = (\\x. x + 1.0) 1.0 2.0", 1, 30, "2.0", "this function", "takes 1 argument")
        check_error("def main = sin 1.0 2.0", 1, 20, "2.0", "too many arguments: 'sin' takes 1 argument", "given 2")
        check_error("def main = map sin [1.0] 2.0", 1, 26, "2.0", "'map' takes 2 arguments", "given 3")

    def test_a_list_where_a_tensor_is_expected_suggests_stack(self):
        check_error("def main = sum [1.0, 2.0]", 1, 16, "[1.0, 2.0]", "argument of 'sum'", "expected Tensor",
                    "found List Real", "'stack'")

    def test_an_integer_literal_too_large_for_a_real_is_located(self):
        digits = "9" * 400
        err = type_error(f"def x = 2.0\ndef main = {digits} + 1.0")
        assert "too large to be a Real" in err.message and "400 digits" in err.message
        assert (err.span.line, err.span.column, err.span.end - err.span.start) == (2, 12, 400)
        err = type_error(f"def main = {digits} + 1")  # as an Int, it is outside Int's 64-bit range
        assert "outside Int's 64-bit range" in err.message and err.span.column == 12

    def test_wrong_argument_type(self):
        check_error("def f (x : Real) = x\ndef g = f true", 2, 11, "true", "expected Real, found Bool")
        check_error("def f (t : Tensor) = sum_axis t 1", 1, 31, "t",
                    "argument of 'sum_axis'", "expected Int, found Tensor")
        check_error("def f = zeros [1.0]", 1, 15, "[1.0]", "argument of 'zeros'",
                    "expected List Int, found List Real")
        check_error("def f (b : Bool) = -b", 1, 21, "b", "argument of '-'", "found Bool")

    def test_function_where_real_expected(self):
        check_error("def f (x : Real) = x\ndef g = f (\\(t : Tensor). t)", 2, 12, "\\(t : Tensor). t",
                    "expected Real, found Tensor -> Tensor")

    def test_function_of_wrong_domain(self):
        # a Real -> Real function is no Tensor -> Real function (the domain is contravariant)
        check_error("def app (f : Tensor -> Real) = f (ones [2])\ndef g = app (\\(t : Real). t)",
                    2, 14, "\\(t : Real). t", "expected Tensor -> Real, found Real -> Real")

    def test_if_condition_not_bool(self):
        check_error("def f (x : Real) = if x then 1.0 else 2.0", 1, 23, "x",
                    "condition of 'if'", "expected Bool, found Real")

    def test_if_branches_of_different_types(self):
        src = "def g = if true then 2.0 else false"
        check_error(src, 1, 9, src[8:], "branches of 'if' have different types", "Real and Bool")
        src = "def f = if true then (1.0, 2.0) else (1.0, 2.0, 3.0)"
        check_error(src, 1, 9, src[8:], "branches of 'if'", "Real * Real and Real * Real * Real")

    def test_list_elements_of_different_types(self):
        check_error("def g = [1.0, true]", 1, 15, "true",
                    "elements of this list have different types", "Real and Bool")
        check_error("def g = [[1.0], [true]]", 1, 17, "[true]", "elements of this list", "List Real and List Bool")

    def test_int_where_real_expected_suggests_real(self):
        check_error("def f (n : Int) (x : Real) = x * n", 1, 34, "n",
                    "argument of '*'", "expected Real, found Int", "convert with 'real'")
        check_error("def f (x : Real) = x\ndef g (n : Int) = f n", 2, 21, "n",
                    "expected Real, found Int", "convert with 'real'")
        check_error("def f (n : Int) (t : Tensor) = n * t", 1, 32, "n", "found Int", "convert with 'real'")
        check_error("def f (n : Int) = n / 2", 1, 19, "n", "argument of '/'", "found Int", "convert with 'real'")
        check_error("def f (n : Int) = exp n", 1, 23, "n", "argument of 'exp'", "found Int", "convert with 'real'")
        check_error("def f (n : Int) = n + 1.5", 1, 19, "n", "expected Real, found Int", "convert with 'real'")

    def test_unbound_name_did_you_mean(self):
        check_error("def f = lenght [1]", 1, 9, "lenght", "unbound name 'lenght'", "did you mean 'length'?")
        check_error("def f (weight : Real) = wieght * 2.0", 1, 25, "wieght",
                    "unbound name 'wieght'", "did you mean 'weight'?")
        # suggestions are names a user can write, not the internal names of operators
        check_error("def f (x : Real) = exq x", 1, 20, "exq", "did you mean 'exp'?")
        err = check_error("def f = zzzzqq", 1, 9, "zzzzqq", "unbound name 'zzzzqq'")
        assert "did you mean" not in err.message

    def test_definition_defined_below(self):
        check_error("def f (x : Real) = g x\ndef g (y : Real) = y", 1, 20, "g",
                    "'g' is defined further down", "only use those above")
        # a definition cannot refer to itself either (no recursion): the message says so,
        # and names the loops
        check_error("def f (x : Real) : Real = f x", 1, 27, "f", "'f' refers to itself", "cannot be recursive",
                    "iterate", "fold", "scan")

    def test_redefinition(self):
        check_error("def f = 1\ndef g = 2\ndef f = 3", 3, 5, "f", "'f' is already defined above")

    def test_tuple_pattern_against_non_tuple(self):
        check_error("def f (x : Real) = let (a, b) = x in a", 1, 24, "(a, b)",
                    "pattern matches a tuple of 2 components", "the value has type Real")
        check_error("def f = (\\(a, b). a) 1.5", 1, 22, "1.5", "found Real")

    def test_tuple_arity(self):
        check_error("def f (p : Real * Real) = let (a, b, c) = p in a", 1, 31, "(a, b, c)",
                    "tuple of 3 components", "Real * Real")
        check_error("def g = (1, 2.0, true)\ndef h = let (a, b) = g in a", 2, 13, "(a, b)",
                    "tuple of 2 components", "Int * Real * Bool")
        check_error("def f = fst (1, 2, 3)", 1, 13, "(1, 2, 3)", "argument of 'fst'", "'a * 'b * 'c")

    def test_same_name_twice_in_a_pattern(self):
        check_error("def f = \\(a, a). a", 1, 10, "(a, a)", "'a' is bound twice in the same pattern")
        check_error("def f = let (a, (b, a)) = (1, (2, 3)) in a", 1, 13, "(a, (b, a))", "'a' is bound twice")

    def test_comparison_of_arrays_of_different_types(self):
        check_error("def f (x : Tensor) (y : IntTensor) = x < y", 1, 42, "y",
                    "'<' compares Tensors with Tensors or with their elements' type Real", "found IntTensor")
        check_error("def f (x : IntTensor) = x < 0.5", 1, 29, "0.5", "'<' compares IntTensors", "found Real")
        check_error("def f (m : BoolTensor) = m < m", 1, 26, "m < m", "'<' does not compare BoolTensors")
        check_error("def g = 1 < true", 1, 9, "1 < true", "'<' compares values of one type", "Bool")

    def test_boolean_operators_on_non_bool(self):
        check_error("def f (x : Real) = x && true", 1, 20, "x", "operands of '&&'", "expected Bool, found Real")
        check_error("def f (x : Real) = false || x", 1, 29, "x", "operands of '||'", "expected Bool, found Real")
        check_error("def f (x : Real) = not x", 1, 24, "x", "argument of 'not'", "expected Bool or BoolTensor, found Real")

    def test_ascription_mismatch(self):
        check_error("def f = (1.0 : Bool)", 1, 10, "1.0 : Bool", "annotated Bool", "expected Bool, found Real")
        check_error("def f (t : Tensor) : Real = t", 1, 29, "t", "annotated Real", "expected Real, found Tensor")
        check_error("def f = let (x : Int) = 1.0 in x", 1, 13, "(x : Int)",
                    "'x' is annotated Int", "expected Int, found Real")

    def test_ambiguous_top_level_type(self):
        check_error("def e = []", 1, 5, "e", "type of 'e' is not fully determined", "List 'a",
                    "add a type annotation")
        check_error("def x = 1.0\ndef g = map", 2, 5, "g", "not fully determined")
        check_error("def f = \\(a, _). a + 1.0", 1, 5, "f", "not fully determined", "Real * 'a -> Real")

    def test_tensor_not_real(self):
        # Tensor is not promoted to Real: `sum` or `scalar` is needed
        check_error("def f (t : Tensor) = (\\(x : Real). x) t", 1, 39, "t", "expected Real, found Tensor")
        check_error("def f (t : Tensor) = real t", 1, 27, "t", "argument of 'real'",
                    "expected Int, IntTensor, Bool or BoolTensor, found Tensor")

    def test_map_argument_not_a_list(self):
        check_error("def f = map (\\x. x) 3", 1, 21, "3", "argument of 'map'", "expected List 'a")

    def test_load_needs_a_string(self):
        check_error("def f = load 3", 1, 14, "3", "argument of 'load'", "expected String")

    def test_multiline_span(self):
        src = "def a = 1.0\n\ndef f (x : Real) =\n  let y = x * 2.0\n  in y + true\n"
        check_error(src, 5, 10, "true", "argument of '+'", "found Bool")


def test_reverse_mode_of_stack_and_concat_of_reals_type_checks():
    """←D of ``stack``/``concat`` sends each Real element a 0-d Tensor slice of the
    cotangent through ``sum_apply``, which accepts it as an application of a linear
    function does (Real⊥ takes the cotangents of a promoted Real)."""
    p = lamad.loads("def s (x : Real) : Real = sum (stack [x, x * x]) + sum (concat 0 [stack [x], stack [x]])\n"
                    "def g = grad s 3.0\n")
    assert float(p.g) == 1.0 + 6.0 + 2.0
    with pytest.raises(LamTypeError, match="argument of 'sum_apply'"):
        infer_term(lamad.parse("\\(b : ~Real) (c : Bool). %sum_apply [b] [c]"), {})
    assert infer_term(backprop(p.typed.terms["s"]), {}).ty is not None


def test_an_overloaded_result_compared_with_an_integer_literal():
    """``real 1 < 2`` was a type error (``'real' gives Real here, but it is used as Int``):
    the literal's number type was defaulted to Int before ``real``'s signature was chosen."""
    import lamad

    p = lamad.loads("def g (x : Bool) : Bool = ((real 1) < 2)\ndef h = real 1 < 2\ndef k = int 2.5 + 1\n")
    assert p.h is True and p.k == 3


@pytest.mark.parametrize("source, as_int, as_real", [
    (r"\x. x * x", "Int -> Int", "Real -> Real"),
    (r"\x. x + 1", "Int -> Int", "Real -> Real"),
    (r"\(x : Int). x * 2", "Int -> Int", "Int -> Int"),          # annotated: stays
    (r"\x. real (x + 1)", "Int -> Real", "Int -> Real"),         # only an Int fits 'real'
    (r"\x. (x < 2, x)", "Int -> Bool * Int", "Real -> Bool * Real"),
])
def test_the_numbers_nothing_determines_default_to_the_number_asked_for(source, as_int, as_real):
    """``infer_term(…, number=REAL)`` (the REPL's differentiation commands) defaults the
    number variables to Real where the default, Int, would make them Ints."""
    term = lamad.parse(source)
    assert str(infer_term(term).ty) == as_int
    assert str(infer_term(term, number=REAL).ty) == as_real
