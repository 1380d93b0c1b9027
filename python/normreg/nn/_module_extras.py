"""Methods of :class:`~normreg.nn.Module` on its members by name, as PyTorch's:
``register_buffer``, ``named_buffers`` and ``buffers``.

``Module`` inherits them from :class:`ModuleExtras` (this module cannot import
``nn.parameter``, which imports it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _validation as V


def _own_buffers(module: ModuleExtras) -> Iterator[tuple[str, Any]]:
    """(name, buffer) of each buffer ``module`` holds itself, in the order of registration."""
    return ((name, getattr(module, name)) for name in getattr(module, "_buffer_names", ()))


class ModuleExtras:
    """PyTorch's ``nn.Module`` methods on members by name (see the module's docstring);
    :class:`~normreg.nn.Module` is the class to subclass."""

    if TYPE_CHECKING:  # Module's, which this class cannot import
        _buffer_names: list[str]

        def named_modules(
            self, prefix: str = "", remove_duplicate: bool = True
        ) -> Iterator[tuple[str, Any]]: ...

    # -- registration --------------------------------------------------------------------

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """Keep ``value`` (an ndarray or None) as state that is saved but not trained.

        Assigning to a registered buffer later (``bn.running_mean = arr``) checks the new
        value against the current one: a different shape is a ValueError and a different
        dtype a TypeError, naming the buffer; the module keeps (and updates in place) the
        array given, copied only if it is not C-contiguous and writeable. As PyTorch's: the name
        a str without "." (TypeError, KeyError), not an attribute that is not a buffer
        (KeyError), the value an ndarray or None (TypeError)."""
        where = f"{type(self).__name__}.register_buffer"
        if not isinstance(name, str):
            raise TypeError(f"{where}: the name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{where}: a buffer name must be non-empty and hold no '.', got {name!r}")
        if name not in self._buffer_names and hasattr(self, name):
            raise KeyError(f"{where}: attribute {name!r} already exists")
        if value is not None and not isinstance(value, np.ndarray):
            raise TypeError(
                f"{where}: buffer {name!r} must be an ndarray or None, got {type(value).__name__}"
            )
        object.__setattr__(self, name, value)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    # -- members -------------------------------------------------------------------------

    def _named_members(
        self,
        own: Callable[[Any], Iterable[tuple[str, Any]]],
        prefix: str,
        recurse: bool,
        remove_duplicate: bool,
        method: str,
    ) -> Iterator[tuple[str, Any]]:
        """(dotted name, member) for the members ``own(module)`` gives of this module, then
        (``recurse``) of each sub-module; None left out, each member once (its first name)
        unless ``remove_duplicate=False``: PyTorch's ``_named_members``."""
        where = f"{type(self).__name__}.{method}"
        recurse = V.boolean(recurse, "recurse", where)
        remove_duplicate = V.boolean(remove_duplicate, "remove_duplicate", where)
        modules = self.named_modules(prefix, remove_duplicate) if recurse else iter([(prefix, self)])
        seen: set[int] = set()
        for mod_name, mod in modules:
            for name, value in own(mod):
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield (f"{mod_name}.{name}" if mod_name else name), value

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, np.ndarray]]:
        """(name, buffer) pairs: this module's own, in the order they were registered, then
        (``recurse``) each sub-module's, dotted names; a buffer set to None left out; each
        array once (its first name) unless ``remove_duplicate=False``, as PyTorch's."""
        return self._named_members(_own_buffers, prefix, recurse, remove_duplicate, "named_buffers")

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        """An iterator over the buffers of ``named_buffers(recurse=recurse)``, each array
        once, as PyTorch's."""
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf
