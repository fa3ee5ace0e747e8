"""ImageNet weights from the Hugging Face Hub (timm's ports of TF-slim's): which there are, the cache, the download
with its progress, and what to do without a network."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from explorer.nets.networks import InceptionNetwork
from explorer.nets.tables import NetworkConfig
from explorer.nets.weights import WeightsError, WeightsInfo, load_weights_file, weights_dir

#: ImageNet weights on the Hugging Face Hub (timm's ports of TF-slim's): the released Inception-ResNet-v2's,
#: and Inception-v4's under its timm name.
#: The weights the server and the CLI use unless told otherwise.
DEFAULT_TAG = "tf_in1k"

HUB_REPOS: Mapping[str, str] = {
    DEFAULT_TAG: "timm/inception_resnet_v2.tf_in1k",
    "tf_ens_adv_in1k": "timm/inception_resnet_v2.tf_ens_adv_in1k",
    "inception_v4.tf_in1k": "timm/inception_v4.tf_in1k",
}
#: The network each Hub tag's weights fit.
HUB_VARIANTS: Mapping[str, str] = {
    DEFAULT_TAG: "released",
    "tf_ens_adv_in1k": "released",
    "inception_v4.tf_in1k": "inception-v4",
}


def hub_tags_for(variant: str) -> list[str]:
    """The Hub weights that fit a variant (none for the paper's variants, which were never trained in public)."""
    return [tag for tag, fits in HUB_VARIANTS.items() if fits == variant]


HUB_FILENAME = "model.safetensors"


DownloadProgress = Callable[[int, int], None]  # (bytes so far, total bytes)

#: Seconds to wait for the Hub's first answer, asked once: offline is decided in seconds, not after
#: huggingface_hub's half a minute of retries.
HUB_TIMEOUT = 4.0


def hub_page(tag: str) -> str:
    return f"https://huggingface.co/{repo_of(tag)}"


def offline_help(tag: str = DEFAULT_TAG) -> str:
    """How to get the weights onto a machine that cannot reach the Hub, in one sentence."""
    return (
        f"to use them without a network, run `irv2-explorer weights fetch {tag}` on a machine that has one and "
        f"copy its Hugging Face cache ({hub_cache_dir()}) here, or save {HUB_FILENAME} from {hub_page(tag)} "
        f"into {weights_dir()}/ and pick it in the Weights box (or start with EXPLORER_WEIGHTS=file:{HUB_FILENAME})"
    )


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_of(tag: str) -> str:
    if tag not in HUB_REPOS:
        raise WeightsError(f"unknown weights {tag!r}; expected one of: {', '.join(HUB_REPOS)}")
    return HUB_REPOS[tag]


def cached_hub_weights(tag: str = DEFAULT_TAG, cache_dir: str | Path | None = None) -> Path | None:
    """The released weights' file if the Hugging Face cache holds it; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_of(tag), HUB_FILENAME, cache_dir=cache_dir)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hub_file_size(tag: str = DEFAULT_TAG, endpoint: str | None = None, timeout: float = HUB_TIMEOUT) -> int:
    """The weights file's size in bytes as the Hub reports it: one request, no retries.

    Also the check that the Hub answers at all: :class:`WeightsError` within ``timeout`` seconds
    when it does not (offline, a closed port, HF_HUB_OFFLINE set).
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    repo = repo_of(tag)
    if constants.HF_HUB_OFFLINE:
        raise WeightsError(f"HF_HUB_OFFLINE is set and {repo} is not in the Hugging Face cache; {offline_help(tag)}")
    url = hf_hub_url(repo, HUB_FILENAME, endpoint=endpoint)
    where = "/".join(url.split("/")[:3])
    try:
        metadata = get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
    except Exception as error:  # the HTTP client's own errors: DNS, refused, timeout, HTTP status
        raise WeightsError(
            f"cannot reach the Hugging Face Hub at {where} ({_first_line(error)}); {repo} is not in the cache; "
            f"{offline_help(tag)}"
        ) from None
    return metadata.size or 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def download_hub_weights(
    tag: str = DEFAULT_TAG,
    progress: DownloadProgress | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """The released weights' file from the Hugging Face cache, downloading it first if it is not there.

    A cached file is used without touching the network (timm's weights files never change). The
    Hub is ``huggingface.co`` unless ``HF_ENDPOINT`` (or ``endpoint``) says otherwise; the file
    lands in the Hub cache (``HF_HUB_CACHE``, or ``cache_dir``). An unreachable Hub is reported
    within :data:`HUB_TIMEOUT`; a transfer that breaks off is resumed by huggingface_hub, and one
    that still fails leaves no part of the file in the cache.
    """
    repo = repo_of(tag)
    cached = cached_hub_weights(tag, cache_dir)
    if cached is not None:
        return cached
    size = hub_file_size(tag, endpoint)  # fails fast, instead of huggingface_hub's retries with backoff
    if progress:
        progress(0, size)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = hf_hub_download(
            repo,
            HUB_FILENAME,
            cache_dir=cache_dir,
            endpoint=endpoint,
            tqdm_class=_progress_bar(progress) if progress else None,
        )
    except LocalEntryNotFoundError:  # the Hub went away between the first answer and the download
        raise WeightsError(f"lost the Hugging Face Hub while downloading {repo}; {offline_help(tag)}") from None
    except Exception as error:
        # Transfers fail with the HTTP client's own errors (httpx or requests, by huggingface_hub version).
        raise WeightsError(f"downloading {repo} failed ({_first_line(error)}); try again") from None
    return Path(path)


def _progress_bar(callback: DownloadProgress) -> type:
    from tqdm.auto import tqdm

    class CallbackBar(tqdm):  # huggingface_hub counts bytes with the tqdm class it is given
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = False  # counts even where huggingface_hub's bars are turned off...
            kwargs["file"] = _Silent()  # ...and draws nothing: the callback shows the progress
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            callback(int(self.n), int(self.total or 0))
            return shown

    return CallbackBar


class _Silent:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def load_hub_weights(
    config: NetworkConfig,
    tag: str = DEFAULT_TAG,
    progress: DownloadProgress | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> tuple[InceptionNetwork, WeightsInfo]:
    fits = HUB_VARIANTS.get(tag)
    if fits is not None and fits != config.variant:
        raise WeightsError(f"hub:{tag} holds the {fits} network's weights, not {config.variant}'s")
    path = download_hub_weights(tag, progress, cache_dir, endpoint)
    try:
        model, info = load_weights_file(path, config)
    except WeightsError as error:
        _evict(path)  # a corrupt download must not stay in the cache as if it were good
        raise WeightsError(
            f"the downloaded {HUB_FILENAME} is unusable and was removed from the cache ({error}); try again"
        ) from None
    return model, WeightsInfo(
        f"{repo_of(tag)} (Hugging Face Hub)", random=False, notes=info.notes, identity=f"hub:{tag}"
    )


def _evict(path: Path) -> None:
    """Remove a cached Hub file: the snapshot link and the blob it points to."""
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)
