"""Can a program binary start other programs? A small, bounded reader of ELF dynamic symbol tables.

Job (issue 11, item 5): decide once per pinned program whether its binary can run another program, so
``shell_execute`` can refuse wrappers that are missing from the refused family by what they do. A binary
"can run programs" when its dynamic symbol table imports one of ``EXEC_SYMBOLS``; a ``#!`` script counts
as its interpreter; anything that cannot be read (a statically linked binary, no section headers, not ELF,
a damaged or oversized file) is unknown and counts as "may exec" (fail closed).

Invariants: pure apart from reading the file; every read is bounded (``MAX_TABLE_BYTES`` per table,
``MAX_SECTIONS`` section headers, ``MAX_SCRIPT_DEPTH`` interpreters); never raises for a bad file.
"""

from __future__ import annotations

import functools
import os
import struct
from typing import BinaryIO

__all__ = ["EXEC_SYMBOLS", "can_run_programs", "imported_symbols"]

EXEC_SYMBOLS = frozenset(
    {"execve", "execv", "execvp", "execvpe", "execl", "execlp", "execle", "execveat", "fexecve", "posix_spawn",
     "posix_spawnp", "system", "popen"}
)  # fmt: skip
MAX_SECTIONS = 4096
MAX_TABLE_BYTES = 16 << 20
MAX_SCRIPT_DEPTH = 4
_SHT_DYNSYM = 11
_SHN_UNDEF = 0
_PT_INTERP = 3


def _read(file: BinaryIO, offset: int, size: int) -> bytes:
    if offset < 0 or size < 0 or size > MAX_TABLE_BYTES:
        raise ValueError("table out of bounds")
    file.seek(offset)
    data = file.read(size)
    if len(data) != size:
        raise ValueError("truncated")
    return data


def imported_symbols(path: str) -> frozenset[str] | None:
    """Names the ELF file at ``path`` imports (undefined dynamic symbols), or None if it cannot tell.

    None for: not ELF, no program interpreter (statically linked, static-pie included), no section headers,
    no ``.dynsym``, damaged or oversized tables.
    """
    try:
        with open(path, "rb") as file:
            return _imported(file)
    except (OSError, ValueError, struct.error):
        return None


def _imported(file: BinaryIO) -> frozenset[str] | None:
    ident = file.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
    header = _read(file, 16, 48 if wide else 36)
    # e_shoff, then e_shentsize and e_shnum (offsets from byte 16 of the file)
    (shoff,) = struct.unpack_from(order + ("Q" if wide else "I"), header, 24 if wide else 16)
    shentsize, shnum = struct.unpack_from(order + "HH", header, 42 if wide else 30)
    (phoff,) = struct.unpack_from(order + ("Q" if wide else "I"), header, 16 if wide else 12)
    phentsize, phnum = struct.unpack_from(order + "HH", header, 38 if wide else 26)
    if phnum > MAX_SECTIONS or phentsize < 4:
        return None
    programs = _read(file, phoff, phentsize * phnum)
    if not any(struct.unpack_from(order + "I", programs, i * phentsize)[0] == _PT_INTERP for i in range(phnum)):
        return None  # no dynamic loader: statically linked (static-pie too), its own exec code is invisible
    if shoff == 0 or shnum == 0 or shnum > MAX_SECTIONS or shentsize < (64 if wide else 40):
        return None
    table = _read(file, shoff, shentsize * shnum)
    # (sh_type, sh_offset, sh_size, sh_link, sh_entsize) of every section
    layout = order + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
    sections = []
    for index in range(shnum):
        fields = struct.unpack_from(layout, table, index * shentsize)
        sections.append((fields[1], fields[4], fields[5], fields[6], fields[9]))
    dynsym = next((s for s in sections if s[0] == _SHT_DYNSYM), None)
    if dynsym is None or dynsym[3] >= shnum:
        return None
    _, offset, size, link, entsize = dynsym
    if entsize < (24 if wide else 16):
        return None
    symbols = _read(file, offset, size)
    strings = _read(file, sections[link][1], sections[link][2])
    names = set()
    for start in range(0, size - entsize + 1, entsize):
        (name,) = struct.unpack_from(order + "I", symbols, start)
        (shndx,) = struct.unpack_from(order + "H", symbols, start + (6 if wide else 14))
        if shndx == _SHN_UNDEF and 0 < name < len(strings):
            names.add(strings[name : strings.find(b"\0", name)].decode("utf-8", "replace"))
    return frozenset(names)


def shebang(path: str) -> str | None:
    """The interpreter a ``#!`` script names ("" when the line names none; ``/usr/bin/env X`` is env itself),
    else None (not a script, or unreadable)."""
    try:
        with open(path, "rb") as file:
            line = file.readline(256)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    words = line[2:].split()
    return os.fsdecode(words[0]) if words else ""


@functools.lru_cache(maxsize=512)
def can_run_programs(path: str, _depth: int = 0) -> bool:
    """True if the program at ``path`` (followed to its real file) may start another program.

    Cached by path: the server calls it once per pinned program at startup, and once per binary a
    pattern admits at call time.
    """
    real = os.path.realpath(path)
    interpreter = shebang(real)
    if interpreter is not None:
        if not interpreter or _depth >= MAX_SCRIPT_DEPTH:
            return True
        return can_run_programs(interpreter, _depth + 1)
    symbols = imported_symbols(real)
    return symbols is None or not symbols.isdisjoint(EXEC_SYMBOLS)
