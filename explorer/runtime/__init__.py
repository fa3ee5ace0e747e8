"""Running images through a network: decoding, preprocessing, the engine and its two paths, the inside of blocks.

- :mod:`~explorer.runtime.images`: decoding uploads, folders and the sample photographs;
- :mod:`~explorer.runtime.preprocessing`: resizing, cropping and normalising as the weights expect;
- :mod:`~explorer.runtime.labels`: the ImageNet class names;
- :mod:`~explorer.runtime.results`: what comes back (plain values);
- :mod:`~explorer.runtime.reductions`, :mod:`~explorer.runtime.pipeline`, :mod:`~explorer.runtime.packing`:
  every block's maps and statistics in one pass, packed into one row per image;
- :mod:`~explorer.runtime.fastpath`: the inference copy (batch norms folded);
- :mod:`~explorer.runtime.capture`, :mod:`~explorer.runtime.runners`: the GPU's CUDA graph and the CPU's stream;
- :mod:`~explorer.runtime.upgrade`: from plain kernels to compiled ones, by the first way that works here:
  :mod:`~explorer.runtime.ahead` (AOTInductor packages) or :mod:`~explorer.runtime.handover` (torch.compile in
  a child, then here from its cache), both built by :mod:`~explorer.runtime.builds` in a child process;
- :mod:`~explorer.runtime.engine`: one model on one device, shared by every session, and
  :mod:`~explorer.runtime.engine_pool`: engines for other settings within a memory budget;
- :mod:`~explorer.runtime.inside`: the inside of a block; :mod:`~explorer.runtime.private`: private copies;
- :mod:`~explorer.runtime.default_weights`: the server's default model and its trained weights.
"""

from explorer import lazy_exports

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "capture": ("CapturedPipeline",),
        "device": ("cpu_bf16_native", "pick_device", "precision_allowed"),
        "engine": ("Engine", "EngineIdentity"),
        "engine_pool": ("EnginePool",),
        "labels": ("imagenet_labels",),
        "packing": ("Layout",),
        "pipeline": ("BlockGroup", "PipelineSteps", "block_groups", "streamed_pipeline"),
        "preprocessing": ("TF_IN1K", "Preprocessing", "crop_for_network", "to_tensor"),
        "reductions": ("reduce_block",),
        "results": ("BlockMaps", "BlockStats", "GradCam", "InferenceResult", "Prediction"),
    },
)
