"""Attribution on an engine: each method, Grad-CAM and the sanity check, on the engine's private copies."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from PIL import Image

from explorer.explain.attribution import DEFAULTS, Attribution, Progress, Settings, explain
from explorer.explain.faithfulness import METRIC_DEFAULTS, Faithfulness, MetricSettings, score_maps
from explorer.explain.gradcam import grad_cam
from explorer.explain.sanity import SanityStep, sanity_check
from explorer.runtime.engine import Engine
from explorer.runtime.results import GradCam
from explorer.runtime.scoring import probabilities


class Explainer:
    """Why an engine's model said what it said about an image, computed on the model as built (Captum).

    Holds nothing but the engine: the copies it runs on and their locks are the engine's
    (:class:`explorer.runtime.private.PrivateCopies`), so any number of explainers of one engine may be made.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def grad_cam(self, image: Image.Image, block: str, class_index: int | None = None) -> GradCam:
        """Grad-CAM of ``class_index`` (the top-1 class by default) at ``block``."""
        _, x = self.engine.prepare(image)
        with self.engine.private.shared() as model:
            return grad_cam(model, x.to(self.engine.device), block, class_index, self.engine.label)

    def explain(
        self,
        image: Image.Image,
        method: str,
        block: str | None = None,
        class_index: int | None = None,
        settings: Settings = DEFAULTS,
        progress: Progress | None = None,
    ) -> Attribution:
        """One attribution method's map (:data:`explorer.explain.METHODS`) for one image."""
        _, x = self.engine.prepare(image)
        with self.engine.private.shared() as model:
            return explain(
                model, x.to(self.engine.device), method, self.engine.label, block, class_index, settings, progress
            )

    def sanity_check(
        self,
        image: Image.Image,
        methods: Sequence[str],
        block: str | None = None,
        class_index: int | None = None,
        settings: Settings = DEFAULTS,
        progress: Progress | None = None,
    ) -> tuple[dict[str, Attribution], dict[str, list[SanityStep]]]:
        """The cascading-randomisation check for some methods on one image, on a copy of its own (so other
        callers keep the shared copy); checks run one at a time, each copy holding the model's memory for
        their seconds."""
        _, x = self.engine.prepare(image)
        with self.engine.private.scratch() as model:
            return sanity_check(
                model, x.to(self.engine.device), methods, self.engine.label, block, class_index, settings, progress
            )

    def faithfulness(
        self,
        image: Image.Image,
        attributions: Sequence[Attribution],
        metrics: Sequence[str],
        settings: MetricSettings = METRIC_DEFAULTS,
        progress: Progress | None = None,
    ) -> list[Faithfulness]:
        """Deletion, insertion, ROAD and infidelity (:mod:`explorer.explain.faithfulness`) of some maps of one image,
        all for the class they explain; the forwards run on the engine's inference copy, batched."""
        classes = {a.class_index for a in attributions}
        if len(classes) != 1:
            raise ValueError("the maps compared must explain one class")
        _, x = self.engine.prepare(image)
        pre = self.engine.preprocessing
        heatmaps = {a.method: a.heatmap for a in attributions}
        return score_maps(
            partial(probabilities, self.engine),
            x.to(self.engine.device),
            heatmaps,
            classes.pop(),
            metrics,
            settings,
            pre.mean,
            pre.std,
            progress,
        )
