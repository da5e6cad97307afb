"""The ``--help`` text of the sampler options of ``padis3d reconstruct``: what a 2D run takes when the
option is not given, read from the one table of defaults (:mod:`padis3d.solvers.defaults`) at parse
time, so the help cannot drift from what runs.

With ``--budget cpu`` (the default) or ``paper`` a 2D task takes every sampler setting from that
table for its task and sampler; the parser's own default (shown as ``%(default)s``) is what the
volume tasks and ``--budget custom`` use.
"""

from __future__ import annotations

from typing import Any

SAMPLERS = ("padis", "langevin", "pc", "ddnm", "dds")
TASKS = ("ct20", "ct8", "deblur", "sr4")
BUDGETS = ("cpu", "paper")

USED_BY = {  # which samplers read a field (padis3d.solvers.reconstruct's per-sampler options)
    "inner": ("padis", "langevin", "pc", "ddnm"), "zeta": ("padis", "langevin", "pc"),
    "epsilon": ("padis", "langevin", "ddnm"), "eta": ("dds",), "rho": ("dds",), "cg_iters": ("ddnm", "dds"), "tv": ("dds",),
}
TASK_WORDS = {"ct20": "CT", "ct8": "CT with 8 views or fewer", "deblur": "deblur", "sr4": "sr"}


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _per_task(field: str, sampler: str, budget: str) -> str:
    """``v`` when every task has the same value, else ``CT v1, CT with 8 views or fewer v2, ...``."""
    from padis3d.solvers.reconstruct import SamplerSettings

    values = {t: _value(getattr(SamplerSettings.for_task(t, sampler, budget), field)) for t in TASKS}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    if len({values[t] for t in TASKS if t != "ct8"}) == 1:  # only CT 8 differs
        return f"{values['ct20']} ({values['ct8']} for CT with 8 views or fewer)"
    if values["ct8"] == values["ct20"]:
        values.pop("ct8")
    return ", ".join(f"{TASK_WORDS[t]} {v}" for t, v in values.items())


def table_defaults(field: str) -> str:
    """The ``--budget`` table's values of ``field`` for the 2D tasks, e.g.
    ``cpu: padis/langevin/pc/ddnm 40, dds 50; paper: padis/langevin/pc/ddnm 100, dds 200``."""
    samplers = USED_BY.get(field, SAMPLERS)
    parts = []
    for budget in BUDGETS:
        groups: dict[str, list[str]] = {}
        for sampler in samplers:
            groups.setdefault(_per_task(field, sampler, budget), []).append(sampler)
        if len(groups) == 1:
            parts.append((budget, next(iter(groups))))
        else:
            parts.append((budget, ", ".join(f"{'/'.join(s)} {v}" for v, s in groups.items())))
    if parts[0][1] == parts[1][1]:
        return f"cpu and paper: {parts[0][1]}"
    return "; ".join(f"{b}: {text}" for b, text in parts)


def sampler_help(what: str, field: str) -> str:
    """Help text for a sampler option of ``padis3d reconstruct``: ``what`` it is, then its defaults
    (the volume tasks named only where the option acts on them, :data:`padis3d.cli.applicability.APPLIES`)."""
    from padis3d.cli.applicability import APPLIES

    others = ("the volume tasks and --budget custom" if set(APPLIES[field]) & {"ct3d-parallel", "denoise"}
              else "--budget custom")
    return (f"{what} (default for a 2D task: from --budget's table, padis3d/solvers/defaults.py, for the "
            f"task and sampler: {table_defaults(field)}; for {others}: %(default)s)")


__all__ = ["table_defaults", "sampler_help"]
