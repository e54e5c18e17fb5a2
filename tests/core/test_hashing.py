import pytest

from graywsgi.core.hashing import bucket, fnv1a_32

# Published FNV-1a 32-bit test vectors (Fowler/Noll/Vo reference test suite,
# as used by Go's hash/fnv tests).
VECTORS = [
    (b"", 0x811C9DC5),
    (b"a", 0xE40C292C),
    (b"ab", 0x4D2505CA),
    (b"abc", 0x1A47E90B),
    (b"b", 0xE70C2DE5),
    (b"c", 0xE60C2C52),
    (b"d", 0xE10C2473),
    (b"e", 0xE00C22E0),
    (b"f", 0xE30C2799),
    (b"fo", 0x6222E842),
    (b"foo", 0xA9F37ED7),
    (b"foob", 0x3F5076EF),
    (b"fooba", 0x39AAA18A),
    (b"foobar", 0xBF9CF968),
    (b"\x00", 0x050C5D1F),
    (b"a\x00", 0x2B24D044),
    (b"foobar\x00", 0x0C1C9EB8),
    (b"chongo was here!\n", 0xD49930D5),
]


@pytest.mark.parametrize("data, expected", [pytest.param(d, e, id=repr(d)) for d, e in VECTORS])
def test_published_vectors(data: bytes, expected: int) -> None:
    assert fnv1a_32(data) == expected


def test_str_is_hashed_as_utf8() -> None:
    assert fnv1a_32("Zürich") == fnv1a_32("Zürich".encode("utf-8"))
    assert fnv1a_32("Zürich") != fnv1a_32("Zürich".encode("latin-1"))


def test_result_is_32_bit() -> None:
    for n in range(2000):
        assert 0 <= fnv1a_32(f"user-{n}") < 2**32


def test_bucket_is_hash_mod_modulus() -> None:
    assert bucket(b"foobar") == 0xBF9CF968 % 100
    assert bucket(b"foobar", modulus=7) == 0xBF9CF968 % 7
    assert bucket("foobar", modulus=1) == 0


def test_bucket_rejects_non_positive_modulus() -> None:
    with pytest.raises(ValueError, match="modulus"):
        bucket(b"x", modulus=0)


def test_seed_gateway_rule_share() -> None:
    # The Go gateway's rule fnv32a(id) % 100 < 15 selects close to 15 % of
    # ids; with 20,000 ids the standard deviation is ~0.25 %.
    ids = [f"user-{n}" for n in range(20_000)]
    share = sum(fnv1a_32(i) % 100 < 15 for i in ids) / len(ids)
    assert 0.14 < share < 0.16
