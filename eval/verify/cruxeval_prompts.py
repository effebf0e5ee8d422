"""CRUXEval's prompts, quoted as the reference sends them (facebookresearch/cruxeval @ 190faf1).

The four templates are `prompts.py`'s `make_*_prompt` functions with their f-string fields left
as `str.format` fields (`{code}` with `{input}` for output prediction, `{output}` for input
prediction); the templates hold no other braces. The reference's chat script
(`openai/openai_prompt.py`, `openai_run.py`) sends each as the user message after `SYSTEM`,
stops at `STOP` and allows `MAX_TOKENS` (direct) or `MAX_TOKENS_COT` tokens.
"""

from __future__ import annotations

SYSTEM = (
    "You are an expert at Python programming, code execution, test case generation, and fuzzing."
)
STOP = "[/ANSWER]"
MAX_TOKENS = 100
MAX_TOKENS_COT = 1000

# prompts.py, make_direct_output_prompt
OUTPUT_DIRECT = (
    "You are given a Python function and an assertion containing an input to the function. "
    "Complete the assertion with a literal (no unsimplified expressions, no function calls) "
    "containing the output when executing the provided code on the given input, even if the "
    "function is incorrect or incomplete. Do NOT output any extra information. Provide the "
    "full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the "
    "examples.\n"
    "\n"
    "[PYTHON]\n"
    "def f(n):\n"
    "    return n\n"
    "assert f(17) == ??\n"
    "[/PYTHON]\n"
    "[ANSWER]\n"
    "assert f(17) == 17\n"
    "[/ANSWER]\n"
    "\n"
    "[PYTHON]\n"
    "def f(s):\n"
    '    return s + "a"\n'
    'assert f("x9j") == ??\n'
    "[/PYTHON]\n"
    "[ANSWER]\n"
    'assert f("x9j") == "x9ja"\n'
    "[/ANSWER]\n"
    "\n"
    "[PYTHON]\n"
    "{code}\n"
    "assert f({input}) == ??\n"
    "[/PYTHON]\n"
    "[ANSWER]\n"
)

# prompts.py, make_cot_output_prompt
OUTPUT_COT = (
    "You are given a Python function and an assertion containing an input to the function. "
    "Complete the assertion with a literal (no unsimplified expressions, no function calls) "
    "containing the output when executing the provided code on the given input, even if the "
    "function is incorrect or incomplete. Do NOT output any extra information. Execute the "
    "program step by step before arriving at an answer, and provide the full assertion with "
    "the correct output in [ANSWER] and [/ANSWER] tags, following the examples.\n"
    "\n"
    "[PYTHON]\n"
    "def f(s):\n"
    "    s = s + s\n"
    '    return "b" + s + "a"\n'
    'assert f("hi") == ??\n'
    "[/PYTHON]\n"
    "[THOUGHT]\n"
    "Let's execute the code step by step:\n"
    "\n"
    "1. The function f is defined, which takes a single argument s.\n"
    '2. The function is called with the argument "hi", so within the function, s is '
    'initially "hi".\n'
    '3. Inside the function, s is concatenated with itself, so s becomes "hihi".\n'
    '4. The function then returns a new string that starts with "b", followed by the value '
    'of s (which is now "hihi"), and ends with "a".\n'
    '5. The return value of the function is therefore "bhihia".\n'
    "[/THOUGHT]\n"
    "[ANSWER]\n"
    'assert f("hi") == "bhihia"\n'
    "[/ANSWER]\n"
    "\n"
    "[PYTHON]\n"
    "{code}\n"
    "assert f({input}) == ??\n"
    "[/PYTHON]\n"
    "[THOUGHT]\n"
)

# prompts.py, make_direct_input_prompt
INPUT_DIRECT = (
    "You will be given a function f and an output in the form f(??) == output. Find any "
    "input such that executing f on the input leads to the given output. There may be "
    "multiple answers, but you should only output one. In [ANSWER] and [/ANSWER] tags, "
    "complete the assertion with one such input that will produce the output when executing "
    "the function.\n"
    "\n"
    "[PYTHON]\n"
    "def f(my_list):\n"
    "    count = 0\n"
    "    for i in my_list:\n"
    "        if len(i) % 2 == 0:\n"
    "            count += 1\n"
    "    return count\n"
    "assert f(??) == 3\n"
    "[/PYTHON]\n"
    "[ANSWER]\n"
    'assert f(["mq", "px", "zy"]) == 3\n'
    "[/ANSWER]\n"
    "\n"
    "[PYTHON]\n"
    "def f(s1, s2):\n"
    "    return s1 + s2\n"
    'assert f(??) == "banana"\n'
    "[/PYTHON]\n"
    "[ANSWER]\n"
    'assert f("ba", "nana") == "banana"\n'
    "[/ANSWER]\n"
    "\n"
    "[PYTHON]\n"
    "{code}\n"
    "assert f(??) == {output}\n"
    "[/PYTHON]\n"
    "[ANSWER]\n"
)

# prompts.py, make_cot_input_prompt
INPUT_COT = (
    "You will be given a function f and an output in the form f(??) == output. Your task is "
    "to find any input such that executing f on the input leads to the given output. There "
    "may be multiple answers, but only output one. First, think step by step. You MUST "
    "surround the answer with [ANSWER] and [/ANSWER] tags. Express your answer as a passing "
    "assertion containing the input and the given output.\n"
    "\n"
    "[PYTHON]\n"
    "def f(x):\n"
    "    return x + 1\n"
    "assert f(??) == 17\n"
    "[/PYTHON]\n"
    "[THOUGHT]\n"
    "To find an input such that executing f on the input leads to the given output, we can "
    "work backwards from the given assertion. We know that f(??) == 17. \n"
    "\n"
    "Since the function f(x) returns x + 1, for f(??) to be equal to 17, the value of ?? "
    "should be 16. \n"
    "[/THOUGHT]\n"
    "[ANSWER]\n"
    "assert f(16) == 17\n"
    "[/ANSWER]\n"
    "\n"
    "[PYTHON]\n"
    "{code}\n"
    "assert f(??) == {output}\n"
    "[/PYTHON]\n"
    "[THOUGHT]\n"
)
