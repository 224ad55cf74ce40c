"""Input files for the command line: opened, checked and read batch by batch.

:func:`open_inputs` turns a path (``.npy``, ``.npz``, ``.h5``/``.hdf5``, an image or a folder of
images) into a :class:`Source`: an array-like with ``shape``, ``dtype`` and slicing, whose rows
are read only when a batch asks for them. ``.npy`` files are read with plain positioned reads
(header parsed once, then ``np.fromfile`` per batch), and HDF5 datasets by slices, so a file
larger than memory streams in constant memory; neither a memory map nor the whole file ever
enters the process. Every problem is an :class:`InputError`: one line naming the file, what is
wrong and what was expected.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Dict, Optional

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"}


class InputError(ValueError):
    """A problem with an input or model file: reported in one line, exit status 2."""


class Source:
    """Samples along the first axis, read on demand. Subclasses implement :meth:`read`."""

    def __init__(self, path, shape, dtype):
        self.path, self.shape, self.dtype = str(path), tuple(shape), np.dtype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, item) -> np.ndarray:
        if not isinstance(item, slice):
            raise TypeError("a Source is read by slices of rows")
        start, stop, step = item.indices(len(self))
        if step != 1:
            raise TypeError("a Source is read by contiguous slices of rows")
        return self.read(start, max(start, stop))

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def sha256(self, rows: int = 4096) -> str:
        """The digest ``keras_lrp.io.model_weights_hash([array])`` gives, computed by slices."""
        digest = hashlib.sha256()
        digest.update(f"{self.dtype.str}|{self.shape}|".encode())
        for start in range(0, len(self), rows):
            digest.update(np.ascontiguousarray(self.read(start, min(start + rows,
                                                                    len(self)))).tobytes())
        return digest.hexdigest()

    def close(self) -> None:
        pass


class ArraySource(Source):
    """An array already in memory (``.npz`` members, images)."""

    def __init__(self, path, array: np.ndarray):
        super().__init__(path, array.shape, array.dtype)
        self.array = array

    def read(self, start, stop):
        return self.array[start:stop]


class NpySource(Source):
    """A ``.npy`` file read by positioned reads: the header once, then the rows each batch asks
    for (C order; a Fortran-ordered file is read whole, as it cannot be sliced by rows)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f)
            except (ValueError, EOFError, SyntaxError) as e:
                raise InputError(f"{path} is not a NumPy .npy file ({_reason(e)}).") from None
            self.offset = f.tell()
        if len(shape) == 0:
            raise InputError(f"{path} holds a single number; expected samples along the first "
                             "axis.")
        if dtype.hasobject:
            raise InputError(f"{path} holds Python objects (dtype {dtype}); keras-lrp reads "
                             "arrays of numbers only (allow_pickle is never used).")
        super().__init__(path, shape, dtype)
        self.row_items = int(np.prod(shape[1:], dtype=np.int64))
        expected = self.offset + dtype.itemsize * self.row_items * shape[0]
        size = os.path.getsize(path)
        if size < expected:
            raise InputError(f"{path} is truncated: its header promises {expected} bytes, the "
                             f"file holds {size}. Write it again (np.save).")
        self.fortran = fortran

    def read(self, start, stop):
        if self.fortran:
            return np.load(self.path)[start:stop]
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.row_items * self.dtype.itemsize)
            data = np.fromfile(f, dtype=self.dtype, count=(stop - start) * self.row_items)
        return data.reshape((stop - start,) + self.shape[1:])


class H5Source(Source):
    """One dataset of an HDF5 file, kept open and read by slices."""

    def __init__(self, path, file, dataset):
        super().__init__(path, dataset.shape, dataset.dtype)
        self.file, self.dataset = file, dataset

    def read(self, start, stop):
        return self.dataset[start:stop]

    def close(self):
        self.file.close()


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _pick(names, key: Optional[str], path, what: str) -> str:
    """The member to read: ``key``, else ``x``, else the only one."""
    names = list(names)
    if key is not None:
        if key not in names:
            raise InputError(f"{path} has no {what} {key!r}; it holds: "
                             f"{', '.join(names) or 'nothing'}.")
        return key
    if "x" in names:
        return "x"
    if len(names) == 1:
        return names[0]
    if not names:
        raise InputError(f"{path} holds no {what}s.")
    raise InputError(f"{path} holds several {what}s ({', '.join(names)}); choose one with "
                     "--key NAME (or name it 'x').")


