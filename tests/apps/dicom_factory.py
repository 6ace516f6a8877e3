"""Synthetic DICOM files built with pydicom for the tests (no downloads): a CT series with identifiers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

PATIENT = {"PatientName": "Zhang^Wei", "PatientID": "MRN-48213377", "PatientBirthDate": "19620317"}


def make_dicom(
    path: Path,
    study_uid: str,
    series_uid: str,
    index: int,
    pixels: bool = True,
    transfer_syntax=ExplicitVRLittleEndian,
    frame_uid: str | None = None,
) -> dict:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    sop_uid = generate_uid()
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid or generate_uid()
    for k, v in PATIENT.items():
        setattr(ds, k, v)
    ds.PatientSex, ds.PatientAge = "M", "063Y"
    ds.InstitutionName = "Ruijin Hospital"
    ds.ReferringPhysicianName = "Li^Na"
    ds.StudyDate, ds.AccessionNumber = "20260301", "ACC99812"
    ds.Modality, ds.BodyPartExamined = "CT", "CHEST"
    ds.StudyDescription, ds.SeriesDescription = "CT chest with contrast", "axial 5mm"
    ds.InstanceNumber = index + 1
    ds.InstanceCreationDate = "20260302"
    # A nested reference to the study, and a physician's name inside a sequence: the walk must reach both.
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = study_uid
    ds.ReferencedStudySequence = [ref]
    reader = Dataset()
    reader.PersonName = "Wang^Fang"
    ds.ContentSequence = [reader]
    if pixels:
        rng = np.random.default_rng(index)
        img = (rng.normal(400, 80, (32, 32)).clip(0, 4000)).astype(np.uint16)
        ds.Rows, ds.Columns = img.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if transfer_syntax == ExplicitVRLittleEndian:
            ds.PixelData = img.tobytes()
        else:  # bytes that claim a compressed syntax: an undecodable image for the tests
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([b"\xff\xd8not really a jpeg\xff\xd9"])
            ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return {"sop": sop_uid}


def make_series(folder: Path, n: int = 3) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    sops = [
        make_dicom(folder / f"Zhang_Wei_{i}.dcm", study, series, i, frame_uid=frame)["sop"] for i in range(n)
    ]
    return {"study": study, "series": series, "sops": sops, "frame_of_reference": frame}


__all__ = ["JPEGBaseline8Bit", "make_dicom", "make_series", "PATIENT"]
