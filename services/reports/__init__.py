"""Audit exports with integrity, their offline verification, and per-record access reports."""
