import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from support import char_tokenizer

from pipeline import records
from pipeline.config import TokensConfig
from pipeline.stages.tokens import (
    IM_END,
    Tokenize,
    assistant_text,
    chat_layout,
    check_tokens,
    encode_chat,
    load_tokenizer,
)

FNAPI = ["--runner=FnApiRunner"]
CHATML_TOKENS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
# The shape of Qwen2.5's own template: a default system turn when none is given.
QWEN25_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# The shape of Llama 3's: bos token, headers, trimmed content, <|eot_id|> closes a turn.
LLAMA3_TEMPLATE = (
    "{{- bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("qwen2")


@pytest.fixture(scope="module")
def chatml():
    return chat_layout("qwen2", "auto")


@pytest.mark.parametrize(
    "user, assistant",
    [
        ("Add two numbers.", "```python\ndef add(a, b):\n    return a + b\n```"),
        ("leading and trailing spaces", "\n\nnewlines first"),
        ("Unicode: café 数学 🚀", "Résultat: \\boxed{7/3}"),
        ("", "x"),
    ],
)
def test_chat_round_trip_and_mask(tok, chatml, user, assistant):
    ids, mask = encode_chat(tok, chatml, user, assistant)
    assert ids.dtype == np.int32 and mask.dtype == np.int8 and len(ids) == len(mask)
    text = tok.decode(ids)
    assert (
        text
        == f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"
    )
    assert tok.decode(ids[mask == 1]) == assistant + IM_END
    # The masked tokens are one contiguous run: the answer and its closing token.
    ones = np.flatnonzero(mask)
    assert (np.diff(ones) == 1).all()


@pytest.mark.parametrize("special", ["<|im_end|>", "<|endoftext|>", "<|extra_7|>"])
def test_special_tokens_in_teacher_text_are_refused(tok, chatml, special):
    with pytest.raises(ValueError, match=f"special token {special}"):
        encode_chat(tok, chatml, "fine", f"sneaky {special} text")


def test_default_tokenizer_is_qwen2(tok, chatml):
    assert tok.vocab_size > 151_000
    assert tok.specials[IM_END] == 151645
    assert tok.eos_token == "<|endoftext|>" and tok.eos_id == 151643
    assert len(tok.files_hash) == 64
    assert chatml.source == "chatml" and list(chatml.masks[-1]) == [1, 0]  # <|im_end|> \n


def test_tokenizer_json_path_with_chatml(tmp_path):
    path = char_tokenizer(tmp_path, CHATML_TOKENS)
    tok = load_tokenizer(path)
    assert tok.name == path
    layout = chat_layout(path, "auto")
    assert layout.source == "chatml"  # no tokenizer_config.json: the built-in ChatML
    ids, mask = encode_chat(tok, layout, "hi", "yo")
    assert mask.sum() == 3  # "y", "o", <|im_end|>
    assert (
        tok.decode(ids) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
    )


def test_template_from_tokenizer_config_with_a_default_system_turn(tmp_path):
    config = {"chat_template": QWEN25_TEMPLATE, "eos_token": "<|im_end|>"}
    path = char_tokenizer(tmp_path, CHATML_TOKENS, config)
    tok, layout = load_tokenizer(path), chat_layout(path, "auto")
    assert layout.source == "tokenizer"
    ids, mask = encode_chat(tok, layout, "add 2 and 3", "5")
    assert tok.decode(ids) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nadd 2 and 3<|im_end|>\n<|im_start|>assistant\n5<|im_end|>\n"
    )
    assert tok.decode(ids[mask == 1]) == "5<|im_end|>"
    # The directory works as well as the file, and "chatml" overrides the tokenizer's own.
    assert load_tokenizer(str(tmp_path)).files_hash == tok.files_hash
    assert chat_layout(path, "chatml").source == "chatml"


def test_llama3_style_template_masks_through_eot(tmp_path):
    specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    config = {
        "chat_template": LLAMA3_TEMPLATE,
        "bos_token": "<|begin_of_text|>",
        "eos_token": {"content": "<|eot_id|>", "special": True},
    }
    path = char_tokenizer(tmp_path, specials, config)
    tok, layout = load_tokenizer(path), chat_layout(path, "auto")
    assert tok.eos_token == "<|eot_id|>"
    ids, mask = encode_chat(tok, layout, "hi", "yo")
    assert tok.decode(ids).startswith("<|begin_of_text|><|start_header_id|>user")
    assert tok.decode(ids[mask == 1]) == "yo<|eot_id|>"
    check_tokens(TokensConfig(tokenizer=path, pack=128))


