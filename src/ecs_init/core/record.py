"""``@dataclass`` for the start path, without loading ``dataclasses``.

Importing ``dataclasses`` loads ``inspect`` (and with it ``ast``, ``dis``,
``tokenize``) and generates each class's methods with ``exec``: ~9 ms of
``start`` before the agent container is created. The value classes on that
path use only a small part of it: fields from annotations, defaults,
``field(default_factory=...)``, ``frozen=True``. This module does that part
with plain functions, and the type checker reads its ``dataclass`` and
``field`` as the standard ones (``TYPE_CHECKING``), so every class keeps the
standard typing. ``tests/unit/test_record.py`` holds the behaviour to the
standard module's: construction (positional, keyword, defaults, a fresh
factory value per instance, the errors), equality, ``repr``, hashing, and
frozen instances (``FrozenInstanceError``, an ``AttributeError``).

Not supported (and not used where this is imported): inheritance between
records, ``ClassVar``/``InitVar`` fields, ``field()`` options other than
``default``/``default_factory``, ``order``, ``slots``, ``kw_only``,
``__post_init__``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
else:
    _MISSING = object()

    class FrozenInstanceError(AttributeError):
        """Assigning to a field of a frozen record (as ``dataclasses.FrozenInstanceError``)."""

    class _Field:
        __slots__ = ("default", "factory")

        def __init__(self, default: object, factory: object) -> None:
            self.default = default
            self.factory = factory

    def field(*, default: object = _MISSING, default_factory: object = _MISSING) -> object:
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _Field(default, default_factory)

    def _make_init(cls: type, names: tuple, defaults: dict, factories: dict) -> object:
        count = len(names)
        known = frozenset(names)

        def __init__(self, *args, **kwargs):  # noqa: N807 - the method's own name
            if len(args) > count:
                took, given = count + 1, len(args) + 1
                raise TypeError(f"{cls.__name__}.__init__() takes {took} positional arguments but {given} were given")
            values = dict(zip(names, args))
            for key, value in kwargs.items():
                if key not in known:
                    raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument '{key}'")
                if key in values:
                    raise TypeError(f"{cls.__name__}.__init__() got multiple values for argument '{key}'")
                values[key] = value
            for name in names:
                if name in values:
                    value = values[name]
                elif name in factories:
                    value = factories[name]()
                elif name in defaults:
                    value = defaults[name]
                else:
                    missing = [repr(n) for n in names if n not in values and n not in defaults and n not in factories]
                    raise TypeError(f"{cls.__name__}.__init__() missing required argument: {', '.join(missing)}")
                object.__setattr__(self, name, value)

        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        return __init__

    def _process(cls: type, frozen: bool) -> type:
        annotations = cls.__dict__.get("__annotations__")
        if annotations is None:  # Python 3.14 computes them when asked
            annotations = getattr(cls, "__annotations__", {})
        names = tuple(annotations)
        defaults: dict = {}
        factories: dict = {}
        seen_default = False
        for name in names:
            value = cls.__dict__.get(name, _MISSING)
            if isinstance(value, _Field):
                if value.factory is not _MISSING:
                    factories[name] = value.factory
                    delattr(cls, name)
                elif value.default is not _MISSING:
                    defaults[name] = value.default
                    setattr(cls, name, value.default)
                else:  # field() with neither: a required field
                    delattr(cls, name)
            elif value is not _MISSING:
                defaults[name] = value
            if name in defaults or name in factories:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument '{name}' follows default argument")

        def values(self):
            return tuple(getattr(self, name) for name in names)

        def __eq__(self, other):  # noqa: N807
            if other.__class__ is self.__class__:
                return values(self) == values(other)
            return NotImplemented

        def __repr__(self):  # noqa: N807
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
            return f"{self.__class__.__qualname__}({shown})"

        # as @dataclass: a method the class body defines itself is kept
        own = cls.__dict__
        class_hash = own.get("__hash__", _MISSING)
        explicit_hash = not (class_hash is _MISSING or (class_hash is None and "__eq__" in own))
        if "__init__" not in own:
            cls.__init__ = _make_init(cls, names, defaults, factories)
        if "__repr__" not in own:
            cls.__repr__ = __repr__
        if "__eq__" not in own:
            cls.__eq__ = __eq__
        if frozen:

            def __setattr__(self, name, value):  # noqa: N807
                if type(self) is cls or name in names:
                    raise FrozenInstanceError(f"cannot assign to field {name!r}")
                object.__setattr__(self, name, value)

            def __delattr__(self, name):  # noqa: N807
                if type(self) is cls or name in names:
                    raise FrozenInstanceError(f"cannot delete field {name!r}")
                object.__delattr__(self, name)

            cls.__setattr__ = __setattr__
            cls.__delattr__ = __delattr__
            if not explicit_hash:
                cls.__hash__ = lambda self: hash(values(self))
        elif not explicit_hash:
            cls.__hash__ = None  # equal by value and mutable: unhashable, as a dataclass
        return cls

    def dataclass(cls=None, *, frozen=False):
        if cls is None:
            return lambda klass: _process(klass, frozen)
        return _process(cls, frozen)


__all__ = ["dataclass", "field"]
