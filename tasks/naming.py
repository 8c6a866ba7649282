"""Names that become folder or file names: one check for products, maps, models, run keys.

A product type, a crop map's or model's name, a run key, a use case or a stage name ends up as
one path component under the data root (``{root}/{use_case}/{stage}/{run_key}/{product}``). A
value such as ``../../..`` or ``a/b`` would put (and, through an atomic folder swap, replace)
files outside the data root, so every such name passes :func:`safe_name` before it is joined to a
path.
"""

from __future__ import annotations

import re
from typing import Literal

from tasks.errors import EeflowError

NameKind = Literal["product", "map", "model", "run_key", "use_case", "stage", "tile", "name"]

#: 1-128 characters: letters, digits, '_', '.', '-', starting with a letter or a digit.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class UnsafeNameError(EeflowError, ValueError):
    """A name that becomes a path component is empty, too long or could escape its folder."""


def is_safe_name(value: object) -> bool:
    """Return whether ``value`` may be used as one path component (see :func:`safe_name`)."""
    return isinstance(value, str) and bool(SAFE_NAME.fullmatch(value)) and ".." not in value


def safe_name(kind: NameKind | str, value: object) -> str:
    """Return ``value`` unchanged when it is a safe single path component, else raise.

    Args:
        kind: what the name is (``product``, ``map``, ``model``, ``run_key`` ...), for the message.
        value: the name as given by a user, a config or a manifest.

    Raises:
        UnsafeNameError: the message names the kind, the bad value and the allowed form.

    """
    if is_safe_name(value):
        return str(value)
    raise UnsafeNameError(
        f"{kind} name {value!r} cannot be used: it becomes a folder or file name, so it must be "
        "1-128 letters, digits, '_', '.' or '-', start with a letter or digit and contain no "
        "'/', '\\', '..' or spaces (e.g. 'ice_chart', 'lstm_v2', '2018-06-18'); nothing was "
        "written"
    )
