"""A model's own copies for work that sets hooks on its modules (attribution), away from the model others run.

Captum hooks the modules it looks at while it works, and guided backpropagation replaces the ReLUs'
gradients: neither may touch a model other sessions run. :class:`PrivateCopies` keeps one copy for such
work, made on first use and lent to one caller at a time (a copy costs the model's memory once, where a lock
on the shared model would hold up every session's images for the seconds an attribution takes), and makes
throw-away copies, one at a time, for work that changes the weights (the sanity check randomises them).
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable, Iterator

from torch import nn

from explorer.nets import InceptionNetwork


def private_copy(model: InceptionNetwork) -> InceptionNetwork:
    """A copy whose hooks nobody else sees, in eval mode, no parameter needing a gradient, ReLUs not in place."""
    twin = copy.deepcopy(model).eval().requires_grad_(False)
    for module in twin.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return twin


class PrivateCopies:
    """The copies of ``source()`` (the model as built) that hook-setting work runs on; ``gate`` is entered around
    each use (the GPU's gate for work off the captured graph)."""

    def __init__(
        self, source: Callable[[], InceptionNetwork], gate: Callable[[], contextlib.AbstractContextManager]
    ) -> None:
        self._source = source
        self._gate = gate
        self._kept: InceptionNetwork | None = None
        self._lock = threading.Lock()
        self._scratch_lock = threading.Lock()

    @property
    def kept(self) -> InceptionNetwork | None:
        """The copy kept for reuse, if one has been made (its memory counts towards the engine's)."""
        return self._kept

    @contextlib.contextmanager
    def shared(self) -> Iterator[InceptionNetwork]:
        """The kept copy, made on first use, for one caller at a time; hooks set on it must be removed."""
        with self._lock, self._gate():
            if self._kept is None:
                self._kept = private_copy(self._source())
            yield self._kept

    @contextlib.contextmanager
    def scratch(self) -> Iterator[InceptionNetwork]:
        """A copy of its own for work that changes it, one such caller at a time (each holds the model's memory
        for its seconds), leaving the kept copy to other callers."""
        with self._scratch_lock, self._gate():
            yield private_copy(self._source())

    def drop(self) -> None:
        """Forget the kept copy (the source moved device): the next use makes it again."""
        with self._lock:
            self._kept = None
