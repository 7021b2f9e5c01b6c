"""ember.data: IDX files, datasets (Fashion-MNIST, MNIST, TensorDataset) and the DataLoader."""
from ember.data.dataloader import DataLoader, WorkerInfo, default_collate, default_convert, get_worker_info
from ember.data.dataset import Dataset, Subset, TensorDataset, collate_arrays, fetch_batch, random_split
from ember.data.datasets import MNIST, DatasetNotFoundError, FashionMNIST
from ember.data.idx import IDXError, read_idx, write_idx

__all__ = ["DataLoader", "Dataset", "DatasetNotFoundError", "FashionMNIST", "IDXError", "MNIST",
           "Subset", "TensorDataset", "collate_arrays", "default_collate", "default_convert", "fetch_batch", "get_worker_info",
           "random_split", "read_idx", "write_idx", "WorkerInfo"]
