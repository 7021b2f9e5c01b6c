"""Attention and the Transformer (Vaswani et al. 2017) with PyTorch's modules, names and semantics:
MultiheadAttention, TransformerEncoderLayer/Encoder, TransformerDecoderLayer/Decoder, Transformer.

Everything is composed of ember's differentiable ops (linear maps, batched matmul, softmax,
dropout, layer norm), so there is no backward here: the engine walks back through the
composition. The attention of one head (eq. 1 of the paper):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d + M) V        d = head_dim, M the additive mask

MultiheadAttention projects the inputs (Q = query W_qᵀ + b_q, ... with W_q, W_k, W_v the thirds
of ``in_proj_weight``), splits E into num_heads heads of head_dim = E / num_heads, attends per
head, concatenates and projects with ``out_proj``. Masks as PyTorch's module: a bool
``attn_mask`` / ``key_padding_mask`` is True where attention is NOT allowed (−inf added); a float
mask is added as it is. Parameters, state_dict keys and initialisation are PyTorch's
(xavier_uniform_ in_proj, zero biases, out_proj a Linear). Source: PyTorch 2.13's
``torch.nn.MultiheadAttention``/``F.multi_head_attention_forward`` and ``torch.nn.Transformer*``.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..tensor import Tensor
from . import functional as F
from . import init
from .container import ModuleList
from .layers import Linear
from .module import Module, Parameter
from .norm import Dropout, LayerNorm


def _float_mask(mask, dtype, what):
    """A bool mask (True = masked) as 0/−inf of ``dtype``; a float mask as it is; None stays None."""
    if mask is None:
        return None
    if mask._data.dtype == np.bool_:
        return Tensor(np.where(mask._data, -np.inf, 0.0).astype(dtype))
    if mask._data.dtype.kind != "f":
        raise AssertionError(f"only bool and floating types of {what} are supported")
    return mask if mask._data.dtype == dtype else mask.to(dtype)


class NonDynamicallyQuantizableLinear(Linear):
    """A Linear under PyTorch's name for MultiheadAttention's out_proj (it only changes the repr)."""


class MultiheadAttention(Module):
    """Multi-head attention (torch.nn.MultiheadAttention).

    Args: embed_dim E, num_heads H (dividing E), dropout=0.0 (on the attention weights, in
        training), bias=True, add_bias_kv=False, add_zero_attn=False, kdim=None, vdim=None
        (the key/value feature sizes; E by default), batch_first=False.
    Parameters: in_proj_weight (3E, E) when kdim = vdim = E, else q_proj_weight (E, E),
        k_proj_weight (E, kdim), v_proj_weight (E, vdim); in_proj_bias (3E,); bias_k, bias_v
        (1, 1, E) with add_bias_kv; out_proj (Linear E -> E).
    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
            average_attn_weights=True, is_causal=False):
        query (L, N, E), key (S, N, kdim), value (S, N, vdim) (batch_first: N first; unbatched:
        no N); key_padding_mask (N, S); attn_mask (L, S) or (N·H, L, S)
        -> (output (L, N, E), weights (N, L, S) averaged over heads, or (N, H, L, S), or None
        when need_weights=False).
    Raises: AssertionError for E not divisible by H (PyTorch's message), RuntimeError for
        is_causal without attn_mask, and for masks of the wrong shape (naming the shapes).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim, self.vdim = kdim if kdim is not None else embed_dim, vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")
        dt = np.dtype(dtype or np.float32)
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dt))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.q_proj_weight = Parameter(np.empty((E, E), dt))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dt))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dt))
            self.in_proj_weight = None
        self.in_proj_bias = Parameter(np.zeros(3 * E, dt)) if bias else None
        self.out_proj = NonDynamicallyQuantizableLinear(E, E, bias=bias, dtype=dt)
        self.bias_k = Parameter(np.empty((1, 1, E), dt)) if add_bias_kv else None
        self.bias_v = Parameter(np.empty((1, 1, E), dt)) if add_bias_kv else None
        self.add_zero_attn = add_zero_attn
        for w in ([self.in_proj_weight] if self._qkv_same_embed_dim
                  else [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]):
            init.xavier_uniform_(w)
        if self.out_proj.bias is not None:
            init.constant_(self.out_proj.bias, 0.0)
        for b in (self.bias_k, self.bias_v):
            if b is not None:
                init.xavier_normal_(b)

    def _projections(self):
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            ws = (w[:E], w[E:2 * E], w[2 * E:])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        bs = (None,) * 3 if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        return ws, bs

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        from .. import cat, zeros
        batched = query.ndim == 3
        if self.batch_first and batched:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if not batched:
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        L, N, E = query.shape
        if E != self.embed_dim:
            raise AssertionError(f"was expecting embedding dimension of {self.embed_dim}, but got {E}")
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                               "method `generate_square_subsequent_mask` to create this mask.")
        H, hd, dt = self.num_heads, self.head_dim, query._data.dtype
        (wq, wk, wv), (bq, bk, bv) = self._projections()
        q, k, v = F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
        attn_mask = _float_mask(attn_mask, dt, "attn_mask")
        key_padding_mask = _float_mask(key_padding_mask, dt, "key_padding_mask")
        S = k.shape[0]
        if attn_mask is not None:
            want = [(L, S)] if attn_mask.ndim == 2 else [(N * H, L, S)]
            if tuple(attn_mask.shape) not in want:
                raise RuntimeError(f"The shape of the {attn_mask.ndim}D attn_mask is {tuple(attn_mask.shape)}, but "
                                   f"should be {want[0]}.")
            if attn_mask.ndim == 2:
                attn_mask = attn_mask.unsqueeze(0)
        if self.bias_k is not None:
            k = cat([k, self.bias_k.repeat(1, N, 1)])
            v = cat([v, self.bias_v.repeat(1, N, 1)])
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        q = q.reshape(L, N * H, hd).transpose(0, 1)                  # (N·H, L, hd)
        k = k.reshape(k.shape[0], N * H, hd).transpose(0, 1)         # (N·H, S, hd)
        v = v.reshape(v.shape[0], N * H, hd).transpose(0, 1)
        if self.add_zero_attn:
            k = cat([k, zeros((N * H, 1, hd), dtype=k.dtype)], 1)
            v = cat([v, zeros((N * H, 1, hd), dtype=v.dtype)], 1)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        S = k.shape[1]
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (N, S):
                raise RuntimeError(f"expecting key_padding_mask shape of {(N, S)}, but got "
                                   f"{tuple(key_padding_mask.shape)}")
            kpm = key_padding_mask.reshape(N, 1, 1, S).expand(N, H, 1, S).reshape(N * H, 1, S)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        p = self.dropout if self.training else 0.0
        if need_weights:
            scores = (q * math.sqrt(1.0 / hd)).matmul(k.transpose(-2, -1))
            if attn_mask is not None:
                scores = attn_mask + scores
            w = F.softmax(scores, -1)
            if p > 0:
                w = F.dropout(w, p, True)
            out = w.matmul(v).transpose(0, 1).reshape(L * N, E)
            out = F.linear(out, self.out_proj.weight, self.out_proj.bias).reshape(L, N, E)
            w = w.reshape(N, H, L, S)
            if average_attn_weights:
                w = w.mean(1)
            if not batched:
                out, w = out.squeeze(1), w.squeeze(0)
        else:
            if attn_mask is not None:
                attn_mask = attn_mask.unsqueeze(0) if attn_mask.shape[0] == 1 else attn_mask.reshape(N, H, -1, S)
            o = F.scaled_dot_product_attention(q.reshape(N, H, L, hd), k.reshape(N, H, S, hd),
                                               v.reshape(N, H, S, hd), attn_mask, p)
            out = o.permute(2, 0, 1, 3).reshape(L * N, E)
            out = F.linear(out, self.out_proj.weight, self.out_proj.bias).reshape(L, N, E)
            w = None
            if not batched:
                out = out.squeeze(1)
        if self.batch_first and batched:
            out = out.transpose(0, 1)
        return out, w