def test_chat_template_file_beside_the_tokenizer_and_inline(tmp_path):
    path = char_tokenizer(tmp_path, CHATML_TOKENS)
    (tmp_path / "chat_template.jinja").write_text(QWEN25_TEMPLATE)
    load_tokenizer.cache_clear()
    chat_layout.cache_clear()
    assert chat_layout(path, "auto").source == "tokenizer"
    inline = "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
    tok, layout = load_tokenizer(path), chat_layout(path, inline)
    assert layout.source == "inline"
    ids, mask = encode_chat(tok, layout, "a", "b")
    assert tok.decode(ids) == "<|im_start|>a<|im_end|><|im_start|>b<|im_end|>"
    assert tok.decode(ids[mask == 1]) == "b<|im_end|>"
    other = tmp_path / "other.jinja"
    other.write_text(inline)
    assert chat_layout(path, str(other)).sha256 == layout.sha256


@pytest.mark.parametrize(
    "template, message",
    [
        ("{% for m in messages %}{{ m.content | upper }}{% endfor %}", "verbatim"),
        (
            "{% for m in messages %}{{ m.content[:5] }}{% endfor %}",
            "verbatim",
        ),
        ("{{ raise_exception('no assistant turns') }}", "no assistant turns"),
    ],
)
def test_templates_that_cannot_be_cut_are_refused(tmp_path, template, message):
    path = char_tokenizer(tmp_path, CHATML_TOKENS)
    with pytest.raises(ValueError, match=f"tokens.chat_template: .*{message}"):
        check_tokens(TokensConfig(tokenizer=path, chat_template=template))


def test_content_dependent_template_is_refused(tmp_path):
    path = char_tokenizer(tmp_path, CHATML_TOKENS)
    template = "{% for m in messages %}{{ m.content | length }}:{{ m.content }};{% endfor %}"
    with pytest.raises(ValueError, match="depends on the message contents"):
        check_tokens(TokensConfig(tokenizer=path, chat_template=template))


def test_tokenizer_without_chatml_tokens_needs_a_template(tmp_path):
    path = char_tokenizer(tmp_path, ["</s>"])
    with pytest.raises(ValueError, match="ChatML needs the special token <|im_start|>"):
        check_tokens(TokensConfig(tokenizer=path))
    with pytest.raises(ValueError, match="has no end-of-document token"):
        check_tokens(
            TokensConfig(
                tokenizer=path,
                chat_template="{{ messages[0].content }}</s>{{ messages[1].content }}</s>",
                pack=128,
            )
        )


def test_missing_tokenizer_file_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot load .*does not exist"):
        check_tokens(TokensConfig(tokenizer=str(tmp_path / "nope" / "tokenizer.json")))


