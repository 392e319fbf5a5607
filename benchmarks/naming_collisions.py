"""Environment names of many long branch names that fold to one prefix: collisions and speed.

    python benchmarks/naming_collisions.py [--names 1000000]

Every name is cut to the same readable prefix, so only the hash suffix tells them apart.
Prints how many names shared an environment (expected: none), the birthday-bound chance of
any collision at this count, and the time per name against hashing alone (the baseline).
"""

from __future__ import annotations

import argparse
import hashlib
import time

from devmesh.naming import HASH_LEN, env_name

PREFIX = "feature/add-a-very-long-descriptive-branch-name-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1_000_000)
    n = parser.parse_args().names

    started = time.perf_counter()
    for i in range(n):
        hashlib.sha256(f"{PREFIX}{i}".encode()).hexdigest()
    hashing = time.perf_counter() - started

    seen: dict[str, str] = {}
    shared = 0
    started = time.perf_counter()
    for i in range(n):
        branch = f"{PREFIX}{i}"
        if seen.setdefault(env_name(branch), branch) != branch:
            shared += 1
    naming = time.perf_counter() - started

    bits = HASH_LEN * 4
    print(f"names: {n:,}  distinct environments: {len(seen):,}  names sharing one: {shared}")
    print(f"hash: {bits} bits; chance of any collision at this count (n²/2^{bits + 1}): {n * n / 2 ** (bits + 1):.2e}")
    print(f"env_name: {naming / n * 1e6:.2f} µs a name; sha256 alone: {hashing / n * 1e6:.2f} µs "
          f"(ratio {naming / hashing:.1f}x)")


if __name__ == "__main__":
    main()
