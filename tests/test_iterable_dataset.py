"""IterableDataset, ChainDataset and StackDataset, run through the same script under torch and
ember (the modules passed in): batches, lengths, drop_last, batch_size=None, chaining with +,
tuple and dict stacking, and PyTorch's errors for shuffle/sampler with a stream."""
import pytest

import ember

torch = pytest.importorskip("torch")


def _script(lib):
    U = lib.utils.data

    class Stream(U.IterableDataset):
        def __init__(self, n, start=0):
            self.n, self.start = n, start

        def __iter__(self):
            for i in range(self.start, self.start + self.n):
                yield lib.tensor([float(i), i * 0.5]), i % 3

        def __len__(self):
            return self.n

    out = []
    for kw in ({"batch_size": 4}, {"batch_size": 4, "drop_last": True}, {"batch_size": None}):
        loader = U.DataLoader(Stream(10), **kw)
        out.append((len(loader), [(tuple(x.shape), y.tolist() if hasattr(y, "tolist") else y) for x, y in loader]))
    out.append([x[:, 0].tolist() for x, _ in U.DataLoader(Stream(3) + Stream(2, 100), batch_size=2)])
    out.append(len(U.ChainDataset([Stream(3), Stream(4)])))
    pair = U.StackDataset(U.TensorDataset(lib.arange(4.0)), U.TensorDataset(lib.arange(4.0) * 2))
    out.append((len(pair), [float(a[0]) for a in pair[2]]))
    named = U.StackDataset(x=U.TensorDataset(lib.arange(3.0)), y=U.TensorDataset(lib.arange(3.0)))
    out.append(sorted(named[1]))
    for bad in ({"shuffle": True}, {"sampler": [0, 1]}):
        with pytest.raises(ValueError) as e:
            U.DataLoader(Stream(3), **bad)
        out.append(str(e.value))
    return out


def test_iterable_datasets_behave_as_torch_s():
    assert _script(ember) == _script(torch)


def test_workers_with_a_stream_are_refused_clearly():
    class Stream(ember.utils.data.IterableDataset):
        def __iter__(self):
            yield from range(3)
    with pytest.raises(NotImplementedError, match="IterableDataset with num_workers > 0"):
        next(iter(ember.utils.data.DataLoader(Stream(), num_workers=1)))
