"""ModuleList and ModuleDict: modules held in a list or a dict for another module's forward
to call (PyTorch's ``nn.ModuleList`` and ``nn.ModuleDict``), and the checks of positions,
names and entries that they share with :class:`~normreg.nn.Sequential`.

Their modules are children as any attribute's: ``parameters()``, ``state_dict()`` (keys
"0.weight" for a list, "key.weight" for a dict), ``train()``/``eval()``, ``zero_grad()``
and ``load_state_dict()`` reach them. They have no forward or backward of their own.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, overload

from .parameter import Module


def position(index: Any, n: int, where: str, *, slices: bool = False, insert: bool = False) -> int:
    """``index`` (an int; negative counts from the end) as a position in ``0..n-1``
    (``0..n`` for an insert); IndexError outside, as PyTorch's, and TypeError for what is
    not an int."""
    try:
        i = operator.index(index)
    except TypeError:
        kinds = "an int or a slice" if slices else "an int"
        raise TypeError(f"{where}: the index must be {kinds}, got {type(index).__name__}") from None
    if not -n <= i <= (n if insert else n - 1):
        raise IndexError(f"{where}: index {i} is out of range for {n} modules")
    return i + n if i < 0 else i


def entry(value: Any, where: str, what: str = "") -> Module:
    """``value`` if it is a Module; TypeError naming what was given otherwise."""
    if not isinstance(value, Module):
        expected = f"{what} must be a Module" if what else "expected a Module"
        raise TypeError(f"{where}: {expected}, got {type(value).__name__}")
    return value


def entries(modules: Any, where: str) -> list[Module]:
    """The modules of the iterable ``modules``, all checked before any is used."""
    if not isinstance(modules, Iterable):
        raise TypeError(f"{where}: expected an iterable of Modules, got {type(modules).__name__}")
    items = list(modules)
    for i, m in enumerate(items):
        entry(m, where, f"entry {i}")
    return items


def check_name(name: Any, where: str) -> None:
    """A child's name: a non-empty str without '.' (it joins the state_dict's keys)."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: a module's name must be a str, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{where}: a module's name must be non-empty and hold no '.', got {name!r}")


def _other_children(module: Module, store: str) -> Iterator[tuple[str, Module]]:
    """The children ``Module._child_items`` finds in attributes other than ``store``."""
    prefix = store + "."
    for name, child in Module._child_items(module):
        if not name.startswith(prefix):
            yield name, child


class _Holder(Module):
    """A container that only holds modules (PyTorch's ModuleList and ModuleDict): no
    forward or backward of its own, NotImplementedError saying how its modules are run."""

    #: how another module's forward calls the held modules
    _calling = ""

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} has no forward: it holds modules for another module's forward "
            f"to call ({self._calling})"
        )

    def backward(self, dy: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} has no backward: call the held modules' backwards in the "
            "reverse order of their forwards"
        )


