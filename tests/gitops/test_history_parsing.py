"""History parsing as a property: any log text is read without a crash, ours is read back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from devmesh.gitops.history import parse_log
from devmesh.gitops.images import ImageRef
from devmesh.gitops.trailers import Promotion, Rollback, parse_trailers

_NAMES = st.from_regex(r"\A[a-z][a-z0-9-]{0,15}\Z")
_DIGESTS = st.from_regex(r"\A[0-9a-f]{64}\Z").map(lambda h: "sha256:" + h)
_SHAS = st.from_regex(r"\A[0-9a-f]{40}\Z")
_IMAGES = st.builds(ImageRef, st.just("127.0.0.1:5001/shop/api"), _DIGESTS)


def _record(sha: str, message: str) -> str:
    """One record as ``git log -z --format=<history's format>`` prints it."""
    subject, _, body = message.partition("\n\n")
    trailers = "\n".join(f"{k}: {v}" for k, v in parse_trailers(body.rsplit("\n\n", 1)[-1]).items())
    return "\x1f".join([sha, "Ada", "ada@example.test", "2025-05-02T10:14:07+02:00", subject, trailers, body])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\0")), max_size=6))
def test_any_log_text_is_read_without_a_crash(records: list[str]) -> None:
    for entry in parse_log("\0".join(records)):
        assert entry.service and entry.tier


@settings(max_examples=60, deadline=None)
@given(_NAMES, _NAMES, _IMAGES, st.none() | _IMAGES, _SHAS, _SHAS)
def test_a_promotion_and_its_plain_revert_are_read_back(
    service: str, tier: str, image: ImageRef, previous: ImageRef | None, first: str, second: str
) -> None:
    if first == second:
        return
    promotion = Promotion(service, tier, image, previous)
    revert = f'Revert "{promotion.message().splitlines()[0]}"\n\nThis reverts commit {first}.\n'
    entries = parse_log("\0".join([_record(second, revert), _record(first, promotion.message())]))
    assert [(e.kind, e.service, e.tier, e.image, e.previous) for e in entries] == [
        ("rollback", service, tier, previous, image),
        ("promote", service, tier, image, previous),
    ]
    assert entries[0].reverts == first


@settings(max_examples=40, deadline=None)
@given(_NAMES, _NAMES, _IMAGES, st.none() | _IMAGES, _SHAS, _SHAS)
def test_devmesh_rollbacks_are_read_from_their_trailers(
    service: str, tier: str, image: ImageRef, previous: ImageRef | None, first: str, second: str
) -> None:
    if first == second:
        return
    promotion = Promotion(service, tier, image, previous)
    back = Rollback(service, tier, previous, image, first, promotion.message().splitlines()[0])
    entries = parse_log("\0".join([_record(second, back.message()), _record(first, promotion.message())]))
    assert [(e.kind, e.reverts) for e in entries] == [("rollback", first), ("promote", None)]
    assert entries[0].image == previous and entries[0].previous == image


_TEXT = st.text(alphabet=st.characters(blacklist_characters="\0\x1f"), max_size=30)
_KEYS = st.sampled_from(
    ["Devmesh-Service", "Devmesh-Tier", "Devmesh-Image", "Devmesh-From", "Devmesh-Reverts", "Devmesh-Reason", "Other"]
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            _SHAS,
            _TEXT,
            st.lists(st.tuples(_KEYS, _TEXT | _DIGESTS | _SHAS), max_size=6),
            st.none() | _SHAS | st.from_regex(r"\A[0-9a-f]{7,12}\Z"),
        ),
        max_size=5,
    )
)
def test_hand_written_trailers_and_reverts_are_read_without_a_crash(
    commits: list[tuple[str, str, list[tuple[str, str]], str | None]]
) -> None:
    records = []
    for sha, subject, trailers, reverts in commits:
        block = "\n".join(f"{k}: {v}" for k, v in trailers)
        body = (f"This reverts commit {reverts}.\n\n" if reverts else "") + block
        records.append("\x1f".join([sha, "A", "a@b", "2025-05-02T10:14:07+02:00", subject, block, body]))
    for entry in parse_log("\0".join(records)):
        assert entry.kind in ("promote", "rollback") and entry.service is not None
