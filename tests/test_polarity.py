"""Opposite words and other numbers: the contradiction rules beside negation (ragbook.polarity)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ragbook.answer import check_answer
from ragbook.polarity import opposites, other_numbers


@pytest.mark.parametrize("claim, passage, words", [
    ("The most onerous measure must be adopted.", "The least onerous measure must be adopted.", {"most"}),
    ("The currencies appreciated.", "The other currencies depreciated.", {"appreci"}),
    ("Findings are inconsistent with observation.", "Findings are consistent with observation.", {"inconsistent"}),
    ("A variable made outside a function has local scope.", "A variable made outside a function has global scope.",
     {"local"}),
    ("Lists are mutable.", "Lists are mutable, while tuples are immutable.", set()),  # the passage says both
    ("Tuples are immutable.", "Tuples are immutable.", set()),
    ("The loop starts at 0.", "The loop ends at 10.", {"start"}),
    # SQuAD 2.0's unanswerable questions swap a word for its opposite; a model answering one copies the swap
    ("The parties that hold the minority of seats form the government.",
     "The parties that hold the majority of seats form the government.", {"minority"}),
    ("Each packet names its sender.", "Each packet names its receiver.", {"sender"}),
])
def test_opposite_words(claim, passage, words):
    found = opposites(claim, passage)
    assert len(found) == len(words) and all(any(f.startswith(w[:5]) for f in found) for w in words)


@pytest.mark.parametrize("claim, passage, numbers", [
    ("The museums comprise five museums.", "The museums comprise three museums.", {"5"}),
    ("Latin honors fell to 40%.", "Latin honors fell from 90% to 60%.", {"40"}),
    ("The attack came on October 16, 1973.", "The attack came on October 6, 1973.", {"16"}),
    ("Scotland was invaded in 1066.", "William invaded Scotland in 1072.", {"1066"}),
    ("ASCII can represent 256 characters.", "ASCII can represent 128 characters.", {"256"}),
    # computed results are not counts of a unit: 10 // 3 is not "another number" than 7 // 4
    ("10 // 3 evaluates to 3.", "7 // 4 evaluates to 1.", set()),
    ("8 / 2 gives 4.0.", "6 / 3 gives 2.0, a float.", set()),
    ("It holds 3 items.", "The list holds 3 items.", set()),
    ("It was built in 1955.", "Built in 1955, it was extended in 1970.", set()),
])
def test_other_numbers_for_the_same_thing(claim, passage, numbers):
    assert other_numbers(claim, passage) == numbers


def test_a_swapped_number_or_opposite_word_is_flagged_as_a_contradiction():
    from types import SimpleNamespace

    passage = SimpleNamespace(text="ASCII\nThe original ASCII could represent 128 characters. Rare errors occur.")
    for claim in ("The original ASCII could represent 256 characters [1].", "The original ASCII could represent "
                  "128 characters [1]. Common errors occur [1]."):
        _, checks = check_answer(claim, [passage])
        flags = [c.flag for c in checks]
        assert "contradicts [1]" in flags, (claim, flags)
    _, checks = check_answer("The original ASCII could represent 128 characters [1].", [passage])
    assert [c.flag for c in checks] == [""]


TABLE = ("Function Description Examples Number-theoretic math.ceil(x) The ceiling of x. math.ceil(7.4) → 8 "
         "math.ceil(-7.4) → -7 math.floor(x) The floor of x. math.floor(7.4) → 7 math.floor(-7.4) → -8 Power")


@pytest.mark.parametrize("claim, passage, stated", [
    ("math.floor(-7.4) → -7 [1]", TABLE, "math.floor(-7.4) → -8"),   # the table's own row, another value
    ("`math.floor(-7.4)` returns `-7`.", TABLE, "math.floor(-7.4) → -8"),
    ("int(5.9) produces 6.", "Ex: `int(5.9)` produces `5`.", "`int(5.9)` produces `5`"),
    ("7 // 4 evaluates to 2.", "Ex: 7 // 4 is 1.", "7 // 4 is 1"),
    ("math.floor(-7.4) returns -8.", TABLE, None),                   # the same value
    ("math.floor(-7.4) returns -8.0.", TABLE, None),                 # the same number written otherwise
    ("math.ceil(-7.4) gives -7.", TABLE, None),
    ("round(2.451, 2) gives 2.45.", TABLE, None),                    # an expression the passage does not show
    ("math.floor(-7.4) is less than -7.", TABLE, None),              # no value stated
])
def test_another_value_for_the_same_expression(claim, passage, stated):
    from ragbook.polarity import other_result

    found = other_result(claim, passage)
    assert (passage[found[0]:found[1]] if found else None) == stated


def test_a_wrong_value_from_a_passages_table_is_flagged_with_the_row():
    from types import SimpleNamespace

    from ragbook.answer import check_answer

    _, checks = check_answer("math.floor(-7.4) → -7 [1]", [SimpleNamespace(text=TABLE)])
    assert checks[0].flag == "contradicts [1]" and checks[0].quote == "math.floor(-7.4) → -8"
    _, checks = check_answer("math.floor(-7.4) → -8 [1]", [SimpleNamespace(text=TABLE)])
    assert checks[0].flag == ""


def test_a_withheld_wrong_value_shows_the_passages_own_row():
    from types import SimpleNamespace

    from ragbook.grounding import review
    from ragbook.prompt import TEMPLATES

    r = review("math.floor(-7.4) → -7 [1]", [SimpleNamespace(text=TABLE)], "What does math.floor(-7.4) return?",
               TEMPLATES["tutor"])
    assert r.withheld and r.why_withheld == "it says otherwise than its passage"
    assert r.text.endswith("in [1]: \u201cmath.floor(-7.4) → -8\u201d)")


FIND = ("The find() method returns the index of the first occurrence of a substring in a given string. If the "
        "substring does not exist in the given string, the value of -1 is returned.")


@pytest.mark.parametrize("claim, passage, words", [
    # what a condition supposes is compared only with what another condition supposes
    ("The index() method assumes that the substring exists in the given string.", FIND, set()),
    ("If the substring exists in the given string, the value of -1 is returned.", FIND, {"if:exist"}),
    ("The value -1 is returned when the substring does not exist.", FIND, set()),
    ("The substring does not exist in the given string.", FIND, set()),  # supposed there, not said
    # "then" ends the condition: what follows is said
    ("There are problems in NP that are NP-complete.",
     "Ladner showed that if P does not equal NP then there are problems in NP that are not NP-complete.", {"complet"}),
    # an action as the subject names it, and says nothing about whether it is done
    ("The subclass's __init__() is not explicitly defined, so the superclass's __init__() is called.",
     "Explicitly defining a subclass's __init__() involves defining instance attributes.", set()),
    ("The file is not opened or closed.", "Opening a file requires closing it later.", set()),
    # the rule is narrow: a plain -ing participle still counts, negated or not
    ("Yes, s[2:5] includes the character at index 5.", "The slice goes up to but not including index 5.",
     {"includ", "index"}),
    ("Sorting a list changes it.", "Sorting a list does not change it.", {"chang"}),
    # an -ing word that is no action keeps the sentence as it is, negation and all
    ("print() returns a value.", "Nothing is returned by print().", {"return"}),
    ("The string is not changed.", "String methods return a new string and the string is changed.", {"chang"}),
    # a condition whose end nobody can tell (no comma, no "then") is read as said
    ("The loop does not run if the list is empty.", "If the list is empty the loop runs.", {"run"}),
    ("The list provided is sorted.", "The list is not sorted.", {"sort"}),  # "provided" is no "if"
    # an auxiliary before a negation only carries the verb: "have not had" asserts no "have"
    ("The function returns None because it does not have a return statement.",
     "Functions introduced so far have not had a return statement, which is the same as returning None.", set()),
    ("The least onerous measure must be adopted.",
     "When there is a choice the least onerous must be adopted, and any disadvantage must not be disproportionate.",
     set()),
    ("A tuple's elements can be changed.", "A tuple's elements can not be changed.", {"chang"}),  # the verb still is
])
def test_conditions_and_named_actions_are_not_assertions(claim, passage, words):
    from ragbook.polarity import conflicts

    assert conflicts(claim, passage) == words


def test_a_right_answer_about_a_condition_is_not_flagged():
    """t-74 of the teacher set: find() vs index() when the text is not there; the index() sentence was flagged
    "contradicts [1]" against the find() sentence's "if the substring does not exist"."""
    answer = ("The find() method returns -1 if the substring does not exist [1]. The index() method assumes that the "
              "substring exists in the given string; otherwise, it throws a ValueError [1].")
    _, checks = check_answer(answer, [SimpleNamespace(text=FIND + " The index() method throws a ValueError.")])
    assert not any(c.flag.startswith("contradicts") for c in checks)
    wrong = "If the substring exists in the given string, find() returns the value of -1 [1]."
    _, checks = check_answer(wrong, [SimpleNamespace(text=FIND)])
    assert checks[0].flag == "contradicts [1]"
