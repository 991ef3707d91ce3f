"""Decode image files into RGB ``uint8`` arrays, the one pixel format every backend receives.

The reader absorbs what real datasets contain: EXIF orientation, alpha channels, palette and
grayscale images, 16-bit images and CMYK JPEGs. Bytes that cannot be decoded raise
:class:`~audit.errors.UnreadableImageError`, which the backends turn into the per-image status
``unreadable`` so that one bad file never stops a run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .errors import UnreadableImageError

__all__ = ["read_rgb", "sha256_file", "sha256_file_cached", "MAX_IMAGE_PIXELS"]

_CHUNK = 1 << 20

#: The largest image (width × height) decoded: 100 megapixels, far above any face photo. A file
#: whose header claims more (a "decompression bomb": a few kB that would expand to gigabytes) is
#: refused from its header, before any pixel is decoded, and becomes the status ``unreadable``.
#: ``$FACE_AUDIT_MAX_IMAGE_PIXELS`` raises or lowers the limit.
MAX_IMAGE_PIXELS = 100_000_000


def _max_pixels() -> int:
    import os

    env = os.environ.get("FACE_AUDIT_MAX_IMAGE_PIXELS", "")
    try:
        return max(1, int(env)) if env else MAX_IMAGE_PIXELS
    except ValueError:
        return MAX_IMAGE_PIXELS


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# (resolved path, size, mtime_ns) -> sha256: weight files are hashed once per process
_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file_cached(path: str | Path) -> str:
    """:func:`sha256_file`, remembered per process for an unchanged file (same path, size and
    modification time). Used for model weights, which every worker hashes at load."""
    resolved = Path(path).resolve()
    st = resolved.stat()
    key = (str(resolved), st.st_size, st.st_mtime_ns)
    digest = _SHA256_CACHE.get(key)
    if digest is None:
        digest = sha256_file(resolved)
        _SHA256_CACHE[key] = digest
    return digest


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB array.

    Parameters
    ----------
    path : str or Path
        Any format Pillow decodes (JPEG, PNG, BMP, WebP, TIFF, ...).

    Returns
    -------
    numpy.ndarray of shape (H, W, 3), dtype uint8
        Pixels in RGB order, rotated upright according to the EXIF orientation tag.
        Transparent pixels are composited onto white; 16-bit images are scaled to 8 bits.

    Raises
    ------
    UnreadableImageError
        When the file is empty, truncated, not an image, cannot be read (permissions), or its
        header claims more than :data:`MAX_IMAGE_PIXELS` pixels (checked before decoding).
        The message names the file.

    Examples
    --------
    >>> img = read_rgb("face.jpg")          # doctest: +SKIP
    >>> img.shape, img.dtype                # doctest: +SKIP
    ((250, 250, 3), dtype('uint8'))
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableImageError(f"{path}: cannot open the file ({exc.strerror}).") from exc
    if size == 0:
        raise UnreadableImageError(f"{path}: the file is empty (0 bytes); replace it with the original image.")
    limit = _max_pixels()
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > limit:
                raise UnreadableImageError(
                    f"{path}: the header claims {w}×{h} pixels, more than the {limit:,} face-audit decodes "
                    "(a corrupt file or a decompression bomb); set $FACE_AUDIT_MAX_IMAGE_PIXELS to allow larger images."
                )
            if w == 0 or h == 0:
                raise UnreadableImageError(f"{path}: the header claims an empty image ({w}×{h} pixels).")
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, MemoryError) as exc:
        raise UnreadableImageError(
            f"{path}: too large to decode ({type(exc).__name__}: {exc}); a corrupt file or a decompression bomb."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise UnreadableImageError(
            f"{path}: not a decodable image ({type(exc).__name__}: {exc}); "
            "check that the file is complete and in a common image format."
        ) from exc


def _to_rgb(im) -> np.ndarray:
    from PIL import Image

    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return np.repeat(np.clip(arr + 0.5, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise UnreadableImageError(f"decoded image has shape {arr.shape}, expected (H, W, 3)")
    return np.ascontiguousarray(arr)
