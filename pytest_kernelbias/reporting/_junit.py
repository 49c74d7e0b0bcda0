"""The JUnit writer: what one audit test adds to pytest's JUnit XML, as flat properties a CI reader shows.

`kernel_audit_verdict` tells an audit that raised (`error: Class: message`) from one that found bias
(`fail`); each effect is one `kernel_audit[contrast | perturbation]` property with its numbers. Every
value passes `xml_safe`, so a control character in a name cannot make the file ill-formed.
"""

from __future__ import annotations

from typing import Mapping

from ._records import xml_safe


def junit_properties(record: Mapping) -> list[tuple[str, str]]:
    """The (name, value) properties of one audit's record (an errored audit's record has an `error`)."""
    error = record.get("error")
    if error:
        return [("kernel_audit_verdict", xml_safe(f"error: {error.get('class')}: {error.get('message')}"))]
    found = [("kernel_audit_verdict", xml_safe(str(record["verdict"])))]
    for row in record["effects"]:
        found.append((xml_safe(f"kernel_audit[{row['contrast']} | {row['perturbation']}]"),
                      f"effect={row['effect']:+.4f} ci=[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] "
                      f"p={row['p_value']:.4g} p_adj={row['p_adjusted']:.4g} verdict={row['verdict']}"))
    return found
