import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from workers.transfer.errors import BadRequest, ManifestConflict
from workers.transfer.manifest import (
    FileDecl,
    FinalFile,
    FinalManifest,
    ManifestDecl,
    check_relpath,
    chunk_count,
    chunk_length,
    merge_decl,
)

MiB = 1024 * 1024


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a\x00b",
        "a\nb",
        "..",
        "C:evil",
        "a\\b",
        ".hcc-journal",
        "x" * 300,
    ],
)
def test_unsafe_names_are_refused(bad):
    with pytest.raises(BadRequest):
        check_relpath(bad)


@pytest.mark.parametrize("good", ["disk1.vmdk", "vm.ovf", "sub/disk-2.vmdk", "a..b", ".x"])
def test_safe_names_pass(good):
    assert check_relpath(good) == good


def test_unsafe_name_in_a_declaration_fails_validation():
    with pytest.raises(ValidationError):
        FileDecl(path="../../etc/shadow", size=1)


@given(size=st.integers(0, 10**12), cb=st.integers(64 * 1024, 256 * MiB))
def test_chunk_lengths_add_up_to_the_size(size, cb):
    n = chunk_count(size, cb)
    if n:
        assert chunk_length(size, cb, n - 1) + (n - 1) * cb == size
        assert 0 < chunk_length(size, cb, n - 1) <= cb
    assert n * cb >= size > (n - 1) * cb or (size == 0 and n == 0)


def test_chunk_past_the_end_is_an_error():
    with pytest.raises(ValueError, match="past the end"):
        chunk_length(10, 4, 3)
    assert chunk_length(None, 4, 99) == 4


def _decl(*files: tuple[str, int | None], cb: int = 8 * MiB) -> ManifestDecl:
    return ManifestDecl(chunk_bytes=cb, files=tuple(FileDecl(path=p, size=s) for p, s in files))


def test_merge_appends_new_files_and_learns_sizes():
    stored = _decl(("a", None), ("b", 5))
    merged = merge_decl(stored, _decl(("c", 1), ("a", 100)))
    assert [(f.path, f.size) for f in merged.files] == [("a", 100), ("b", 5), ("c", 1)]


def test_merge_keeps_a_known_size_when_the_new_one_is_unknown():
    merged = merge_decl(_decl(("a", 7)), _decl(("a", None)))
    assert merged.files[0].size == 7


@pytest.mark.parametrize(
    "new",
    [
        _decl(("a", 8)),
        _decl(("a", 7), cb=4 * MiB),
    ],
)
def test_conflicting_manifest_is_a_conflict(new):
    with pytest.raises(ManifestConflict):
        merge_decl(_decl(("a", 7)), new)


def test_duplicate_files_are_bad_requests():
    with pytest.raises(BadRequest):
        merge_decl(None, _decl(("a", 1), ("a", 1)))


@given(
    sizes=st.lists(st.one_of(st.none(), st.integers(0, 10**9)), min_size=1, max_size=6),
    order=st.randoms(use_true_random=False),
)
def test_merging_the_same_files_in_any_order_keeps_positions(sizes, order):
    files = [(f"f{i}", s) for i, s in enumerate(sizes)]
    stored = merge_decl(None, _decl(*files))
    shuffled = files[:]
    order.shuffle(shuffled)
    merged = merge_decl(stored, _decl(*shuffled))
    assert [f.path for f in merged.files] == [p for p, _ in files]


def test_final_manifest_validates_hashes_and_shape():
    with pytest.raises(ValidationError):
        FinalFile(path="a", size=1, sha256="0" * 64, chunks=("nothex",))
    final = FinalManifest(
        chunk_bytes=64 * 1024,
        files=(FinalFile(path="a", size=64 * 1024 + 1, sha256="0" * 64, chunks=("zero",)),),
    )
    with pytest.raises(BadRequest):
        final.check_shape()
    assert final.as_decl().files[0].size == 64 * 1024 + 1


def test_a_file_cannot_also_be_a_folder():
    with pytest.raises(BadRequest, match="inside the file"):
        merge_decl(None, _decl(("a", 1), ("a/b", 1)))
    stored = merge_decl(None, _decl(("a/b/c", 1)))
    with pytest.raises(BadRequest):
        merge_decl(stored, _decl(("a/b", 1)))
