"""Test-wide settings."""

import torch

# The CPU suite runs many tiny models; one thread avoids oversubscribing the 2 cores when
# pytest shares the machine, and tiny matmuls gain nothing from a second thread.
torch.set_num_threads(1)
