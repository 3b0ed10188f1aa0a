"""The caches callgrind simulates for ``estimated_cycles``, and the cycle estimate itself.

Why the caches are set, never detected: by default valgrind sizes its simulated caches from
what the processor reports (CPUID), and a virtual processor may report anything. The
development machine's reports a 320 MiB L3, which valgrind simulates as a 256 MiB
direct-mapped last level: nothing a model touches ever misses it, so memory traffic would
cost nothing, and a count taken on another machine would be simulated with other caches
and not comparable. The caches are therefore always given on valgrind's command line
(``--I1``, ``--D1``, ``--LL``), with :data:`DEFAULTS` unless a suite sets them, and the
caches valgrind says it simulated (the dump's ``desc:`` lines) are recorded in the run
file, among the settings two counts must share to be compared.

The estimate is iai-callgrind's: each access that hits L1 costs 1 cycle, each that misses
L1 and hits the last level 5, each that goes to memory 35 (:func:`estimate`). It is a
weighting of simulated events, not a prediction of a real core's time: its use is that a
change which adds memory traffic (a copy of a large activation) moves it by much more than
it moves the instruction count, as deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULTS = {"I1": "32768,8,64", "D1": "32768,8,64", "LL": "2097152,16,64"}
"""``size,associativity,line size`` in bytes, in valgrind's syntax. The L1s of a typical core:
32 KiB, 8-way, 64-byte lines (Intel from Skylake to Ice Lake, AMD Zen 1 to 4). The last level
(valgrind simulates two levels) is what one core has to itself: 2 MiB, 16-way, the private L2
of Intel's Golden Cove cores (Sapphire Rapids, Raptor Lake), about a core's share of a server
L3 (1.875 MiB per core on Sapphire Rapids). A large one would hold whole activations, and a
model's memory traffic would then cost as little as its arithmetic."""
LEVELS = tuple(DEFAULTS)
EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")
"""callgrind's events with ``--cache-sim=yes``: instruction fetches, data reads and writes;
their L1 misses; their last-level misses."""
LL_HIT_CYCLES, MEMORY_CYCLES = 5, 35
"""The cost of an access that misses L1 and hits the last level, and of one that misses both
(one that hits L1 costs 1): iai-callgrind's weights."""
MIN_LINE = 16
"""valgrind's smallest line size ("Cache line size is too small")."""


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class Cache:
    """One simulated cache: ``size`` bytes, ``associativity`` ways, ``line`` bytes per line."""

    size: int
    associativity: int
    line: int

    @classmethod
    def parse(cls, level: str, text: str) -> Cache:
        """``"32768,8,64"`` as valgrind's ``--I1``/``--D1``/``--LL`` take it, checked by valgrind's
        rules (a ValueError saying which one it breaks): the line size a power of two of at least
        16 bytes, the number of sets (size / (associativity x line)) a power of two."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"{level} must be 'size,associativity,line size' in bytes as valgrind's --{level} takes it "
                             f"(e.g. {DEFAULTS[level]!r}), got {text!r}")
        size, ways, line = (int(p) for p in parts)
        if not _power_of_two(line) or line < MIN_LINE:
            raise ValueError(f"{level} {text!r}: the line size must be a power of two of at least {MIN_LINE} bytes, "
                             f"got {line}")
        if ways < 1:
            raise ValueError(f"{level} {text!r}: the associativity must be at least 1, got {ways}")
        sets, left = divmod(size, ways * line)
        if left or not _power_of_two(sets):
            raise ValueError(f"{level} {text!r}: size / (associativity x line size) must be a power of two (valgrind "
                             f"simulates a power-of-two number of sets), got {size} / ({ways} x {line}) = "
                             f"{size / (ways * line):g}; e.g. {size_near(size, ways, line)},{ways},{line}")
        return cls(size, ways, line)

    def __str__(self) -> str:
        return f"{self.size},{self.associativity},{self.line}"


def size_near(size: int, ways: int, line: int) -> int:
    """The valid size nearest to ``size`` (at most it) for ``ways`` and ``line``: the suggestion
    in :meth:`Cache.parse`'s message."""
    sets = 1
    while sets * 2 * ways * line <= size:
        sets *= 2
    return sets * ways * line


@dataclass(frozen=True)
class CacheModel:
    """The three caches valgrind simulates."""

    I1: Cache  # valgrind's names (--I1, --D1, --LL)
    D1: Cache
    LL: Cache

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> CacheModel:
        """From a metric's options ``I1``, ``D1``, ``LL`` (ValueError if one is malformed)."""
        return cls(*(Cache.parse(level, str(options[level])) for level in LEVELS))

    def valgrind_options(self) -> tuple[str, ...]:
        return ("--cache-sim=yes", *(f"--{level}={getattr(self, level)}" for level in LEVELS))

    def __str__(self) -> str:
        return " ".join(f"{level}={getattr(self, level)}" for level in LEVELS)


def problems(options: Mapping[str, object]) -> list[str]:
    """What is wrong with the cache options ``I1``, ``D1``, ``LL`` (for a metric's ``check_options``)."""
    found = []
    for level in LEVELS:
        try:
            Cache.parse(level, str(options[level]))
        except ValueError as error:
            found.append(str(error))
    return found


def simulated(description: list[str]) -> str:
    """The caches a dump says valgrind simulated (its ``desc: I1 cache: ...`` lines), in one line:
    what is recorded, rather than what was asked for, so that the record is the simulation's."""
    caches = [line for line in description if " cache:" in line]
    if not caches:
        raise ValueError("the callgrind dump describes no simulated caches: was it made with --cache-sim=yes?")
    return "; ".join(caches)


def estimate(events: Mapping[str, float]) -> dict[str, float]:
    """``estimated_cycles``, ``cycles_l1_misses`` and ``cycles_ll_misses`` from callgrind's cache events:
    accesses = Ir + Dr + Dw, L1 misses = I1mr + D1mr + D1mw, last-level misses (memory accesses) =
    ILmr + DLmr + DLmw; cycles = (accesses - L1 misses) + 5 x (L1 misses - LL misses) + 35 x LL misses."""
    missing = [e for e in EVENTS if e not in events]
    if missing:
        raise ValueError(f"the callgrind dump has no {', '.join(missing)} events: was it made with --cache-sim=yes?")
    accesses = events["Ir"] + events["Dr"] + events["Dw"]
    l1 = events["I1mr"] + events["D1mr"] + events["D1mw"]
    ll = events["ILmr"] + events["DLmr"] + events["DLmw"]
    return {"estimated_cycles": (accesses - l1) + LL_HIT_CYCLES * (l1 - ll) + MEMORY_CYCLES * ll,
            "cycles_l1_misses": l1, "cycles_ll_misses": ll}
