"""Rekognition's 1:N gallery search (collections: IndexFaces, SearchFacesByImage) and DetectFaces.

Part of :mod:`audit.backends.rekognition` (import from there).
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import BackendError
from .base import FaceStatus
from .scoring import (
    GalleryIndex,
    IndexResult,
    PartialRunError,
    SearchMatch,
    SearchResult,
)
from .rekognition_common import (
    FaceDetection,
    _ID_CHARS,
    _ImageProblem,
    _Stop,
    _check_paths,
    _error_code,
    _error_message,
    estimate_cost,
)


class _GallerySearch:
    """Collections and face detection, mixed into :class:`~audit.backends.rekognition.RekognitionBackend`
    (which provides the client, ``_call``, ``_read`` and ``_stop``)."""

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
