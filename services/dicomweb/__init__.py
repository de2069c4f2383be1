"""DICOMweb (STOW-RS) for the ingestion service."""
