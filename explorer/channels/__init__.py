"""What each channel has learned: dataset examples (the images that excite it most, and where), built into an
index of a folder on one device or several, read back memory-mapped."""

from explorer import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "folder": ("FolderError", "list_files"),
        "indexer": ("IndexInterrupted", "IndexProgress", "build_index"),
        "store": ("BlockExamples", "IndexFileError", "read_block", "read_manifest"),
        "top": ("ChannelTop",),
    },
)
