"""The clinical assistant: DICOM intake with de-identification, triage (small model), diagnosis (large model)."""
