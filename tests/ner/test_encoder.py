"""The encoder's text pass equals Hugging Face's BertModel; its marker pass equals masked attention."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from ner.config import EncoderConfig
from ner.encoder import Encoder


@pytest.fixture(scope="module")
def encoder_and_state(tiny_checkpoint):
    raw = json.loads((tiny_checkpoint / "config.json").read_text())["encoder"]
    enc = Encoder(EncoderConfig.from_dict(raw))
    state = load_file(str(tiny_checkpoint / "model.safetensors"))
    enc.load_hf_state_dict(state)
    return enc.eval(), state, raw


def test_text_pass_matches_transformers_bert(encoder_and_state):
    from transformers import BertConfig, BertModel

    enc, state, raw = encoder_and_state
    hf = BertModel(
        BertConfig(**{k: v for k, v in raw.items() if not k.startswith("_")}), add_pooling_layer=False
    )
    missing, unexpected = hf.load_state_dict(
        {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}, strict=False
    )
    assert not missing, missing
    hf.eval()
    torch.manual_seed(0)
    ids = torch.randint(5, 200, (3, 11))
    valid = torch.ones(3, 11, dtype=torch.bool)
    valid[1, 7:] = False  # padding in one row
    positions = (torch.arange(11) + 2).expand(3, 11)
    with torch.inference_mode():
        ours, _ = enc.forward_text(ids, positions, valid)
        theirs = hf(
            input_ids=ids,
            attention_mask=valid.long(),
            position_ids=positions,
            token_type_ids=torch.zeros_like(ids),
        ).last_hidden_state
    assert torch.allclose(ours[valid], theirs[valid], atol=1e-5)


def test_marker_pass_matches_spanmarker_masked_attention(encoder_and_state):
    """Run SpanMarker's layout (text + markers in one sequence with its 2-D mask) through a plain
    masked transformer built from the same weights, and compare the marker states."""
    enc, _, _ = encoder_and_state
    torch.manual_seed(1)
    t, p = 9, 5
    text_ids = torch.randint(5, 200, (1, t))
    text_pos = torch.arange(t).unsqueeze(0) + 2
    start_pos = torch.tensor([[2, 3, 4, 6, 8]])
    end_pos = torch.tensor([[2, 5, 4, 9, 10]])
    ids = torch.cat((text_ids, torch.full((1, p), 230), torch.full((1, p), 231)), dim=1)
    pos = torch.cat((text_pos, start_pos, end_pos), dim=1)
    n = t + 2 * p
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[:t, :t] = True
    mask[t:, :t] = True
    for i in range(p):
        s, e = t + i, t + p + i
        mask[s, s] = mask[s, e] = mask[e, s] = mask[e, e] = True
    with torch.inference_mode():
        x = enc.embeddings(ids, pos)
        for layer in enc.layers:
            q, k, v = layer._split(x)
            ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = layer._finish(x, ctx)
        reference = x[:, t:]
        valid = torch.ones(1, t, dtype=torch.bool)
        _, cache = enc.forward_text(text_ids, text_pos, valid)
        markers = enc.forward_markers(ids[:, t:], pos[:, t:], cache, valid)
    assert torch.allclose(markers, reference, atol=1e-5)


def test_hf_state_dict_round_trip(encoder_and_state):
    enc, state, _ = encoder_and_state
    out = enc.hf_state_dict()
    for key, value in out.items():
        assert torch.equal(value, state[key]), key
