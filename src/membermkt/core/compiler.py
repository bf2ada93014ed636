"""The visitor base shared by every segment backend (Python predicates, SQL, ...).

``Compiler.process(node, path)`` dispatches on the node: first a function registered with
:func:`compiles` for (node type, backend) or (node type, any backend), then the compiler's
``visit_<kind>`` method; otherwise it raises :class:`~membermkt.errors.SegmentError` naming
the compiler, the node kind and the node's path. Visits are *top-down*: a visit receives the
node and its path and calls ``self.process`` on children itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from membermkt.core.segments import Segment
from membermkt.errors import SegmentError

__all__ = ["Compiler", "compiles"]

T = TypeVar("T")
N = TypeVar("N", bound=Segment)

_REGISTRY: dict[tuple[type[Segment], str], Callable[..., Any]] = {}


def compiles(
    node_type: type[N], backend: str = "*"
) -> Callable[[Callable[[Any, N, str], T]], Callable[[Any, N, str], T]]:
    """Register ``fn(compiler, node, path)`` as the compilation of ``node_type`` for
    ``backend`` (``"python"``, ``"sql"``, a dialect-specific backend, or ``"*"``).

    Lets a plugin add a leaf kind and its compilation without subclassing compilers.
    """

    def decorate(fn: Callable[[Any, N, str], T]) -> Callable[[Any, N, str], T]:
        _REGISTRY[(node_type, backend)] = fn
        return fn

    return decorate


class Compiler(Generic[T]):
    """Base class of segment compilers; subclasses define ``visit_<kind>`` methods.

    Attributes:
        backends: the backend names this compiler answers to, most specific first
            (e.g. ``("sql.postgresql", "sql")``); registered functions are looked up for
            each, then for ``"*"``.
    """

    backends: ClassVar[tuple[str, ...]] = ()

    def process(self, node: Segment, path: str = "$") -> T:
        """Compile ``node`` (found at ``path``).

        Raises:
            SegmentError: when nothing can compile this node kind.
        """
        for cls in type(node).__mro__:
            if not (isinstance(cls, type) and issubclass(cls, Segment)):
                continue
            for backend in (*self.backends, "*"):
                fn = _REGISTRY.get((cls, backend))
                if fn is not None:
                    result: T = fn(self, node, path)
                    return result
        visit = getattr(self, f"visit_{node.kind}", None)
        if visit is None:
            raise SegmentError(
                f"{type(self).__name__} cannot compile segment node kind {node.kind!r}", path
            )
        out: T = visit(node, path)
        return out

    @staticmethod
    def child_path(path: str, index: int | None = None) -> str:
        """The path of a child: ``$.args[i]`` for n-ary nodes, ``$.arg`` for ``not``."""
        return f"{path}.arg" if index is None else f"{path}.args[{index}]"
