"""Coverage-guided fuzz target (atheris/libFuzzer) for upload sniffing: ``models.media.sniff``.

The service sniffs the first chunk of every upload with it, before anything else looks at the bytes,
so it must take anything: never raise, always name a type, depend on the head only, and agree with
the service's wrapper. Run it bounded, as CI does (tests/hardening/test_fuzz_targets.py):

    .venv/bin/python fuzz/fuzz_sniff.py -max_total_time=30 -artifact_prefix=/tmp/ [SEED_DIR ...]
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from models.media.sniff import SNIFF_BYTES, MediaType, sniff
    from services.media.inspect import sniff_head


def test_one_input(data: bytes) -> None:
    found = sniff(data)
    if not isinstance(found, MediaType):
        raise AssertionError(f"sniff returned {found!r}")
    if sniff(data[:SNIFF_BYTES]) is not found:
        raise AssertionError("sniff depends on bytes past SNIFF_BYTES")
    if sniff(data + b"\0" * 64) is not found and len(data) >= SNIFF_BYTES:
        raise AssertionError("sniff depends on bytes past SNIFF_BYTES")
    wrapped = sniff_head(data)
    if wrapped.media_type is not found or wrapped.supported != found.supported:
        raise AssertionError("services.media.inspect disagrees with models.media.sniff")


def main(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
