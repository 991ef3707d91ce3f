"""Bad images: each becomes a failure to acquire with a status and a detail naming the file;
none stops a run. Oversized headers (decompression bombs) are refused before decoding."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from audit.backends.base import FaceStatus
from audit.engine.local import embed_one
from audit.verification.result import AuditResult
from conftest import cli, config_text, write_checksums
from fake_backend import QuadrantColourBackend


def _png_header(w: int, h: int, *, body: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + body + chunk(b"IEND", b"")


def _jpeg_bomb(w: int, h: int) -> bytes:
    """A small real JPEG whose SOF header is rewritten to claim w × h pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 90, 90)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    i = data.find(b"\xff\xc0")
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def _image(fmt: str, mode: str = "RGB", size=(20, 20), **kw) -> bytes:
    buf = io.BytesIO()
    colour = {"RGB": (200, 120, 40), "L": 128, "RGBA": (1, 2, 3, 100), "1": 1, "I;16": 300, "CMYK": (1, 2, 3, 4), "LA": (9, 200)}
    im = Image.new("RGB", size, (200, 120, 40)).convert("P") if mode == "P" else Image.new(mode, size, colour[mode])
    im.save(buf, fmt, **kw)
    return buf.getvalue()


good_png = _image("PNG")
good_jpeg = _image("JPEG")

# (name, bytes) -> unreadable
UNREADABLE = {
    "empty": b"",
    "one_byte": b"\x00",
    "text": b"hello, this is not an image\n" * 4,
    "html": b"<html><body>not an image</body></html>",
    "truncated_png": good_png[: len(good_png) // 2],
    "truncated_jpeg": good_jpeg[: len(good_jpeg) // 3],
    "png_header_only": good_png[:16],
    "jpeg_soi_only": b"\xff\xd8",
    "random_bytes": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "zeros": b"\x00" * 2048,
    "png_bomb_65000": _png_header(65000, 65000),
    "png_bomb_wide": _png_header(1_000_000, 200),
    "png_bomb_tall": _png_header(200, 1_000_000),
    "png_claims_zero_width": _png_header(0, 100),
    "jpeg_bomb_65000": _jpeg_bomb(65000, 65000),
    "jpeg_bomb_20000": _jpeg_bomb(20000, 20000),
    "png_corrupt_idat": _png_header(32, 32, body=struct.pack(">I", 10) + b"IDAT" + b"\x00" * 10 + b"\x00\x00\x00\x00"),
    "gif_truncated": _image("GIF", "P")[:20],
    "bmp_truncated": _image("BMP")[:40],
    "tiff_truncated": _image("TIFF")[:30],
    "webp_garbage": b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 20,
    "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
    "zip": b"PK\x03\x04" + b"\x00" * 60,
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
}

# unusual but valid: must be read as RGB and embedded
VALID = {
    "gray_png": _image("PNG", "L"),
    "rgba_png": _image("PNG", "RGBA"),
    "palette_gif": _image("GIF", "P"),
    "bilevel_png": _image("PNG", "1"),
    "sixteen_bit_png": _image("PNG", "I;16"),
    "cmyk_jpeg": _image("JPEG", "CMYK"),
    "la_png": _image("PNG", "LA"),
    "bmp": _image("BMP"),
    "tiff": _image("TIFF"),
    "tiny_2x2": _image("PNG", size=(2, 2)),
    "wide_300x2": _image("PNG", size=(300, 2)),
    "progressive_jpeg": _image("JPEG", progressive=True),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_bad_image_is_unreadable_with_the_file_named(name, tmp_path):
    path = tmp_path / f"{name}.png"
    path.write_bytes(UNREADABLE[name])
    res = embed_one(QuadrantColourBackend(), str(path))
    assert res.status is FaceStatus.UNREADABLE, (res.status, res.detail)
    assert res.embedding is None and str(path) in res.detail
    if "bomb" in name:
        assert "pixels" in res.detail or "decompression bomb" in res.detail


@pytest.mark.parametrize("name", sorted(VALID))
def test_unusual_valid_image_is_embedded(name, tmp_path):
    path = tmp_path / f"{name}.img"
    path.write_bytes(VALID[name])
    res = embed_one(QuadrantColourBackend(), str(path))
    assert res.status is FaceStatus.OK, res.detail
    assert res.embedding.shape == (12,) and np.isfinite(res.embedding).all()


def test_missing_file_and_folder_are_unreadable(tmp_path):
    for path in (tmp_path / "absent.png", tmp_path):
        res = embed_one(QuadrantColourBackend(), str(path))
        assert res.status is FaceStatus.UNREADABLE and str(path) in res.detail


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(_image("PNG", size=(60, 50)))
    monkeypatch.setenv("FACE_AUDIT_MAX_IMAGE_PIXELS", "2999")
    res = embed_one(QuadrantColourBackend(), str(path))
    assert res.status is FaceStatus.UNREADABLE and "60×50" in res.detail
    monkeypatch.setenv("FACE_AUDIT_MAX_IMAGE_PIXELS", "3000")
    assert embed_one(QuadrantColourBackend(), str(path)).status is FaceStatus.OK


class _Exploding(QuadrantColourBackend):
    def embed(self, image):
        raise RuntimeError("model crashed on this image")


class _Zero(QuadrantColourBackend):
    def embed(self, image):
        from audit.backends.base import FaceResult

        return FaceResult(FaceStatus.OK, np.zeros(12, np.float32), 1)


def test_backend_exception_and_zero_vector_are_statuses(tmp_path):
    path = tmp_path / "ok.png"
    path.write_bytes(good_png)
    res = embed_one(_Exploding(), str(path))
    assert res.status is FaceStatus.ERROR and "model crashed" in res.detail
    res = embed_one(_Zero(), str(path))
    assert res.status is FaceStatus.ERROR and "all-zero" in res.detail


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bomb_in_the_dataset_is_a_failure_to_acquire_and_the_run_finishes(workers, tiny, fake_backend, capsys):
    """The issue's case: one decompression bomb among the images, with 1 and 2 workers. The run
    finishes, the bomb is 'unreadable' in the FTA table, and every other embedding is stored."""
    root = tiny["root"]
    (root / "img" / "s6_2.png").write_bytes(_png_header(65000, 65000))
    write_checksums(root, tiny["mdir"])
    out, cache = tiny["tmp"] / "out", tiny["tmp"] / "cache"
    cfg = tiny["tmp"] / "run.toml"
    cfg.write_text(config_text(tiny["manifest"], out, cache, workers=workers))
    assert cli("run", cfg, "--data-dir", tiny["data"]) == 0
    first = capsys.readouterr().out
    assert "12 computed" in first
    res = AuditResult.from_json(out / "results.json")
    s = res.samples.set_index("sample_id")
    assert s.loc["img/s6_2.png", "status"] == "unreadable" and "pixels" in s.loc["img/s6_2.png", "detail"]
    fta = res.fta.set_index(["grouping", "group"])
    assert (fta.loc[("all", "All"), "failures"], fta.loc[("all", "All"), "attempts"]) == (1, 12)
    assert any("1 of 12 image(s) failed to acquire" in w for w in res.warnings)
    # everything was stored: the rerun computes nothing
    assert cli("run", cfg, "--data-dir", tiny["data"]) == 0
    assert "all 12 from cache" in capsys.readouterr().out
