"""Building a network from a variant's table, with some entries replaced."""

from __future__ import annotations

import dataclasses

import torch

from explorer.nets.networks import InceptionNetwork, InceptionResNet, InceptionV4
from explorer.nets.tables import (
    VARIANTS,
    BlockCounts,
    InceptionResNetConfig,
    InceptionV4Config,
    NetworkConfig,
    ResidualScales,
)

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(InceptionResNetConfig) if f.name != "variant")
V4_FIELDS = tuple(f.name for f in dataclasses.fields(InceptionV4Config) if f.name != "variant")


#: The most blocks of a type the app's sliders and the CLI's ``--repeats`` build: three times the released
#: network's 10 / 20 / 10 at most; beyond, a network takes minutes and gigabytes to build and shows nothing new.
MAX_BLOCKS = 30


def make_config(variant: str = "released", **overrides: object) -> NetworkConfig:
    """A variant's table with some entries replaced.

    ``repeats`` takes ``(a, b, c)`` or a :class:`BlockCounts`; ``scales`` takes one number for all
    three block types, ``(a, b, c)`` or a :class:`ResidualScales`. Where the last C block is like
    the others (the paper variants) its scale follows ``scales``; where it has a scale of its own
    (the released network's 1.0) that stays unless ``last_block_scale`` is given. Inception-v4 has
    no residual connections: ``scales`` and ``shortcuts`` do not apply to it.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of: {', '.join(VARIANTS)}")
    base = VARIANTS[variant]
    fields = CONFIG_FIELDS if base.residual else V4_FIELDS
    unknown = sorted(set(overrides) - set(fields))
    if unknown and not base.residual and not set(unknown) - set(CONFIG_FIELDS):
        raise ValueError(f"{variant} has no residual connections: {', '.join(unknown)} do(es) not apply to it")
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; expected some of: {', '.join(fields)}")
    changes = dict(overrides)

    if "repeats" in changes:
        changes["repeats"] = _as_dataclass(BlockCounts, changes["repeats"], int, "repeats")
        if min(dataclasses.astuple(changes["repeats"])) < 1:
            raise ValueError("every block type needs at least one block (repeats >= 1)")
    if "scales" in changes:
        scales = changes["scales"]
        if isinstance(scales, int | float):
            scales = (scales, scales, scales)
        changes["scales"] = _as_dataclass(ResidualScales, scales, float, "scales")
        if "last_block_scale" not in changes and not base.splits_last_block:
            changes["last_block_scale"] = changes["scales"].c
    for field in ("num_classes", "input_size"):
        if field in changes and int(changes[field]) < 1:  # type: ignore[call-overload]
            raise ValueError(f"{field} must be positive")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def build_model(
    variant: str = "released",
    *,
    seed: int | None = 0,
    device: torch.device | str | None = None,
    **overrides: object,
) -> InceptionNetwork:
    """Build a variant in eval mode, with seeded random weights (``seed=None`` leaves torch's RNG alone).

    >>> build_model("released", repeats=(5, 10, 5), scales=1.0)  # doctest: +SKIP
    """
    return model_from_config(make_config(variant, **overrides), seed=seed, device=device)


def model_from_config(
    config: NetworkConfig, *, seed: int | None = 0, device: torch.device | str | None = None
) -> InceptionNetwork:
    """Build the network a config describes, in eval mode, with seeded random weights."""
    network = InceptionResNet if config.residual else InceptionV4
    if seed is None:
        return network(config, device=device).eval()
    # A private RNG stream: building a model must not disturb anyone else's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return network(config, device=device).eval()


def _as_dataclass(cls: type, value: object, kind: type, name: str):
    if isinstance(value, cls):
        return value
    try:
        values = [kind(v) for v in value]  # type: ignore[attr-defined]
        return cls(*values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} takes three numbers (A, B, C), got {value!r}") from None
