"""Write a list of RGB frames as a video file, or one frame as a picture.

An animated GIF needs only Pillow (installed with matplotlib, so always present); MP4 and the other
ffmpeg formats need the optional ``video`` extra (imageio with imageio-ffmpeg), which keeps the
default install small. A picture (PNG, Pillow) is the last frame of an episode: for the goal-set
environments that frame draws the whole episode (path, goals reached and missed, Fig. 8.4 a, c).

The file is written into an existing folder, never one made for it: a mistyped path (``/nonexistent/x.gif``)
is refused before any work, and nothing is created outside the path given. A write that fails (no permission,
a full disk) removes the part it wrote and raises the ``OSError``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

PILLOW_SUFFIXES = (".gif",)
PICTURE_SUFFIXES = (".png",)
FFMPEG_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi")
INSTALL_HINT = "pip install -e '.[video]' (imageio and imageio-ffmpeg), or write a .gif, which needs nothing more"


def check_video_path(path: str | Path) -> Path:
    """Refuse a name whose format cannot be written, before any work is done (ValueError)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PILLOW_SUFFIXES + FFMPEG_SUFFIXES:
        raise ValueError(
            f"--video {path}: unknown format {suffix or '(none)'!r}; valid: "
            f"{', '.join(PILLOW_SUFFIXES + FFMPEG_SUFFIXES)}"
        )
    if suffix in FFMPEG_SUFFIXES:
        try:
            import imageio.v2  # noqa: F401
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ValueError(f"--video {path}: writing {suffix} needs the video extra: {INSTALL_HINT}") from None
    return _check_folder(path, "--video")


def _check_folder(path: Path, option: str) -> Path:
    """The folder ``path`` is written into exists, is a folder, and (as far as the system says) is writable."""
    import os

    folder = path.parent
    if not folder.exists():
        raise ValueError(
            f"{option} {path}: the folder {folder} does not exist; create it first "
            f"(mkdir -p {folder}), or choose an existing folder"
        )
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK):
        raise ValueError(
            f"{option} {path}: the folder {folder} is not writable; choose another folder, or change its permissions"
        )
    return path


def _written_or_removed(path: Path, write: Callable[[], None]) -> None:
    """Run ``write`` (which writes ``path``); if it fails, a file it created is removed (no half video)."""
    existed = path.exists()
    try:
        write()
    except OSError as error:
        if not existed:
            path.unlink(missing_ok=True)
        from reengage.file_faults import with_path

        raise with_path(error, path) from None


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: int = 4) -> Path:
    """Write ``frames`` (H x W x 3 uint8 arrays of one size) to ``path``; the suffix picks the format."""
    path = check_video_path(path)
    if not frames:
        raise ValueError("no frames to write")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    if path.suffix.lower() in PILLOW_SUFFIXES:
        from PIL import Image

        images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
        _written_or_removed(
            path,
            lambda: images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0),
        )
    else:
        import imageio.v2 as imageio

        def write() -> None:
            with imageio.get_writer(path, fps=fps, macro_block_size=1) as writer:
                for frame in frames:
                    writer.append_data(np.asarray(frame, dtype=np.uint8))

        _written_or_removed(path, write)
    return path


def check_picture_path(path: str | Path) -> Path:
    """Refuse a picture name that cannot be written (ValueError naming the value and the valid suffixes)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PICTURE_SUFFIXES:
        raise ValueError(
            f"--picture {path}: unknown format {suffix or '(none)'!r}; valid: {', '.join(PICTURE_SUFFIXES)}"
        )
    return _check_folder(path, "--picture")


def write_picture(path: str | Path, frame: np.ndarray) -> Path:
    """Write one H x W x 3 uint8 frame to ``path`` (PNG), in an existing folder."""
    from PIL import Image

    path = check_picture_path(path)
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    _written_or_removed(path, lambda: image.save(path))
    return path
