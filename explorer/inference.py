"""Live inference, as the pages and the command line use it: one import for what is spread over these modules.

- :mod:`explorer.preprocessing`: resizing, cropping and normalising as the tf_in1k weights expect;
- :mod:`explorer.labels`: the ImageNet class names;
- :mod:`explorer.results`: what comes back (plain values);
- :mod:`explorer.reductions`: an activation reduced to maps and statistics on its device;
- :mod:`explorer.pipeline`: every block's maps in one pass, the GPU's way and the CPU's;
- :mod:`explorer.capture`: the GPU pipeline as a CUDA graph;
- :mod:`explorer.engine`: one model on one device, shared by every session;
- :mod:`explorer.gradcam`: Grad-CAM.
"""

from explorer.capture import CapturedPipeline
from explorer.engine import Engine, EngineIdentity, cpu_bf16_native, pick_device, precision_allowed
from explorer.gradcam import grad_cam
from explorer.labels import imagenet_labels
from explorer.pipeline import (
    BlockGroup,
    Layout,
    PipelineSteps,
    block_groups,
    head_part,
    pipeline,
    reduce_group,
    streamed_pipeline,
)
from explorer.preprocessing import TF_IN1K, Preprocessing, crop_for_network, to_tensor
from explorer.reductions import reduce_block
from explorer.results import BlockMaps, BlockStats, GradCam, InferenceResult, Prediction

__all__ = [
    "TF_IN1K",
    "BlockGroup",
    "BlockMaps",
    "BlockStats",
    "CapturedPipeline",
    "Engine",
    "EngineIdentity",
    "GradCam",
    "InferenceResult",
    "Layout",
    "PipelineSteps",
    "Prediction",
    "Preprocessing",
    "block_groups",
    "cpu_bf16_native",
    "crop_for_network",
    "grad_cam",
    "head_part",
    "imagenet_labels",
    "pick_device",
    "pipeline",
    "precision_allowed",
    "reduce_block",
    "reduce_group",
    "streamed_pipeline",
    "to_tensor",
]
