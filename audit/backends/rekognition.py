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

import hashlib
import random
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import BackendError, MissingDependencyError
from .base import FaceStatus
from .scoring import (
    CollectionSearchBackend,
    GalleryIndex,
    IndexResult,
    PairResult,
    PairScoringBackend,
    PartialRunError,
    ScoringInfo,
    SearchMatch,
    SearchResult,
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
    # re-exported for convenience
    "PairScoringBackend",
    "CollectionSearchBackend",
    "PairResult",
    "PartialRunError",
]

#: Bump when a change here changes the scores this adapter returns.
ADAPTER_VERSION = "rekognition-adapter-1"

#: Error codes retried with exponential backoff: throttling, and the server errors AWS documents
#: as "try your call again".
RETRYABLE_ERRORS = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"})

#: Rekognition's limit for image bytes sent in the request (the API's ImageBlob maximum, 5 MiB).
MAX_IMAGE_BYTES = 5 * 1024 * 1024

#: List prices used by :func:`estimate_cost`, in US dollars per image: the first pricing tier
#: (first 1 million images a month) of Rekognition Image, US East (N. Virginia), as published on
#: https://aws.amazon.com/rekognition/pricing/ (as of :data:`PRICES_AS_OF`). Group 1 is
#: CompareFaces, IndexFaces, SearchFacesByImage, SearchFaces; Group 2 includes DetectFaces.
#: Higher volume tiers are cheaper, so an estimate at the first tier is an upper bound for the
#: image charges; face metadata storage (US$0.00001 per face and month) is billed on top while a
#: collection exists. Other regions and later price changes differ: check the page before a
#: large run, or pass your own prices to :func:`estimate_cost`.
PRICE_PER_IMAGE_GROUP1_USD = 0.001
PRICE_PER_IMAGE_GROUP2_USD = 0.001
PRICES_AS_OF = "2024-06 (first tier, us-east-1)"

DEFAULT_THRESHOLD = 80.0
DEFAULT_THRESHOLD_SOURCE = (
    "Amazon Rekognition API reference: CompareFaces SimilarityThreshold and SearchFacesByImage "
    "FaceMatchThreshold default to 80 (AWS recommends 99 for uses such as public safety)"
)
QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")
_ID_CHARS = re.compile(r"[^a-zA-Z0-9_.\-:]")
_COLLECTION_PREFIX = re.compile(r"[a-zA-Z0-9_.\-]{1,200}")
_BYTES_CACHE = 32  # images kept in memory: pairs reuse them


# ---------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class CostEstimate:
    """API calls a run will make and what they cost at list price.

    Attributes
    ----------
    n_compare, n_index, n_search, n_detect : int
        CompareFaces, IndexFaces, SearchFacesByImage and DetectFaces calls.
    group1_images, group2_images : int
        Billed images in each price group (one per call).
    usd : float
        ``group1_images * price_group1 + group2_images * price_group2``.
    price_group1, price_group2 : float
        US dollars per image used.
    assumption : str
        Where the prices come from and what the estimate leaves out.
    """

    n_compare: int
    n_index: int
    n_search: int
    n_detect: int
    group1_images: int
    group2_images: int
    usd: float
    price_group1: float
    price_group2: float
    assumption: str

    def __str__(self) -> str:
        return (
            f"{self.n_compare:,} CompareFaces + {self.n_index:,} IndexFaces + {self.n_search:,} SearchFacesByImage "
            f"= {self.group1_images:,} Group 1 images at ${self.price_group1:g}; {self.n_detect:,} DetectFaces "
            f"= {self.group2_images:,} Group 2 images at ${self.price_group2:g}; about US${self.usd:,.{2 if self.usd >= 1 else 4}f} "
            f"({self.assumption})"
        )


