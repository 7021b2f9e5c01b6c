"""ember.data: IDX files, datasets (Fashion-MNIST, MNIST, CIFAR-10, ImageFolder, TensorDataset),
batched transforms and the DataLoader."""
from ember.data.dataloader import DataLoader, default_collate
from ember.data.dataset import Dataset, Subset, TensorDataset, collate_arrays, fetch_batch, random_split
from ember.data.datasets import MNIST, DatasetNotFoundError, FashionMNIST
from ember.data.idx import IDXError, read_idx, write_idx
from ember.data.sampler import DistributedSampler
from ember.data.images import IMG_EXTENSIONS, ImageDataError, ImageFolder
from ember.data.cifar import CIFAR10, CIFAR10_MEAN, CIFAR10_STD, cifar10_transform, read_cifar10_bin

__all__ = ["CIFAR10", "CIFAR10_MEAN", "CIFAR10_STD", "DataLoader", "Dataset", "DatasetNotFoundError",
           "FashionMNIST", "IDXError", "IMG_EXTENSIONS", "ImageDataError", "ImageFolder", "MNIST",
           "Subset", "TensorDataset", "cifar10_transform", "collate_arrays", "default_collate",
           "DistributedSampler", "fetch_batch", "random_split", "read_cifar10_bin", "read_idx", "write_idx"]
