"""Chapter 08's instructions and chat format: checkers, derivation, template, masks."""

from __future__ import annotations

import random

import pytest
import torch

from llm_from_scratch.model.gpt import IGNORE_INDEX
from llm_from_scratch.posttrain.chat import (CHAT_TOKENS, END, ChatFormatError,
                                             add_chat_tokens, grow_vocab, render_chat,
                                             sft_example, shift_and_mask)
from llm_from_scratch.posttrain.instructions import (KINDS, Constraint,
                                                     build_instructions,
                                                     character_names,
                                                     derive_instruction, load_instruct,
                                                     parse_instruct_record, sentences)
from llm_from_scratch.model.gpt import GPT, GPTConfig

STORY = ('Tom had a red ball. He threw it to Lily. "Catch!" he said. Lily laughed '
         'and caught it. They played until dark.')

# (constraint, replies that obey it, replies that do not): hand-made, per kind.
CASES = [
    (Constraint("words", ("ball", "dark")),
     [STORY, "A BALL rolled into the dark."],
     ["Tom had a red kite.", "The balls were in the dark.", "ballet at dark"[:6]]),
    (Constraint("name", "Lily"),
     [STORY, "Lily's cat slept."],
     ["Tom played alone. lily was away.", "Lilya ran.", "LILY ran."]),
    (Constraint("dialogue", True),
     [STORY, 'She said "yes" and left.'],
     [STORY.replace('"', ""), 'He held up a sign: "" and left.']),
    (Constraint("dialogue", False),
     [STORY.replace('"', ""), "They sang all day."],
     [STORY, '"Hi," said Sam.']),
    (Constraint("max_sentences", 5),
     [STORY, "One. Two! Three?"],
     [STORY + " The end came.", "A. B. C. D. E. F."]),
    (Constraint("max_sentences", 1),
     ["Lily ran home.", '"Stop!" he said.'],
     ["Lily ran. Tom ran.", '"Stop!" Tom said it twice.']),
    (Constraint("begin", "Tom had a red ball."),
     [STORY, "  Tom had a\nred ball. Then more."],
     ["Lily had a red ball.", "Once, Tom had a red ball."]),
]


@pytest.mark.parametrize("constraint,good,bad", CASES,
                         ids=[f"{c.kind}-{c.value}" for c, _, _ in CASES])
def test_each_checker_accepts_obeying_replies_and_rejects_violating_ones(
        constraint, good, bad):
    for reply in good:
        assert constraint.check(reply), reply
    for reply in bad:
        assert not constraint.check(reply), reply


def test_a_reply_without_words_obeys_no_constraint():
    for c, _, _ in CASES:
        assert not c.check("") and not c.check(' ... "" ')


def test_unknown_constraint_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown constraint kind"):
        Constraint("rhymes", True)


def test_sentences_split_after_closing_quotes_but_not_inside_dialogue():
    assert sentences(STORY)[2] == '"Catch!" he said.'
    assert sentences('"Run!" Tom cried. "Now!"') == ['"Run!"', 'Tom cried.', '"Now!"']
    assert len(sentences(STORY)) == 5


def test_character_names_skip_sentence_openers_and_family_words():
    story = ("Once upon a time, Mom and Ben went out. Then Ben saw Mom smile. "
             "Once more, Ben waved.")
    assert character_names(story) == ["Ben"]  # not Once, Then (openers), nor Mom


def test_derived_instructions_are_obeyed_by_their_source_stories(valid_stories):
    kinds = set()
    for i, story in enumerate(valid_stories[:400]):
        inst = derive_instruction(story, random.Random(i), max_constraints=3)
        assert inst.reference == story
        verdicts = inst.obeyed_by(story)
        assert verdicts and all(verdicts.values()), (inst.prompt, verdicts)
        kinds |= set(verdicts)
    assert kinds == set(KINDS)  # every kind is derived from real stories


def test_built_instructions_fit_the_budget_and_are_reproducible(valid_stories):
    def length(prompt, reply):  # whitespace words, a stand-in for tokens
        return len(prompt.split()) + len(reply.split())

    built = build_instructions(valid_stories[:60], "valid", length, 80, per_story=2,
                               max_constraints=3, seed=1)
    assert built == build_instructions(valid_stories[:60], "valid", length, 80,
                                       per_story=2, max_constraints=3, seed=1)
    assert len(built) > 60
    for inst in built:
        assert length(inst.prompt, inst.reference) <= 80
        assert all(inst.obeyed_by(inst.reference).values())
        story = valid_stories[int(inst.source.split(":")[1])]
        assert story.startswith(inst.reference)  # opening sentences of its story


