"""Memory freed by a step goes back to the operating system before the next step."""

import numpy as np

from custpipe.memory import release_memory


def _rss_mb() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) >> 10 for line in fh if line.startswith("VmRSS:"))


def test_freed_heap_memory_is_returned_to_the_os():
    before = _rss_mb()
    # glibc serves arrays below its (adaptive) mmap threshold from the heap and keeps them
    # when freed: free one large array so that the threshold rises, as pandas steps do
    large = np.ones(30 * 2**20 // 8)
    del large
    arrays = [np.ones(2**20 // 2) for _ in range(100)]  # 100 x 4 MiB on the heap
    grown = _rss_mb()
    keep = arrays[9::10]  # survivors scattered over the heap, as a real step leaves
    del arrays
    release_memory()
    after = _rss_mb()
    assert grown - before > 300
    assert after - before < (grown - before) / 2, (before, grown, after)
    assert len(keep) == 10


def test_the_nightly_job_releases_memory_after_every_step(demo_run):
    from custpipe.definitions import build_definitions

    deployment, _, _ = demo_run
    job = build_definitions(deployment.settings).resolve_job_def("nightly")
    assert {h.name for h in job.hook_defs} >= {
        "release_memory_after_step",
        "release_memory_after_failed_step",
    }


def test_cycles_a_later_step_leaves_are_still_collected():
    import weakref

    release_memory()  # the first call freezes what survives it (modules, definitions)

    class Frame:
        pass

    frame = Frame()
    frame.itself = frame  # a reference cycle: only the garbage collector frees it
    gone = weakref.ref(frame)
    del frame
    release_memory()
    assert gone() is None
