"""Keyed UID consistency across a study, video round trip, STOW-RS helpers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_helpers import VIDEO_PHOTO, invert, load_photo, video_frames, write_video_photo, write_vl_photo
from pydicom.uid import generate_uid

from services.dicom import (
    DeidKeys,
    DeidOptions,
    DicomError,
    FailedInstance,
    FailureReason,
    InMemoryUidMapper,
    StoredInstance,
    StowError,
    build_stow_response,
    check_iod,
    iter_rgb_frames,
    keyed_uid,
    mask_dicom,
    parse_multipart_related,
    pixel_info,
    read_dicom,
    stow_http_status,
)
from services.dicom.validation import validate_iod_file

KEYS = DeidKeys.derive(b"uid-test-master-key", "record-7")
EXTENDED_OK = {"General: (0020,0052) TagUnexpected"}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, pydicom.Dataset]]:
    """Three instances of one study in two series."""
    d = tmp_path_factory.mktemp("study")
    rgb = load_photo("colin_powell/1.jpg", 96)
    study_uid, s1, s2 = generate_uid(), generate_uid(), generate_uid()
    out = []
    for i, series in enumerate([s1, s1, s2]):
        p = d / f"{i}.dcm"
        out.append((p, write_vl_photo(p, rgb, study_uid=study_uid, series_uid=series)))
    return out


def _mask_study(study: list, tmp: Path, key: bytes) -> tuple[list[pydicom.Dataset], InMemoryUidMapper]:
    mapper = InMemoryUidMapper(key)
    outs = []
    for i, (p, _) in enumerate(study):
        dst = tmp / f"{key.decode()}-{i}.dcm"
        mask_dicom(p, dst, mask_frames=invert, options=DeidOptions(), keys=KEYS, uid_map=mapper)
        outs.append(pydicom.dcmread(dst))
    return outs, mapper


def test_uids_consistent_across_a_study(study: list, tmp_path: Path) -> None:
    a, mapper = _mask_study(study, tmp_path, b"key-A")
    a2, _ = _mask_study(study, tmp_path, b"key-A")
    b, _ = _mask_study(study, tmp_path, b"key-B")
    src = [ds for _, ds in study]
    assert len({ds.StudyInstanceUID for ds in a}) == 1
    assert a[0].StudyInstanceUID != src[0].StudyInstanceUID
    assert a[0].SeriesInstanceUID == a[1].SeriesInstanceUID != a[2].SeriesInstanceUID
    assert len({ds.SOPInstanceUID for ds in a}) == 3
    assert {ds.FrameOfReferenceUID for ds in a} == {keyed_uid(b"key-A", src[0].FrameOfReferenceUID)}
    for ds in a:
        assert ds.StudyInstanceUID.startswith("2.25.") and len(ds.SOPInstanceUID) <= 64
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    # Same key -> same mapping; another key -> different UIDs.
    assert [(x.StudyInstanceUID, x.SeriesInstanceUID, x.SOPInstanceUID) for x in a] == [
        (x.StudyInstanceUID, x.SeriesInstanceUID, x.SOPInstanceUID) for x in a2
    ]
    assert not {x.StudyInstanceUID for x in a} & {x.StudyInstanceUID for x in b}
    assert not {x.SOPInstanceUID for x in a} & {x.SOPInstanceUID for x in b}
    # The mapper recorded every pair; no original UID is in any output file.
    assert mapper.mapping[src[0].StudyInstanceUID] == a[0].StudyInstanceUID
    assert mapper.mapping[src[2].SOPInstanceUID] == a[2].SOPInstanceUID
    for ds in a:
        text = str(ds) + str(ds.file_meta)
        for original in mapper.mapping:
            assert original not in text


def test_video_photographic_round_trip(tmp_path: Path) -> None:
    frames, fps = video_frames("livep_d18.mp4", 12)
    src = tmp_path / "video.dcm"
    write_video_photo(src, frames, fps)
    dst = tmp_path / "masked.dcm"
    r = mask_dicom(
        src, dst, mask_frames=invert, options=DeidOptions(), keys=KEYS, uid_map=InMemoryUidMapper(b"v")
    )
    out = pydicom.dcmread(dst)
    assert r.sop_class_uid == VIDEO_PHOTO == out.SOPClassUID
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.102"
    assert out.NumberOfFrames == 12 == r.frames
    assert out.PhotometricInterpretation == "YBR_PARTIAL_420"
    assert out.LossyImageCompression == "01" and list(out.LossyImageCompressionMethod) == [
        "ISO_14496_10",
        "ISO_14496_10",
    ]
    decoded = list(iter_rgb_frames(read_dicom(dst)))
    assert len(decoded) == 12
    assert decoded[0].shape == frames[0].shape
    # The masked video is the inverse of the source (up to H.264 loss, twice).
    src_decoded = list(iter_rgb_frames(read_dicom(src)))
    err = np.abs(decoded[5].astype(int) - (255 - src_decoded[5].astype(int))).mean()
    assert err < 6
    info = pixel_info(read_dicom(dst))
    assert info.fps and abs(info.fps - fps) < 0.5
    assert check_iod(out) == []
    assert [p for p in validate_iod_file(dst) if p not in EXTENDED_OK] == []


def test_masker_returning_wrong_frame_count_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "x.dcm"
    write_vl_photo(p, np.zeros((16, 16, 3), np.uint8))

    def drop_all(frames, fps):  # type: ignore[no-untyped-def]
        for _ in frames:
            pass
        return iter(())

    with pytest.raises(DicomError, match="0 frames for 1 input"):
        mask_dicom(
            p,
            tmp_path / "y.dcm",
            mask_frames=drop_all,
            options=DeidOptions(),
            keys=KEYS,
            uid_map=InMemoryUidMapper(b"k"),
        )
    assert not (tmp_path / "y.dcm").exists()


def _multipart(parts: list[bytes], boundary: str = "XbOuNdArY") -> bytes:
    body = b"preamble to ignore\r\n"
    for data in parts:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


class _Trickle(io.RawIOBase):
    """A stream that returns at most 7 bytes per read, to exercise delimiter search across chunks."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._buf.read(min(7, size if size > 0 else 7))


