"""The single-process driver: one thread reads and pre-processes (flat-field,
-log, stripes, phase) block k+1 while this thread reconstructs block k and
another writes block k-1 (queues of one block each), so memory is bounded by
a few blocks whatever the scan size, and the reconstruction, the slowest
stage, never waits for the other steps (issue 19). Each stage's busy time is
returned: the timeline of where the time went."""

from __future__ import annotations

import queue
import threading
import time

from .compute import prepare_block, reconstruct_block
from .read import read_for


class _Stop(Exception):
    pass


def _run_threads(cfg, scan, todo, start, center, halo, writer, recon_fn, nt):
    """Read + pre-process (thread) -> reconstruct (this thread) -> write (thread), one block in
    each queue. Returns the busy seconds of reading, reconstructing, writing and pre-processing."""
    from .._progress import progress

    show = None if cfg.run.progress else False
    t = {"read": 0.0, "compute": 0.0, "write": 0.0, "preprocess": 0.0}
    read_q: queue.Queue = queue.Queue(maxsize=1)
    write_q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(q, item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stop

    def reader():
        try:
            with progress(
                total=len(todo), desc="read", unit="block", enabled=show, position=0
            ) as bar:
                for a, b in todo:
                    t0 = time.perf_counter()
                    raw = read_for(scan, a, b, halo=halo, center=center)
                    t1 = time.perf_counter()
                    t["read"] += t1 - t0
                    data, keep = prepare_block(raw, cfg, n_threads=nt)
                    item = (raw.out_rows, raw.r0, data, keep)
                    del raw
                    t["preprocess"] += time.perf_counter() - t1
                    put(read_q, item)
                    bar.update()
            put(read_q, None)
        except _Stop:
            pass
        except BaseException as e:  # handed to the main thread
            errors.append(e)
            stop.set()

    def writer_loop():
        try:
            with progress(
                total=len(todo), desc="write", unit="block", enabled=show, position=2
            ) as bar:
                while True:
                    try:
                        item = write_q.get(timeout=0.1)
                    except queue.Empty:
                        if stop.is_set():
                            return
                        continue
                    if item is None:
                        return
                    a, b, vol = item
                    t0 = time.perf_counter()
                    writer.write(a - start, b - start, vol)
                    t["write"] += time.perf_counter() - t0
                    bar.update()
        except BaseException as e:
            errors.append(e)
            stop.set()

    threads = [
        threading.Thread(target=reader, name="scintomo-read", daemon=True),
        threading.Thread(target=writer_loop, name="scintomo-write", daemon=True),
    ]
    for th in threads:
        th.start()
    try:
        with progress(
            total=len(todo), desc="reconstruct", unit="block", enabled=show, position=1
        ) as bar:
            while True:
                try:
                    raw = read_q.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        break
                    continue
                if raw is None:
                    break
                t0 = time.perf_counter()
                (a, b), r0, data, keep = raw
                del raw
                vol = reconstruct_block(
                    data, keep, (a, b), r0, scan.theta, center, cfg, recon_fn=recon_fn, n_threads=nt
                )
                del data
                t["compute"] += time.perf_counter() - t0
                put(write_q, (a, b, vol))
                bar.update()
            if not stop.is_set():
                put(write_q, None)
    except _Stop:
        pass
    except BaseException:
        stop.set()
        raise
    finally:
        if not stop.is_set():
            threads[1].join()  # let the writer drain its queue
        stop.set()
        for th in threads:
            th.join()
    if errors:
        raise errors[0]
    return t["read"], t["compute"], t["write"], t["preprocess"]
