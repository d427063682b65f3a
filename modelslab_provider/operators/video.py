"""Operators that generate a ModelsLab video: submit, push the request id, wait, push the URLs.

The request's life in Airflow (submit, reconnect, wait, XCom) is in
:mod:`~modelslab_provider.operators.video_job`; this module holds the public operators, their
arguments and the request body each one builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, BaseOperatorLink, XCom

from modelslab_provider.client.errors import ModelsLabError
from modelslab_provider.client.submit import Default, image_urls, typed_payload
from modelslab_provider.events import VIDEO_LINK_NAME
from modelslab_provider.operators.video_job import STATE_KEY, XCOM_VIDEO_URL, VideoJobOperator

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey


class ModelsLabVideoLink(BaseOperatorLink):
    """ "ModelsLab Video" button: opens the first output video of the task.

    Computed from the ``video_url`` XCom, so the API server only reads the stored link and
    never needs this class.
    """

    name = VIDEO_LINK_NAME

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=XCOM_VIDEO_URL, ti_key=ti_key)
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url
        return ""


class ModelsLabVideoOperator(VideoJobOperator):
    """Generate a video on any ModelsLab video endpoint and push the output URLs to XCom.

    :param endpoint: a v6 endpoint (``text2video``, ``img2video``, ``text2video_ultra``,
        ``img2video_ultra``, ``video2video``, ``watermark_remover``) or a v7 video-fusion one
        (``text-to-video``, ``image-to-video``, ``video-to-video``, ``lip-sync``,
        ``motion-control``); a ``v6/`` or ``v7/`` prefix is accepted. Templated.
    :param payload: the API parameters (templated), sent as given plus the documented defaults
        (``model_id`` ``wan2.2`` on v6 ``text2video``/``img2video``) and a ``track_id`` naming
        this try unless the payload has one. Never the key: a ``key`` field is refused.
    :param modelslab_conn_id: the connection holding the API key.
    :param wait_for_completion: wait for the video (default). With False the task returns right
        after the submit; its ``return_value`` is then the request id (also in XCom
        ``request_id``), so ``VideoFetchSensor(request_id=op.output)`` waits for it.
    :param deferrable: wait in the triggerer instead of the worker (also for queue-full waits);
        defaults to ``[operators] default_deferrable``.
    :param poll_interval: the shortest pause between polls, in seconds; above it, polls follow
        the API's ETA.
    :param max_poll_interval: longest pause between polls, in seconds.
    :param timeout: the task's time budget per try (seconds or timedelta), counted from the
        start of the try: queue-full waits and the wait for the video must end within it.
        Running out raises a retryable ``AirflowException`` that says the job may still finish.
    :param resubmit_on_ambiguous_failure: False (default): a submit that may have reached
        ModelsLab (5xx, read timeout, dropped connection) fails the task without retry, naming
        its ``track_id``. True: such a submit is sent again, which may pay twice.
    :param durable: remember the request (``task_state_store`` on Airflow 3.3+, an Airflow
        Variable below) so a new try checks it and reconnects (docs: "Retries, timeouts and who pays").
    """

    template_fields: Sequence[str] = ("endpoint", "payload", "modelslab_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"payload": "json"}
    operator_extra_links = (ModelsLabVideoLink(),)
    ui_color = "#efe6ff"

    def __init__(self, *, endpoint: str, payload: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(endpoint=endpoint, **kwargs)
        self.payload = payload

    def build_payload(self) -> dict[str, Any]:
        """The request body without the key; typed subclasses build it from their arguments."""
        if not isinstance(self.payload, Mapping):
            raise AirflowFailException(
                f"payload must be a dict of ModelsLab API parameters, got {type(self.payload).__name__}"
                + (" (a template rendered to a string?)" if isinstance(self.payload, str) else "")
            )
        return dict(self.payload)


def _no_payload(cls: type, kwargs: dict[str, Any]) -> None:
    if "payload" in kwargs:
        raise TypeError(
            f"{cls.__name__} builds the payload from its arguments; pass extra API parameters as "
            "parameters={...}, or use ModelsLabVideoOperator(payload=...)"
        )


#: typed arguments sent as API fields of the same name when set
_TYPED_FIELDS = (
    "negative_prompt",
    "model_id",
    "init_audio",
    "duration",
    "aspect_ratio",
    "resolution",
    "generate_audio",
    "width",
    "height",
    "num_frames",
    "fps",
    "seed",
)


class _TypedVideoOperator(ModelsLabVideoOperator):
    """The typed arguments the text and image operators share; the payload is built from them."""

    # every argument that shapes the request (tests/unit/test_template_fields.py: the others say why not)
    template_fields: Sequence[str] = (
        "endpoint",
        "modelslab_conn_id",
        "prompt",
        "init_image",
        *_TYPED_FIELDS,
        "output_type",
        "parameters",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"parameters": "json"}
    #: the endpoint of each API version when ``endpoint`` is not given
    default_endpoints: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_version: str | None = None,
        prompt: str | None = None,
        model_id: str | None = None,
        negative_prompt: str | None = None,
        init_image: str | list[str] | None = None,
        init_audio: str | None = None,
        duration: int | str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | int | None = None,
        generate_audio: bool | None = None,
        width: int | None = None,
        height: int | None = None,
        num_frames: int | None = None,
        fps: int | None = None,
        seed: int | None = None,
        output_type: str | Default | None = Default.TOKEN,
        parameters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        _no_payload(type(self), kwargs)
        if api_version is not None and api_version not in self.default_endpoints:
            known = sorted(self.default_endpoints)
            raise ValueError(f"api_version must be one of {known}, got {api_version!r}")
        super().__init__(endpoint=endpoint or self.default_endpoints[api_version or "v6"], **kwargs)
        self.api_version = api_version
        self.prompt = prompt
        self.init_image = init_image
        self.output_type = output_type
        self.parameters = parameters
        self.model_id, self.negative_prompt, self.init_audio = model_id, negative_prompt, init_audio
        self.duration, self.aspect_ratio, self.resolution = duration, aspect_ratio, resolution
        self.generate_audio, self.seed = generate_audio, seed
        self.width, self.height, self.num_frames, self.fps = width, height, num_frames, fps

    def _typed_payload(self, **first: Any) -> dict[str, Any]:
        """``first`` fields, the typed ones that are set, then ``parameters`` (which win)."""
        fields = {**first, **{name: getattr(self, name) for name in _TYPED_FIELDS}}
        try:
            return typed_payload(
                self.endpoint,
                fields,
                self.parameters,
                output_type=self.output_type,
                api_version=self.api_version,
            )
        except ModelsLabError as exc:
            raise AirflowFailException(str(exc)) from None


class ModelsLabTextToVideoOperator(_TypedVideoOperator):
    """Generate a video from a text prompt (v6 ``text2video`` or v7 ``text-to-video``).

    :param prompt: what to generate (templated; must not be empty).
    :param api_version: ``v6`` (default: ``text2video``) or ``v7`` (``text-to-video``, the
        video-fusion models: Veo 3.1, Kling, Seedance, Wan 2.5/2.6, Sora-2, Hailuo...).
    :param endpoint: instead of ``api_version``: ``text2video``, ``text2video_ultra`` or
        ``v7/text-to-video``.
    :param model_id: the model (templated). v6 ``text2video`` sends ``wan2.2`` when omitted (the
        documented default); v7 requires it and fails at once without it.
    :param negative_prompt: what to avoid (templated).
    :param duration, aspect_ratio, resolution, generate_audio, init_audio, init_image: v7 model
        fields (templated; ``init_image`` one URL or a list); each sent only when set. An int ``duration``
        goes to v7 as a string, as the model pages send it.
    :param width, height, num_frames, fps, seed: v6 generation settings (templated: with
        ``render_template_as_native_obj=True`` a ``{{ params.fps }}`` stays a number); sent only when set.
    :param output_type: (templated) v6 sends ``mp4`` unless given (the API's own default is ``gif``); None
        leaves it out. v7 sends it only when given.
    :param parameters: any other API parameters (templated), merged last, so they win.

    All other arguments are those of :class:`ModelsLabVideoOperator`. Use
    ``.partial(...).expand(prompt=[...])`` to generate one video per prompt.
    """

    default_endpoints: ClassVar[dict[str, str]] = {"v6": "text2video", "v7": "text-to-video"}

    def __init__(self, *, prompt: str, **kwargs: Any) -> None:
        super().__init__(prompt=prompt, **kwargs)

    def build_payload(self) -> dict[str, Any]:
        body = self._typed_payload(prompt=self.prompt, init_image=self.init_image or None)
        prompt = body.get("prompt", self.prompt)
        if not isinstance(prompt, str) or not prompt.strip():
            raise AirflowFailException(
                f"prompt must be a non-empty string, got {prompt!r}; if it comes from a template or "
                "an upstream task, check what it rendered to."
            )
        return body


class ModelsLabImageToVideoOperator(_TypedVideoOperator):
    """Animate an image (v6 ``img2video`` or v7 ``image-to-video``).

    :param init_image: the image URL (templated; required); v7 models that take several images
        (e.g. Kling multi-image, Veo 3.1 reference images) accept a list of URLs.
    :param prompt: optional guidance (templated; required by ``img2video_ultra``).
    :param api_version: ``v6`` (default: ``img2video``) or ``v7`` (``image-to-video``).
    :param endpoint: instead of ``api_version``: ``img2video``, ``img2video_ultra`` or
        ``v7/image-to-video``.

    ``model_id``, ``negative_prompt``, ``duration``, ``aspect_ratio``, ``resolution``,
    ``generate_audio``, ``init_audio``, ``width``, ``height``, ``num_frames``, ``fps``, ``seed``,
    ``output_type`` and ``parameters`` are as on :class:`ModelsLabTextToVideoOperator`.
    """

    default_endpoints: ClassVar[dict[str, str]] = {"v6": "img2video", "v7": "image-to-video"}

    def __init__(self, *, init_image: str | list[str], **kwargs: Any) -> None:
        super().__init__(init_image=init_image, **kwargs)

    def build_payload(self) -> dict[str, Any]:
        image = self.init_image
        if not image_urls(image):
            raise AirflowFailException(
                f"init_image must be an image URL (or a non-empty list of URLs), got {image!r}"
            )
        return self._typed_payload(init_image=image, prompt=self.prompt or None)


__all__ = [
    "STATE_KEY",
    "ModelsLabImageToVideoOperator",
    "ModelsLabTextToVideoOperator",
    "ModelsLabVideoLink",
    "ModelsLabVideoOperator",
]
