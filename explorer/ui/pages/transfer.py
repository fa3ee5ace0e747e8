"""A new head: the study card's transfer-learning code, live, on classes the user makes from a few images."""

import hashlib

import pandas as pd
import plotly.express as px
import streamlit as st
from torch import Tensor

from explorer.analysis.summary import shape_text
from explorer.lessons.transfer import (
    MAX_CLASSES,
    MIN_CLASSES,
    TransferError,
    check_classes,
    check_images,
    extract,
    head_checkpoint,
    head_shapes,
    leave_one_out,
    pooled_features,
    train_head,
)
from explorer.nets.weights import RANDOM
from explorer.runtime import Engine, EngineIdentity
from explorer.runtime.disk import QuotaError
from explorer.runtime.images import ImageError, load_image, sample_path, sample_paths
from explorer.runtime.jobs import Report, Work
from explorer.text.usertext import shown
from explorer.ui.disk import save_checkpoint, shared
from explorer.ui.engines import engine_of, weights_in_use
from explorer.ui.jobs import job_button
from explorer.ui.network import variant_sidebar
from explorer.ui.pictures import UPLOAD_TYPES
from explorer.ui.present import chart
from explorer.ui.state import image_digest


@st.cache_data(show_spinner=False, max_entries=1024)
def unreadable(data: bytes) -> str:
    """Why an upload is not an image that can be read, or "" when it is (checked once per file's bytes)."""
    try:
        load_image(data)
    except ImageError as error:
        return str(error)
    return ""


config = variant_sidebar()
engine, engine_key = engine_of(config)
model = engine.source  # the network as built, float32, shared read-only: only its forward runs here

st.title("A new head on a frozen network")
st.markdown(
    "The study card's Keras code, run on this network: keep everything up to the last pooling, freeze it, "
    "and train one new dense layer for classes of your own. Make 2 to 5 classes from a few images each."
)
st.code(
    "base = InceptionResNetV2(weights='imagenet', include_top=False, input_shape=(299, 299, 3))\n"
    "base.trainable = False\n"
    "x = GlobalAveragePooling2D()(base.output)\n"
    "outputs = Dense(n_classes, activation='softmax')(x)",
    language="python",
)
samples = [p.stem for p in sample_paths()]
count = st.number_input("Classes", MIN_CLASSES, MAX_CLASSES, MIN_CLASSES, key="transfer_classes")
columns = st.columns(int(count))
chosen: dict[str, list[tuple[str, bytes]]] = {}
names: list[str] = []
for index, column in enumerate(columns):
    with column:
        name = st.text_input("Class name", f"class {index + 1}", key=f"transfer_name_{index}")
        picked = st.multiselect("Samples", samples, key=f"transfer_samples_{index}")
        uploads = st.file_uploader(
            "Your images", type=UPLOAD_TYPES, accept_multiple_files=True, key=f"transfer_uploads_{index}"
        )
        images = [(f"{s} (sample)", sample_path(s).read_bytes()) for s in picked]
        for upload in uploads or ():
            problem = unreadable(upload.getvalue())
            if problem:  # named at once, and left out of the class, instead of failing the training later
                st.warning(f"{shown(upload.name)} is left out: {problem}.", icon=":material/broken_image:")
            else:
                images.append((upload.name, upload.getvalue()))
        names.append(name.strip())
        chosen.setdefault(name.strip(), []).extend(images)


@st.cache_data(show_spinner=False, max_entries=256)
def features_of(_engine: Engine, engine_key: EngineIdentity, digest: str, _data: bytes) -> Tensor:
    """One image's pooled features for one engine: computed once (the network is frozen)."""
    return pooled_features(_engine.source, [load_image(_data).image])[0]


def check_training(classes: dict[str, list[tuple[str, bytes]]], names: list[str]) -> None:
    """What can be said before any work: names, the number of classes, an image in two of them."""
    if len(set(names)) != len(names):
        raise TransferError("two classes have the same name; give each its own")
    check_classes(classes)
    check_images(classes)


def training(classes: dict[str, list[tuple[str, bytes]]], names: list[str]) -> Work:
    """The training as a job: the pooled features of every image, the head, and leave-one-out."""
    source = engine.source

    def work(report: Report) -> dict:
        examples = extract(
            classes,
            lambda data: pooled_features(source, [load_image(data).image])[0],
            lambda done, total: report(0.9 * done / total, f"features of {done} of {total} images"),
        )
        report(0.9, "training the new head")
        head = train_head(examples)
        report(0.95, "leave-one-out: a head for each image, trained without it")
        accuracy, outcomes = leave_one_out(examples)
        seen = {image_digest(data) for images in classes.values() for _, data in images}
        sizes = {k: len(v) for k, v in classes.items()}
        return {"head": head, "accuracy": accuracy, "outcomes": outcomes, "sizes": sizes, "seen": seen}

    return work


request = tuple((label, tuple(image_digest(data) for _, data in images)) for label, images in chosen.items())
total_images = sum(len(images) for images in chosen.values())
# Measured on a 2-core CPU: about a second an image for the features (docs/guide/teachers.md); a GPU, a tenth of it.
per_image = 0.1 if engine.device.type == "cuda" else 1.0
trained_now = job_button(
    ("new head", engine_key, tuple(names), request),
    f"Training a head on {total_images} image{'s' if total_images != 1 else ''}",
    training(chosen, names),
    estimate_s=3 + per_image * total_images,
    button="Train the new head",
    widget_key="transfer_train",
    failed="The new head was not trained",
    icon=":material/model_training:",
    primary=True,
    check=lambda: check_training(chosen, names),
)
if trained_now is not None:
    st.session_state["transfer_result"] = (engine_key, trained_now.result)

