"""Image sizes as decoders see them: header only, EXIF orientation applied."""
from typing import Tuple

# EXIF orientations that rotate by 90/270 degrees (width and height swap)
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION_TAG = 0x0112


def read_image_size(path: str) -> Tuple[int, int, int]:
    """``(width, height, exif_orientation)`` of an image as it is displayed.

    Reads the file header only (no pixel decoding, with Pillow). Decoders
    that apply EXIF orientation (OpenCV's ``imread``/``imdecode``, which mmcv
    uses, and the reference's loader) return a width and height swapped for
    orientations 5-8; the size returned here is that decoded size.

    Args:
        path (str): Image file.

    Returns:
        tuple[int, int, int]: Width and height in pixels after orientation,
        and the EXIF orientation (1 when absent).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an image Pillow can read (names it).
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            width, height = img.size
            try:
                orientation = int(img.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
            except Exception:  # a broken EXIF block: decoders ignore it too
                orientation = 1
            stored = _stored_size(img)
    except FileNotFoundError:
        raise FileNotFoundError(f'image not found: {path}') from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f'{path} is not a readable image: {e}') from None
    if orientation in _TRANSPOSING_ORIENTATIONS and (width, height) == stored:
        width, height = height, width
    return width, height, orientation


def _stored_size(img) -> Tuple[int, int]:
    """(width, height) as stored in the file; Pillow's TIFF reader already reports the oriented size."""
    tags = getattr(img, 'tag_v2', None)
    if img.format == 'TIFF' and tags is not None and 256 in tags and 257 in tags:
        return int(tags[256]), int(tags[257])
    return img.size


def describe_size_mismatch(path: str, recorded: Tuple[int, int], actual: Tuple[int, int],
                           orientation: int = 0) -> str:
    """One line saying that an annotation's image size differs from the image's.

    Args:
        path (str): The image.
        recorded (tuple[int, int]): (width, height) in the annotation.
        actual (tuple[int, int]): (width, height) after decoding.
        orientation (int): EXIF orientation when known (0: unknown).
    """
    msg = (f'{path}: the annotation says {recorded[0]}x{recorded[1]} (width x height) but the image decodes '
           f'to {actual[0]}x{actual[1]}')
    if tuple(recorded) == tuple(actual)[::-1]:
        cause = (f'its EXIF orientation {orientation} rotates it' if orientation else
                 'most likely an EXIF orientation tag rotates it')
        msg += (f': width and height are swapped ({cause} on decoding); its boxes were probably drawn on the '
                'unrotated image and will be misplaced')
    else:
        msg += ': its boxes may be misplaced or cut'
    return msg
