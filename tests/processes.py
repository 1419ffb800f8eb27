"""Watching a study's processes, which may end while being looked at: a child that exits between the
listing of the children and the reading of its command line raises NoSuchProcess or ZombieProcess (a
NoSuchProcess), one being reaped AccessDenied on some systems. These helpers take that as "not there"."""
import psutil

GONE = (psutil.NoSuchProcess, psutil.AccessDenied)


def child_running(pid: int, needle: str, recursive: bool = False) -> psutil.Process | None:
    """A child of ``pid`` whose command line holds ``needle``; None when there is none or ``pid`` has ended."""
    try:
        children = psutil.Process(pid).children(recursive=recursive)
    except GONE:
        return None
    for child in children:
        try:
            if needle in " ".join(child.cmdline()):
                return child
        except GONE:
            continue
    return None


def ended(process: psutil.Process) -> bool:
    """Whether the process has ended (a zombie has: it only waits to be reaped)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def kill_quietly(process: psutil.Process) -> None:
    """Kill the process if it still runs (a test's clean-up, whatever happened before)."""
    try:
        process.kill()
    except GONE:
        pass
