"""A minimal writer of OLE2 compound files ([MS-CFB] version 3), for tests only.

olefile reads compound files but cannot create them, so the Zeiss TXRM tests
build theirs with this: 512-byte sectors, streams under 4096 bytes in the
mini stream (64-byte mini sectors), one FAT without DIFAT sectors (files up
to 109 FAT sectors, about 7 MB), each storage's children chained as right
siblings in the [MS-CFB] 2.6.4 order (length of name, then upper-case name),
all black.
"""

from __future__ import annotations

import struct

SECTOR, MINI, CUTOFF = 512, 64, 4096
FREE, END, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _key(name: str):
    return (len(name), name.upper())


def build_cfb(streams: dict[str, bytes]) -> bytes:
    """Bytes of a compound file holding ``streams`` ({"Storage/Stream": data})."""
    # directory tree: id 0 root; storages and streams below
    entries = [{"name": "Root Entry", "type": 5, "children": [], "data": b""}]
    storages = {"": 0}
    for path in streams:
        parts = path.split("/")
        for i in range(1, len(parts)):
            key = "/".join(parts[:i])
            if key not in storages:
                storages[key] = len(entries)
                entries.append({"name": parts[i - 1], "type": 1, "children": [], "data": b""})
                entries[storages["/".join(parts[: i - 1])]]["children"].append(storages[key])
        entries.append({"name": parts[-1], "type": 2, "children": [], "data": streams[path]})
        entries[storages["/".join(parts[:-1])]]["children"].append(len(entries) - 1)

    # mini stream: small streams, 64-byte mini sectors
    mini_fat: list[int] = []
    mini = bytearray()
    for e in entries:
        if e["type"] == 2 and len(e["data"]) < CUTOFF and e["data"]:
            n = -(-len(e["data"]) // MINI)
            e["start"] = len(mini_fat)
            mini_fat += list(range(len(mini_fat) + 1, len(mini_fat) + n)) + [END]
            mini += e["data"].ljust(n * MINI, b"\0")
        elif e["type"] == 2 and not e["data"]:
            e["start"] = END

    sectors: list[bytes] = []
    fat: list[int] = []

    def put(data: bytes, marker: int | None = None) -> int:
        n = max(1, -(-len(data) // SECTOR))
        first = len(sectors)
        for i in range(n):
            sectors.append(data[i * SECTOR : (i + 1) * SECTOR].ljust(SECTOR, b"\0"))
            fat.append(marker if marker is not None else (first + i + 1 if i < n - 1 else END))
        return first

    root_start = put(bytes(mini)) if mini else END
    for e in entries:
        if e["type"] == 2 and len(e["data"]) >= CUTOFF:
            e["start"] = put(e["data"])
    mini_fat_bytes = struct.pack(f"<{len(mini_fat)}I", *mini_fat) if mini_fat else b""
    n_mini_fat = -(-len(mini_fat_bytes) // SECTOR)
    mini_fat_start = put(mini_fat_bytes.ljust(n_mini_fat * SECTOR, b"\xff")) if mini_fat else END

    # directory entries, children chained as right siblings in CFB order
    for e in entries:
        kids = sorted(e["children"], key=lambda i: _key(entries[i]["name"]))
        e["child"] = kids[0] if kids else NOSTREAM
        for a, b in zip(kids, [*kids[1:], None], strict=False):
            entries[a]["right"] = NOSTREAM if b is None else b
    directory = bytearray()
    for i, e in enumerate(entries):
        name = e["name"].encode("utf-16-le") + b"\0\0"
        if i == 0:
            start, size = root_start, len(mini)
        elif e["type"] == 1:
            start, size = 0, 0
        else:
            start, size = e["start"], len(e["data"])
        directory += struct.pack(
            "<64sHBBIII16sIQQIQ",
            name.ljust(64, b"\0"),
            len(name),
            e["type"],
            1,
            NOSTREAM,
            e.get("right", NOSTREAM),
            e["child"],
            b"\0" * 16,
            0,
            0,
            0,
            start,
            size,
        )
    directory += b"\0" * (-len(directory) % SECTOR)
    # unused directory slots must be empty entries with NOSTREAM links
    n_entries = len(directory) // 128
    for j in range(len(entries), n_entries):
        directory[j * 128 + 68 : j * 128 + 80] = struct.pack("<III", NOSTREAM, NOSTREAM, NOSTREAM)
    dir_start = put(bytes(directory))

    # FAT sectors: enough to describe every sector, themselves included
    n_fat = 1
    while n_fat * SECTOR // 4 < len(sectors) + n_fat:
        n_fat += 1
    if n_fat > 109:
        raise ValueError("test compound file too large for a header-only DIFAT")
    fat_first = len(sectors)
    fat += [FATSECT] * n_fat
    fat += [FREE] * (n_fat * SECTOR // 4 - len(fat))
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    for i in range(n_fat):
        sectors.append(fat_bytes[i * SECTOR : (i + 1) * SECTOR])

    difat = [fat_first + i for i in range(n_fat)] + [FREE] * (109 - n_fat)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"\0" * 16,
        0x003E,
        3,
        0xFFFE,
        9,
        6,
        b"\0" * 6,
        0,
        n_fat,
        dir_start,
        0,
        CUTOFF,
        mini_fat_start,
        n_mini_fat,
        END,
        0,
    ) + struct.pack("<109I", *difat)
    return header + b"".join(sectors)