stored = st.session_state.get("transfer_result")
trained = stored[1] if stored and stored[0] == engine_key else None  # results of other weights do not apply

st.subheader("What the code builds, with this network's numbers")
classes_n = len(trained["head"].classes) if trained else int(count)
shapes = head_shapes(model, classes_n)
st.dataframe(
    pd.DataFrame(
        [
            {"step": "input image", "shape (HxWxC), per image": shape_text(shapes.input)},
            {
                "step": "base (include_top=False): the last feature map",
                "shape (HxWxC), per image": shape_text(shapes.feature_map),
            },
            {"step": "GlobalAveragePooling2D", "shape (HxWxC), per image": shape_text(shapes.pooled)},
            {
                "step": f"Dense({classes_n}, softmax): the new head",
                "shape (HxWxC), per image": shape_text(shapes.logits),
            },
        ]
    ),
    hide_index=True,
)
left, right = st.columns(2)
left.metric("Frozen parameters (base.trainable = False)", f"{shapes.frozen_params:,}")
right.metric("Trainable parameters (the new Dense layer)", f"{shapes.trainable_params:,}")
st.caption(
    f"The new layer has {shapes.pooled[-1]:,} x {classes_n} weights + {classes_n} biases; the old 1,000-class "
    "classifier is not part of the base. The features are computed once per image, since nothing before the "
    "head changes."
)

if trained:
    head = trained["head"]
    st.subheader("Training")
    curve = px.line(
        pd.DataFrame({"step": range(1, len(head.losses) + 1), "cross-entropy": head.losses}),
        x="step",
        y="cross-entropy",
        title="Training loss of the new head (full batch, Adam)",
    )
    curve.update_layout(height=300, margin={"t": 40, "b": 10})
    chart(curve)
    if trained["outcomes"]:
        st.metric(
            "Leave-one-out accuracy",
            f"{trained['accuracy']:.0%}",
            help="Each image classified by a head trained without it.",
        )
        st.dataframe(
            pd.DataFrame(trained["outcomes"], columns=["image", "class", "the head trained without it says"]),
            hide_index=True,
        )
    else:
        st.info("Leave-one-out needs at least two images in a class: add more to test the head on unseen images.")
    if weights_in_use(config) == RANDOM:
        st.caption(
            "These features come from random weights: what they separate is colour and texture, not "
            "meaning. Load the trained weights (sidebar, Weights) for the card's real use."
        )

    st.subheader("Keep it")
    st.caption(
        "The network with this head in place of its classifier, as a .safetensors file (about 220 MB): the class "
        "names are in it, and `--weights FILE` on the command line or the server's weights folder loads it again."
    )
    keep_left, keep_right = st.columns(2)
    if keep_left.button("Make the checkpoint", icon=":material/save:", key="transfer_checkpoint"):
        made = head_checkpoint(engine.source, head, engine.weights.identity)
        keep_left.download_button(
            "Download new-head.safetensors",
            made,
            file_name="new-head.safetensors",
            mime="application/octet-stream",
            on_click="ignore",
        )
        name = f"new-head-{len(head.classes)}-classes-{hashlib.sha256(made).hexdigest()[:10]}.safetensors"
        try:
            saved = save_checkpoint(made, name)
        except QuotaError as error:
            keep_right.warning(f"Not kept on the server: {error}.", icon=":material/storage:")
        else:
            if saved is not None:
                whose = "everyone's" if shared() else "your"
                keep_right.success(f"Also kept on the server as {name}: pick it in {whose} sidebar's Weights box.")

    st.subheader("Classify a new image")
    source = st.radio("Image", ["Sample", "Upload"], horizontal=True, key="transfer_query_source")
    query = None
    if source == "Sample":
        unseen = [i for i, s in enumerate(samples) if image_digest(sample_path(s).read_bytes()) not in trained["seen"]]
        # a sample the head was not trained on, so that its answer is a test of what it learnt
        pick = st.selectbox("Sample", samples, index=unseen[0] if unseen else 0, key="transfer_query_sample")
        query = (pick, sample_path(pick).read_bytes())
    else:
        upload = st.file_uploader("An image", type=UPLOAD_TYPES, key="transfer_query_upload")
        query = (upload.name, upload.getvalue()) if upload else None
    if query:
        try:
            features = features_of(engine, engine_key, image_digest(query[1]), query[1])
        except ImageError as error:
            st.error(f"{shown(error, limit=400)}.", icon=":material/image:")
        else:
            ranked = head.classify(features)
            st.markdown(f"**{shown(query[0])}**: the new head says **{shown(ranked[0][0])}** ({ranked[0][1]:.0%})")
            if image_digest(query[1]) in trained["seen"]:
                st.caption(
                    "This is one of the training images: the head has seen it, so its answer says nothing about "
                    "new images. Leave-one-out above, or an image of your own, does."
                )
            st.bar_chart(pd.DataFrame({"probability": dict(ranked)}), horizontal=True)
