"""The form codes are compared in: no accents, no case, punctuation and runs of spaces as one."""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """``"  Côte d'Ivoire "`` and ``"COTE D IVOIRE"`` both become ``"cote d ivoire"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub(" ", bare.casefold()).strip()
