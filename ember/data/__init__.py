"""ember.data: IDX files, datasets (Fashion-MNIST, MNIST, TensorDataset) and the DataLoader."""
from ember.data.dataloader import DataLoader, default_collate
from ember.data.dataset import Dataset, Subset, TensorDataset, collate_arrays, fetch_batch, random_split
from ember.data.datasets import MNIST, DatasetNotFoundError, FashionMNIST
from ember.data.idx import IDXError, read_idx, write_idx
from ember.data.sampler import DistributedSampler

__all__ = ["DataLoader", "Dataset", "DatasetNotFoundError", "FashionMNIST", "IDXError", "MNIST",
           "Subset", "TensorDataset", "collate_arrays", "default_collate", "fetch_batch",
           "random_split", "read_idx", "write_idx"]