RECORD = """Features: Dialogue, Twist
Words: ball, jump, happy
Summary: Tom and Lily play with a ball.
Random sentence: They ran.
Story:

Tom and Lily went to the park with a ball. "Let's play!" said Tom.
Lily was happy. They jumped and ran."""


def test_tinystories_instruct_records_become_checkable_instructions(tmp_path):
    (tmp_path / "TinyStories-Instruct-valid.txt").write_text(
        f"{RECORD}\n<|endoftext|>\nSummary: no story here\n<|endoftext|>\n")
    (tmp_path / "TinyStories-valid.txt").write_text("Not an instruct file.\n")
    [inst] = load_instruct("valid", tmp_path)
    assert inst.prompt.splitlines() == RECORD.split("\nStory:")[0].splitlines()
    assert dict((c.kind, c.value) for c in inst.constraints) == {
        "words": ("ball", "happy"), "dialogue": True}  # "jump" occurs as "jumped"
    assert inst.reference.startswith("Tom and Lily") and inst.reference.endswith("ran.")
    assert all(inst.obeyed_by(inst.reference).values())
    assert load_instruct("train", tmp_path) == []
    assert parse_instruct_record("Words: a, b\nSummary: x") is None


# --- the chat format -----------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizers(valid_stories):
    from llm_from_scratch.data.tokenizer import train_hf_tokenizer

    base = train_hf_tokenizer(valid_stories[:200], 320)
    return base, add_chat_tokens(base)


def test_chat_tokens_are_appended_and_plain_text_encodes_as_before(tokenizers):
    base, tok = tokenizers
    assert [tok.token_to_id(t) for t in CHAT_TOKENS] == [320, 321, 322]
    assert add_chat_tokens(tok).get_vocab_size() == 323  # adding twice: no change
    text = 'Tom said, "Hi!"\n\nThe end <|user|> is a token.'
    assert tok.encode(text).ids[:9] == base.encode(text).ids[:9]
    assert 320 in tok.encode(text).ids and 320 not in base.encode(text).ids
    with pytest.raises(ChatFormatError, match="no chat tokens"):
        render_chat(base, [{"role": "user", "content": "hi"}])
    with pytest.raises(ChatFormatError, match="roles are user and assistant"):
        render_chat(tok, [{"role": "system", "content": "hi"}])


CONVERSATIONS = [
    [{"role": "user", "content": "Write a short story. Include dialogue."}],
    [{"role": "user", "content": 'Use the word "ball".'},
     {"role": "assistant", "content": 'Tom said, "Hi!"\n\nThen he left.'},
     {"role": "user", "content": "  Again, with  spaces  \n"}],
    [{"role": "user", "content": "caf\u00e9 \u2014 na\u00efve \U0001f600"},
     {"role": "assistant", "content": ""}],
]


@pytest.fixture(scope="module")
def chat_export(tmp_path_factory, tokenizers):
    from llm_from_scratch.recipes.sft import save_chat_model

    _, tok = tokenizers
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=320, n_layers=1, n_heads=2, d_model=32,
                          context_len=64))
    grow_vocab(model, tok.get_vocab_size())
    return save_chat_model(model, tmp_path_factory.mktemp("chat"), tok), tok


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=["one", "three", "utf8"])
def test_render_chat_matches_transformers_apply_chat_template(chat_export,
                                                              conversation):
    """Reference: transformers' AutoTokenizer.apply_chat_template on the exported
    directory; ids must be equal (no tolerance: they are integers)."""
    from transformers import AutoTokenizer

    path, tok = chat_export
    hf = AutoTokenizer.from_pretrained(path)
    for gen in (False, True):
        theirs = hf.apply_chat_template(conversation, add_generation_prompt=gen,
                                        tokenize=True, return_dict=True)["input_ids"]
        assert list(theirs) == render_chat(tok, conversation, gen)
    text = tok.decode(render_chat(tok, conversation), skip_special_tokens=False)
    assert text == hf.apply_chat_template(conversation, tokenize=False)


def test_exported_chat_model_stops_transformers_generate_at_end(chat_export):
    import json

    path, tok = chat_export
    config = json.loads((path / "generation_config.json").read_text())
    assert config["eos_token_id"][0] == tok.token_to_id(END)


# --- targets -------------------------------------------------------------------

