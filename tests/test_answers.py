"""Free-form answers: the code block to test and the final boxed answer (pure)."""

import pytest

from pipeline import records
from pipeline.stages.answers import final_answer, solution_code
from pipeline.teacher.reasoning import split

F = "def add(a, b):\n    return a + b"


@pytest.mark.parametrize(
    "answer",
    [
        f"Here it is.\n\n```python\n{F}\n```\n",
        f"```py\n{F}\n```",
        f"```Python\n{F}\n```",
        f"```python3\n{F}\n```",
        f"```\n{F}\n```",
        f"~~~python\n{F}\n~~~",
        f"Approach: add them.\n\n```python\n{F}\n```\n\nExample:\n\n"
        "```python\nprint(add(2, 3))\n```\n\nOutput:\n\n```text\n5\n```",
        f"```bash\npython add.py\n```\n\n```python\n{F}\n```",
        f"The function:\n```python\n{F}\n```\nand again the same:\n```python\n{F}\n```",
        f"{F}\n",  # a bare-code answer
    ],
)
def test_the_block_that_defines_the_entry_point_is_taken(answer):
    code, reason, _ = solution_code(answer, "add")
    assert reason is None and code == F + "\n"


def test_helpers_and_a_main_demo_come_with_the_block():
    block = (
        "import math\n\n\ndef _half(x):\n    return x / 2\n\n\n"
        "def add(a, b):\n    return _half(2 * a) + _half(2 * b)\n\n\n"
        'if __name__ == "__main__":\n    print(add(1, 2))'
    )
    code, reason, _ = solution_code(f"Solution:\n\n```python\n{block}\n```\nDone.", "add")
    assert reason is None and code == block + "\n"


def test_async_def_and_indented_fences():
    code, reason, _ = solution_code("  ```python\nasync def add(a, b):\n    return a\n  ```", "add")
    assert reason is None and code.startswith("async def add")


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("I would add the two numbers and return the result.", records.NO_CODE_BLOCK),
        ("```text\nadd(1, 2) -> 3\n```", records.NO_CODE_BLOCK),
        ("```python\nprint(add(1, 2))\n```", records.NO_ENTRY_POINT),
        ("```python\ndef adder(a, b):\n    return a + b\n```", records.NO_ENTRY_POINT),
        # a method of a class is not the top-level function the tests import
        ("```python\nclass S:\n    def add(self):\n        return 1\n```", records.NO_ENTRY_POINT),
        (f"```python\n{F}\n```\nBetter:\n```python\ndef add(a, b):\n    return b\n```",
         records.AMBIGUOUS_CODE),
        ("def add(a, b):\n    return a +\n", records.NO_CODE_BLOCK),  # bare text that is not Python
        ("", records.NO_CODE_BLOCK),
    ],
)  # fmt: skip
def test_answers_without_one_clear_block_are_refused_with_a_reason(answer, reason):
    code, got, detail = solution_code(answer, "add")
    assert code is None and got == reason and detail


def test_code_in_the_thinking_is_never_taken():
    draft = "```python\ndef add(a, b):\n    return a - b\n```"
    content = f"<think>\nFirst try:\n{draft}\nNo, that subtracts.\n</think>\n\nNo code, sorry."
    answer, reasoning, complete = split(content)
    assert draft in reasoning and complete is True
    assert solution_code(answer, "add")[1] == records.NO_CODE_BLOCK


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("So the answer is \\boxed{42}.", "42"),
        ("$\\boxed{\\frac{7}{3}}$", "\\frac{7}{3}"),
        ("\\[\n\\boxed{-2}\n\\]", "-2"),
        ("The result is \\boxed 5.", "5"),
        ("\\fbox{12} is it", "12"),
        ("\\boxed{\\left(1, \\frac{1}{2}\\right)}", "\\left(1, \\frac{1}{2}\\right)"),
        ("first \\boxed{3}, then corrected: \\boxed{4}", "4"),
        ("\\boxed{ 2\\sqrt{3} } and that's it", "2\\sqrt{3}"),
        ("Final Answer: The final answer is $42$. I hope it is correct.", "42"),
        ("**Final answer:** 7/3", "7/3"),
    ],
)
def test_final_answer_is_the_last_box(answer, expected):
    assert final_answer(answer) == (expected, None, "")


@pytest.mark.parametrize("answer", ["I think it is about seven.", "\\boxed{}", "\\boxed{3", ""])
def test_no_final_answer(answer):
    found, reason, detail = final_answer(answer)
    assert found is None and reason == records.NO_ANSWER and detail


def test_a_box_in_the_thinking_is_not_the_answer():
    answer, reasoning, _ = split("Maybe \\boxed{5}? No.\n</think>\n\nIt is \\boxed{6}.")
    assert final_answer(answer)[0] == "6" and "\\boxed{5}" in reasoning
    answer, _, _ = split("<think>\nMaybe \\boxed{5}.\n</think>\n\nI could not decide.")
    assert final_answer(answer)[1] == records.NO_ANSWER


# Shapes seen in real models' answers (public benchmark logs), each once lost or misread.
@pytest.mark.parametrize(
    "answer, entry, expected",
    [
        ("```python\r\ndef f(x):\r\n    return x\r\n```\r\n", "f", "def f(x):\n    return x\n"),
        ("```python\ndef f(x):\n    return len(x)", "f", "def f(x):\n    return len(x)\n"),
        ("```python\ndef gcd(a, b):\n    return a\n```ി", "gcd", "def gcd(a, b):\n    return a\n"),
        ("```\npython\ndef f(x):\n    return 42\n```", "f", "def f(x):\n    return 42\n"),
        ("```python\n def f(x):\n     return 42\n```", "f", "def f(x):\n    return 42\n"),
        ("1. The code:\n\n   ```python\n   def f(x):\n       return 1\n   ```", "f",
         "def f(x):\n    return 1\n"),
        ("```python\ndef g(x):\n    return x\n```\nThen:\n"
         "```python\ndef f(x):\n    return g(x)\n```", "f",
         "def g(x):\n    return x\n\n\ndef f(x):\n    return g(x)\n"),
    ],
)  # fmt: skip
def test_real_world_code_shapes(answer, entry, expected):
    assert solution_code(answer, entry) == (expected, None, "")


def test_usage_blocks_before_the_solution_are_not_helpers():
    answer = "```python\nprint(f(1))\n```\n```python\ndef f(x):\n    return x\n```"
    assert solution_code(answer, "f")[0] == "def f(x):\n    return x\n"


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("**Final Answer**: 18", "18"),
        ("Thus, the answer is:\n\\[ \\frac{207}{64} \\]", "\\frac{207}{64}"),
        ("The answer is 18.", "18"),
        ("Answer: 3.5", "3.5"),
    ],
)
def test_real_world_stated_answers(answer, expected):
    assert final_answer(answer) == (expected, None, "")


def test_a_statement_without_a_value_is_no_answer():
    assert final_answer("We check the final answer: it works.")[1] == records.NO_ANSWER
