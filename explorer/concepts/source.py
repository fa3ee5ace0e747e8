"""The network an index was built with, built again from what its manifest records (variant, repeats, weights),
for work that needs the network as well as the index (the atlas's pictures)."""

from __future__ import annotations

from pathlib import Path

from explorer.channels.index.reader import ChannelIndex
from explorer.channels.index.store import IndexFileError
from explorer.nets import InceptionNetwork, make_config
from explorer.nets.loading import load_file, load_weights
from explorer.nets.weights import WeightsInfo, random_weights


def network_of(index: ChannelIndex) -> tuple[InceptionNetwork, WeightsInfo]:
    """The index's network with the very weights it was built with; a weights file that is gone or has changed
    since (another file of that name, or the same one rewritten) is refused in one line."""
    made = index.manifest
    identity = str(made.get("weights", ""))
    if made.get("repeats") is None:
        raise IndexFileError(f"{index.folder} does not record how its network was built: build the index again")
    config = make_config(made["variant"], repeats=tuple(made["repeats"]))
    kind, _, rest = identity.partition(":")
    if kind == "random":
        model, info = random_weights(config, int(rest or 0))
    elif kind == "hub":
        model, info = load_weights(f"hub:{rest}", config)
    elif kind == "file":
        path = Path(rest.rsplit(":", 2)[0])
        if not path.is_file():
            raise IndexFileError(f"the weights file the index was built with, {path}, is no longer there")
        model, info = load_file(path, config)
        if info.identity != identity:
            raise IndexFileError(
                f"the weights file {path} has changed since the index was built: build the index again with it"
            )
    else:
        raise IndexFileError(f"{index.folder}: weights {identity[:80]!r} are not ones this version can load")
    if repr(model.config) != made.get("network"):
        raise IndexFileError(f"{index.folder}: the network built again is not the one the index records")
    return model, info