def test_masked_targets_are_exactly_the_reply_tokens(tokenizers):
    _, tok = tokenizers
    ids, n_prompt = sft_example(tok, "Write a short story.", "Lily ran home.")
    x, y = shift_and_mask(ids, n_prompt, 40, pad_id=7)
    reply = tok.encode("Lily ran home.").ids + [tok.token_to_id(END)]
    assert y[y != IGNORE_INDEX].tolist() == reply
    assert y[n_prompt - 1] == reply[0]  # predicted from <|assistant|>
    assert x[:len(ids) - 1].tolist() == ids[:-1]
    assert (x[len(ids) - 1:] == 7).all() and (y[len(ids) - 1:] == IGNORE_INDEX).all()
    _, y_all = shift_and_mask(ids, n_prompt, 40, mask_prompt=False)
    assert y_all[:len(ids) - 1].tolist() == ids[1:]  # every real token, no padding
    assert (y_all[len(ids) - 1:] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="does not fit"):
        shift_and_mask(ids, n_prompt, len(ids) - 2)


def test_targets_match_trl_sft_trainer_labels(chat_export):
    """Reference: trl's SFTTrainer preparation (chat template, completion-only loss
    on prompt-completion conversations) and its collator. trl's labels are unshifted
    (HF's convention), so labels[:, 1:] must equal our targets exactly."""
    from datasets import Dataset
    from transformers import AutoTokenizer, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    path, tok = chat_export
    pairs = [("Write a short story. Include dialogue.", 'Tom said, "Hi!"'),
             ("Use at most 1 sentence.", "Lily ran."),
             ('Begin with: "Run!" he said.', '"Run!" he said. They ran.')]
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}],
                               "completion": [{"role": "assistant", "content": r}]}
                              for p, r in pairs])
    hf_tok = AutoTokenizer.from_pretrained(path)
    hf_tok.pad_token = END
    args = SFTConfig(output_dir=str(path / "trl"), report_to="none", use_cpu=True,
                     max_length=None)
    trainer = SFTTrainer(model=LlamaForCausalLM.from_pretrained(path), args=args,
                         train_dataset=data, processing_class=hf_tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    length = batch["input_ids"].size(1) - 1
    ours = [shift_and_mask(*sft_example(tok, p, r), length,
                           pad_id=tok.token_to_id(END)) for p, r in pairs]
    assert torch.equal(torch.stack([x for x, _ in ours]), batch["input_ids"][:, :-1])
    assert torch.equal(torch.stack([y for _, y in ours]), batch["labels"][:, 1:])


# --- growing the vocabulary ----------------------------------------------------

@pytest.mark.parametrize("tied", [True, False])
def test_grow_vocab_keeps_old_rows_and_starts_new_rows_at_the_mean(tied):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, n_layers=1, n_heads=2, d_model=16,
                          context_len=8, tie_embeddings=tied))
    old_embed = model.embed_tokens.weight.detach().clone()
    old_head = model.lm_head.weight.detach().clone()
    idx = torch.randint(0, 50, (2, 8))
    before = model(idx)[0].detach()
    grow_vocab(model, 53)
    assert model.config.vocab_size == 53
    assert (model.lm_head.weight is model.embed_tokens.weight) == tied
    assert torch.equal(model.embed_tokens.weight[:50], old_embed)
    assert torch.allclose(model.embed_tokens.weight[50:],
                          old_embed.mean(0).expand(3, -1))
    assert torch.allclose(model.lm_head.weight[50:], old_head.mean(0).expand(3, -1))
    after = model(idx)[0].detach()
    assert torch.equal(after[..., :50], before)  # old logits untouched
    # The new logit is the mean old logit (float32 rounding of a 50-term mean).
    assert torch.allclose(after[..., 50:], before.mean(-1, keepdim=True).expand(
        -1, -1, 3), atol=1e-6)
    with pytest.raises(ValueError, match="cannot shrink"):
        grow_vocab(model, 40)


def test_instruction_sets_are_read_back_from_their_cache_unchanged(tokenizers,
                                                                   valid_stories,
                                                                   tmp_path):
    import dataclasses

    from llm_from_scratch.posttrain.chat import (instruction_from_json,
                                                 instruction_sets, instruction_to_json)
    from llm_from_scratch.config.profiles import get_profile

    _, chat_tok = tokenizers
    stories = {"train": valid_stories[:60], "valid": valid_stories[60:90]}
    sizes = get_profile("smoke").sft
    built = instruction_sets(chat_tok, stories, 256, sizes, cache_dir=tmp_path)
    files = list(tmp_path.glob("instructions-*.json"))
    assert len(files) == 1 and built["train"] and built["valid"]
    assert instruction_sets(chat_tok, stories, 256, sizes, cache_dir=tmp_path) == built
    for inst in built["train"]:  # tuples of words survive the JSON round trip
        assert instruction_from_json(instruction_to_json(inst)) == inst
    other = dataclasses.replace(sizes, seed=sizes.seed + 1)  # another key, a new file
    instruction_sets(chat_tok, stories, 256, other, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("instructions-*.json"))) == 2
