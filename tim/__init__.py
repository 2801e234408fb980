"""tim: recursive subtask-tree reasoning with bounded KV memory.

``import tim`` stays light: it imports no torch and no CUDA. Subpackages
(``tim.tree``, ``tim.pruning``, ``tim.kernels``, ``tim.cache``, ...) are imported on use.
"""

from tim.errors import TimError

__all__ = ["TimError", "__version__"]
__version__ = "0.1.0"
