"""De-identification after DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile (the subset of
attributes this intake keeps): identifying attributes removed or emptied, dates shifted off, UIDs remapped to
new 2.25 UIDs that stay consistent across a series (the same original UID always maps to the same new one)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pydicom.dataset import Dataset

# Tags replaced with a dummy value (type 1/2 attributes must stay present), emptied, or removed.
DUMMY = {"PatientName": "ANONYMOUS", "PatientID": "ANON"}
EMPTY = (
    "PatientBirthDate",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyTime",
    "SeriesTime",
    "AcquisitionTime",
    "ContentTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
)
REMOVE = (
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientBirthName",
    "PatientBirthTime",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "MilitaryRank",
    "EthnicGroup",
    "PatientComments",
    "MedicalRecordLocator",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "DeviceSerialNumber",
    "ImageComments",
    "AdditionalPatientHistory",
    "Occupation",
    "PatientInsurancePlanCodeSequence",
    "RequestAttributesSequence",
    "IssuerOfPatientID",
    "CountryOfResidence",
    "RegionOfResidence",
    "PatientState",
)
# Kept though quasi-identifying: clinically relevant and coarse (the profile's Retain Patient Characteristics).
KEPT = ("PatientSex", "PatientAge")


class UidMap:
    """Original UID -> new UID under a secret salt: consistent within a run (and across runs with one salt),
    irreversible without the salt."""

    def __init__(self, salt: bytes | None = None):
        self.salt = salt or secrets.token_bytes(16)
        self.seen: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        new = self.seen.get(uid)
        if new is None:
            digest = hmac.new(self.salt, uid.encode(), hashlib.sha256).digest()[:16]
            new = self.seen[uid] = "2.25." + str(int.from_bytes(digest, "big"))
        return new


def deidentify(ds: Dataset, uids: UidMap) -> Dataset:
    """Change `ds` in place (give it a copy) and return it."""
    for name, value in DUMMY.items():
        if name in ds:
            setattr(ds, name, value)
    for name in EMPTY:
        if name in ds:
            setattr(ds, name, "")
    for name in REMOVE:
        if name in ds:
            delattr(ds, name)
    ds.remove_private_tags()

    def remap(dataset: Dataset, elem) -> None:
        # Beyond the named tags: every date, time and person name anywhere (sequences too) is emptied.
        if elem.VR in ("DA", "DT", "TM") or (elem.VR == "PN" and elem.keyword != "PatientName"):
            elem.value = ""
            return
        if (
            elem.VR == "UI"
            and elem.value
            and elem.keyword
            not in ("SOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID", "ReferencedSOPClassUID")
        ):
            if elem.VM > 1:
                elem.value = [uids(str(v)) for v in elem.value]
            else:
                elem.value = uids(str(elem.value))

    ds.walk(remap)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = uids(str(meta.MediaStorageSOPInstanceUID))
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "PS3.15 E.1 Basic Profile (r1stack subset)"
    return ds