def test_stow_multipart_with_one_corrupt_instance(study: list, tmp_path: Path) -> None:
    good = [p.read_bytes() for p, _ in study]
    corrupt = good[0][:300] + b"\xff" * 40  # truncated mid-header
    body = _multipart([good[0], corrupt, good[1], good[2]])
    ctype = 'multipart/related; type="application/dicom"; boundary=XbOuNdArY'
    stored, failed = [], []
    parts = list(parse_multipart_related(ctype, _Trickle(body)))
    assert len(parts) == 4 and all(p.content_type == "application/dicom" for p in parts)
    assert parts[0].read() == good[0] and parts[2].size == len(good[1])
    for part in parts:
        data = part.read()
        part.close()
        try:
            ds = read_dicom(data)
            stored.append(StoredInstance(str(ds.SOPClassUID), str(ds.SOPInstanceUID)))
        except DicomError:
            failed.append(FailedInstance(FailureReason.CANNOT_UNDERSTAND))
    assert len(stored) == 3 and len(failed) == 1
    resp = build_stow_response(stored, failed, retrieve_url="https://pacs.example/studies/1")
    assert [i.ReferencedSOPInstanceUID for i in resp.ReferencedSOPSequence] == [
        s.sop_instance_uid for s in stored
    ]
    assert resp.FailedSOPSequence[0].FailureReason == 0xC000
    js = resp.to_json_dict()
    assert js["00081199"]["vr"] == "SQ" and js["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert stow_http_status(stored, failed) == 202
    assert stow_http_status(stored, []) == 200
    assert stow_http_status([], failed) == 409
    assert stow_http_status([StoredInstance("1.2", "1.3", warning_reason=0xB000)], []) == 202


@pytest.mark.parametrize(
    ("ctype", "status"),
    [
        ("application/dicom", 415),
        ('multipart/related; type="application/dicom+json"; boundary=x', 415),
        ("multipart/form-data; boundary=x", 415),
        ('multipart/related; type="application/dicom"', 400),
    ],
)
def test_stow_rejects_wrong_media_types(ctype: str, status: int) -> None:
    with pytest.raises(StowError) as err:
        list(parse_multipart_related(ctype, io.BytesIO(b"")))
    assert err.value.status == status


def test_stow_bounds_and_truncation() -> None:
    from services.dicom import MultipartLimits

    ctype = 'multipart/related; type="application/dicom"; boundary=B'
    body = _multipart([b"x" * 5000], "B")
    with pytest.raises(StowError) as err:
        list(parse_multipart_related(ctype, io.BytesIO(body), MultipartLimits(max_part_bytes=1000)))
    assert err.value.status == 413
    with pytest.raises(StowError) as err:
        list(parse_multipart_related(ctype, io.BytesIO(body[:-10])))
    assert err.value.status == 400
