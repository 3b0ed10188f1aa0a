"""The CPU's energy counter on Linux: RAPL through the powercap interface.

Intel CPUs since Sandy Bridge (and AMD's since Zen, through the same ``intel-rapl`` driver)
count the energy their packages use; Linux shows each package as a powercap zone,
``/sys/class/powercap/intel-rapl:N`` (name ``package-N``), whose ``energy_uj`` is a
microjoule counter that wraps at ``max_energy_range_uj`` and updates about every
millisecond. The count is the whole package's: every core, other processes included,
so it is meant for a quiet machine. Since Linux 5.10 ``energy_uj`` is readable by root only
(the PLATYPUS side channel); most virtual machines expose no zone at all.

:func:`unavailable` says why there is no usable counter (checked while a suite is validated);
:class:`RaplCounter` reads the packages' sum in joules, wrap-arounds included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

POWERCAP_ROOT = Path("/sys/class/powercap")
"""Where the powercap zones are (a test points it at a folder of its own)."""


@dataclass(frozen=True)
class Zone:
    """One package's RAPL zone."""

    path: Path
    name: str
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def packages(root: Path | None = None) -> list[Zone]:
    """The package zones (``intel-rapl:N``, not their ``intel-rapl:N:M`` subzones: cores, DRAM)."""
    base = POWERCAP_ROOT if root is None else root
    zones = []
    for path in sorted(base.glob("intel-rapl:*")):
        if path.name.count(":") != 1 or not (path / "energy_uj").exists():
            continue
        name_file = path / "name"
        name = name_file.read_text().strip() if name_file.exists() else path.name
        if not name.startswith("package"):
            continue
        range_file = path / "max_energy_range_uj"
        max_range = int(range_file.read_text().strip()) if range_file.exists() else 2**32
        zones.append(Zone(path, name, max_range))
    return zones


def unavailable(root: Path | None = None) -> str | None:
    """Why this machine has no readable RAPL package counter, or None."""
    base = POWERCAP_ROOT if root is None else root
    zones = packages(base)
    if not zones:
        return (f"there is no RAPL energy counter on this CPU ({base}/intel-rapl:*/energy_uj: none; virtual machines "
                "seldom expose one, and the intel_rapl_common module must be loaded)")
    for zone in zones:
        try:
            zone.read_uj()
        except PermissionError:
            return (f"the RAPL energy counter {zone.path / 'energy_uj'} is readable by root only (since Linux 5.10): "
                    f"run as root, or allow it with sudo chmod o+r {base}/intel-rapl:*/energy_uj")
        except (OSError, ValueError) as exc:
            return f"the RAPL energy counter {zone.path / 'energy_uj'} cannot be read ({exc})"
    return None


class RaplCounter:
    """The CPU packages' energy in joules since the counter was made (wrap-arounds counted)."""

    resolution = "RAPL updates about every 1 ms"

    def __init__(self, root: Path | None = None) -> None:
        self.zones = packages(root)
        if not self.zones:
            raise RuntimeError(unavailable(root) or "no RAPL package zone")
        self.name = (f"RAPL package energy ({', '.join(z.name for z in self.zones)}): the whole CPU, "
                     "other processes included")
        self._last = [z.read_uj() for z in self.zones]
        self._total_uj = 0

    def read_j(self) -> float:
        for i, zone in enumerate(self.zones):
            now = zone.read_uj()
            delta = now - self._last[i]
            if delta < 0:  # wrapped at max_energy_range_uj
                delta += zone.max_range_uj + 1
            self._total_uj += delta
            self._last[i] = now
        return self._total_uj / 1e6
