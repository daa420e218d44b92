"""Time zones as schedules name them: an IANA name (`Europe/Berlin`), or a Windows name
as Azure ML's list of time zones writes them (`W. Europe Standard Time`), mapped to IANA
by CLDR's windowsZones table (as tzlocal ships it)."""

from __future__ import annotations

import difflib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from tzlocal.windows_tz import win_tz

# Names in Azure ML's list of time zones that CLDR's table does not hold, each with the
# Windows name CLDR has for the same zone: Windows renamed Turkey's and retired the others.
_AZURE_NAMES = {
    "Türkiye Standard Time": "Turkey Standard Time",
    "Kamchatka Standard Time": "Russia Time Zone 11",
    "Mid-Atlantic Standard Time": "UTC-02",
}


def zone(name: str) -> ZoneInfo:
    """The zone `name` stands for: a Windows name as Azure writes it, or an IANA name."""
    windows = _AZURE_NAMES.get(name, name)
    if windows in win_tz:
        return ZoneInfo(win_tz[windows])
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    message = (
        f"unknown time zone {name!r}: write an IANA name such as 'Europe/Berlin', or a "
        "Windows name as Azure ML lists them, such as 'W. Europe Standard Time'"
    )
    known = [*win_tz, *_AZURE_NAMES, *sorted(available_timezones())]
    close = difflib.get_close_matches(name, known, n=1)
    raise ValueError(f"{message} (did you mean {close[0]!r}?)" if close else message)
