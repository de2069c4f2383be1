"""Retention policies and legal holds (the deletion task itself lives in ``workers.retention``)."""
