"""A BERT-family encoder that runs SpanMarker's two kinds of tokens separately.

In SpanMarker's attention mask, text tokens attend only to text, and each marker attends to all
text plus itself and its partner. So the text's hidden states, keys and values never depend on the
markers: spanlink runs the text once (`forward_text`, keeping each layer's keys and values) and then
any number of marker pairs against that cache (`forward_markers`). The markers' attention is split
into a matmul against the text keys plus two dot products (self, partner), which gives the same
softmax as SpanMarker's masked 512-token attention without padding or recomputing the text.

Parameter names follow Hugging Face's BertModel / RobertaModel, so any such state dict loads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ner.config import EncoderConfig
from ner.errors import CheckpointError

_ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
}

# (our name, Hugging Face name) per layer; q/k/v are fused into one projection when loading.
_LAYER_PARAMS = (
    ("attn_out", "attention.output.dense"),
    ("attn_norm", "attention.output.LayerNorm"),
    ("ffn_in", "intermediate.dense"),
    ("ffn_out", "output.dense"),
    ("ffn_norm", "output.LayerNorm"),
)
_EMBED_PARAMS = (
    ("word", "word_embeddings"),
    ("position", "position_embeddings"),
    ("token_type", "token_type_embeddings"),
    ("norm", "LayerNorm"),
)

TextCache = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, the text's keys and values, each (batch, heads, text_len, head_dim)."""


