"""The thinking split from the answer, from every shape servers return it in (pure)."""

import pytest

from pipeline.teacher.reasoning import field_reasoning, split

T, A = "Let me think.\nTwo and two make four.", "The answer is 4."


@pytest.mark.parametrize(
    "content, field, finish",
    [
        (A, T, "stop"),  # reasoning_content / reasoning field
        (f"<think>\n{T}\n</think>\n\n{A}", "", "stop"),  # inline
        (f"{T}\n</think>\n\n{A}", "", "stop"),  # inline without the opening tag
        (f"  \n<think>{T}</think>{A}\n", "", "stop"),
        (f"\n\n{A}", f"\n{T}\n\n", "stop"),
    ],
)
def test_thinking_and_answer_apart(content, field, finish):
    assert split(content, field, finish) == (A, T, True)


@pytest.mark.parametrize(
    "content",
    [A, f"<think>\n\n</think>\n\n{A}", f"<think></think>{A}", f"\n{A}\n\n"],
)
def test_no_thinking(content):
    assert split(content) == (A, None, None)


def test_cut_inside_the_thinking():
    assert split(f"<think>\n{T}", "", "length") == ("", T, False)
    assert split("", T, "length") == ("", T, False)  # a field trace, no answer yet
    assert split(f"{A[:5]}", T, "length") == (A[:5], T, True)  # cut in the answer


def test_no_tag_ever_stays_in_the_answer():
    content = f"<think>{T}</think>{A}<think>second look</think> Done.</think>"
    answer, reasoning, _ = split(content)
    assert "<think>" not in answer and "</think>" not in answer
    assert answer == f"{A} Done." and "second look" in reasoning
    answer, reasoning, complete = split(f"{A}<think>more", "", "length")
    assert answer == A and reasoning == "more" and complete is False


def test_field_and_inline_together_keep_both():
    answer, reasoning, _ = split(f"<think>inline</think>{A}", "field")
    assert answer == A and reasoning == "field\n\ninline"


def test_field_reasoning_prefers_reasoning_content():
    assert field_reasoning({"reasoning_content": "a", "reasoning": "b"}) == "a"
    assert field_reasoning({"reasoning": "b", "content": "x"}) == "b"
    assert field_reasoning({"reasoning_content": None, "reasoning": ""}) == ""
