"""FHIR R4 read API over the audit log (``router`` in ``services.fhir.routes``)."""
