"""Argument checks, and the `arch` record that checkpoints store and `labkit.models.build` reads.
Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

from labkit.core import LabError


def check_int(name: str, value: object, minimum: int = 1, hint: str = "") -> None:
    """Raise a LabError unless `value` is an int (not a bool) >= `minimum`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise LabError(f"{name}={value!r}: expected an int >= {minimum}{hint}.")


class Rebuildable:
    """Mixin of a network with a `config` dict of its constructor's arguments and a registered `ARCH` name."""

    ARCH = ""
    config: dict

    @property
    def arch(self) -> dict:
        """What `labkit.models.build` needs to make this network again (with random weights)."""
        kwargs = {k: list(v) if isinstance(v, list) else v for k, v in self.config.items()}
        return {"name": self.ARCH, "kwargs": kwargs}
