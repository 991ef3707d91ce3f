"""The Rekognition backend, fully offline: a real botocore client whose calls a Stubber answers
with responses of the documented shapes (the Stubber checks them against the service model).

Only these tests make a client with a fixed region and dummy credentials; the library never
does. A call the test did not queue makes the Stubber raise, so "sends nothing" is checked by
queueing nothing.
"""

from __future__ import annotations

import inspect
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("boto3", reason="the rekognition extra is not installed")
import botocore.session  # noqa: E402
from botocore.stub import ANY, Stubber  # noqa: E402

from audit.backends import rekognition  # noqa: E402
from audit.backends.base import FaceStatus  # noqa: E402
from audit.backends.rekognition import (  # noqa: E402
    MAX_IMAGE_BYTES,
    DryRunError,
    RekognitionBackend,
    estimate_cost,
)
from audit.backends.scoring import PairResult, PartialRunError  # noqa: E402
from audit.errors import BackendError, MissingDependencyError  # noqa: E402

BOX = {"Width": 0.4, "Height": 0.5, "Left": 0.3, "Top": 0.2}


@pytest.fixture(autouse=True)
def _no_aws_config(monkeypatch, tmp_path):
    """No profile, config file or credentials of the machine running the tests is read."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_REGION", "AWS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def stub():
    session = botocore.session.Session()
    client = session.create_client(
        "rekognition", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    calls: list[str] = []
    client.meta.events.register("before-parameter-build.rekognition", lambda model, **kw: calls.append(model.name))
    with Stubber(client) as stubber:
        stubber.calls = calls
        yield stubber
        stubber.assert_no_pending_responses()


def make_backend(stub, **options) -> RekognitionBackend:
    backend = RekognitionBackend(client=stub.client, **options)
    backend.sleeps = []
    backend._sleep = backend.sleeps.append  # record backoff instead of waiting
    return backend


@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = {}
    for name in ("a.jpg", "b.jpg", "c.png", "d.jpg", "e.jpg"):
        paths[name] = tmp_path / name
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(paths[name])
    paths["empty.jpg"] = tmp_path / "empty.jpg"
    paths["empty.jpg"].write_bytes(b"")
    paths["image.gif"] = tmp_path / "image.gif"
    Image.fromarray(np.zeros((90, 90, 3), np.uint8)).save(paths["image.gif"])
    paths["huge.jpg"] = tmp_path / "huge.jpg"
    paths["huge.jpg"].write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * MAX_IMAGE_BYTES)
    return paths


def compare_response(*similarities: float, unmatched: int = 0) -> dict:
    return {
        "SourceImageFace": {"BoundingBox": BOX, "Confidence": 99.9},
        "FaceMatches": [{"Similarity": s, "Face": {"BoundingBox": BOX, "Confidence": 99.5}} for s in similarities],
        "UnmatchedFaces": [{"BoundingBox": BOX, "Confidence": 98.0} for _ in range(unmatched)],
    }


def expect_compare(stub, response, a=ANY, b=ANY):
    stub.add_response(
        "compare_faces",
        response,
        {"SourceImage": {"Bytes": a}, "TargetImage": {"Bytes": b}, "SimilarityThreshold": 0.0},
    )


# ---------------------------------------------------------------------------- options and credentials


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"region": "Europe"}, "region"),
        ({"quality_filter": "BEST"}, "quality_filter"),
        ({"max_faces": 0}, "max_faces"),
        ({"max_faces": 5000}, "max_faces"),
        ({"max_retries": -1}, "max_retries"),
        ({"backoff_base": -0.1}, "backoff_base"),
        ({"collection_prefix": "has space"}, "collection_prefix"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"client": object()}, "client"),
    ],
)
def test_invalid_options_raise_clear_errors(kwargs, word):
    with pytest.raises(BackendError, match=word):
        RekognitionBackend(**kwargs)


def test_credentials_are_never_options():
    params = [p.lower() for p in inspect.signature(RekognitionBackend).parameters]
    assert not [p for p in params if any(w in p for w in ("key", "secret", "token", "credential", "password"))]
    with pytest.raises(TypeError):
        RekognitionBackend(aws_access_key_id="AKIA...", aws_secret_access_key="...")
    source = Path(rekognition.__file__).read_text()
    assert "aws_access_key_id" not in source and "aws_secret_access_key" not in source


def test_missing_boto3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingDependencyError, match=r"face-audit\[rekognition\]"):
        RekognitionBackend(region="us-east-1").load()


def test_no_region_is_a_clear_error():
    with pytest.raises(BackendError, match="region"):
        RekognitionBackend().load()  # the default chain has no region here; nothing is sent


def test_info_and_pickling(stub):
    backend = make_backend(stub, quality_filter="NONE")
    info = backend.info()
    assert info.backend == "rekognition" and (info.score_min, info.score_max) == (0.0, 100.0)
    assert info.default_threshold == 80.0 and "80" in info.default_threshold_source
    assert info.options["region"] == "us-east-1" and info.options["quality_filter"] == "NONE"
    copy = pickle.loads(pickle.dumps(backend))
    assert copy._client is None and copy.created_collections == ()
    assert stub.calls == []


# ---------------------------------------------------------------------------- cost and dry run


def test_estimate_cost_counts_calls_and_prices_them():
    est = estimate_cost(n_compare=20_604, n_index=102, n_search=102, n_detect=10)
    assert est.group1_images == 20_808 and est.group2_images == 10
    assert est.usd == pytest.approx(20_808 * 0.001 + 10 * 0.001)
    text = str(est)
    assert "20,604 CompareFaces" in text and "20,808 Group 1" in text and "US$20.82" in text
    assert "2024" in est.assumption and "us-east-1" in est.assumption.lower() + rekognition.PRICES_AS_OF
    assert estimate_cost(n_compare=10, price_group1=0.002).usd == pytest.approx(0.02)
    with pytest.raises(BackendError, match="n_compare"):
        estimate_cost(n_compare=-1)


def test_dry_run_sends_nothing(stub, images):
    backend = make_backend(stub, dry_run=True)
    pairs = [(images["a.jpg"], images["b.jpg"]), (images["a.jpg"], images["empty.jpg"]), (images["c.png"], images["d.jpg"])]
    with pytest.raises(DryRunError) as err:
        backend.compare(pairs)
    assert err.value.estimate.n_compare == 2  # the pair with an empty file would not be sent
    assert "nothing was sent" in str(err.value)
    with pytest.raises(DryRunError) as err:
        backend.index_faces([images["a.jpg"], images["b.jpg"], images["image.gif"]])
    assert err.value.estimate.n_index == 2
    with pytest.raises(DryRunError) as err:
        backend.iter_search([images["c.png"]], collection_id="face-audit-x")  # raises at the call, not at next()
    assert err.value.estimate.n_search == 1
    with pytest.raises(DryRunError):
        backend.detect_faces([images["a.jpg"]])
    assert backend.created_collections == ()
    assert stub.calls == []  # and the Stubber, with nothing queued, saw nothing either


def test_dry_run_makes_no_client():
    backend = RekognitionBackend(dry_run=True)
    backend.load()
    assert backend._client is None
    assert backend.estimate_cost(n_compare=5).group1_images == 5


# ---------------------------------------------------------------------------- 1:1 scores


def test_scores_come_back_for_every_pair(stub, images):
    backend = make_backend(stub)
    a, b, c = (images[n].read_bytes() for n in ("a.jpg", "b.jpg", "c.png"))
    expect_compare(stub, compare_response(99.2), a, b)  # mated
    expect_compare(stub, compare_response(3.25, 0.5), a, c)  # impostor, two faces in the target
    expect_compare(stub, compare_response(), b, c)  # no face in the target
    pairs = [(images["a.jpg"], images["b.jpg"]), (images["a.jpg"], images["c.png"]), (images["b.jpg"], images["c.png"])]
    results = backend.compare(pairs)
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.status for r in results] == [FaceStatus.OK, FaceStatus.OK, FaceStatus.NO_FACE]
    assert [r.similarity for r in results] == [99.2, 3.25, 0.0]
    assert results[1].n_faces_b == 2 and "best of 2" in results[1].detail
    assert "no face in the target" in results[2].detail and not results[2].ok
    assert results[0].path_a == str(images["a.jpg"]) and results[0].path_b == str(images["b.jpg"])
    assert backend.sleeps == []


def test_throttling_is_retried_with_backoff_then_succeeds(stub, images):
    backend = make_backend(stub, backoff_base=1.0, backoff_max=30.0)
    stub.add_client_error("compare_faces", service_error_code="ThrottlingException", service_message="Rate exceeded")
    stub.add_client_error("compare_faces", service_error_code="ThrottlingException", service_message="Rate exceeded")
    stub.add_client_error(
        "compare_faces", service_error_code="ProvisionedThroughputExceededException", service_message="slow down"
    )
    expect_compare(stub, compare_response(97.0))
    (result,) = backend.compare([(images["a.jpg"], images["b.jpg"])])
    assert result.ok and result.similarity == 97.0
    assert len(backend.sleeps) == 3
    for attempt, delay in enumerate(backend.sleeps):
        assert 0.5 * 2**attempt <= delay <= 2**attempt  # exponential, with jitter in [0.5, 1]


def test_exhausted_retries_raise_and_keep_what_was_done(stub, images):
    backend = make_backend(stub, max_retries=2)
    pairs = [(images["a.jpg"], images["b.jpg"]), (images["a.jpg"], images["c.png"]), (images["b.jpg"], images["d.jpg"])]
    expect_compare(stub, compare_response(98.0))
    for _ in range(3):  # the first try and both retries
        stub.add_client_error("compare_faces", service_error_code="ThrottlingException", service_message="Rate exceeded")
    with pytest.raises(PartialRunError) as err:
        backend.compare(pairs)
    message = str(err.value)
    assert "ThrottlingException" in message and "3 attempts" in message and "1 of 3" in message
    assert ".completed" in message and ".remaining" in message
    assert [r.similarity for r in err.value.completed] == [98.0]
    assert err.value.remaining == pairs[1:]  # the caller's own items
    assert len(backend.sleeps) == 2

    # resume with what is left, keeping the numbering
    expect_compare(stub, compare_response(2.0))
    expect_compare(stub, compare_response(1.0))
    rest = backend.compare(err.value.remaining, start=len(err.value.completed))
    assert [r.index for r in rest] == [1, 2] and [r.similarity for r in rest] == [2.0, 1.0]


def test_streaming_callers_keep_results_yielded_before_a_stop(stub, images):
    backend = make_backend(stub)
    expect_compare(stub, compare_response(91.0))
    stub.add_client_error("compare_faces", service_error_code="AccessDeniedException", service_message="not allowed")
    stored: list[PairResult] = []
    with pytest.raises(PartialRunError, match="AccessDeniedException") as err:
        for result in backend.iter_compare([(images["a.jpg"], images["b.jpg"]), (images["c.png"], images["d.jpg"])]):
            stored.append(result)
    assert [r.similarity for r in stored] == [91.0]
    assert err.value.completed == stored and err.value.remaining == [(images["c.png"], images["d.jpg"])]


def test_rejected_images_become_statuses(stub, images):
    backend = make_backend(stub)
    stub.add_client_error("compare_faces", service_error_code="InvalidImageFormatException", service_message="bad bytes")
    stub.add_client_error("compare_faces", service_error_code="ImageTooLargeException", service_message="too big")
    stub.add_client_error(
        "compare_faces", service_error_code="InvalidParameterException", service_message="Request has invalid parameters"
    )
    pairs = [
        (images["a.jpg"], images["b.jpg"]),
        (images["a.jpg"], images["c.png"]),
        (images["b.jpg"], images["c.png"]),
        # refused locally, never sent:
        (images["a.jpg"], images["empty.jpg"]),
        (images["image.gif"], images["a.jpg"]),
        (images["huge.jpg"], images["a.jpg"]),
        (images["a.jpg"], images["a.jpg"].with_name("missing.jpg")),
    ]
    results = backend.compare(pairs)
    statuses = [r.status for r in results]
    assert statuses == [
        FaceStatus.UNREADABLE, FaceStatus.ERROR, FaceStatus.NO_FACE,
        FaceStatus.UNREADABLE, FaceStatus.UNREADABLE, FaceStatus.ERROR, FaceStatus.UNREADABLE,
    ]  # fmt: skip
    assert [r.similarity for r in results] == [None, None, 0.0, None, None, None, None]
    assert "InvalidImageFormatException" in results[0].detail
    assert "source image" in results[2].detail
    assert "empty" in results[3].detail and "JPEG or PNG" in results[4].detail and "5,242,880" in results[5].detail
    assert stub.calls == ["CompareFaces"] * 3


# ---------------------------------------------------------------------------- 1:N and cleanup


def test_index_search_and_cleanup(stub, images):
    backend = make_backend(stub, max_faces=10)
    gallery = [images["a.jpg"], images["b.jpg"], images["c.png"]]
    ids = [RekognitionBackend.external_image_id(p) for p in gallery]
    stub.add_response(
        "create_collection",
        {"StatusCode": 200, "CollectionArn": "arn:aws:rekognition:us-east-1:123456789012:collection/x", "FaceModelVersion": "7.0"},
        {"CollectionId": ANY, "Tags": {"created-by": "face-audit"}},
    )

    def face(face_id, ext):
        return {"FaceId": face_id, "BoundingBox": BOX, "ImageId": "img-" + face_id, "ExternalImageId": ext, "Confidence": 99.9}

    detail = {"BoundingBox": BOX, "Confidence": 99.0}
    stub.add_response(
        "index_faces",
        {"FaceRecords": [{"Face": face("f-a", ids[0]), "FaceDetail": detail}], "FaceModelVersion": "7.0", "UnindexedFaces": []},
        {"CollectionId": ANY, "Image": {"Bytes": ANY}, "ExternalImageId": ids[0], "MaxFaces": 1, "DetectionAttributes": ["DEFAULT"]},
    )
    stub.add_response(
        "index_faces",
        {"FaceRecords": [], "FaceModelVersion": "7.0", "UnindexedFaces": [{"Reasons": ["LOW_SHARPNESS"], "FaceDetail": detail}]},
        {"CollectionId": ANY, "Image": {"Bytes": ANY}, "ExternalImageId": ids[1], "MaxFaces": 1, "DetectionAttributes": ["DEFAULT"]},
    )
    stub.add_response(
        "index_faces",
        {
            "FaceRecords": [{"Face": face("f-c", ids[2]), "FaceDetail": detail}],
            "FaceModelVersion": "7.0",
            "UnindexedFaces": [{"Reasons": ["EXCEEDS_MAX_FACES"], "FaceDetail": detail}],
        },
        {"CollectionId": ANY, "Image": {"Bytes": ANY}, "ExternalImageId": ids[2], "MaxFaces": 1, "DetectionAttributes": ["DEFAULT"]},
    )
    index = backend.index_faces(gallery)
    cid = index.collection_id
    assert cid.startswith("face-audit-") and backend.created_collections == (cid,)
    assert index.face_model_version == "7.0"
    assert [r.status for r in index.results] == [FaceStatus.OK, FaceStatus.NO_FACE, FaceStatus.OK]
    assert index.results[0].face_id == "f-a" and "LOW_SHARPNESS" in index.results[1].detail
    assert index.results[2].n_faces == 2 and "not indexed" in index.results[2].detail
    assert index.paths_by_external_id() == {ids[0]: str(gallery[0]), ids[2]: str(gallery[2])}

    stub.add_response(
        "search_faces_by_image",
        {
            "SearchedFaceBoundingBox": BOX,
            "SearchedFaceConfidence": 99.9,
            "FaceMatches": [
                {"Similarity": 4.5, "Face": face("f-c", ids[2])},
                {"Similarity": 99.4, "Face": face("f-a", ids[0])},
            ],
            "FaceModelVersion": "7.0",
        },
        {"CollectionId": cid, "Image": {"Bytes": ANY}, "MaxFaces": 10, "FaceMatchThreshold": 0.0},
    )
    stub.add_client_error(
        "search_faces_by_image", service_error_code="InvalidParameterException", service_message="There are no faces in the image."
    )
    found = list(backend.iter_search([images["d.jpg"], images["e.jpg"]], collection_id=cid))
    assert found[0].ok and [m.similarity for m in found[0].matches] == [99.4, 4.5]
    assert found[0].matches[0].gallery_path == str(gallery[0]) and found[0].matches[0].face_id == "f-a"
    assert found[1].status is FaceStatus.NO_FACE and found[1].matches == () and "probe" in found[1].detail

    stub.add_response("delete_collection", {"StatusCode": 200}, {"CollectionId": cid})
    assert backend.cleanup() == [cid]
    assert backend.created_collections == () and backend.cleanup() == []


def test_context_manager_cleans_up_a_collection_left_by_a_failed_index(stub, images):
    stub.add_response("create_collection", {"StatusCode": 200, "CollectionArn": "arn:x", "FaceModelVersion": "7.0"})
    stub.add_client_error("index_faces", service_error_code="AccessDeniedException", service_message="denied")
    stub.add_response("delete_collection", {"StatusCode": 200})
    with make_backend(stub) as backend:
        with pytest.raises(PartialRunError) as err:
            backend.index_faces([images["a.jpg"], images["b.jpg"]])
        assert err.value.collection_id in backend.created_collections
        assert err.value.completed == [] and len(err.value.remaining) == 2
    assert backend.created_collections == ()


def test_delete_and_cleanup_failures(stub):
    backend = make_backend(stub)
    with pytest.raises(BackendError, match="not created by this backend"):
        backend.delete_collection("someone-elses-collection")
    stub.add_response("delete_collection", {"StatusCode": 200}, {"CollectionId": "someone-elses-collection"})
    backend.delete_collection("someone-elses-collection", force=True)

    backend._created.extend(["face-audit-1", "face-audit-2"])
    stub.add_client_error("delete_collection", service_error_code="ResourceNotFoundException", service_message="gone")
    stub.add_client_error("delete_collection", service_error_code="AccessDeniedException", service_message="denied")
    with pytest.raises(BackendError, match="face-audit-2") as err:
        backend.cleanup()
    assert "not: face-audit-2" in str(err.value)
    assert backend.created_collections == ("face-audit-2",)  # kept, so cleanup() can retry it


def test_detect_faces(stub, images):
    backend = make_backend(stub)
    stub.add_response(
        "detect_faces",
        {"FaceDetails": [{"BoundingBox": BOX, "AgeRange": {"Low": 25, "High": 35}, "Gender": {"Value": "Female", "Confidence": 99.0}, "Confidence": 99.9}]},
        {"Image": {"Bytes": ANY}, "Attributes": ["ALL"]},
    )
    stub.add_response("detect_faces", {"FaceDetails": []}, {"Image": {"Bytes": ANY}, "Attributes": ["ALL"]})
    found = backend.detect_faces([images["a.jpg"], images["b.jpg"], images["empty.jpg"]], attributes="ALL")
    assert [f.status for f in found] == [FaceStatus.OK, FaceStatus.NO_FACE, FaceStatus.UNREADABLE]
    assert found[0].faces[0]["AgeRange"] == {"Low": 25, "High": 35} and found[0].n_faces == 1


def test_pair_result_invariants():
    with pytest.raises(BackendError, match="needs a similarity"):
        PairResult(0, "a", "b", FaceStatus.OK)
    with pytest.raises(BackendError, match="must not carry"):
        PairResult(0, "a", "b", FaceStatus.ERROR, 5.0)
    with pytest.raises(BackendError, match="no_face"):
        PairResult(0, "a", "b", FaceStatus.NO_FACE, 12.0)
    with pytest.raises(BackendError):
        PairResult(0, "a", "b", FaceStatus.OK, float("nan"))
