"""Shared test helper for thread pools: how much CPU the process burns while it sleeps."""

import time


def cpu_while_sleeping(seconds):
    """CPU seconds this process uses while the calling thread sleeps `seconds`: what a
    spin-waiting worker pool (OpenBLAS's after a threaded call) burns; ~0 when idle."""
    c0 = time.process_time()
    time.sleep(seconds)
    return time.process_time() - c0
