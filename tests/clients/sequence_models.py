"""Sequence models in the idiom of PyTorch's tutorials: an ``nn.Embedding`` + 2-layer
bidirectional ``nn.LSTM(batch_first=True)`` classifier of token sequences trained with Adam and
``clip_grad_norm_`` (the last step's hidden states of both directions concatenated from ``h_n``),
a ``nn.GRU`` regressor that reads a sine wave and predicts the next value from ``output[:, -1]``,
an ``nn.LSTMCell`` loop carrying (h, c) by hand, ``flatten_parameters()``, ``state_dict`` keys,
and ``unbind``. All weights are set from NumPy's seeded RNG so both libraries start equal."""
import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(7)


def set_weights(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.tensor(rng.uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))


class Classifier(nn.Module):
    def __init__(self, vocab, emb, hidden, classes):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=2, batch_first=True, bidirectional=True, dropout=0.0)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, tokens):
        self.lstm.flatten_parameters()
        out, (h_n, c_n) = self.lstm(self.embed(tokens))
        last = torch.cat([h_n[-2], h_n[-1]], dim=1)           # the top layer, forward and backward
        return self.fc(last), out


tokens = torch.tensor(rng.integers(0, 20, (32, 9)))
labels = (tokens[:, 0] > 9).long()                           # class = is the first token large?
clf = Classifier(20, 6, 8, 2)
set_weights(clf)
print("keys", [k for k in clf.state_dict() if "lstm" in k][:5], len(clf.state_dict()))
print(clf.lstm)
opt = torch.optim.Adam(clf.parameters(), lr=0.02)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(6):
    for start in range(0, 32, 8):
        logits, out = clf(tokens[start:start + 8])
        loss = loss_fn(logits, labels[start:start + 8])
        opt.zero_grad()
        loss.backward()
        norm = nn.utils.clip_grad_norm_(clf.parameters(), 1.0)
        opt.step()
    print(f"epoch {epoch} loss {loss.item():.6f} grad norm {float(norm):.6f} out {tuple(out.shape)}")
with torch.no_grad():
    logits, _ = clf(tokens)
    print("accuracy", (logits.argmax(1) == labels).float().mean().item())

# a GRU reads a sine wave and predicts the next value
t = np.linspace(0, 12, 200).astype(np.float32)
wave = np.sin(t)
windows = np.stack([wave[i:i + 10] for i in range(0, 180, 6)])[:, :, None]
targets = np.array([wave[i + 10] for i in range(0, 180, 6)], np.float32)[:, None]
X, Y = torch.tensor(windows), torch.tensor(targets)


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 12, batch_first=True)
        self.head = nn.Linear(12, 1)

    def forward(self, x, h=None):
        out, h = self.gru(x, h)
        return self.head(out[:, -1]), h


model = Forecaster()
set_weights(model)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for step in range(15):
    pred, h = model(X)
    loss = nn.functional.mse_loss(pred, Y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 5 == 4:
        print(f"gru step {step} mse {loss.item():.6f} h {tuple(h.shape)}")
with torch.no_grad():
    pred, h = model(X[:2], torch.zeros(1, 2, 12))
    print("gru pred", [round(v, 5) for v in pred.squeeze(1).tolist()])

# an LSTMCell unrolled by hand, h and c carried across the steps
cell = nn.LSTMCell(3, 4)
set_weights(cell)
seq = torch.tensor(rng.standard_normal((5, 2, 3)).astype(np.float32), requires_grad=True)
h, c = torch.zeros(2, 4), torch.zeros(2, 4)
outs = []
for x_t in seq.unbind(0):
    h, c = cell(x_t, (h, c))
    outs.append(h)
total = torch.stack(outs).pow(2).sum()
total.backward()
print(f"cell total {total.item():.6f} seq grad sum {seq.grad.sum().item():.6f} |w_hh grad| "
      f"{cell.weight_hh.grad.abs().sum().item():.6f}")
print(cell, nn.RNN(3, 4, num_layers=2), nn.GRU(2, 3, bias=False))

# variable-length sequences: pad_sequence, pack_padded_sequence (unsorted), a bidirectional GRU, pad_packed_sequence
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence  # noqa: E402

lengths = [4, 2, 5]
batch = pad_sequence([torch.tensor(rng.standard_normal((n, 3)).astype(np.float32)) for n in lengths], batch_first=True)
gru = nn.GRU(3, 4, batch_first=True, bidirectional=True)
set_weights(gru)
packed = pack_padded_sequence(batch, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
out, h_n = gru(packed)
padded, out_lengths = pad_packed_sequence(out, batch_first=True)
print("packed", tuple(packed.data.shape), packed.batch_sizes.tolist(), tuple(padded.shape), out_lengths.tolist(),
      f"{padded.sum().item():.6f} h_n {[round(v, 5) for v in h_n.sum(dim=2).flatten().tolist()]}")
