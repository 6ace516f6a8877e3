"""DICOM intake on files built with pydicom: identifiers gone from every output, UIDs remapped consistently,
originals untouched, bad items reported one by one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
from dicom_factory import PATIENT, JPEGBaseline8Bit, make_dicom, make_series
from pydicom.uid import generate_uid

from r1stack.apps.clinical.deidentify import UidMap
from r1stack.apps.clinical.dicom_intake import intake


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_no_identifier_survives_and_uids_stay_consistent(tmp_path: Path):
    src = tmp_path / "in"
    ids = make_series(src, n=3)
    before = _digest(src)
    out = tmp_path / "out"
    result = intake([src], out, UidMap(b"fixed-salt"))
    assert not result.errors and len(result.summaries) == 3
    assert _digest(src) == before  # originals never modified

    secrets = [
        PATIENT["PatientName"],
        "Zhang",
        PATIENT["PatientID"],
        PATIENT["PatientBirthDate"],
        "Ruijin",
        "ACC99812",
        "Wang^Fang",
        "20260302",
        "20260301",
        ids["study"],
        ids["series"],
        ids["frame_of_reference"],
        *ids["sops"],
    ]
    for f in out.iterdir():
        data = f.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"{s} leaked into {f.name}"

    read = [pydicom.dcmread(out / f"anon-{i}.dcm") for i in range(3)]
    assert len({str(d.StudyInstanceUID) for d in read}) == 1
    assert len({str(d.SeriesInstanceUID) for d in read}) == 1
    assert len({str(d.SOPInstanceUID) for d in read}) == 3
    assert all(str(d.file_meta.MediaStorageSOPInstanceUID) == str(d.SOPInstanceUID) for d in read)
    assert str(read[0].StudyInstanceUID).startswith("2.25.")
    assert read[0].ReferencedStudySequence[0].ReferencedSOPInstanceUID == read[0].StudyInstanceUID
    assert read[0].PatientName == "ANONYMOUS" and read[0].PatientSex == "M"

    s = result.summaries[0]
    assert s.modality == "CT" and s.body_part == "CHEST" and s.stats and s.stats.rows == 32
    assert 300 < s.stats.mean < 500
    png = Path(s.preview).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "Zhang" not in s.text() and "CT of CHEST" in s.text()

    # A second run with the same salt maps the same originals to the same UIDs.
    again = intake([src], tmp_path / "out2", UidMap(b"fixed-salt"))
    assert pydicom.dcmread(again.summaries[0].deidentified).StudyInstanceUID == read[0].StudyInstanceUID


def test_bad_items_are_reported_and_the_rest_proceeds(tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    study, series = generate_uid(), generate_uid()
    make_dicom(src / "a_good.dcm", study, series, 0)
    make_dicom(src / "b_nopixels.dcm", study, series, 1, pixels=False)
    make_dicom(src / "c_jpeg.dcm", study, series, 2, transfer_syntax=JPEGBaseline8Bit)
    (src / "d_notes.txt").write_text("this is not DICOM")
    result = intake([src], tmp_path / "out")
    assert len(result.summaries) == 3
    good, nopix, jpeg = result.summaries
    assert good.stats is not None and good.preview
    assert nopix.stats is None and nopix.note == "no pixel data"
    assert jpeg.stats is None and "not decoded" in jpeg.note
    messages = [e.message for e in result.errors]
    assert any("not a readable DICOM" in m for m in messages)
    assert any("not decoded" in m for m in messages)
