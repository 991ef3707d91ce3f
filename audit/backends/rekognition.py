"""Amazon Rekognition as the system under audit: pair scores (CompareFaces) and gallery search
(IndexFaces + SearchFacesByImage), with DetectFaces for the attributes it reports.

Rekognition returns no embeddings, so this is a :class:`~audit.backends.scoring.PairScoringBackend`
and a :class:`~audit.backends.scoring.CollectionSearchBackend`, not a
:class:`~audit.backends.base.Backend`. Every comparison is sent with ``SimilarityThreshold=0``
(and every search with ``FaceMatchThreshold=0``) so that the whole score distribution comes
back, not only the pairs above the service's default of 80: the audit sets its own thresholds.

Credentials come only from boto3's default chain (environment variables, ``~/.aws`` files and
profiles via ``AWS_PROFILE``, SSO, container or instance roles). This module never accepts keys as
options and never writes them anywhere.

Cost: every CompareFaces, IndexFaces and SearchFacesByImage call is one billed image (Group 1),
every DetectFaces call one Group 2 image. :func:`estimate_cost` (and ``dry_run=True``) count the
calls and price them before anything is sent.

Install with ``pip install 'face-audit[rekognition]'``.

Examples
--------
>>> from audit.backends.rekognition import RekognitionBackend, estimate_cost
>>> print(estimate_cost(n_compare=20_604))                           # doctest: +ELLIPSIS
20,604 CompareFaces ... = 20,604 Group 1 images ... about US$20.60 ...
>>> backend = RekognitionBackend(region="eu-west-1")                 # sends nothing yet
>>> for result in backend.iter_compare(pairs):                       # doctest: +SKIP
...     store(result)                                                # keep each as it arrives
"""

from __future__ import annotations

import random
import re
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import BackendError, MissingDependencyError
from .base import FaceStatus
from .scoring import (
    CollectionSearchBackend,
    PairResult,
    PairScoringBackend,
    PartialRunError,
    ScoringInfo,
)
from .rekognition_search import (
    _GallerySearch,
)
from .rekognition_common import (
    PRICE_PER_IMAGE_GROUP1_USD,
    PRICE_PER_IMAGE_GROUP2_USD,
    PRICES_AS_OF,
    FaceDetection,
    ADAPTER_VERSION,
    CostEstimate,
    DEFAULT_THRESHOLD,
    DEFAULT_THRESHOLD_SOURCE,
    DryRunError,
    MAX_IMAGE_BYTES,
    QUALITY_FILTERS,
    RETRYABLE_ERRORS,
    _BYTES_CACHE,
    _COLLECTION_PREFIX,
    _ImageProblem,
    _Stop,
    _api_name,
    _check_pairs,
    _error_code,
    _error_message,
    _library_versions,
    _pair_from_response,
    estimate_cost,
)

__all__ = [
    "RekognitionBackend",
    "CostEstimate",
    "DryRunError",
    "FaceDetection",
    "estimate_cost",
    "ADAPTER_VERSION",
    "RETRYABLE_ERRORS",
    "MAX_IMAGE_BYTES",
    "PRICE_PER_IMAGE_GROUP1_USD",
    "PRICE_PER_IMAGE_GROUP2_USD",
    "PRICES_AS_OF",
    "PartialRunError",
]

# ---------------------------------------------------------------------------- the backend


