"""Branch name → environment name: stable, a DNS-1123 label of at most 40 characters, a hash
suffix whenever the name had to change, and never the same name for two branches."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from devmesh.errors import UserInputError
from devmesh.naming import (
    BASELINE_ENV,
    MAX_LEN,
    branch_name_problems,
    check_branch_name,
    detached_env_name,
    env_name,
    is_env_name,
)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HASHED = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?-[0-9a-f]{16}$")


def valid_label(name: str) -> bool:
    return len(name) <= MAX_LEN and bool(DNS1123_LABEL.match(name))


# --- examples ---------------------------------------------------------------------------


@pytest.mark.parametrize("branch", ["main", "feature-foo", "fix-42", "a", "0", "x" * 40])
def test_a_name_that_is_already_a_label_is_kept(branch: str) -> None:
    assert env_name(branch) == branch


def test_stable_across_calls_and_processes() -> None:
    here = env_name("feature/Foo")
    assert env_name("feature/Foo") == here
    code = "from devmesh.naming import env_name; print(env_name('feature/Foo'))"
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONHASHSEED": "123", "PYTHONPATH": str(repo)})
    assert done.stdout.strip() == here


def test_case_and_slash_variants_never_collide() -> None:
    names = {env_name(b) for b in ("feature/Foo", "feature-foo", "FEATURE/foo", "Feature/Foo", "feature/foo")}
    assert len(names) == 5
    assert env_name("feature-foo") == "feature-foo"
    for altered in ("feature/Foo", "FEATURE/foo", "Feature/Foo", "feature/foo"):
        name = env_name(altered)
        assert HASHED.match(name), name
        assert name.startswith("feature-foo-")


@pytest.mark.parametrize(
    "branch",
    [
        "Café/Crème",
        "ünïcödé",
        "日本語のブランチ",
        "🚀",
        "feature/🚀-launch",
        "x" * 200,
        "feature/" + "really-long-name-" * 12,
        "UPPER",
        "release/1.2.3",
        "a_b",
        "-".join(["part"] * 30),
    ],
)
def test_exotic_names_give_valid_hashed_labels(branch: str) -> None:
    name = env_name(branch)
    assert valid_label(name), name
    assert HASHED.match(name), name
    assert env_name(branch) == name


def test_unicode_is_folded_readably() -> None:
    assert env_name("Café").startswith("cafe-")
    assert env_name("release/1.2.3").startswith("release-1-2-3-")


def test_nothing_readable_left_still_gives_a_name() -> None:
    assert re.fullmatch(r"b-[0-9a-f]{16}", env_name("🚀"))
    assert env_name("🚀") != env_name("🛸")


def test_long_names_are_cut_to_40_with_the_hash() -> None:
    a, b = "x" * 200, "x" * 199
    assert len(env_name(a)) == MAX_LEN
    assert env_name(a) != env_name(b)
    assert len(env_name("a" * 41)) <= MAX_LEN


def test_the_baseline_branch_is_the_baseline_environment() -> None:
    assert env_name("main", baseline_branch="main") == BASELINE_ENV
    assert env_name("develop", baseline_branch="develop") == BASELINE_ENV
    assert env_name("main", baseline_branch="develop") == "main"


def test_a_branch_named_baseline_is_not_the_baseline() -> None:
    name = env_name("baseline", baseline_branch="main")
    assert name != BASELINE_ENV
    assert name.startswith("baseline-") and HASHED.match(name)
    # unless it is the configured baseline branch
    assert env_name("baseline", baseline_branch="baseline") == BASELINE_ENV


def test_a_branch_that_looks_like_an_altered_name_is_altered_too() -> None:
    """"feature-foo-" + the hash of "feature/Foo" must not be taken by a branch of that name."""
    lookalike = env_name("feature/Foo")
    assert env_name(lookalike) != lookalike
    assert env_name("fix-0123456789abcdef") != "fix-0123456789abcdef"
    assert env_name("fix-0123456789abcdef0") == "fix-0123456789abcdef0"  # 17 digits: not the shape
    assert env_name("fix-123456") == "fix-123456"  # a short number needs no hash


def test_detached_head() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert detached_env_name(sha) == "detached-0123456789ab"
    assert valid_label(detached_env_name(sha))
    assert detached_env_name("abcdef1") == "detached-abcdef1"
    # a branch that calls itself detached-… does not take a detached HEAD's name
    assert env_name("detached-0123456789ab") != "detached-0123456789ab"


@pytest.mark.parametrize("bad", ["", "HEAD^", "xyz", "0123456789ABCDEF", "abc12"])
def test_detached_head_needs_a_commit_id(bad: str) -> None:
    with pytest.raises(UserInputError, match="not a commit id"):
        detached_env_name(bad)


@pytest.mark.parametrize(
    ("branch", "message"),
    [
        ("", "branch name is empty"),
        ("   ", "branch name is empty"),
        ("feature..x", "'feature..x' is not a valid git branch name: contains '..'"),
        ("release.", "'release.' is not a valid git branch name: ends with '.'"),
        ("feature/", "'feature/' is not a valid git branch name: starts or ends with '/', "
                     "or has an empty part between slashes"),
        ("a//b", "'a//b' is not a valid git branch name: starts or ends with '/', "
                 "or has an empty part between slashes"),
        ("-x", "'-x' is not a valid git branch name: starts with '-'"),
        ("a b", "'a b' is not a valid git branch name: contains ' '"),
        ("a~1", "'a~1' is not a valid git branch name: contains '~'"),
        ("x.lock", "'x.lock' is not a valid git branch name: has a part that starts with '.' "
                   "or ends with '.lock'"),
        ("a/.hidden", "'a/.hidden' is not a valid git branch name: has a part that starts "
                      "with '.' or ends with '.lock'"),
        ("a@{1}", "'a@{1}' is not a valid git branch name: contains '@{' or is '@'"),
        ("tab\there", "'tab\\there' is not a valid git branch name: contains a control character"),
        ("HEAD", "'HEAD' is not a valid git branch name: 'HEAD' names the current commit, "
                 "not a branch (a detached HEAD?)"),
        ("x..y.", "'x..y.' is not a valid git branch name: contains '..'; ends with '.'"),
    ],
)
def test_invalid_names_are_refused_clearly(branch: str, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        env_name(branch)
    assert str(caught.value) == message
    assert caught.value.exit_code == 2


def test_empty_name_has_a_hint() -> None:
    with pytest.raises(UserInputError) as caught:
        check_branch_name("")
    assert caught.value.hint and "--branch" in caught.value.hint


def test_is_env_name() -> None:
    assert is_env_name("feature-foo")
    assert not is_env_name("Feature")
    assert not is_env_name("x" * 41)
    assert not is_env_name("-x")


# --- properties -------------------------------------------------------------------------

# Characters git allows in branch names, weighted towards the ones that force a change, plus
# a few it refuses so the generator also explores the edges.
_PART_CHARS = st.sampled_from(
    list("abcxyz019-_.") + list("ABCZ") + ["é", "ß", "日", "🚀", "@", "+", "=", "#", "%"]
)
_PART = st.text(_PART_CHARS, min_size=1, max_size=20)
_BRANCH = st.lists(_PART, min_size=1, max_size=4).map("/".join)


def _valid(branch: str) -> bool:
    return not branch_name_problems(branch)


@settings(max_examples=400, suppress_health_check=[HealthCheck.filter_too_much])
@given(_BRANCH)
def test_any_valid_branch_gives_a_valid_label(branch: str) -> None:
    assume(_valid(branch))
    name = env_name(branch)
    assert valid_label(name), (branch, name)
    assert is_env_name(name)
    assert name != BASELINE_ENV
    assert env_name(branch) == name
    # the name is kept exactly when nothing had to change
    if name == branch:
        assert valid_label(branch)
    else:
        assert HASHED.match(name), (branch, name)


@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.sets(_BRANCH, min_size=2, max_size=25))
def test_distinct_branches_get_distinct_names(branches: set[str]) -> None:
    valid = {b for b in branches if _valid(b)}
    assume(len(valid) >= 2)
    names = {env_name(b) for b in valid}
    assert len(names) == len(valid)


@settings(max_examples=200, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.sampled_from(["feature", "Feature", "FEATURE", "fix", "Fix"]),
       st.sampled_from(["/", "-", "_", "."]),
       st.sampled_from(["foo", "Foo", "FOO", "bar-1", "Bar-1"]))
def test_spellings_of_one_name_never_collide(a: str, sep: str, b: str) -> None:
    variants = {f"{a}{sep}{b}", f"{a.lower()}-{b.lower()}", f"{a.upper()}/{b}"}
    assert len({env_name(v) for v in variants}) == len(variants)


@settings(max_examples=150, deadline=None)
@given(_BRANCH)
def test_refuses_exactly_what_git_refuses(branch: str) -> None:
    """Compared with ``git check-ref-format --branch`` itself."""
    assume(branch != "@")  # git expands a lone '@' to HEAD; as a branch name it is refused
    git_ok = subprocess.run(["git", "check-ref-format", "--branch", branch],
                            capture_output=True).returncode == 0
    assert _valid(branch) == git_ok, branch


def test_git_refusals_we_know_by_name() -> None:
    for branch in ("a..b", "x.lock", "a//b", "a.", "-x", "a b", "a\\b", "HEAD"):
        git_ok = subprocess.run(["git", "check-ref-format", "--branch", branch],
                                capture_output=True).returncode == 0
        assert not git_ok and not _valid(branch), branch


def test_a_trailing_newline_is_not_an_environment_name() -> None:
    assert not is_env_name("feature-foo\n")


# --- at scale ---------------------------------------------------------------------------


def test_long_names_cut_to_one_prefix_never_share_an_environment() -> None:
    """Every one of these is cut to the same 23 characters, so the hash alone tells them apart.

    With 24 bits of hash two of these shared an environment after 5,384 names (about 2,300
    pairs would among these 200,000); with 64 bits a collision among a million is about a 1 in
    37 million chance (n²/2⁶⁵). ``benchmarks/naming_collisions.py`` runs the million.
    """
    prefix = "feature/add-a-very-long-descriptive-branch-name-"
    seen: dict[str, str] = {}
    for i in range(200_000):
        branch = f"{prefix}{i}"
        name = env_name(branch)
        assert len(name) <= MAX_LEN
        other = seen.setdefault(name, branch)
        assert other == branch, f"{other!r} and {branch!r} share {name!r}"
    assert len({n.rsplit("-", 1)[0] for n in seen}) == 1  # one prefix: only the hash differs


def test_the_two_branches_that_once_collided_no_longer_do() -> None:
    a = "feature/add-a-very-long-descriptive-branch-name-3677"
    b = "feature/add-a-very-long-descriptive-branch-name-5383"
    assert env_name(a) != env_name(b)
