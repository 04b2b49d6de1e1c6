#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""make_api_corpus.py - write the hand-made seed inputs of fuzz_api into fuzz/corpus/fuzz_api/.

Each seed is a short program in fuzz_api's input language (see the dispatcher at the end of
fuzz/fuzz_api.c): the first two bytes are the options of the first open, then one byte per call
and the call's arguments. Together the seeds reach every call, every durability mode, faults of
each family, a crash, an open under a fault, a read-only reopen and the size limits, so that a
short run starts from the interesting states instead of finding them first.

Usage: python3 fuzz/make_api_corpus.py [OUT_DIR]
"""
import os
import sys

# call bytes (b % 32 in LLVMFuzzerTestOneInput)
PUT, PUT_EX, GET, DEL, DEL_EX = 0, 6, 8, 13, 16
SYNC, COMPACT, VERIFY, STATS = 17, 18, 19, 20
REOPEN, CRASH, FAULT, DISARM, OPEN_FAULT, BADARGS, COMPARE = 21, 22, 23, 24, 25, 26, 27

# options (decode_opts): byte a = durability | lane index << 2 | segment << 5, byte b = flags
PROCESS, POWER, PERIODIC = 0, 1, 2
SEG64K, SEG192K, SEG16M = 0, 5, 7
SHARDS1, SHARDS4, HINT, COMPACT1M, NOAUTO, READONLY = 0x1, 0x2, 0x4, 0x8, 0x10, 0xE0

# fault kinds (index into fault_kinds[])
K_ALL, K_SYNCS, K_FDATASYNC, K_FSYNC, K_PWRITE, K_PREAD, K_FALLOC, K_OPEN = range(8)
K_RENAME, K_UNLINK, K_MMAP, K_FTRUNC, K_CLOSE, K_MISC = range(8, 14)
ENOSPC, PERSIST, THIS_THREAD, SHORT = 0x1, 0x2, 0x4, 0x18

# value lengths (pick_len): (class byte, x)
def small(n):
    return [1, (n - 1) % 64]


def medium(n):
    n -= 1
    return [9 | ((n & 15) << 4), (n >> 4) & 0xFF]


EMPTY = [0, 0]
SEGFULL = [13, 0x80]  # about the room of a 64 KiB segment
BIG = [14, 40]        # about 14 KiB
MAXV = [15, 0]        # PKV_MAX_VALUE
TOOBIG = [15 | (8 << 4), 0]  # PKV_MAX_VALUE + 1

KEY_MAX, KEY_EMPTY, KEY_LONG = 240, 248, 252


LANES = {1: 0, 2: 1, 3: 2, 4: 3, 0: 4}  # lane count (0: one per CPU) -> its index


def opts(durability=PROCESS, lanes=1, seg=SEG64K, flags=0):
    return [durability | (LANES[lanes] << 2) | (seg << 5), flags]


def put(key, val):
    return [PUT, key] + val


def put_ex(key, val, power=True):
    return [PUT_EX, key] + val + [1 if power else 0]


def get(key, mode=5, extra=0):
    return [GET, key, mode, extra]


def dele(key):
    return [DEL, key]


def del_ex(key, power=True):
    return [DEL_EX, key, 1 if power else 0]


def fault(kind, nth=1, flags=0):
    return [FAULT, kind, nth - 1, flags]


def reopen(o):
    return [REOPEN] + o


def crash(o, enospc=False):
    return [CRASH, 1 if enospc else 0] + o


def open_fault(o, kind, nth=1, flags=0):
    return [OPEN_FAULT] + o + [kind, nth - 1, flags]


SEEDS = {
    # every call once, no fault: puts, gets with every buffer size, dels, compaction, reopens
    "basic": opts(PROCESS, 1)
    + put(0, small(10)) + put(1, EMPTY) + put(2, medium(300)) + put(3, small(64))
    + sum((get(2, m, 3) for m in range(6)), []) + get(1, 2) + get(5, 5, 9)
    + dele(1) + dele(1) + del_ex(3, False) + put_ex(4, small(5), False)
    + [STATS, VERIFY, COMPACT, VERIFY, STATS, COMPARE]
    + put(0, small(20)) + dele(2) + [COMPACT] + reopen(opts(PROCESS, 2, SEG64K, NOAUTO))
    + [COMPARE, STATS] + put(6, small(3)) + reopen(opts(PROCESS, 0, SEG64K, READONLY))
    + put(6, small(7)) + dele(0) + [SYNC, COMPACT, VERIFY, COMPARE]
    + reopen(opts(PERIODIC, 1, SEG192K, SHARDS4)) + [COMPARE],
    # POWER writes, per-write POWER, syncs, segment rolls, then a crash and more writes
    "power": opts(POWER, 2, SEG64K, SHARDS1)
    + put(0, medium(4000)) + put(1, medium(4000)) + put_ex(2, medium(4000)) + [SYNC]
    + put(3, SEGFULL) + put(4, SEGFULL) + dele(0) + del_ex(1) + [COMPACT]
    + put(5, BIG) + put(6, small(1)) + crash(opts(POWER, 1)) + [COMPARE]
    + put(7, small(9)) + [COMPACT, VERIFY] + crash(opts(PROCESS, 3, SEG64K, NOAUTO))
    + [STATS, COMPARE],
    # a failing fdatasync under POWER: the write is undecided, the store refuses writes
    "sync-fault": opts(POWER, 1)
    + put(0, small(4)) + put(1, small(8)) + fault(K_FDATASYNC, 1, PERSIST)
    + put(2, small(12)) + put(3, small(3)) + dele(0) + [SYNC, COMPACT, STATS]
    + get(2) + crash(opts(POWER, 1)) + [COMPARE, STATS] + put(2, small(6)),
    # process mode: a failed segment creation fails the write, the store goes on
    "roll-fault": opts(PROCESS, 1, SEG64K, NOAUTO)
    + put(0, SEGFULL) + fault(K_FALLOC, 1, ENOSPC | THIS_THREAD)
    + put(1, SEGFULL) + put(2, SEGFULL) + put(3, small(5)) + [STATS, DISARM]
    + fault(K_OPEN, 2, THIS_THREAD) + put(4, SEGFULL) + put(5, SEGFULL) + [COMPACT]
    + put(6, small(3)) + fault(K_RENAME, 1, THIS_THREAD) + [COMPACT]
    + put(7, small(4)) + fault(K_UNLINK, 1, PERSIST) + [COMPACT]
    + reopen(opts(PROCESS, 1)) + [COMPARE],
    # periodic mode, faults on the compaction's operations, short writes and reads
    "compact-fault": opts(PERIODIC, 2, SEG64K, COMPACT1M)
    + put(0, medium(2000)) + put(1, medium(2000)) + put(2, small(30)) + [COMPACT]
    + dele(0) + put(3, small(9)) + fault(K_PWRITE, 2, SHORT | PERSIST) + [COMPACT, VERIFY]
    + put(4, small(5)) + fault(K_FSYNC, 1, THIS_THREAD) + [COMPACT]
    + put(5, small(6)) + fault(K_MMAP, 1, THIS_THREAD) + [COMPACT]
    + put(6, small(7)) + fault(K_PWRITE, 1, ENOSPC | THIS_THREAD) + [COMPACT, COMPARE, STATS]
    + put(7, small(8)) + fault(K_UNLINK, 1, PERSIST) + [COMPACT, STATS] + crash(opts(PERIODIC, 1))
    + [VERIFY, COMPARE],
    # opens under faults: recovery's reads, mappings, truncation; a read-only reopen
    "open-fault": opts(PROCESS, 2)
    + put(0, small(5)) + put(1, medium(700)) + [COMPACT] + put(2, small(3)) + dele(1)
    + open_fault(opts(PROCESS, 1), K_PREAD, 1)
    + put(3, small(2)) + crash(opts(PROCESS, 2))
    + open_fault(opts(PROCESS, 1), K_MMAP, 2) + open_fault(opts(POWER, 1), K_FTRUNC, 1)
    + open_fault(opts(PROCESS, 1), K_ALL, 3, PERSIST)
    + open_fault(opts(PROCESS, 1, SEG64K, READONLY), K_PREAD, 1, SHORT | PERSIST)
    + [COMPARE] + put(4, small(1)),
    # the limits: empty and over-long keys, the longest key, the largest and too large values
    "limits": opts(PROCESS, 1, SEG64K, NOAUTO)
    + put(KEY_EMPTY, small(3)) + put(KEY_LONG, small(3)) + put(KEY_MAX, small(5))
    + get(KEY_EMPTY) + get(KEY_LONG) + get(KEY_MAX, 2) + dele(KEY_EMPTY) + dele(KEY_LONG)
    + put(0, TOOBIG) + put(1, MAXV) + get(1, 2) + get(1, 0) + [COMPACT, VERIFY]
    + put(2, EMPTY) + get(2, 0) + get(2, 1) + get(2, 3, 7) + dele(KEY_MAX) + [BADARGS]
    + reopen(opts(PROCESS, 1, SEG16M)) + [COMPARE, BADARGS],
}

# All of the above in one input (their first two bytes, the options, left out): a long program
# lets the fuzzer start from longer inputs, where calls act on the states earlier ones left.
SEEDS["all"] = opts(PROCESS, 2) + sum((SEEDS[n][2:] for n in (
    "basic", "roll-fault", "power", "limits", "compact-fault", "sync-fault", "open-fault")), [])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_api")
    os.makedirs(out, exist_ok=True)
    for name, prog in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(prog))
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
