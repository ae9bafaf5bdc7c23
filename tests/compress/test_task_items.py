"""Eval-task items as training text: the eval's own prompt, and the answer in the builtin model's format."""

from ctxops.compress.corpus import task_sequence
from ctxops.compress.task_items import format_answer, join_values, task_item
from ctxops.evals.prompt import TokenizerCounter
from ctxops.models.loader import resolve_model_path
from ctxops.models.tokenizer import Tokenizer


def test_answers_are_written_as_the_builtin_model_learned_them():
    assert join_values(["1"]) == " 1."
    assert join_values(["1", "2", "3"]) == " 1, 2 and 3."
    assert format_answer("vt", ("X", "Y")) == " X Y"


def test_an_item_is_the_eval_prompt_and_a_distillation_sequence_ends_with_its_answer():
    tokenizer = Tokenizer(resolve_model_path("builtin"))
    item = task_item(TokenizerCounter(tokenizer), "niah_multikey_1", 512, 0.5, 7)
    text = tokenizer.decode(item.prompt_ids, skip_special_tokens=False)
    assert text.endswith(item.sample.answer_prefix) and item.sample.answers[0] in item.answer
    ids = task_sequence(tokenizer, "niah_single_1", 512, 3)
    tail = tokenizer.decode(ids[-12:], skip_special_tokens=False)
    assert tail.endswith(".<|im_end|>")  # " value." then the end token, as the trainer writes answers