class RekognitionBackend(_GallerySearch, PairScoringBackend, CollectionSearchBackend):
    """Amazon Rekognition's face comparison and search, scored over the full 0-100 range.

    Parameters
    ----------
    region : str, optional
        AWS region, e.g. ``"eu-west-1"``. Default: boto3's (``AWS_REGION``/``AWS_DEFAULT_REGION``,
        the profile's). Recorded in :meth:`info`, since the service may differ between regions.
    client : boto3 Rekognition client, optional
        A client made by the caller (a custom endpoint, tests with ``botocore.stub.Stubber``).
        Default: ``boto3.client("rekognition", region_name=region)`` with the default
        credential chain, made in :meth:`load`. Not pickled: a copy makes its own.
    quality_filter : {"NONE", "AUTO", "LOW", "MEDIUM", "HIGH"}, optional
        Sent as ``QualityFilter``; faces below the bar are dropped by the service (a failure to
        acquire). Default: not sent, so each API's own default applies (NONE for CompareFaces,
        AUTO for IndexFaces and SearchFacesByImage).
    max_faces : int, default 100
        ``MaxFaces`` for SearchFacesByImage (1-4096): how many gallery faces each search returns.
    max_retries : int, default 6
        Retries of a call that failed with one of :data:`RETRYABLE_ERRORS`, waiting
        ``min(backoff_max, backoff_base * 2**attempt)`` seconds times a random factor in
        [0.5, 1] between tries. When they run out the run stops with
        :class:`~audit.backends.scoring.PartialRunError` (what was done is kept).
    backoff_base, backoff_max : float, default 0.5 and 30.0
        Seconds.
    collection_prefix : str, default "face-audit"
        Collections this backend creates are named ``<prefix>-<random hex>`` and tagged
        ``created-by=face-audit``.
    dry_run : bool, default False
        Check inputs locally and raise :class:`DryRunError` (with a :class:`CostEstimate`)
        instead of sending any request. No client is made.

    Notes
    -----
    * Pairs: CompareFaces compares the largest face of image a (source) with every face of
      image b (target); the pair's similarity is that of the best matching target face.
      ``SimilarityThreshold=0`` makes every target face a match, so an empty ``FaceMatches``
      means the target had no (usable) face: status ``no_face`` with similarity 0.0.
    * Images are sent as they are on disk (JPEG or PNG, at most 5 MiB), as a user of the service
      would send them; Rekognition does not apply EXIF orientation the way
      :func:`audit.images.read_rgb` does. Images that fail these checks are not sent.
    * Rejected images become statuses: ``InvalidImageFormatException`` -> ``unreadable``,
      ``ImageTooLargeException`` -> ``error``, ``InvalidParameterException`` (what the service
      answers when the source or probe image has no face) -> ``no_face``.
    * Everything else that fails (no credentials, AccessDenied, a missing collection, retries
      exhausted) stops the run with PartialRunError; its ``completed`` holds the results so far
      and ``remaining`` the inputs left. :meth:`iter_compare` yields each result as it comes, so
      a caller that stores them loses nothing either way; rerun with the remaining inputs.
    """

    name = "rekognition"
    _sleep = staticmethod(time.sleep)  # tests replace it on the instance

    def __init__(
        self,
        *,
        region: str | None = None,
        client: Any = None,
        quality_filter: str | None = None,
        max_faces: int = 100,
        max_retries: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        collection_prefix: str = "face-audit",
        dry_run: bool = False,
    ) -> None:
        if region is not None and (not isinstance(region, str) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region)):
            raise BackendError(f"rekognition backend option region must look like 'eu-west-1', got {region!r}")
        if client is not None and not hasattr(client, "compare_faces"):
            raise BackendError(
                f"rekognition backend option client must be a boto3 Rekognition client "
                f"(boto3.client('rekognition')), got {type(client).__name__}"
            )
        if quality_filter is not None and quality_filter not in QUALITY_FILTERS:
            raise BackendError(f"rekognition backend option quality_filter must be one of {QUALITY_FILTERS} or None, got {quality_filter!r}")
        if isinstance(max_faces, bool) or not isinstance(max_faces, int) or not 1 <= max_faces <= 4096:
            raise BackendError(f"rekognition backend option max_faces must be an integer from 1 to 4096, got {max_faces!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise BackendError(f"rekognition backend option max_retries must be an integer >= 0, got {max_retries!r}")
        for key, value in (("backoff_base", backoff_base), ("backoff_max", backoff_max)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise BackendError(f"rekognition backend option {key} must be a number of seconds >= 0, got {value!r}")
        if not isinstance(collection_prefix, str) or not _COLLECTION_PREFIX.fullmatch(collection_prefix):
            raise BackendError(
                "rekognition backend option collection_prefix must be 1-200 characters from a-z, A-Z, 0-9, '_', '.', '-', "
                f"got {collection_prefix!r}"
            )
        if not isinstance(dry_run, bool):
            raise BackendError(f"rekognition backend option dry_run must be True or False, got {dry_run!r}")
        self.region = region
        self.quality_filter = quality_filter
        self.max_faces = max_faces
        self.max_retries = max_retries
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.collection_prefix = collection_prefix
        self.dry_run = dry_run
        self._client: Any = client
        self._created: list[str] = []  # collections this instance created, for cleanup()
        self._face_model_versions: dict[str, str] = {}
        self._galleries: dict[str, dict[str, str]] = {}  # collection -> external id -> path
        self._bytes: OrderedDict[str, bytes] = OrderedDict()
        self._rng = random.Random()

    # ------------------------------------------------------------------ state and pickling

    def __getstate__(self) -> dict[str, Any]:
        # the client does not pickle; a copy does not own (and will not delete) our collections
        state = self.__dict__.copy()
        state["_client"] = None
        state["_created"] = []
        state["_bytes"] = OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return (
            f"RekognitionBackend(region={self.region!r}, quality_filter={self.quality_filter!r}, "
            f"max_faces={self.max_faces}, max_retries={self.max_retries}, dry_run={self.dry_run})"
        )

    # ------------------------------------------------------------------ connection and identity

    def load(self) -> None:
        """Make the boto3 client (default credential chain); sends nothing. No-op in a dry run."""
        if self._client is not None or self.dry_run:
            return
        try:
            import boto3
            from botocore.exceptions import NoRegionError
        except ImportError as exc:
            raise MissingDependencyError(
                f"the rekognition backend needs boto3 ({exc}). Install it with: pip install 'face-audit[rekognition]'"
            ) from exc
        try:
            self._client = boto3.client("rekognition", region_name=self.region)
        except NoRegionError as exc:
            raise BackendError(
                "the rekognition backend has no AWS region: pass region='eu-west-1' (or another), or set "
                "AWS_DEFAULT_REGION, or set a region in your AWS profile."
            ) from exc

    def _region(self) -> str:
        if self._client is not None:
            return str(getattr(getattr(self._client, "meta", None), "region_name", None) or self.region or "unknown")
        return self.region or "(boto3 default)"

    def info(self) -> ScoringInfo:
        """The service, region and settings (stable for an instance: the cache key of its scores).

        CompareFaces reports no model version; the collections' ``FaceModelVersion`` is in each
        :class:`~audit.backends.scoring.GalleryIndex`.
        """
        self.load()
        version = f"{ADAPTER_VERSION}; {_library_versions()}; service model version not reported by CompareFaces"
        return ScoringInfo(
            backend=self.name,
            model="aws-rekognition",
            version=version,
            score_min=0.0,
            score_max=100.0,
            default_threshold=DEFAULT_THRESHOLD,
            default_threshold_source=DEFAULT_THRESHOLD_SOURCE,
            options={"region": self._region(), "quality_filter": self.quality_filter, "similarity_threshold_sent": 0},
        )

    def estimate_cost(self, n_compare: int = 0, n_index: int = 0, n_search: int = 0, n_detect: int = 0) -> CostEstimate:
        """:func:`estimate_cost` at the default prices; sends nothing."""
        return estimate_cost(n_compare, n_index, n_search, n_detect)

    # ------------------------------------------------------------------ plumbing

    def _read(self, path: str | Path) -> bytes:
        """The image bytes to send, or _ImageProblem when they would be refused."""
        key = str(path)
        cached = self._bytes.get(key)
        if cached is not None:
            self._bytes.move_to_end(key)
            return cached
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise _ImageProblem(FaceStatus.UNREADABLE, f"{p}: cannot read the file ({exc.strerror or exc}).") from exc
        if not data:
            raise _ImageProblem(FaceStatus.UNREADABLE, f"{p}: the file is empty (0 bytes).")
        if len(data) > MAX_IMAGE_BYTES:
            raise _ImageProblem(
                FaceStatus.ERROR,
                f"{p}: {len(data):,} bytes is more than Rekognition accepts in a request ({MAX_IMAGE_BYTES:,}); "
                "not sent. Re-encode it smaller (or send it from S3, which allows 15 MB).",
            )
        if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG\r\n\x1a\n")):
            raise _ImageProblem(
                FaceStatus.UNREADABLE, f"{p}: not a JPEG or PNG file, the only formats Rekognition accepts; not sent."
            )
        self._bytes[key] = data
        if len(self._bytes) > _BYTES_CACHE:
            self._bytes.popitem(last=False)
        return data

    def _sendable(self, path: str | Path) -> bool:
        try:
            self._read(path)
        except _ImageProblem:
            return False
        return True

    def _dry_run(self, what: str, estimate: CostEstimate) -> DryRunError:
        return DryRunError(
            f"dry run: {what} would send {estimate}; nothing was sent. Make the backend with dry_run=False to run it.",
            estimate=estimate,
        )

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One API call with retries; ClientError of a non-retryable code propagates, _Stop ends the run."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

        self.load()
        method = getattr(self._client, operation)
        attempt = 0
        while True:
            try:
                return method(**params)
            except ClientError as exc:
                code = _error_code(exc)
                if code not in RETRYABLE_ERRORS:
                    raise
                if attempt >= self.max_retries:
                    raise _Stop(
                        f"{_api_name(operation)} still failed with {code} after {attempt + 1} attempts "
                        f"({self.max_retries} retries with exponential backoff): {_error_message(exc)}. "
                        "Raise your Rekognition TPS quota, or lower the request rate (fewer workers), then resume."
                    ) from exc
                delay = min(self.backoff_max, self.backoff_base * (2.0**attempt)) * (0.5 + 0.5 * self._rng.random())
                self._sleep(delay)
                attempt += 1
            except (NoCredentialsError, PartialCredentialsError) as exc:
                raise _Stop(
                    f"no usable AWS credentials for {_api_name(operation)} ({exc}). Configure boto3's default chain "
                    "(environment, ~/.aws/credentials or AWS_PROFILE, SSO, an instance role); face-audit takes no keys as options."
                ) from exc
            except BotoCoreError as exc:
                raise _Stop(f"{_api_name(operation)} failed before reaching the service: {type(exc).__name__}: {exc}") from exc

    def _image_failure(self, exc: Any, operation: str, *, no_face_means: str) -> tuple[FaceStatus, str] | None:
        """The per-image status for a ClientError, or None when it is not about the image."""
        code = _error_code(exc)
        message = _error_message(exc)
        if code == "InvalidImageFormatException":
            return FaceStatus.UNREADABLE, f"Rekognition could not decode an image ({code}: {message})"
        if code == "ImageTooLargeException":
            return FaceStatus.ERROR, f"Rekognition refused an image as too large ({code}: {message})"
        if code == "InvalidParameterException":
            return FaceStatus.NO_FACE, (
                f"{_api_name(operation)} answered {code} ({message}), which it returns when {no_face_means} has no "
                "face (or the image is under 80x80 pixels)"
            )
        return None

    def _stop(self, message: str, *, completed: list[Any], remaining: list[Any], collection_id: str | None = None) -> PartialRunError:
        return PartialRunError(
            f"{message} Stopped after {len(completed)} of {len(completed) + len(remaining)} items; the results so far "
            "are in this error's .completed, the inputs left in .remaining (pass them again to resume).",
            completed=completed,
            remaining=remaining,
            collection_id=collection_id,
        )

    def _quality(self) -> dict[str, Any]:
        return {} if self.quality_filter is None else {"QualityFilter": self.quality_filter}

    # ------------------------------------------------------------------ 1:1

    def iter_compare(self, pairs: Iterable[tuple[str | Path, str | Path]], *, start: int = 0) -> Iterator[PairResult]:
        """CompareFaces on each pair with ``SimilarityThreshold=0``; one :class:`PairResult` each, in order.

        Raises
        ------
        DryRunError
            With ``dry_run=True``, before anything is sent (nothing is yielded).
        PartialRunError
            When the run cannot go on; it holds the results yielded so far (``completed``)
            and the pairs left, the failing one first (``remaining``).
        """
        given = list(pairs)
        pairs = _check_pairs(given)  # checked, and a dry run stopped, now rather than at the first next()
        if self.dry_run:
            n = sum(1 for a, b in pairs if self._sendable(a) and self._sendable(b))
            raise self._dry_run(f"comparing {len(pairs):,} pairs", estimate_cost(n_compare=n))
        self.load()  # a missing boto3 or region is reported now, not at the first next()
        return self._compare(pairs, given, start)

    def _compare(self, pairs: list[tuple[str, str]], given: list[Any], start: int) -> Iterator[PairResult]:
        from botocore.exceptions import ClientError

        done: list[PairResult] = []
        for offset, (a, b) in enumerate(pairs):
            index = start + offset
            try:
                source, target = self._read(a), self._read(b)
            except _ImageProblem as problem:
                result = PairResult(index, a, b, problem.status, None, problem.detail)
            else:
                try:
                    response = self._call(
                        "compare_faces",
                        SourceImage={"Bytes": source},
                        TargetImage={"Bytes": target},
                        SimilarityThreshold=0.0,
                        **self._quality(),
                    )
                except ClientError as exc:
                    failure = self._image_failure(exc, "compare_faces", no_face_means="the source image (a)")
                    if failure is None:
                        raise self._stop(
                            f"CompareFaces failed with {_error_code(exc)}: {_error_message(exc)}.",
                            completed=done, remaining=given[offset:],
                        ) from exc  # fmt: skip
                    status, detail = failure
                    result = PairResult(index, a, b, status, 0.0 if status is FaceStatus.NO_FACE else None, detail)
                except _Stop as exc:
                    raise self._stop(str(exc), completed=done, remaining=given[offset:]) from exc
                else:
                    result = _pair_from_response(index, a, b, response)
            done.append(result)
            yield result
