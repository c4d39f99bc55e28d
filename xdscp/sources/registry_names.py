"""The name-clash rule's old address, kept while `merge.py` imports it from here: the rule is
`xdscp.model.NameClaims` (`model/names.py`)."""

from xdscp.model.names import NameClaims

__all__ = ["NameClaims"]
