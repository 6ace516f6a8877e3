"""Finished applications on the engine: financial transaction risk assessment and the two-stage clinical
assistant with DICOM intake."""