class Layer(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.head_dim = h // self.heads
        self.qkv = nn.Linear(h, 3 * h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(h, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, h)
        self.ffn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.act = _ACTIVATIONS[cfg.hidden_act]
        self.dropout = cfg.hidden_dropout_prob  # only active in training mode

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return q, k, v  # each (b, heads, n, head_dim)

    def _finish(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        b, _, n, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(b, n, -1)
        p = self.dropout if self.training else 0.0
        x = self.attn_norm(x + F.dropout(self.attn_out(ctx), p, self.training))
        return self.ffn_norm(x + F.dropout(self.ffn_out(self.act(self.ffn_in(x))), p, self.training))

    def forward_text(
        self, x: torch.Tensor, key_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self._split(x)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
        return self._finish(x, ctx), k, v

    def forward_markers(
        self, x: torch.Tensor, text_k: torch.Tensor, text_v: torch.Tensor, key_bias: torch.Tensor | None
    ) -> torch.Tensor:
        """x: (b, 2p, hidden), the p start markers then the p end markers of each sample.

        The softmax over [text keys, own key, partner key] is written out by hand so that the big
        (b, heads, 2p, text_len) score tensor is never concatenated or sliced (both copy it).
        """
        q, k, v = self._split(x)
        p = x.shape[1] // 2
        q = q * (1.0 / math.sqrt(self.head_dim))
        k_partner = k.roll(p, dims=2)
        v_partner = v.roll(p, dims=2)
        if torch.is_grad_enabled():  # training: the plain softmax, which autograd can differentiate
            scores = torch.cat(
                (
                    torch.matmul(q, text_k.transpose(-1, -2))
                    + (0 if key_bias is None else key_bias[:, None, None, :]),
                    (q * k).sum(-1, keepdim=True),
                    (q * k_partner).sum(-1, keepdim=True),
                ),
                dim=-1,
            )
            probs = torch.softmax(scores, dim=-1)
            t = text_k.shape[2]
            ctx = probs[..., :t] @ text_v + probs[..., t : t + 1] * v + probs[..., t + 1 :] * v_partner
            return self._finish(x, ctx)
        text = torch.matmul(q, text_k.transpose(-1, -2))
        if key_bias is not None:
            text += key_bias[:, None, None, :]
        own = (q * k).sum(-1, keepdim=True)
        partner = (q * k_partner).sum(-1, keepdim=True)
        top = torch.maximum(text.amax(-1, keepdim=True), torch.maximum(own, partner))
        text.sub_(top).exp_()
        own = own.sub_(top).exp_()
        partner = partner.sub_(top).exp_()
        total = text.sum(-1, keepdim=True).add_(own).add_(partner)
        ctx = torch.matmul(text, text_v).addcmul_(own, v).addcmul_(partner, v_partner).div_(total)
        return self._finish(x, ctx)


class Embeddings(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = cfg.hidden_dropout_prob
        # Training with a frozen word matrix keeps the two marker rows trainable here (see training.py).
        self.marker_rows: nn.Parameter | None = None
        self.first_marker_id = 0

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, markers: bool = False) -> torch.Tensor:
        if markers and self.marker_rows is not None:
            words = self.marker_rows[ids - self.first_marker_id]
        else:
            words = self.word(ids)
        # SpanMarker passes token_type_ids = 0 everywhere.
        x = self.norm(words + self.position(positions) + self.token_type.weight[0])
        return F.dropout(x, self.dropout, self.training) if self.training else x


class Encoder(nn.Module):
    """The transformer body: embeddings plus post-LayerNorm layers, without a pooler."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward_text(
        self, ids: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, TextCache]:
        """Encode padded texts; `valid` (b, t) is False on padding. Returns states and the K/V cache."""
        x = self.embeddings(ids, positions)
        cache: TextCache = []
        for layer in self.layers:
            x, k, v = layer.forward_text(x, valid)
            cache.append((k, v))
        return x, cache

    def forward_markers(
        self, ids: torch.Tensor, positions: torch.Tensor, cache: TextCache, valid: torch.Tensor
    ) -> torch.Tensor:
        """Encode marker pairs (b, 2p) against the text cache of the same b samples."""
        x = self.embeddings(ids, positions, markers=True)
        key_bias = None
        if not bool(valid.all()):
            key_bias = torch.zeros(valid.shape, dtype=x.dtype, device=x.device).masked_fill_(
                ~valid, float("-inf")
            )
        for layer, (k, v) in zip(self.layers, cache):
            x = layer.forward_markers(x, k, v, key_bias)
        return x

    def forward_plain(self, ids: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """An ordinary full-attention forward, used to measure the compute bound in benchmarks."""
        return self.forward_text(ids, positions, valid)[0]

    # -- weights --------------------------------------------------------------------------------

    def load_hf_state_dict(self, state: dict[str, torch.Tensor], prefix: str = "encoder.") -> None:
        """Load a Hugging Face BertModel/RobertaModel state dict whose keys start with `prefix`.

        Raises:
            CheckpointError: a tensor is missing or has the wrong shape.
        """

        def take(name: str) -> torch.Tensor:
            for key in (
                prefix + name,
                prefix
                + name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                    "LayerNorm.bias", "LayerNorm.beta"
                ),
            ):
                if key in state:
                    return state[key]
            raise CheckpointError(f"the weights lack {prefix + name!r}")

        own: dict[str, torch.Tensor] = {}
        for ours, theirs in _EMBED_PARAMS:
            for kind in ("weight", "bias") if ours == "norm" else ("weight",):
                own[f"embeddings.{ours}.{kind}"] = take(f"embeddings.{theirs}.{kind}")
        for i in range(self.cfg.num_hidden_layers):
            hf = f"encoder.layer.{i}."
            for kind in ("weight", "bias"):
                own[f"layers.{i}.qkv.{kind}"] = torch.cat(
                    [take(f"{hf}attention.self.{n}.{kind}") for n in ("query", "key", "value")]
                )
                for ours, theirs in _LAYER_PARAMS:
                    own[f"layers.{i}.{ours}.{kind}"] = take(f"{hf}{theirs}.{kind}")
        expected = self.state_dict()
        for key, tensor in own.items():
            if tensor.shape != expected[key].shape:
                raise CheckpointError(
                    f"weight {key} has shape {tuple(tensor.shape)}, "
                    f"the config implies {tuple(expected[key].shape)}"
                )
        self.load_state_dict(own, strict=True)

    def hf_state_dict(self, prefix: str = "encoder.") -> dict[str, torch.Tensor]:
        """The inverse of `load_hf_state_dict`, for writing SpanMarker-compatible checkpoints."""
        sd = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        for ours, theirs in _EMBED_PARAMS:
            for kind in ("weight", "bias") if ours == "norm" else ("weight",):
                out[f"{prefix}embeddings.{theirs}.{kind}"] = sd[f"embeddings.{ours}.{kind}"]
        h = self.cfg.hidden_size
        for i in range(self.cfg.num_hidden_layers):
            hf = f"{prefix}encoder.layer.{i}."
            for kind in ("weight", "bias"):
                for j, n in enumerate(("query", "key", "value")):
                    out[f"{hf}attention.self.{n}.{kind}"] = sd[f"layers.{i}.qkv.{kind}"][j * h : (j + 1) * h]
                for ours, theirs in _LAYER_PARAMS:
                    out[f"{hf}{theirs}.{kind}"] = sd[f"layers.{i}.{ours}.{kind}"]
        return {k: v.contiguous() for k, v in out.items()}
