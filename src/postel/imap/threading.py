"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class ThreadMessage:
    number: int  # sequence number or UID, as the response wants
    message_id: str | None
    references: list[str]  # References ids, or In-Reply-To when there are none
    base_subject: str
    is_reply: bool  # the subject had a Re:/Fwd: leader (RFC 5256 5 step 5)
    date: datetime  # sent date, or internal date when there is none


@dataclass(eq=False)
class _Node:
    message: ThreadMessage | None = None
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def date(self) -> datetime:
        if self.message is not None:
            return self.message.date
        return min((c.date() for c in self.children), default=datetime.min)

    def key(self) -> tuple[datetime, int]:
        if self.message is not None:
            return self.message.date, self.message.number
        first = min(self.children, key=lambda c: c.key()) if self.children else None
        return first.key() if first else (datetime.min, 0)


def format_threads(nodes: list[_Node]) -> str:
    return "".join("(" + _format(n) + ")" for n in nodes)


def _format(node: _Node) -> str:
    parts: list[str] = []
    while True:
        if node.message is not None:
            parts.append(str(node.message.number))
        if len(node.children) == 1:
            node = node.children[0]
            continue
        if node.children:
            parts.append("".join("(" + _format(c) + ")" for c in node.children))
        break
    return " ".join(parts)


def ordered_subject(messages: list[ThreadMessage]) -> str:
    groups: dict[str, list[ThreadMessage]] = {}
    for m in sorted(messages, key=lambda m: (m.base_subject, m.date, m.number)):
        groups.setdefault(m.base_subject, []).append(m)
    roots: list[_Node] = []
    for group in groups.values():
        root = _Node(group[0])
        root.children = [_Node(m, root) for m in group[1:]]
        roots.append(root)
    roots.sort(key=lambda n: n.key())
    return format_threads(roots)


def _ancestor(a: _Node, b: _Node) -> bool:
    """True when a is b or one of b's ancestors."""
    node: _Node | None = b
    while node is not None:
        if node is a:
            return True
        node = node.parent
    return False


def _link(parent: _Node, child: _Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def references(messages: list[ThreadMessage]) -> str:
    table: dict[str, _Node] = {}
    for m in messages:
        mid = m.message_id
        if mid is None or (mid in table and table[mid].message is not None):
            mid = f"<postel-unique-{m.number}>"  # RFC 5256 3 (1)(A): duplicates are new
        node = table.setdefault(mid, _Node())
        node.message = m
        prev: _Node | None = None
        for ref in m.references:
            ref_node = table.setdefault(ref, _Node())
            if (prev is not None and ref_node.parent is None and not _ancestor(ref_node, prev)):
                _link(prev, ref_node)
            prev = ref_node
        # RFC 5256 4 (REFERENCES, step 1B): the message's own references win over a
        # parent guessed from another message's (perhaps truncated) References: break
        # that link first, then link to the last reference unless it would make a loop
        # (in which case, or without references, the message has no parent).
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if prev is not None and not _ancestor(node, prev):
            _link(prev, node)
    roots = [n for n in table.values() if n.parent is None]
    roots = _prune(roots, is_root=True)
    # (4) sort siblings by date; (5) merge root threads by base subject.
    subjects: dict[str, _Node] = {}
    merged: list[_Node] = []
    for root in sorted(roots, key=lambda n: n.key()):
        subject_node = root if root.message is not None else (
            min(root.children, key=lambda c: c.key()) if root.children else root)
        first = subject_node.message
        subject = first.base_subject if first is not None else ""
        if not subject:
            merged.append(root)
            continue
        other = subjects.get(subject)
        if other is None:
            subjects[subject] = root
            merged.append(root)
            continue
        if other.message is None and root.message is None:
            for child in list(root.children):
                _link(other, child)
        elif other.message is None or (
            root.message is not None and root.message.is_reply
            and not other.message.is_reply
        ):
            _link(other, root)
        else:
            dummy = _Node()
            index = merged.index(other)
            _link(dummy, other)
            _link(dummy, root)
            merged[index] = dummy
            subjects[subject] = dummy
    for root in merged:
        _sort(root)
    merged.sort(key=lambda n: n.key())
    return format_threads(merged)


def _prune(nodes: list[_Node], *, is_root: bool) -> list[_Node]:
    out: list[_Node] = []
    for node in nodes:
        node.children = _prune(node.children, is_root=False)
        for child in node.children:
            child.parent = node
        if node.message is None:
            if not node.children:
                continue
            if not is_root or len(node.children) == 1:
                # RFC 5256 3 (3): promote the children of a dummy.
                for child in node.children:
                    child.parent = node.parent
                out.extend(node.children)
                continue
        out.append(node)
    return out


def _sort(node: _Node) -> None:
    node.children.sort(key=lambda n: n.key())
    for child in node.children:
        _sort(child)
