"""Which kernels the GPU pipeline spends its time in (torch.profiler, eager, batch 1 and 64).

python -m benchmarks.profile_gpu
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.nets import build_model
from explorer.runtime import reduce_block
from explorer.runtime.fastpath import inference_copy
from explorer.runtime.pipeline import pipeline


def main() -> None:
    torch.backends.cudnn.benchmark = True
    model = inference_copy(build_model("released")).cuda().to(memory_format=torch.channels_last)
    for batch in (1, 64):
        x = torch.randn(batch, 3, 299, 299, device="cuda").contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for _ in range(3):
                pipeline(model, x, 8)
            torch.cuda.synchronize()
            _, blocks, residuals = model.forward_intermediates_and_residuals(x)
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for name, out in blocks.items():
                    with torch.profiler.record_function(f"reduce {name}"):
                        reduce_block(out, x, residuals.get(name), 8)
                torch.cuda.synchronize()
        print(f"== batch {batch}: reductions only")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14))


if __name__ == "__main__":
    main()