def test_hub_name_loads_through_the_hub_client(tmp_path, monkeypatch):
    """The hub path, offline: hf_hub_download serves a repo from a local hub cache laid out
    as the hub client itself writes it (refs/main -> snapshots/<commit>/<file>)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--synthgen--char-tokenizer"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    char_tokenizer(repo / "snapshots" / commit, CHATML_TOKENS, {"chat_template": QWEN25_TEMPLATE})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    tok = load_tokenizer("synthgen/char-tokenizer")
    assert tok.name == "synthgen/char-tokenizer" and "<|im_end|>" in tok.specials
    assert chat_layout("synthgen/char-tokenizer", "auto").source == "tokenizer"
    with pytest.raises(ValueError, match="cannot load 'synthgen/absent'"):
        check_tokens(TokensConfig(tokenizer="synthgen/absent"))


def test_assistant_text_is_the_answer_as_written():
    answer = "Use a loop.\n\n```py\ndef f(x):\n    return x\n```\n"
    assert assistant_text({"domain": "code", "solution": f"\n {answer} \n"}) == answer.strip()
    math = "Two plus two is four, so the answer is $\\boxed{4}$."
    assert assistant_text({"domain": "math", "solution": math, "answer": "4"}) == math


def _sample(i, solution="def f():\n    return 1"):
    return {"id": f"s{i}", "domain": "code", "statement": f"Problem {i}", "solution": solution}


def test_tokenize_transform_conserves_records():
    samples = [_sample(i) for i in range(4)] + [_sample(9, "x " * 5000), {"id": "bad"}]
    with BeamTestPipeline(argv=FNAPI) as p:
        out = p | beam.Create(samples) | Tokenize(TokensConfig(max_length=256))
        assert_that(
            out.kept | "K" >> beam.Map(lambda r: r["id"]),
            equal_to(["s0", "s1", "s2", "s3"]),
            label="kept",
        )
        assert_that(
            out.dropped | "D" >> beam.Map(lambda r: (r["id"], r["reason"])),
            equal_to([("s9", records.TOO_LONG)]),
            label="dropped",
        )
        assert_that(
            out.errors | "E" >> beam.Map(lambda r: (r["id"], r["reason"])),
            equal_to([("bad", records.ERROR)]),
            label="errors",
        )


def test_packing_lowers_the_length_limit():
    samples = [_sample(1), _sample(2, "y " * 70)]  # ~25 and ~95 tokens
    with BeamTestPipeline(argv=FNAPI) as p:
        out = p | beam.Create(samples) | Tokenize(TokensConfig(max_length=4096, pack=64))
        assert_that(
            out.dropped | beam.Map(lambda r: (r["id"], r["detail"].split(" > ")[1])),
            equal_to([("s2", "tokens.pack - 1 63")]),
        )


# The shape of Qwen3's own template (its logic, written for this test): reasoning_content of
# the last assistant turn as <think>\n...\n</think>\n\n before the answer, an empty block when
# there is none, '</think>' in the content split off, enable_thinking in the generation prompt.
QWEN3_TEMPLATE = (
    "{%- set ns = namespace(last_query_index=messages|length - 1) %}"
    "{%- for message in messages[::-1] %}"
    "{%- if message.role == 'user' and ns.last_query_index == messages|length - 1 %}"
    "{%- set ns.last_query_index = messages|length - 1 - loop.index0 %}{%- endif %}"
    "{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or message.role == 'system' %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set content = message.content %}{%- set reasoning_content = '' %}"
    "{%- if message.reasoning_content is string %}"
    "{%- set reasoning_content = message.reasoning_content %}"
    "{%- elif '</think>' in content %}"
    "{%- set reasoning_content = content.split('</think>')[0].split('<think>')[-1].strip('\\n') %}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}"
    "{%- endif %}"
    "{%- if loop.index0 > ns.last_query_index %}"
    "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning_content.strip('\\n')"
    " + '\\n</think>\\n\\n' + content.lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
THOUGHT = "The user wants the sum.\nLet me add 2 and 2: that is 4.\nCheck: 4 - 2 = 2. Good."
ANSWER = "2 + 2 = 4, so the answer is $\\boxed{4}$."
PROBLEM = "What is 2 + 2?"


def _round_trip(tok, layout, *model):
    ids, mask = encode_chat(tok, layout, PROBLEM, *model)
    return tok.decode(ids), tok.decode(ids[mask == 1]), tok.decode(ids[mask == 0])


def test_qwen3_template_keeps_the_thinking_where_it_puts_it(tmp_path, tok):
    template = tmp_path / "qwen3.jinja"
    template.write_text(QWEN3_TEMPLATE)
    layout = chat_layout("qwen2", str(template), reasoning=True)
    assert layout.reasoning == "template"
    text, learned, prompt = _round_trip(tok, layout, THOUGHT, ANSWER)
    assert text == (
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n"
        f"<|im_start|>assistant\n<think>\n{THOUGHT}\n</think>\n\n{ANSWER}<|im_end|>\n"
    )
    # The loss covers the model's whole turn after the generation prompt: the template's
    # <think>, the thinking, the answer and <|im_end|>; nothing of the prompt.
    assert learned == f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}<|im_end|>"
    assert prompt == f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n\n"
    assert THOUGHT not in prompt and PROBLEM not in learned


def test_qwen3_template_drop_has_no_thinking_token(tmp_path, tok):
    template = tmp_path / "qwen3.jinja"
    template.write_text(QWEN3_TEMPLATE)
    text, learned, _ = _round_trip(tok, chat_layout("qwen2", str(template)), ANSWER)
    # Qwen3's own form of a turn without thinking: an empty block, learned as the model's.
    assert learned == f"<think>\n\n</think>\n\n{ANSWER}<|im_end|>"
    assert "Let me add" not in text and "sum" not in text


def test_chatml_keeps_the_thinking_inline_and_drop_leaves_it_out(tok, chatml):
    layout = chat_layout("qwen2", "auto", reasoning=True)
    assert layout.reasoning == "inline"
    text, learned, prompt = _round_trip(tok, layout, THOUGHT, ANSWER)
    assert learned == f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}<|im_end|>"
    assert prompt == f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n\n"
    text, learned, _ = _round_trip(tok, chatml, ANSWER)
    assert learned == ANSWER + IM_END and "<think>" not in text and THOUGHT not in text


@pytest.mark.parametrize("mode", ["keep", "drop"])
def test_tokenize_stage_keeps_or_drops_the_thinking(tok, mode):
    samples = [
        {
            "id": "a",
            "domain": "math",
            "statement": PROBLEM,
            "solution": ANSWER,
            "reasoning": THOUGHT,
        },
        {"id": "b", "domain": "math", "statement": PROBLEM, "solution": ANSWER, "reasoning": None},
    ]
    with BeamTestPipeline(argv=FNAPI) as p:
        out = p | beam.Create(samples) | Tokenize(TokensConfig(reasoning=mode))
        decoded = out.kept | beam.Map(
            lambda r: (r["id"], tok.decode(r["input_ids"][r["loss_mask"] == 1]), r["reasoning"])
        )
        with_thought = f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}<|im_end|>"
        expected = [
            ("a", with_thought if mode == "keep" else ANSWER + IM_END, THOUGHT),
            ("b", ANSWER + IM_END, None),
        ]
        assert_that(decoded, equal_to(expected))
