"""What the Rekognition backend's parts share: limits, prices and cost estimates, the per-image
results of DetectFaces, and the helpers that read the service's responses.

Part of :mod:`audit.backends.rekognition` (import from there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import BackendError
from .base import FaceStatus
from .scoring import (
    PairResult,
)




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
