"""ember.data: IDX files, datasets (Fashion-MNIST, MNIST, CIFAR-10, ImageFolder, TensorDataset),
batched transforms, samplers and the DataLoader."""
from ember.data.dataloader import DataLoader, WorkerInfo, default_collate, default_convert, get_worker_info
from ember.data.dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset,
                                TensorDataset, collate_arrays, fetch_batch, random_split)
from ember.data.datasets import MNIST, DatasetNotFoundError, FashionMNIST
from ember.data.idx import IDXError, read_idx, write_idx
from ember.data.sampler import (BatchSampler, DistributedSampler, RandomSampler, Sampler, SequentialSampler,
                                SubsetRandomSampler, WeightedRandomSampler)
from ember.data.images import IMG_EXTENSIONS, ImageDataError, ImageFolder
from ember.data.cifar import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, cifar10_transform, read_cifar10_bin

__all__ = ["BatchSampler", "ChainDataset", "CIFAR10", "CIFAR10_MEAN", "CIFAR10_STD", "ConcatDataset", "IterableDataset",
           "StackDataset", "DataLoader", "Dataset",
           "DatasetNotFoundError", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler",
           "WeightedRandomSampler",
           "DistributedSampler", "FashionMNIST", "IDXError", "IMG_EXTENSIONS", "ImageDataError",
           "ImageFolder", "MNIST", "Subset", "TensorDataset", "WorkerInfo", "cifar10_transform",
           "collate_arrays", "default_collate", "default_convert", "fetch_batch", "get_worker_info",
           "random_split", "read_cifar10_bin", "read_idx", "write_idx"]
