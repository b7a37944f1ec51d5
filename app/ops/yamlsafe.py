"""YAML from people (spec files, the console's editor and import), read with bounds: ``load_yaml``.

``yaml.safe_load`` builds anything it is given. Nested 5,000 levels deep, its composer overflows the stack (a
RecursionError, a 500 in the console); and aliases are expanded by whatever reads the result: 489 bytes of
``&a [*b, *b, ...]`` in a plan's ``defaults`` became 152 MB of JSON on its way to the database. Here both are
counted while the document is composed, before any Python object is built, and refused with a one-line message.
"""

import yaml

# objects and lists in one another (a spec holds a few: plans, steps, a step's script, defaults)
MAX_DEPTH = 64
# what the document holds once every alias is expanded (each *alias counts as a copy of what it names)
MAX_NODES = 100_000
MAX_CHARS = 1_000_000  # characters of its scalars, keys included


class YamlError(ValueError, yaml.YAMLError):
    """The text is not YAML we read: a one-line message (``problem``, then where, when known).

    A ``yaml.YAMLError`` too, with the ``problem`` and ``problem_mark`` of PyYAML's own errors, so a caller's
    ``except yaml.YAMLError`` that reads them keeps working."""

    def __init__(self, problem: str, mark=None):
        self.problem, self.problem_mark = problem, mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        super().__init__(f"{problem}{at}")

    def __str__(self) -> str:
        return self.args[0]


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting depth and the expanded size as each node is composed."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, characters), its aliases expanded

    def compose_node(self, parent, index):
        opens = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if opens:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise YamlError(f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            if opens:
                self._depth -= 1
        if id(node) not in self._sizes:  # an alias returns the node it names, counted already
            self._sizes[id(node)] = self._size(node)
        nodes, chars = self._sizes[id(node)]
        if nodes > MAX_NODES or chars > MAX_CHARS:
            raise YamlError(
                f"expands to more than {MAX_NODES:,} values or {MAX_CHARS:,} characters (its aliases expanded)",
                node.start_mark,
            )
        return node

    def _size(self, node) -> tuple[int, int]:
        if isinstance(node, yaml.ScalarNode):
            return 1, len(node.value)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        nodes, chars = 1, 0
        for child in children:
            child_nodes, child_chars = self._sizes[id(child)]
            nodes, chars = nodes + child_nodes, chars + child_chars
        return nodes, chars


def load_yaml(text: str) -> object:
    """``yaml.safe_load(text)`` within the bounds above; any problem is a ``YamlError`` (a ValueError)."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # its reader refuses unprintable characters already
        return loader.get_single_data()
    except YamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        raise YamlError(exc.problem or exc.context or "not valid YAML", exc.problem_mark or exc.context_mark) from None
    except yaml.YAMLError as exc:
        raise YamlError(" ".join(str(exc).split())) from None
    finally:
        if loader is not None:
            loader.dispose()