def _check_readable(p: Path) -> None:
    if not p.exists():
        raise InputError(f"inputs file not found: {p}")
    if not os.access(p, os.R_OK):
        raise InputError(f"cannot read {p}: permission denied.")
    if p.is_file() and p.stat().st_size == 0:
        raise InputError(f"{p} is empty (0 bytes).")


def open_inputs(path, key: Optional[str] = None, channels: Optional[int] = None) -> Source:
    """Open an inputs file as a :class:`Source` (see the module docstring).

    Args:
        path: ``.npy``, ``.npz``, ``.h5``/``.hdf5``, an image, or a folder of images.
        key: the array of an ``.npz`` or the dataset of an HDF5 file (a path such as
            ``"group/x"``); default ``x``, or the only one.
        channels: the model's input channels, to convert grey and colour images.

    Raises:
        InputError: naming the file and the problem.
    """
    p = Path(path)
    _check_readable(p)
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in IMAGE_SUFFIXES:
        return ArraySource(p, _load_images(p, channels))
    if suffix == ".npy":
        return NpySource(p)
    if suffix == ".npz":
        return _open_npz(p, key)
    if suffix in (".h5", ".hdf5"):
        return _open_h5(p, key)
    raise InputError(f"cannot read inputs from {p}: use .npy, .npz, .h5 or image files.")


def _open_npz(p: Path, key) -> Source:
    try:
        with np.load(p, allow_pickle=False) as data:
            name = _pick(data.files, key, p, "array")
            return ArraySource(p, data[name])
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise InputError(f"{p} is not a readable NumPy .npz archive ({_reason(e)}).") from None


def _open_h5(p: Path, key) -> Source:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise InputError(f"{p} is not a readable HDF5 file ({_reason(e)}).") from None
    try:
        datasets: Dict[str, object] = {}

        def collect(name, obj):  # returns None: visititems stops at the first non-None
            if isinstance(obj, h5py.Dataset):
                datasets[name] = obj

        f.visititems(collect)
        name = _pick(datasets, key, p, "dataset")
        dataset = datasets[name]
        if dataset.shape is None or len(dataset.shape) == 0:
            raise InputError(f"{p}: dataset {name!r} is a scalar; expected samples along its "
                             "first axis.")
        return H5Source(p, f, dataset)
    except BaseException:
        f.close()
        raise


def _load_images(p: Path, channels: Optional[int]) -> np.ndarray:
    import matplotlib.image as mpimg

    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) \
        if p.is_dir() else [p]
    if not files:
        raise InputError(f"no image files in {p} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    images = []
    for f in files:
        try:
            img = np.asarray(mpimg.imread(f), dtype="float32")
        except Exception as e:  # noqa: BLE001 - Pillow raises many kinds for a bad image
            raise InputError(f"cannot read image {f} ({_reason(e)}).") from None
        if img.ndim == 3 and img.shape[-1] not in (1, 3, 4):
            raise InputError(f"image {f} has {img.shape[-1]} channels; expected grey, RGB or "
                             "RGBA.")
        img = img / 255.0 if img.max() > 1 else img
        img = img[..., :3] if img.ndim == 3 and img.shape[-1] == 4 else img
        if images and img.shape != images[0][1].shape:
            raise InputError(f"images in {p} have different sizes: {images[0][0].name} is "
                             f"{images[0][1].shape}, {f.name} is {img.shape}; resize them to "
                             "the model's input size.")
        images.append((f, img))
    x = np.stack([img for _, img in images])
    if channels is not None:
        if x.ndim == 4 and channels == 1 and x.shape[-1] == 3:
            x = x.mean(axis=-1, keepdims=True)
        elif x.ndim == 3 and channels in (1, 3):
            x = np.repeat(x[..., None], channels, axis=-1)
    return x


def check_for_model(source: Source, model) -> None:
    """Raise :class:`InputError` unless ``source`` suits the model's (single) input."""
    if len(model.inputs) != 1:
        raise InputError(f"model '{model.name}' has {len(model.inputs)} inputs; the command line "
                         "reads one input array (use the Python API for several).")
    expected = tuple(model.inputs[0].shape)
    if source.dtype.kind not in "fiub":
        raise InputError(f"{source.path} holds values of dtype {source.dtype}; expected numbers.")
    if source.ndim != len(expected) or any(e is not None and e != a for e, a in
                                           zip(expected[1:], source.shape[1:])):
        raise InputError(f"{source.path} holds an array of shape {source.shape}; model "
                         f"'{model.name}' expects {('batch',) + expected[1:]}.")
    if len(source) == 0:
        raise InputError(f"{source.path} holds no samples (shape {source.shape}).")
