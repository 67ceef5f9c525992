import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.transfer.errors import ManifestConflict
from workers.transfer.ledger import (
    RECORD_BYTES,
    ChunkRecord,
    Ledger,
    decode_bitmap,
    decode_records,
    encode_bitmap,
    encode_record,
)
from workers.transfer.manifest import FileDecl, FinalFile, FinalManifest, ManifestDecl

records = st.builds(
    ChunkRecord,
    file_index=st.integers(0, 2**32 - 1),
    chunk_index=st.integers(0, 2**32 - 1),
    digest=st.binary(min_size=32, max_size=32),
    flags=st.integers(0, 255),
)


@given(st.lists(records, max_size=20), st.integers(0, RECORD_BYTES - 1))
def test_journal_replay_stops_at_a_torn_record(recs, cut):
    data = b"".join(encode_record(r) for r in recs)
    assert decode_records(data) == (recs, len(data))
    if recs:
        torn = data[: len(data) - cut] if cut else data
        got, valid = decode_records(torn)
        assert got == (recs if cut == 0 else recs[:-1])
        assert valid == len(got) * RECORD_BYTES


def test_flipped_bit_invalidates_the_record_and_the_rest():
    recs = [ChunkRecord(0, i, os.urandom(32)) for i in range(3)]
    data = bytearray(b"".join(encode_record(r) for r in recs))
    data[RECORD_BYTES + 5] ^= 1
    assert decode_records(bytes(data)) == (recs[:1], RECORD_BYTES)


@given(st.sets(st.integers(0, 5000)))
def test_bitmap_round_trip(held):
    n = max(held, default=-1) + 1
    assert decode_bitmap(encode_bitmap(held, n)) == held


CB = 64 * 1024
D = [bytes([i]) * 32 for i in range(4)]


def _ledger_and_decl() -> tuple[ManifestDecl, Ledger]:
    decl = ManifestDecl(chunk_bytes=CB, files=(FileDecl(path="a", size=3 * CB - 1),))
    ledger = Ledger.replay([ChunkRecord(0, 0, D[0]), ChunkRecord(0, 2, D[2])])
    return decl, ledger


def _final(chunks: tuple[str, ...]) -> FinalManifest:
    return FinalManifest(
        chunk_bytes=CB,
        files=(FinalFile(path="a", size=3 * CB - 1, sha256="0" * 64, chunks=chunks),),
    )


def test_held_bytes_and_bitmaps():
    decl, ledger = _ledger_and_decl()
    assert ledger.held_bytes(decl) == CB + CB - 1
    assert decode_bitmap(ledger.bitmaps(decl)["a"]) == {0, 2}


def test_final_manifest_with_everything_held_passes():
    decl, ledger = _ledger_and_decl()
    ledger.check_final(decl, _final((D[0].hex(), "zero", D[2].hex())))


@pytest.mark.parametrize(
    ("chunks", "why"),
    [
        ((D[0].hex(), D[1].hex(), D[2].hex()), "missing"),
        ((D[0].hex(), "zero", D[3].hex()), "hash differs"),
        (("zero", "zero", D[2].hex()), "declared zero"),
    ],
)
def test_final_manifest_problems_are_conflicts(chunks, why):
    decl, ledger = _ledger_and_decl()
    with pytest.raises(ManifestConflict, match=why):
        ledger.check_final(decl, _final(chunks))


def test_final_manifest_must_name_every_declared_file():
    decl, ledger = _ledger_and_decl()
    decl = decl.model_copy(update={"files": (*decl.files, FileDecl(path="b", size=0))})
    with pytest.raises(ManifestConflict, match="leaves out"):
        ledger.check_final(decl, _final((D[0].hex(), "zero", D[2].hex())))
