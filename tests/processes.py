"""Worker processes of the multi-process tests."""

import os


def kill_process_groups(procs):
    """Kill (SIGKILL) the process group of every still-running Popen started with
    ``start_new_session=True``, and reap it: tests that start workers clean up even on failure."""
    import signal

    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