class ModuleList(_Holder):
    """Modules in a list, named "0", "1", ... by their positions (after an insert or a
    deletion too), as PyTorch's: ``append``, ``extend``, ``insert``, ``pop``, indexing
    (negative from the end; a slice gives a ModuleList), ``ml[i] = m``, ``del ml[i]``,
    ``del ml[a:b]``, ``len``, ``iter``, ``+`` (a new ModuleList) and ``+=``. Every entry
    must be a Module (TypeError). It has no forward: the module holding it calls the
    modules (``for m in self.layers: x = m(x)``) and their backwards."""

    _calling = "for m in self.layers: x = m(x); Sequential runs layers in order"

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        self._items: list[Module] = []
        if modules is not None:
            self.extend(modules)

    def _child_items(self) -> Iterator[tuple[str, Module]]:
        for i, m in enumerate(self._items):
            yield str(i), m
        yield from _other_children(self, "_items")  # modules set as attributes (ml.extra = m)

    def _put_module(self, name: str, module: Any, where: str) -> None:
        """``add_module``: the name of a position ("0", ...) replaces its module, the next
        one ("2" in a list of 2) appends, as PyTorch's, which keeps a ModuleList's modules
        by those names; a name beyond is a KeyError. Another name sets an attribute, as
        ``ml.extra = m`` (PyTorch's would count it among the list's modules)."""
        if not (name.isascii() and name.isdigit() and str(int(name)) == name):
            super()._put_module(name, module, where)
            return
        i, n = int(name), len(self._items)
        if i > n:
            raise KeyError(
                f"{where}: a ModuleList of {n} modules names them '0' to '{n}' (appended), got {name!r}"
            )
        m = entry(module, where, f"module {name}")
        if i == n:
            self._items.append(m)
        else:
            self._items[i] = m

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> ModuleList: ...
    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return ModuleList(self._items[index])
        return self._items[position(index, len(self._items), "ModuleList", slices=True)]

    def __setitem__(self, index: int, module: Module) -> None:
        i = position(index, len(self._items), "ModuleList")
        self._items[i] = entry(module, "ModuleList", f"module {i}")

    def __delitem__(self, index: int | slice) -> None:
        if isinstance(index, slice):
            del self._items[index]
        else:
            del self._items[position(index, len(self._items), "ModuleList", slices=True)]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList(itertools.chain(self._items, entries(other, "ModuleList +")))

    def append(self, module: Module) -> ModuleList:
        self._items.append(entry(module, "ModuleList.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Append the modules of an iterable (all checked first: a bad entry adds none)."""
        self._items.extend(entries(modules, "ModuleList.extend"))
        return self

    def insert(self, index: int, module: Module) -> None:
        """Put ``module`` before position ``index`` (``-len <= index <= len``)."""
        i = position(index, len(self._items), "ModuleList.insert", insert=True)
        self._items.insert(i, entry(module, "ModuleList.insert"))

    def pop(self, index: int | slice) -> Any:
        """Remove the module at ``index`` and return it (a ModuleList for a slice)."""
        m = self[index]
        del self[index]
        return m


class ModuleDict(_Holder):
    """Modules by name, in insertion order, as PyTorch's: ``md[key]``, ``md[key] = m``
    (a key given again keeps its place), ``del md[key]``, ``key in md``, ``len``, ``iter``
    (the keys), ``keys()``, ``items()``, ``values()``, ``update(mapping or pairs)``,
    ``pop(key)``, ``clear()``; ``md.key`` reads an entry and ``md.key = m`` sets one (a
    Module set as an attribute is an entry in PyTorch too). The keys name the children
    (state_dict keys "key.weight"): a key must be a str (TypeError), non-empty, without '.'
    and not the name of an attribute such as ``training`` or ``keys`` (KeyError). Every
    value must be a Module (TypeError). It has no forward of its own."""

    _calling = "self.heads[name](x)"

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None) -> None:
        super().__init__()
        self._entries: dict[str, Module] = {}
        if modules is not None:
            self.update(modules)

    def _child_items(self) -> Iterator[tuple[str, Module]]:
        yield from self._entries.items()
        yield from _other_children(self, "_entries")

    def _check_key(self, key: Any, where: str) -> None:
        check_name(key, where)
        if key not in self._entries and hasattr(self, key):
            raise KeyError(f"{where}: {key!r} cannot be a key: attribute {key!r} already exists")

    def __getattr__(self, name: str) -> Module:
        # only for names that are not attributes: md.key is md[key] (as PyTorch's)
        entries = self.__dict__.get("_entries")
        if entries is not None and name in entries and not name.startswith("__"):
            return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        # md.key = module replaces or adds an entry, as PyTorch's (a Module set as an
        # attribute of a torch Module goes into its _modules, a ModuleDict's entries)
        entries = self.__dict__.get("_entries")
        if entries is not None and (
            name in entries
            or (isinstance(value, Module) and not name.startswith("_") and not hasattr(self, name))
        ):
            self[name] = value
            return
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        entries = self.__dict__.get("_entries")
        if entries is not None and name in entries:
            del entries[name]
        else:
            super().__delattr__(name)

    def _put_module(self, name: str, module: Any, where: str) -> None:
        """``add_module``: sets the entry ``name``, as PyTorch's (None is a TypeError: the
        entries are Modules); a module set as an attribute (``md._extra = m``) stays one."""
        if name in vars(self):
            super()._put_module(name, module, where)
        else:
            self._entries[name] = entry(module, where, f"the value of {name!r}")

    def __getitem__(self, key: str) -> Module:
        return self._entries[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self._check_key(key, "ModuleDict")
        self._entries[key] = entry(module, "ModuleDict", f"the value of {key!r}")

    def __delitem__(self, key: str) -> None:
        del self._entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def keys(self) -> KeysView[str]:
        return self._entries.keys()

    def items(self) -> ItemsView[str, Module]:
        return self._entries.items()

    def values(self) -> ValuesView[Module]:
        return self._entries.values()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Set the entries of a mapping (a dict, a ModuleDict) or of an iterable of (key,
        module) pairs, in their order; every pair is checked before any is set."""
        where = "ModuleDict.update"
        pairs: list[tuple[Any, Any]] = []
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = list(modules.items())
        elif isinstance(modules, Iterable):
            for j, element in enumerate(modules):
                pair = tuple(element) if isinstance(element, Iterable) else None
                if pair is None or len(pair) != 2:
                    given = f"length {len(pair)}" if pair is not None else type(element).__name__
                    error = TypeError if pair is None else ValueError
                    raise error(f"{where}: element {j} must be a (key, module) pair, got {given}")
                pairs.append(pair)
        else:
            kinds = "a mapping or an iterable of (key, module) pairs"
            raise TypeError(f"{where}: expected {kinds}, got {type(modules).__name__}")
        for key, m in pairs:
            self._check_key(key, where)
            entry(m, where, f"the value of {key!r}")
        for key, m in pairs:
            self._entries[key] = m

    def pop(self, key: str) -> Module:
        """Remove ``key`` and return its module (KeyError when absent)."""
        return self._entries.pop(key)

    def clear(self) -> None:
        self._entries.clear()
