"""``ember.distributed``: PyTorch's ``torch.distributed`` names for data-parallel training on MPI.

    mpiexec -n 2 python train.py        # each copy: init_process_group(); DDP(model); ...

See ``group.py`` (process group, collectives, timeouts), ``launch.py`` (helpers for a training
loop under a launcher) and docs/distributed.md (launch lines, cost model).
"""
from .group import (DEFAULT_TIMEOUT, DistBackendError, MismatchError, ReduceOp, all_gather,
                    all_reduce, barrier, broadcast, check_same, destroy_process_group, get_backend,
                    get_rank, get_world_size, init_process_group, is_available, is_initialized,
                    is_mpi_available, parameter_signature)

__all__ = ["DEFAULT_TIMEOUT", "DistBackendError", "MismatchError", "ReduceOp", "all_gather",
           "all_reduce", "barrier", "broadcast", "check_same", "destroy_process_group", "get_backend",
           "get_rank", "get_world_size", "init_process_group", "is_available", "is_initialized",
           "is_mpi_available", "parameter_signature"]
