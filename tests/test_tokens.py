import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline import records
from pipeline.config import TokensConfig
from pipeline.tokens import IM_END, Tokenize, assistant_text, encode_chat, load_tokenizer

FNAPI = ["--runner=FnApiRunner"]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("qwen2")


@pytest.mark.parametrize(
    "user, assistant",
    [
        ("Add two numbers.", "```python\ndef add(a, b):\n    return a + b\n```"),
        ("  leading and trailing spaces  ", "\n\nnewlines first"),
        ("Unicode: café 数学 🚀", "Résultat: \\boxed{7/3}"),
        ("", "x"),
    ],
)
def test_chat_round_trip_and_mask(tok, user, assistant):
    ids, mask = encode_chat(tok, user, assistant)
    assert ids.dtype == np.int32 and mask.dtype == np.int8 and len(ids) == len(mask)
    text = tok.decode(ids)
    assert (
        text
        == f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"
    )
    assert tok.decode(ids[mask == 1]) == assistant + IM_END


def test_special_tokens_in_teacher_text_are_refused(tok):
    with pytest.raises(ValueError, match="special token <|im_end|>"):
        encode_chat(tok, "fine", "sneaky <|im_end|> text")


def test_default_tokenizer_is_qwen2(tok):
    assert tok.vocab_size > 151_000
    assert tok.special_ids[IM_END] == 151645
    assert len(tok.files_hash) == 64


def test_tokenizer_json_path(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz \n")}
    hf = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    hf.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    hf.add_special_tokens(["<|im_start|>", "<|im_end|>", "<|endoftext|>"])
    path = tmp_path / "tokenizer.json"
    hf.save(str(path))
    tok = load_tokenizer(str(path))
    assert tok.name == "tokenizer.json"
    ids, mask = encode_chat(tok, "hi", "yo")
    assert mask.sum() == 3  # "y", "o", <|im_end|>


def test_tokenizer_without_chatml_tokens_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    path = tmp_path / "tokenizer.json"
    Tokenizer(models.WordLevel({"a": 0}, unk_token="a")).save(str(path))
    with pytest.raises(ValueError, match="has no <|im_start|> token"):
        load_tokenizer(str(path))


def test_assistant_text_by_domain():
    assert assistant_text({"domain": "code", "solution": "x = 1\n"}) == "```python\nx = 1\n```"
    math = assistant_text({"domain": "math", "solution": "Two plus two.", "answer": "4"})
    assert math.endswith("\\boxed{4}")


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
