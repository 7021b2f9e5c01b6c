"""A small Transformer in the idiom of PyTorch's "Language modeling with nn.Transformer" tutorial:
a PositionalEncoding module built with torch.arange / torch.exp / math.log and sin/cos written
into ``pe[:, 0::2]`` and ``pe[:, 1::2]``, kept with ``register_buffer``; nn.Embedding scaled by
√d_model; nn.TransformerEncoder of TransformerEncoderLayer(batch_first=True, dropout=0.0) with a
causal mask from ``nn.Transformer.generate_square_subsequent_mask`` and a key padding mask; a
next-token loss with CrossEntropyLoss over ``logits.view(-1, vocab)``; AdamW and
``clip_grad_norm_``; then nn.MultiheadAttention's averaged attention weights and a one-layer
nn.Transformer encoder–decoder. Weights come from NumPy's seeded RNG."""
import math

import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(11)


def set_weights(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:   # LayerNorm: near its own init (1, 0)
                p.copy_(torch.tensor((name.endswith("weight") + rng.uniform(-0.1, 0.1, tuple(p.shape))).astype(np.float32)))
            else:
                p.copy_(torch.tensor(rng.uniform(-0.25, 0.25, tuple(p.shape)).astype(np.float32)))


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=64):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):                       # x: (N, L, E), batch first
        return x + self.pe[:x.size(1)].transpose(0, 1)


class TinyLM(nn.Module):
    def __init__(self, vocab, d_model=16, nhead=2, d_hid=32, nlayers=2):
        super().__init__()
        self.d_model = d_model
        self.embedding = nn.Embedding(vocab, d_model)
        self.pos_encoder = PositionalEncoding(d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout=0.0, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.linear = nn.Linear(d_model, vocab)

    def forward(self, src, src_mask=None, padding_mask=None):
        x = self.embedding(src) * math.sqrt(self.d_model)
        x = self.pos_encoder(x)
        x = self.transformer_encoder(x, mask=src_mask, src_key_padding_mask=padding_mask)
        return self.linear(x)


vocab = 12
model = TinyLM(vocab)
set_weights(model)
print("buffers", [n for n, _ in model.named_buffers()], "params", sum(p.numel() for p in model.parameters()))
print(model.transformer_encoder.layers)
seqs = torch.tensor(rng.integers(1, vocab, (8, 7)))
seqs[5:, 5:] = 0                                             # padding at the end of 3 sequences
src, target = seqs[:, :-1], seqs[:, 1:]
mask = nn.Transformer.generate_square_subsequent_mask(src.size(1))
padding = src == 0
criterion = nn.CrossEntropyLoss(ignore_index=0)
optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
for step in range(8):
    logits = model(src, mask, padding)
    loss = criterion(logits.reshape(-1, vocab), target.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    optimizer.step()
    if step % 2 == 1:
        print(f"step {step} loss {loss.item():.6f} grad norm {float(norm):.6f}")
model.eval()
with torch.no_grad():
    logits = model(src, mask, padding)
    print("greedy", logits.argmax(-1)[0].tolist(), "ppl", f"{math.exp(criterion(logits.view(-1, vocab), target.reshape(-1)).item()):.5f}")

attn = nn.MultiheadAttention(8, 2, batch_first=True)
set_weights(attn)
q = torch.tensor(rng.standard_normal((2, 3, 8)).astype(np.float32))
kv = torch.tensor(rng.standard_normal((2, 5, 8)).astype(np.float32))
out, weights = attn(q, kv, kv, key_padding_mask=torch.tensor([[False] * 5, [False] * 3 + [True] * 2]))
print("mha", tuple(out.shape), tuple(weights.shape), f"{out.sum().item():.5f}", [round(v, 5) for v in weights[1, 0].tolist()])

seq2seq = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=16,
                         dropout=0.0, batch_first=True)
set_weights(seq2seq)
src = torch.tensor(rng.standard_normal((2, 6, 8)).astype(np.float32))
tgt = torch.tensor(rng.standard_normal((2, 4, 8)).astype(np.float32), requires_grad=True)
y = seq2seq(src, tgt, tgt_mask=seq2seq.generate_square_subsequent_mask(4))
y.pow(2).mean().backward()
print("seq2seq", tuple(y.shape), f"{y.sum().item():.5f} tgt grad {tgt.grad.abs().sum().item():.6f}")
