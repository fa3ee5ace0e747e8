"""The ImageNet class names, read as data from torchvision's own table (no download, no torchvision import)."""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet class names bundled with torchvision (no download).

    Read as data from torchvision's own category table (``torchvision/models/_meta.py``: the
    list literal is parsed, nothing is executed) without importing the package, for the same two
    seconds as above; the public route, the ResNet-50 weights' metadata, is the fallback should
    that file change, and a test checks that both agree.
    """
    spec = importlib.util.find_spec("torchvision")
    table = Path(spec.origin).parent / "models" / "_meta.py" if spec and spec.origin else None
    if table is not None and table.is_file():
        for statement in ast.parse(table.read_text()).body:
            if (
                isinstance(statement, ast.Assign)
                and [getattr(t, "id", None) for t in statement.targets] == ["_IMAGENET_CATEGORIES"]
                and isinstance(statement.value, ast.List)
            ):
                categories = ast.literal_eval(statement.value)
                if len(categories) == 1000 and all(isinstance(c, str) for c in categories):
                    return tuple(categories)
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
