from hypothesis import given
from hypothesis import strategies as st

from workers.transfer.plan import SourceFile, all_done, next_chunk, wire_name
from workers.transfer.ratelimit import TokenBucket

CB = 10


def _drain(files: list[SourceFile]) -> list[tuple[str, int, int, int]]:
    seen: list[tuple[str, int, int, int]] = []
    while (job := next_chunk(files, CB)) is not None:
        seen.append((job.file.path, job.index, job.offset, job.length))
        job.file.next_index += 1
    return seen


@given(st.lists(st.integers(0, 95), min_size=1, max_size=5))
def test_complete_files_are_read_whole_in_order(sizes):
    files = [SourceFile(path=f"f{i}", observed_bytes=s, final_size=s) for i, s in enumerate(sizes)]
    seen = _drain(files)
    for i, s in enumerate(sizes):
        mine = [x for x in seen if x[0] == f"f{i}"]
        assert [x[1] for x in mine] == list(range(len(mine)))
        assert sum(x[3] for x in mine) == s
    assert all_done(files, CB, package_final=True)
    assert not all_done(files, CB, package_final=False)


@given(st.lists(st.integers(0, 200), min_size=1, max_size=8).map(sorted), st.integers(0, 9))
def test_growing_file_only_yields_whole_chunks_until_final(growth, tail):
    f = SourceFile(path="disk")
    got = []
    for observed in growth:
        f.observed_bytes = observed
        got += _drain([f])
        assert all(length == CB for _, _, _, length in got)
        assert f.next_index * CB <= observed
    final = (growth[-1] // CB) * CB + tail
    f.observed_bytes = f.final_size = max(final, growth[-1])
    got += _drain([f])
    assert sum(x[3] for x in got) == f.final_size
    assert all_done([f], CB, package_final=True)


def test_a_growing_file_does_not_block_the_next_complete_one():
    growing = SourceFile(path="a", observed_bytes=5)
    done = SourceFile(path="b", observed_bytes=15, final_size=15)
    assert [x[0] for x in _drain([growing, done])] == ["b", "b"]


def test_wire_name():
    assert wire_name("disk.vmdk.part", ".part") == ("disk.vmdk", True)
    assert wire_name("disk.vmdk", ".part") == ("disk.vmdk", False)
    assert wire_name(".part", ".part") == (".part", False)


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=50))
def test_token_bucket_never_exceeds_rate_plus_burst(sizes):
    bucket = TokenBucket(rate=1000.0, burst=500.0)
    now = 0.0
    sent = 0
    for n in sizes:
        now += bucket.reserve(n, now)
        sent += n
        assert sent <= 500 + 1000 * now + 1e-6
