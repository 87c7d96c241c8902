"""Shared test settings: one torch thread (small networks, a 2-core CI machine), fixed seeds, and Ctrl-C
reaching the child processes that the signal tests start."""

import signal

import pytest
import torch

torch.set_num_threads(1)

# The signal tests send SIGINT to child processes as a terminal's Ctrl-C would. A test run started in the
# background by a non-interactive shell (`cmd &` in a script) inherits SIGINT ignored, exec keeps an ignored
# signal ignored, and train.py deliberately leaves an inherited ignore alone; so give this process Python's
# own SIGINT handler, which exec turns back into the default for every child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _fixed_torch_seed():
    torch.manual_seed(0)
    yield