def _activation(activation):
    if isinstance(activation, str):
        if activation not in ("relu", "gelu"):
            raise RuntimeError(f"activation should be relu/gelu, not {activation}")
        return F.relu if activation == "relu" else F.gelu
    return activation


class _LayerBlocks(Module):
    """What the encoder and decoder layers share: the self-attention block (self_attn, then
    dropout1) and the feed-forward block linear2(dropout(activation(linear1(x)))), then ``out``."""

    def _build(self, blocks, d_model, nhead, dim_ff, dropout, activation, eps, batch_first, norm_first, bias, dtype):
        """Register the sub-modules in PyTorch's order (its state_dict order): self_attn,
        (multihead_attn), linear1, dropout, linear2, norm1..normB, dropout1..dropoutB; B = blocks
        (2 for the encoder layer, 3 with the decoder's cross-attention)."""
        attn = lambda: MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,  # noqa: E731
                                          batch_first=batch_first, dtype=dtype)
        self.self_attn = attn()
        if blocks == 3:
            self.multihead_attn = attn()
        self.linear1 = Linear(d_model, dim_ff, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_ff, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        for i in range(1, blocks + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=eps, bias=bias, dtype=dtype))
        for i in range(1, blocks + 1):
            setattr(self, f"dropout{i}", Dropout(dropout))
        self.activation = _activation(activation)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff(self, x, out):
        return out(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoderLayer(_LayerBlocks):
    """Self-attention then a feed-forward block, each with dropout, a residual connection and a
    LayerNorm (torch.nn.TransformerEncoderLayer; the paper's encoder layer).

    Args: d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu" ("relu", "gelu"
        or a callable), layer_norm_eps=1e-5, batch_first=False, norm_first=False (pre-norm:
        x + sa(norm1(x)), else post-norm: norm1(x + sa(x))), bias=True.
    forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False): src (S, N, E)
        (batch_first: (N, S, E)) -> the same shape. Masks as MultiheadAttention's.
    Modules (PyTorch's names): self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self._build(2, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                    bias, dtype)

    def _ff_block(self, x):
        return self._ff(x, self.dropout2)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


class TransformerDecoderLayer(_LayerBlocks):
    """Self-attention, attention over the encoder's output (memory), then feed-forward, each with
    dropout, residual and LayerNorm (torch.nn.TransformerDecoderLayer). Args as
    TransformerEncoderLayer's. forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False,
    memory_is_causal=False): tgt (T, N, E), memory (S, N, E) -> (T, N, E).
    Modules: self_attn, multihead_attn, linear1, dropout, linear2, norm1-3, dropout1-3.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self._build(3, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                    bias, dtype)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal=False):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=is_causal)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self._ff(x, self.dropout3)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self._ff_block(x))


