"""Teaching material that runs the network: the residual-scaling experiment and a new head on frozen features."""

from explorer import lazy_exports

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "experiments": ("BlockStatistics", "Run", "Setting", "run_experiment", "settings"),
        "transfer": (
            "Example",
            "HeadShapes",
            "TrainedHead",
            "TransferError",
            "check_classes",
            "head_shapes",
            "leave_one_out",
            "pooled_features",
            "train_head",
        ),
    },
)
