"""What the network's channels serve across a dataset: the classes each channel responds to and the channels each
class relies on (``classes``), and the activation atlas of a block (``atlas``: a map of everything it sees, laid
out by UMAP and drawn by feature visualisation), all read from an index of dataset examples."""

from explorer import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "classes": ("ClassTable",),
        "source": ("network_of",),
        "tcav": ("ConceptScore", "RandomSets", "random_sets", "tcav"),
        "examples": ("write_examples",),
    },
)
