"""DICOM intake: read files or folders, de-identify into an output folder (originals untouched), summarise the
study, compute image statistics and write a PNG preview. Each file succeeds or fails on its own."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from r1stack.apps.clinical.deidentify import UidMap, deidentify
from r1stack.apps.clinical.png import to_uint8, write_png
from r1stack.errors import UserError


@dataclass
class ImageStats:
    rows: int
    columns: int
    frames: int
    minimum: float
    maximum: float
    mean: float
    std: float


@dataclass
class DicomSummary:
    source: str  # the input file's name (never a path that could carry a patient's name)
    modality: str
    body_part: str
    study_description: str
    series_description: str
    sex: str
    age: str
    stats: ImageStats | None = None
    deidentified: str | None = None  # path of the de-identified copy
    preview: str | None = None  # path of the PNG
    note: str = ""  # why there are no stats or preview

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        """One line for the stage-2 context."""
        s = (
            f"{self.modality or 'unknown modality'} of {self.body_part or 'unspecified body part'}"
            f" ({self.study_description or 'no study description'}; {self.series_description or 'no series'})"
            f", patient {self.sex or '?'} {self.age or ''}".rstrip()
        )
        if self.stats:
            st = self.stats
            s += (
                f"; {st.rows}x{st.columns} px, {st.frames} frame(s), intensity mean {st.mean:.1f} "
                f"sd {st.std:.1f} range {st.minimum:g}..{st.maximum:g}"
            )
        return s


@dataclass
class ItemError:
    source: str
    message: str


@dataclass
class IntakeResult:
    summaries: list[DicomSummary] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "summaries": [s.as_dict() for s in self.summaries],
            "errors": [asdict(e) for e in self.errors],
        }


def find_files(paths: list[Path]) -> list[Path]:
    files = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(x for x in p.rglob("*") if x.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p} does not exist; give DICOM files or folders")
    return files


def image_stats(ds) -> ImageStats:
    pixels = ds.pixel_array  # raises for transfer syntaxes no installed handler can decode
    a = np.asarray(pixels, dtype=np.float64)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    return ImageStats(
        int(ds.Rows), int(ds.Columns), frames, float(a.min()), float(a.max()), float(a.mean()), float(a.std())
    )


def intake(paths: list[Path], out_dir: Path, uids: UidMap | None = None) -> IntakeResult:
    """De-identified copies and previews go to out_dir as anon-<n>.dcm / anon-<n>.png."""
    uids = uids or UidMap()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = IntakeResult()
    for n, path in enumerate(find_files(paths)):
        name = f"file-{n}{path.suffix}"  # file names may hold patient names: never echoed
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, AttributeError) as e:
            result.errors.append(ItemError(name, f"not a readable DICOM file ({type(e).__name__})"))
            continue
        clean = deidentify(copy.deepcopy(ds), uids)
        summary = DicomSummary(
            source=name,
            modality=str(clean.get("Modality", "")),
            body_part=str(clean.get("BodyPartExamined", "")),
            study_description=str(clean.get("StudyDescription", "")),
            series_description=str(clean.get("SeriesDescription", "")),
            sex=str(clean.get("PatientSex", "")),
            age=str(clean.get("PatientAge", "")),
        )
        target = out_dir / f"anon-{n}.dcm"
        clean.save_as(target, enforce_file_format=False)
        summary.deidentified = str(target)
        if "PixelData" not in clean:
            summary.note = "no pixel data"
        else:
            try:
                summary.stats = image_stats(clean)
                frame = np.asarray(clean.pixel_array)
                frame = frame[0] if frame.ndim == 3 and summary.stats.frames > 1 else frame
                if frame.ndim == 3:  # colour: preview the luminance
                    frame = frame.mean(axis=-1)
                preview = out_dir / f"anon-{n}.png"
                write_png(to_uint8(frame), preview)
                summary.preview = str(preview)
            except Exception as e:  # pydicom raises several types for codecs it lacks
                ts = getattr(getattr(clean, "file_meta", None), "TransferSyntaxUID", None)
                ts_name = getattr(ts, "name", str(ts))
                summary.note = f"pixel data not decoded ({ts_name}): {type(e).__name__}"
                result.errors.append(ItemError(name, summary.note))
        result.summaries.append(summary)
    (out_dir / "summary.json").write_text(json.dumps(result.as_dict(), indent=2), encoding="utf-8")
    return result
