"""Write a list of RGB frames as a video file, or one frame as a picture.

An animated GIF needs only Pillow (installed with matplotlib, so always present); MP4 and the other
ffmpeg formats need the optional ``video`` extra (imageio with imageio-ffmpeg), which keeps the
default install small. A picture (PNG, Pillow) is the last frame of an episode: for the goal-set
environments that frame draws the whole episode (path, goals reached and missed, Fig. 8.4 a, c).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

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
        raise ValueError(f"--video {path}: unknown format {suffix or '(none)'!r}; valid: "
                         f"{', '.join(PILLOW_SUFFIXES + FFMPEG_SUFFIXES)}")
    if suffix in FFMPEG_SUFFIXES:
        try:
            import imageio.v2  # noqa: F401
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ValueError(f"--video {path}: writing {suffix} needs the video extra: {INSTALL_HINT}") from None
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(f"--video {path}: {path.parent} is a file, not a folder")
    return path


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: int = 4) -> Path:
    """Write ``frames`` (H x W x 3 uint8 arrays of one size) to ``path``; the suffix picks the format."""
    path = check_video_path(path)
    if not frames:
        raise ValueError("no frames to write")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in PILLOW_SUFFIXES:
        from PIL import Image

        images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    else:
        import imageio.v2 as imageio

        with imageio.get_writer(path, fps=fps, macro_block_size=1) as writer:
            for frame in frames:
                writer.append_data(np.asarray(frame, dtype=np.uint8))
    return path


def check_picture_path(path: str | Path) -> Path:
    """Refuse a picture name that cannot be written (ValueError naming the value and the valid suffixes)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PICTURE_SUFFIXES:
        raise ValueError(f"--picture {path}: unknown format {suffix or '(none)'!r}; valid: {', '.join(PICTURE_SUFFIXES)}")
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(f"--picture {path}: {path.parent} is a file, not a folder")
    return path


def write_picture(path: str | Path, frame: np.ndarray) -> Path:
    """Write one H x W x 3 uint8 frame to ``path`` (PNG); creates the folder."""
    from PIL import Image

    path = check_picture_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(path)
    return path