class TransformerEncoder(Module):
    """num_layers deep copies of ``encoder_layer`` applied in turn, then ``norm`` if given
    (torch.nn.TransformerEncoder). forward(src, mask=None, src_key_padding_mask=None,
    is_causal=None). ``enable_nested_tensor`` is accepted and changes nothing (no nested tensors)."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return out if self.norm is None else self.norm(out)


class TransformerDecoder(Module):
    """num_layers deep copies of ``decoder_layer`` applied in turn, then ``norm`` if given
    (torch.nn.TransformerDecoder). forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask,
                        bool(tgt_is_causal), memory_is_causal)
        return out if self.norm is None else self.norm(out)


class Transformer(Module):
    """The encoder–decoder Transformer (torch.nn.Transformer; Vaswani et al. 2017): an encoder of
    num_encoder_layers TransformerEncoderLayers and a decoder of num_decoder_layers
    TransformerDecoderLayers, each ending in a LayerNorm; every weight matrix xavier_uniform_.

    Args (PyTorch's): d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
        dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
        custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True.
    forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
        tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None,
        tgt_is_causal=None, memory_is_causal=False): src (S, N, E), tgt (T, N, E) -> (T, N, E).
    Raises: RuntimeError when src and tgt differ in batch size or feature size (PyTorch's messages).
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                  layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias,
                  dtype=dtype)
        self.encoder = custom_encoder if custom_encoder is not None else TransformerEncoder(
            TransformerEncoderLayer(d_model, nhead, **kw), num_encoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self.decoder = custom_decoder if custom_decoder is not None else TransformerDecoder(
            TransformerDecoderLayer(d_model, nhead, **kw), num_decoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        batch = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[batch] != tgt.shape[batch]:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """The (sz, sz) causal mask: 0 on and below the diagonal, −inf above (float32 by default)."""
        return Tensor(np.triu(np.full((sz, sz), -np.inf, np.dtype(dtype or np.float32)), 1))