def estimate_cost(
    n_compare: int = 0,
    n_index: int = 0,
    n_search: int = 0,
    n_detect: int = 0,
    *,
    price_group1: float = PRICE_PER_IMAGE_GROUP1_USD,
    price_group2: float = PRICE_PER_IMAGE_GROUP2_USD,
) -> CostEstimate:
    """Count the billed images of a run and price them; sends nothing.

    Parameters
    ----------
    n_compare, n_index, n_search, n_detect : int, default 0
        Planned CompareFaces (one per pair), IndexFaces (one per gallery image),
        SearchFacesByImage (one per probe) and DetectFaces calls.
    price_group1, price_group2 : float
        US dollars per image; default :data:`PRICE_PER_IMAGE_GROUP1_USD` and
        :data:`PRICE_PER_IMAGE_GROUP2_USD`, the first-tier list prices as of :data:`PRICES_AS_OF`.

    Returns
    -------
    CostEstimate
        ``str()`` of it is a one-line summary to show before a run.

    Examples
    --------
    >>> est = estimate_cost(n_compare=1000, n_index=100, n_search=100)
    >>> est.group1_images, round(est.usd, 2)
    (1200, 1.2)
    """
    counts = {"n_compare": n_compare, "n_index": n_index, "n_search": n_search, "n_detect": n_detect}
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BackendError(f"estimate_cost: {key} must be an integer >= 0, got {value!r}")
    for key, value in (("price_group1", price_group1), ("price_group2", price_group2)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise BackendError(f"estimate_cost: {key} must be a number >= 0 (US dollars per image), got {value!r}")
    group1 = n_compare + n_index + n_search
    default_prices = price_group1 == PRICE_PER_IMAGE_GROUP1_USD and price_group2 == PRICE_PER_IMAGE_GROUP2_USD
    assumption = (
        f"list prices for the first 1M images a month, US East (N. Virginia), aws.amazon.com/rekognition/pricing as of "
        f"{PRICES_AS_OF}; volume tiers only lower it; face storage ($0.00001 per face-month) and the free tier not counted"
        if default_prices
        else "prices given by the caller; face storage not counted"
    )
    return CostEstimate(
        n_compare=n_compare,
        n_index=n_index,
        n_search=n_search,
        n_detect=n_detect,
        group1_images=group1,
        group2_images=n_detect,
        usd=group1 * float(price_group1) + n_detect * float(price_group2),
        price_group1=float(price_group1),
        price_group2=float(price_group2),
        assumption=assumption,
    )


class DryRunError(BackendError):
    """Raised instead of sending anything when the backend was made with ``dry_run=True``.

    Like AWS's own ``DryRun`` flag: the inputs were checked locally and the request would have
    been sent. ``estimate`` counts the calls that would have been made (images that fail the
    local checks are not counted: they would not be sent).
    """

    def __init__(self, message: str, *, estimate: CostEstimate) -> None:
        super().__init__(message)
        self.estimate = estimate


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FaceDetection:
    """What DetectFaces reports for one image.

    Attributes
    ----------
    index : int
    path : str
    status : FaceStatus
        ``ok`` (at least one face), ``no_face``, ``unreadable`` or ``error``.
    n_faces : int
    faces : tuple of dict
        Rekognition's ``FaceDetails`` as returned (BoundingBox, Confidence, and with
        ``attributes="ALL"`` AgeRange, Gender, Emotions, Quality, Pose, ...).
    detail : str
    """

    index: int
    path: str
    status: FaceStatus
    n_faces: int = 0
    faces: tuple[dict[str, Any], ...] = ()
    detail: str = ""


class _ImageProblem(Exception):
    """A local check refused an image; becomes that item's status (never leaves this module)."""

    def __init__(self, status: FaceStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Stop(Exception):
    """The run cannot go on; carries the message for PartialRunError."""


# ---------------------------------------------------------------------------- the backend


class RekognitionBackend(PairScoringBackend, CollectionSearchBackend):
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

    # ------------------------------------------------------------------ 1:N

    def create_collection(self) -> str:
        """Create an empty collection named ``<collection_prefix>-<random hex>``; remembered for cleanup."""
        collection_id = f"{self.collection_prefix}-{uuid.uuid4().hex[:16]}"
        if self.dry_run:
            raise self._dry_run(f"creating collection {collection_id}", estimate_cost())
        from botocore.exceptions import ClientError

        try:
            response = self._call("create_collection", CollectionId=collection_id, Tags={"created-by": "face-audit"})
        except (ClientError, _Stop) as exc:
            raise BackendError(f"Rekognition could not create the collection {collection_id}: {exc}") from exc
        self._created.append(collection_id)
        self._face_model_versions[collection_id] = str(response.get("FaceModelVersion", ""))
        self._galleries[collection_id] = {}
        return collection_id

    @staticmethod
    def external_image_id(path: str | Path) -> str:
        """The ``ExternalImageId`` a gallery image is indexed under: its file name made safe, and a
        hash of its whole path (so two ``img.jpg`` in different folders differ). Deterministic."""
        text = str(path)
        stem = _ID_CHARS.sub("_", Path(text).name)[:200] or "image"
        return f"{stem}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"

    def index_faces(self, gallery: Sequence[str | Path], *, collection_id: str | None = None) -> GalleryIndex:
        """IndexFaces each gallery image (its largest face, ``MaxFaces=1``) into a collection.

        Parameters
        ----------
        gallery : sequence of paths
        collection_id : str, optional
            An existing collection to add to (to resume); default a new one from
            :meth:`create_collection`.

        Returns
        -------
        GalleryIndex
            The collection id and one :class:`IndexResult` per image, in order.

        Raises
        ------
        DryRunError
            With ``dry_run=True``, before anything is sent (and no collection is created).
        PartialRunError
            The run cannot go on; ``completed`` holds the IndexResults so far, ``remaining`` the
            images left and ``collection_id`` the collection (still tracked for cleanup).
        """
        given = list(gallery) if not isinstance(gallery, (str, Path)) else gallery
        gallery = _check_paths(given, "gallery")
        if self.dry_run:
            n = sum(1 for p in gallery if self._sendable(p))
            raise self._dry_run(f"indexing {len(gallery):,} gallery images", estimate_cost(n_index=n))
        from botocore.exceptions import ClientError

        if collection_id is None:
            collection_id = self.create_collection()
        table = self._galleries.setdefault(collection_id, {})
        done: list[IndexResult] = []
        for offset, path in enumerate(gallery):
            ext_id = self.external_image_id(path)
            try:
                data = self._read(path)
            except _ImageProblem as problem:
                done.append(IndexResult(path, problem.status, ext_id, None, 0, problem.detail))
                continue
            try:
                response = self._call(
                    "index_faces",
                    CollectionId=collection_id,
                    Image={"Bytes": data},
                    ExternalImageId=ext_id,
                    MaxFaces=1,
                    DetectionAttributes=["DEFAULT"],
                    **self._quality(),
                )
            except ClientError as exc:
                failure = self._image_failure(exc, "index_faces", no_face_means="the image")
                if failure is None or _error_code(exc) == "InvalidParameterException":
                    # IndexFaces reports a faceless image with empty FaceRecords, so an invalid
                    # parameter here is not about faces: stop rather than hide it
                    raise self._stop(
                        f"IndexFaces into {collection_id} failed with {_error_code(exc)}: {_error_message(exc)}.",
                        completed=done, remaining=given[offset:], collection_id=collection_id,
                    ) from exc  # fmt: skip
                done.append(IndexResult(path, failure[0], ext_id, None, 0, failure[1]))
                continue
            except _Stop as exc:
                raise self._stop(str(exc), completed=done, remaining=given[offset:], collection_id=collection_id) from exc
            if response.get("FaceModelVersion"):
                self._face_model_versions[collection_id] = str(response["FaceModelVersion"])
            records = response.get("FaceRecords") or []
            unindexed = response.get("UnindexedFaces") or []
            n_faces = len(records) + len(unindexed)
            if records:
                face_id = str(records[0]["Face"]["FaceId"])
                table[ext_id] = str(path)
                note = f"{len(unindexed)} more face(s) not indexed (MaxFaces=1 keeps the largest)" if unindexed else ""
                done.append(IndexResult(path, FaceStatus.OK, ext_id, face_id, n_faces, note))
            else:
                reasons = sorted({r for u in unindexed for r in u.get("Reasons", [])})
                detail = "IndexFaces found no face" + (f"; faces dropped for {', '.join(reasons)}" if reasons else "")
                done.append(IndexResult(path, FaceStatus.NO_FACE, ext_id, None, n_faces, detail))
        return GalleryIndex(collection_id, tuple(done), self._face_model_versions.get(collection_id, ""))

    def iter_search(
        self,
        probes: Iterable[str | Path],
        *,
        collection_id: str,
        max_faces: int | None = None,
        start: int = 0,
    ) -> Iterator[SearchResult]:
        """SearchFacesByImage for each probe with ``FaceMatchThreshold=0``; one :class:`SearchResult` each.

        Parameters
        ----------
        probes : iterable of paths
        collection_id : str
        max_faces : int, optional
            ``MaxFaces`` (1-4096); default the backend's ``max_faces``.
        start : int, default 0
            ``index`` of the first probe.

        Raises
        ------
        DryRunError, PartialRunError
            As :meth:`iter_compare`.
        """
        given = list(probes) if not isinstance(probes, (str, Path)) else probes
        probes = _check_paths(given, "probes")
        limit = self.max_faces if max_faces is None else max_faces
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 4096:
            raise BackendError(f"max_faces must be an integer from 1 to 4096, got {limit!r}")
        if not isinstance(collection_id, str) or not collection_id:
            raise BackendError(f"collection_id must be a collection's id, got {collection_id!r}")
        if self.dry_run:
            n = sum(1 for p in probes if self._sendable(p))
            raise self._dry_run(f"searching with {len(probes):,} probes", estimate_cost(n_search=n))
        self.load()  # a missing boto3 or region is reported now, not at the first next()
        return self._search(probes, given, collection_id, limit, start)

    def _search(self, probes: list[str], given: list[Any], collection_id: str, limit: int, start: int) -> Iterator[SearchResult]:
        from botocore.exceptions import ClientError

        table = self._galleries.get(collection_id, {})
        done: list[SearchResult] = []
        for offset, probe in enumerate(probes):
            index = start + offset
            try:
                data = self._read(probe)
            except _ImageProblem as problem:
                result = SearchResult(index, probe, problem.status, (), problem.detail)
            else:
                try:
                    response = self._call(
                        "search_faces_by_image",
                        CollectionId=collection_id,
                        Image={"Bytes": data},
                        MaxFaces=limit,
                        FaceMatchThreshold=0.0,
                        **self._quality(),
                    )
                except ClientError as exc:
                    failure = self._image_failure(exc, "search_faces_by_image", no_face_means="the probe image")
                    if failure is None:
                        raise self._stop(
                            f"SearchFacesByImage in {collection_id} failed with {_error_code(exc)}: {_error_message(exc)}.",
                            completed=done, remaining=given[offset:], collection_id=collection_id,
                        ) from exc  # fmt: skip
                    result = SearchResult(index, probe, failure[0], (), failure[1])
                except _Stop as exc:
                    raise self._stop(str(exc), completed=done, remaining=given[offset:], collection_id=collection_id) from exc
                else:
                    matches = tuple(
                        sorted(
                            (
                                SearchMatch(
                                    external_image_id=str(m["Face"].get("ExternalImageId", "")),
                                    face_id=str(m["Face"]["FaceId"]),
                                    similarity=float(m["Similarity"]),
                                    gallery_path=table.get(str(m["Face"].get("ExternalImageId", ""))),
                                )
                                for m in response.get("FaceMatches") or []
                            ),
                            key=lambda m: -m.similarity,
                        )
                    )
                    result = SearchResult(index, probe, FaceStatus.OK, matches)
            done.append(result)
            yield result

    def delete_collection(self, collection_id: str, *, force: bool = False) -> None:
        """Delete a collection this instance created; ``force=True`` deletes any collection.

        A collection that is already gone counts as deleted.
        """
        if collection_id not in self._created and not force:
            raise BackendError(
                f"the collection {collection_id!r} was not created by this backend instance, so it is not deleted; "
                "pass force=True to delete it anyway."
            )
        if self.dry_run:
            raise self._dry_run(f"deleting collection {collection_id}", estimate_cost())
        from botocore.exceptions import ClientError

        try:
            self._call("delete_collection", CollectionId=collection_id)
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise BackendError(
                    f"Rekognition could not delete the collection {collection_id} ({_error_code(exc)}: "
                    f"{_error_message(exc)}); delete it in the console or with `aws rekognition delete-collection`."
                ) from exc
        except _Stop as exc:
            raise BackendError(f"Rekognition could not delete the collection {collection_id}: {exc}") from exc
        if collection_id in self._created:
            self._created.remove(collection_id)
        self._galleries.pop(collection_id, None)

    def cleanup(self) -> list[str]:
        """Delete every collection this instance created (and has not deleted); return their ids.

        Raises
        ------
        BackendError
            When some could not be deleted; the message names them (they stay tracked, so
            calling cleanup() again retries them).
        """
        deleted, failed = [], []
        for collection_id in list(self._created):
            try:
                self.delete_collection(collection_id)
            except BackendError as exc:
                failed.append(f"{collection_id} ({exc})")
            else:
                deleted.append(collection_id)
        if failed:
            raise BackendError(
                f"cleanup deleted {len(deleted)} collection(s) but not: {'; '.join(failed)}. They are billed for "
                "face storage until deleted; call cleanup() again or delete them by hand."
            )
        return deleted

    @property
    def created_collections(self) -> tuple[str, ...]:
        """The collections this instance created and has not deleted yet."""
        return tuple(self._created)

    # ------------------------------------------------------------------ attributes

    def iter_detect_faces(
        self, paths: Iterable[str | Path], *, attributes: str = "DEFAULT", start: int = 0
    ) -> Iterator[FaceDetection]:
        """DetectFaces on each image: face count and Rekognition's attributes (``"ALL"``: age range,
        gender, emotions, quality, pose, ...). Group 2 pricing. Errors as :meth:`iter_compare`."""
        if attributes not in ("DEFAULT", "ALL"):
            raise BackendError(f"attributes must be 'DEFAULT' or 'ALL', got {attributes!r}")
        given = list(paths) if not isinstance(paths, (str, Path)) else paths
        paths = _check_paths(given, "paths")
        if self.dry_run:
            n = sum(1 for p in paths if self._sendable(p))
            raise self._dry_run(f"detecting faces in {len(paths):,} images", estimate_cost(n_detect=n))
        self.load()  # a missing boto3 or region is reported now, not at the first next()
        return self._detect(paths, given, attributes, start)

    def _detect(self, paths: list[str], given: list[Any], attributes: str, start: int) -> Iterator[FaceDetection]:
        from botocore.exceptions import ClientError

        done: list[FaceDetection] = []
        for offset, path in enumerate(paths):
            index = start + offset
            try:
                data = self._read(path)
            except _ImageProblem as problem:
                result = FaceDetection(index, str(path), problem.status, 0, (), problem.detail)
            else:
                try:
                    response = self._call("detect_faces", Image={"Bytes": data}, Attributes=[attributes])
                except ClientError as exc:
                    failure = self._image_failure(exc, "detect_faces", no_face_means="the image")
                    if failure is None:
                        raise self._stop(
                            f"DetectFaces failed with {_error_code(exc)}: {_error_message(exc)}.",
                            completed=done, remaining=given[offset:],
                        ) from exc  # fmt: skip
                    result = FaceDetection(index, str(path), failure[0], 0, (), failure[1])
                except _Stop as exc:
                    raise self._stop(str(exc), completed=done, remaining=given[offset:]) from exc
                else:
                    faces = tuple(response.get("FaceDetails") or [])
                    status = FaceStatus.OK if faces else FaceStatus.NO_FACE
                    result = FaceDetection(index, str(path), status, len(faces), faces, "" if faces else "DetectFaces found no face")
            done.append(result)
            yield result

    def detect_faces(self, paths: Sequence[str | Path], *, attributes: str = "DEFAULT") -> list[FaceDetection]:
        """:meth:`iter_detect_faces` collected into a list (PartialRunError keeps what was done)."""
        paths = list(paths)
        done: list[FaceDetection] = []
        try:
            for result in self.iter_detect_faces(paths, attributes=attributes):
                done.append(result)
        except PartialRunError as exc:
            exc.completed, exc.remaining = list(done), paths[len(done):]
            raise
        return done


# ---------------------------------------------------------------------------- helpers


def _library_versions() -> str:
    try:
        import boto3
        import botocore
    except ImportError:
        return "boto3 not installed"
    return f"boto3 {boto3.__version__}; botocore {botocore.__version__}"


def _error_code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", "") or type(exc).__name__)


def _error_message(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", "") or exc)


def _api_name(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def _check_pairs(pairs: Iterable[Any]) -> list[tuple[str, str]]:
    checked = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise BackendError(f"pairs must be (path_a, path_b) tuples; item {i} is {pair!r}")
        a, b = pair
        if not isinstance(a, (str, Path)) or not isinstance(b, (str, Path)):
            raise BackendError(f"pairs must hold paths (str or Path); item {i} is {pair!r}")
        checked.append((str(a), str(b)))
    return checked


def _check_paths(paths: Iterable[Any], what: str) -> list[str]:
    if isinstance(paths, (str, Path)):
        raise BackendError(f"{what} must be a sequence of paths, not a single path ({paths!r}); wrap it in a list")
    checked = []
    for i, p in enumerate(paths):
        if not isinstance(p, (str, Path)):
            raise BackendError(f"{what} must hold paths (str or Path); item {i} is {p!r}")
        checked.append(str(p))
    return checked


def _pair_from_response(index: int, a: str, b: str, response: dict[str, Any]) -> PairResult:
    matches = response.get("FaceMatches") or []
    unmatched = response.get("UnmatchedFaces") or []
    n_target = len(matches) + len(unmatched)
    if not matches:
        if unmatched:  # only possible with a threshold above 0; kept for safety
            return PairResult(
                index, a, b, FaceStatus.OK, 0.0,
                f"none of the {len(unmatched)} face(s) in the target matched at SimilarityThreshold=0",
                n_faces_b=n_target,
            )  # fmt: skip
        return PairResult(
            index, a, b, FaceStatus.NO_FACE, 0.0,
            "CompareFaces returned no face in the target image (b): no match; similarity recorded as 0",
            n_faces_b=0,
        )  # fmt: skip
    best = max(float(m["Similarity"]) for m in matches)
    note = f"best of {n_target} faces in the target" if n_target > 1 else ""
    return PairResult(index, a, b, FaceStatus.OK, best, note, n_faces_b=n_target)
