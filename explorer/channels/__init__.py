"""What each channel has learned: dataset examples (the images that excite it most, and where), built into an
index of a folder on one device or several, read back memory-mapped (``index``); and what is drawn from it and
from the network, the images that excite each channel most (``features``)."""

from explorer import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "index.folder": ("FolderError", "list_files"),
        "index.indexer": ("IndexInterrupted", "IndexProgress", "build_index"),
        "index.store": ("BlockExamples", "IndexFileError", "read_block", "read_manifest"),
        "index.top": ("ChannelTop",),
    },
)
